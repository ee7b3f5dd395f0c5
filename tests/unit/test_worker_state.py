"""The worker lifecycle table (pool.state) and the dynamic allocator's bookkeeping (pool.allocator)."""

from __future__ import annotations

import pytest

from rrgrpc.config import Duration, DynamicAllocatorConfig
from rrgrpc.pool.allocator import DynamicAllocator
from rrgrpc.pool.state import ALLOWED, LEAVING, InvalidTransition, WorkerState, check_transition

S = WorkerState


def test_every_state_has_its_transitions_and_may_stay() -> None:
    assert set(ALLOWED) == set(WorkerState)
    for state in WorkerState:
        check_transition(1, state, state)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.STOPPED, S.READY),  # a reaped worker never comes back
        (S.STOPPED, S.ERRORED),
        (S.INACTIVE, S.WORKING),  # a booting worker takes no request
        (S.WORKING, S.IDLE_TTL_REACHED),  # a busy worker is only marked INVALID
        (S.WORKING, S.TTL_REACHED),
        (S.READY, S.MAX_JOBS_REACHED),  # max_jobs is counted when a request ends
        (S.INVALID, S.READY),  # a marked worker never goes back to the idle queue
        (S.STOPPING, S.WORKING),
    ],
)
def test_a_wrong_transition_raises_naming_the_worker_and_both_states(old: WorkerState, new: WorkerState) -> None:
    with pytest.raises(InvalidTransition, match=f"^worker 42: no transition from {old.name} to {new.name}$"):
        check_transition(42, old, new)


def test_every_reason_to_leave_ends_in_stopped() -> None:
    for state in LEAVING:
        assert {S.STOPPING, S.STOPPED} <= ALLOWED[state]
        assert S.READY not in ALLOWED[state] and S.WORKING not in ALLOWED[state]


def test_allocator_grows_once_a_second_up_to_max_workers_then_shrinks_after_idle_timeout() -> None:
    alloc = DynamicAllocator(DynamicAllocatorConfig(max_workers=7, spawn_rate=5, idle_timeout=Duration(10)))
    assert alloc.grow(100.0) == 5
    assert alloc.grow(100.5) == 0  # at most one growth a second
    assert alloc.grow(101.5) == 2  # capped by max_workers
    assert alloc.grow(103.0) == 0
    assert alloc.shrink(112.9) == 0  # a shortage 10 s ago at most
    assert alloc.shrink(113.0) == 5
    alloc.took_back(5, 113.0)
    assert alloc.shrink(118.0) == 0  # the idle period starts again
    assert alloc.shrink(123.0) == 2
    alloc.took_back(2, 123.0)
    assert alloc.extra == 0 and alloc.shrink(200.0) == 0


def test_no_allocator_adds_nothing() -> None:
    alloc = DynamicAllocator(None)
    assert alloc.grow(1.0) == 0 and alloc.shrink(100.0) == 0
