"""The supervisor's verdicts: a pure function from a worker's vital signs to what should happen.

The pool calls :func:`judge` for every worker each ``watch_tick`` and applies the verdict. Keeping
the decision pure makes the table of RoadRunner's rules testable without processes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rrgrpc.pool.state import WorkerState

MB = 1024 * 1024


class Verdict(enum.Enum):
    KEEP = "keep"
    STOP = "stop"  # idle worker over a limit: stop it now and replace it
    MARK_INVALID = "mark_invalid"  # busy worker over a limit: replace it once it answers


@dataclass(frozen=True, slots=True)
class Limits:
    """The supervisor keys, in seconds and megabytes; 0 turns a limit off."""

    ttl: float = 0.0
    idle_ttl: float = 0.0
    max_worker_memory: int = 0


@dataclass(frozen=True, slots=True)
class Vitals:
    state: WorkerState
    age: float  # seconds since the worker was created
    idle: float  # seconds since the worker last finished a request (or was created)
    rss: int  # bytes


def judge(v: Vitals, limits: Limits) -> tuple[Verdict, WorkerState | None]:
    """Decide a worker's fate; returns the verdict and the limit reached.

    An idle worker records the limit as its state; a busy one is marked INVALID (RoadRunner's
    state for it) and the limit is only its reason to leave."""
    if v.state not in (WorkerState.READY, WorkerState.WORKING):
        return Verdict.KEEP, None
    reason: WorkerState | None = None
    if limits.ttl and v.age >= limits.ttl:
        reason = WorkerState.TTL_REACHED
    elif limits.max_worker_memory and v.rss >= limits.max_worker_memory * MB:
        reason = WorkerState.MAX_MEMORY_REACHED
    elif limits.idle_ttl and v.state is WorkerState.READY and v.idle >= limits.idle_ttl:
        reason = WorkerState.IDLE_TTL_REACHED
    if reason is None:
        return Verdict.KEEP, None
    # busy workers are only marked: this tick can land mid-request, and the reply must not be lost
    return (Verdict.MARK_INVALID if v.state is WorkerState.WORKING else Verdict.STOP), reason
