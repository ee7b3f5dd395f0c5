"""Worker states (numbers and names as RoadRunner reports them) and the informer's wire DTOs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

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


class ProcessState(msgspec.Struct, frozen=True):
    """One worker as ``informer.Workers`` reports it; field names and order are RoadRunner's."""

    pid: int
    status: int
    num_execs: int = msgspec.field(name="numExecs")
    created: int  # unix nanoseconds
    memory_usage: int = msgspec.field(name="memoryUsage")  # RSS bytes
    cpu_percent: float = msgspec.field(name="CPUPercent")
    command: str
    status_str: str = msgspec.field(name="statusStr")


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
