"""Worker states (numbers and names as RoadRunner reports them), the transitions allowed between
them, and the informer's wire DTOs.

A worker's life: INACTIVE (booting) -> READY <-> WORKING, then one state that says why it leaves
the pool (INVALID, a limit reached, ERRORED, DESTROYED), then STOPPING -> STOPPED. Every change
goes through :func:`check_transition`, so a move the table does not allow fails loudly.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec


class WorkerState(enum.IntEnum):
    INACTIVE = 0
    READY = 1
    WORKING = 2
    INVALID = 3
    STOPPING = 4
    STOPPED = 5
    DESTROYED = 6
    MAX_JOBS_REACHED = 7
    ERRORED = 8
    IDLE_TTL_REACHED = 9
    TTL_REACHED = 10
    MAX_MEMORY_REACHED = 11
    EXEC_TTL_REACHED = 12

    @property
    def wire_name(self) -> str:
        """The ``statusStr`` RoadRunner prints; state 12 has no name there and renders ``undefined``."""
        return _NAMES.get(self, "undefined")


_NAMES = {
    WorkerState.INACTIVE: "inactive",
    WorkerState.READY: "ready",
    WorkerState.WORKING: "working",
    WorkerState.INVALID: "invalid",
    WorkerState.STOPPING: "stopping",
    WorkerState.STOPPED: "stopped",
    WorkerState.DESTROYED: "destroyed",
    WorkerState.MAX_JOBS_REACHED: "maxJobsReached",
    WorkerState.ERRORED: "errored",
    WorkerState.IDLE_TTL_REACHED: "idleTTLReached",
    WorkerState.TTL_REACHED: "ttlReached",
    WorkerState.MAX_MEMORY_REACHED: "maxMemoryReached",
}


class InvalidTransition(RuntimeError):
    """A worker was moved between two states the lifecycle does not connect (a bug in rr)."""


_S = WorkerState
#: Why a worker leaves the pool: the states recorded when it is retired or killed.
LEAVING: Final = frozenset({
    _S.INVALID, _S.MAX_JOBS_REACHED, _S.IDLE_TTL_REACHED, _S.TTL_REACHED, _S.MAX_MEMORY_REACHED,
    _S.EXEC_TTL_REACHED, _S.ERRORED, _S.DESTROYED,
})
_ENDING: Final = frozenset({_S.STOPPING, _S.STOPPED, _S.DESTROYED, _S.ERRORED})
#: state -> the states it may move to (staying in the same state is always allowed)
ALLOWED: Final[Mapping[WorkerState, frozenset[WorkerState]]] = {
    _S.INACTIVE: frozenset({_S.READY}) | _ENDING,
    _S.READY: frozenset({_S.WORKING, _S.IDLE_TTL_REACHED, _S.TTL_REACHED, _S.MAX_MEMORY_REACHED}) | _ENDING,
    # a busy worker is only marked (INVALID) by the supervisor, reset and remove: it answers first
    _S.WORKING: frozenset({_S.READY, _S.INVALID, _S.MAX_JOBS_REACHED, _S.EXEC_TTL_REACHED}) | _ENDING,
    _S.INVALID: frozenset({_S.EXEC_TTL_REACHED}) | _ENDING,
    _S.MAX_JOBS_REACHED: _ENDING,
    _S.IDLE_TTL_REACHED: _ENDING,
    _S.TTL_REACHED: _ENDING,
    _S.MAX_MEMORY_REACHED: _ENDING,
    _S.EXEC_TTL_REACHED: _ENDING,
    _S.ERRORED: _ENDING,
    _S.DESTROYED: _ENDING,
    _S.STOPPING: _ENDING,
    _S.STOPPED: frozenset(),
}


def check_transition(pid: int, old: WorkerState, new: WorkerState) -> None:
    """Raise InvalidTransition unless a worker may move from ``old`` to ``new``."""
    if new is not old and new not in ALLOWED[old]:
        raise InvalidTransition(f"worker {pid}: no transition from {old.name} to {new.name}")


class ProcessState(msgspec.Struct, frozen=True, omit_defaults=True):
    """One worker as ``informer.Workers`` reports it; field names and order are RoadRunner's.

    ``front`` (rrgrpc's extension) is the index of the front process that owns the worker when rr
    runs several (docs/data-plane.md); it is left out of the encoding when unset, so a single
    front's replies stay RoadRunner's byte for byte."""

    pid: int
    status: int
    num_execs: int = msgspec.field(name="numExecs")
    created: int  # unix nanoseconds
    memory_usage: int = msgspec.field(name="memoryUsage")  # RSS bytes
    cpu_percent: float = msgspec.field(name="CPUPercent")
    command: str
    status_str: str = msgspec.field(name="statusStr")
    front: int | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """What a pool is doing now, beyond RoadRunner's informer: for ``rr workers -i``.

    Attributes:
        queue: requests waiting for a worker.
        busy: pid -> (what it executes: gRPC method or HTTP URI, unix time the exec started).
        dropped: requests dropped since start because their caller went away while they waited.
    """

    queue: int = 0
    busy: dict[int, tuple[str, float]] = field(default_factory=dict)
    dropped: int = 0
