"""Table test of the supervisor's verdicts (RoadRunner's ttl / idle_ttl / max_worker_memory rules)."""

from __future__ import annotations

import pytest

from rrgrpc.pool.state import WorkerState as S
from rrgrpc.pool.supervisor import MB, Limits, Verdict, Vitals, judge

CASES = [
    # state, age, idle, rss, limits, verdict, recorded state
    (S.READY, 10, 1, 0, Limits(), Verdict.KEEP, None),
    (S.READY, 10, 1, 0, Limits(ttl=5), Verdict.STOP, S.TTL_REACHED),
    (S.WORKING, 10, 0, 0, Limits(ttl=5), Verdict.MARK_INVALID, S.TTL_REACHED),
    (S.READY, 1, 9, 0, Limits(idle_ttl=5), Verdict.STOP, S.IDLE_TTL_REACHED),
    (S.WORKING, 1, 9, 0, Limits(idle_ttl=5), Verdict.KEEP, None),  # busy is never idle
    (S.READY, 1, 1, 120 * MB, Limits(max_worker_memory=100), Verdict.STOP, S.MAX_MEMORY_REACHED),
    (S.WORKING, 1, 1, 120 * MB, Limits(max_worker_memory=100), Verdict.MARK_INVALID, S.MAX_MEMORY_REACHED),
    (S.READY, 1, 1, 99 * MB, Limits(max_worker_memory=100), Verdict.KEEP, None),
    (S.INVALID, 10, 10, 500 * MB, Limits(ttl=1, idle_ttl=1, max_worker_memory=1), Verdict.KEEP, None),
    (S.STOPPING, 10, 10, 0, Limits(ttl=1), Verdict.KEEP, None),
    (S.READY, 10, 10, 500 * MB, Limits(ttl=1, idle_ttl=1, max_worker_memory=1), Verdict.STOP, S.TTL_REACHED),
]


@pytest.mark.parametrize(("state", "age", "idle", "rss", "limits", "verdict", "recorded"), CASES)
def test_judge(
    state: S, age: float, idle: float, rss: int, limits: Limits, verdict: Verdict, recorded: S | None
) -> None:
    assert judge(Vitals(state, age, idle, rss), limits) == (verdict, recorded)


@pytest.mark.parametrize(
    ("state", "name"),
    [(S.INACTIVE, "inactive"), (S.READY, "ready"), (S.WORKING, "working"), (S.MAX_JOBS_REACHED, "maxJobsReached"),
     (S.IDLE_TTL_REACHED, "idleTTLReached"), (S.MAX_MEMORY_REACHED, "maxMemoryReached"), (S.EXEC_TTL_REACHED, "undefined")],
)
def test_state_wire_names(state: S, name: str) -> None:
    assert state.wire_name == name
