"""The pool's queue: idle workers and the requests waiting for one, both first in, first out.

A worker given back goes to the oldest waiter, or joins the idle workers. A request that had a
worker which died before reading it, or asked to be stopped, waits again at the head of the line: it
already waited its turn (else, behind one worker that exits every N requests, the same request can
draw the dying worker again and again). A waiter gives up after
``allocate_timeout`` (NoFreeWorkers, and the dynamic allocator hears of the shortage); no more than
``max_queue_size`` requests wait (QueueFull). Under load every request waits here, so the waits
share one timer, armed for the earliest deadline; when it fires it fails the waiters whose deadline
passed and re-arms for the next one (a waiter served in time costs no timer at all). Deadlines are
in queue order but for a request put back at the head, so the expiry looks at every waiter: it runs
only when workers are short.

A waiter may bring its request along (a :class:`Job`): the worker given back then starts it on the
spot (``Job.start`` writes it), and the waiter wakes once, for the reply, not once for the worker
and again for the reply. A job that cannot start (its client went away, the worker is gone) fails
that waiter, and a worker still usable goes on to the next one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

from rrgrpc.errors import NoFreeWorkers, PoolError, QueueFull
from rrgrpc.pool.state import WorkerState
from rrgrpc.pool.worker import Worker

#: A deadline this close counts as passed: the loop's timers fire at millisecond granularity.
_SLACK = 0.001


class Job(Protocol):
    """A waiting request that starts on the worker :meth:`Queue.give` hands over."""

    def start(self, w: Worker) -> BaseException | None:
        """Write the request to ``w`` (marked WORKING); else the error its waiter gets, with ``w``
        left WORKING when another request may have it (or settled by the job when it is gone)."""

    def abandon(self, w: Worker) -> None:
        """The waiter went away after its request started on ``w``: finish that exchange without it."""


_Waiter = tuple[float, "asyncio.Future[Worker]", Job | None]  # (deadline, future, the request if it came along)


class Queue:
    """Idle workers and waiting requests of one pool."""

    __slots__ = ("idle", "dropped", "_waiters", "_name", "_allocate_timeout", "_max", "_on_shortage", "_timer", "_loop")

    def __init__(self, name: str, allocate_timeout: float, max_queue_size: int, on_shortage: Callable[[], None]) -> None:
        self.idle: deque[Worker] = deque()
        self.dropped = 0  # waiters whose caller went away (deadline, cancel) while they waited
        self._waiters: deque[_Waiter] = deque()  # oldest first
        self._name = name
        self._allocate_timeout = allocate_timeout
        self._max = max_queue_size
        self._on_shortage = on_shortage
        self._timer: asyncio.TimerHandle | None = None  # armed for the oldest waiter's deadline
        self._loop: asyncio.AbstractEventLoop | None = None  # cached: get_running_loop() is a getpid() call on 3.11

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def pop_ready(self) -> Worker | None:
        """The oldest idle worker still READY, taken off the queue, or None."""
        idle = self.idle
        while idle:
            w = idle.popleft()
            if w.state is WorkerState.READY:
                return w
        return None

    def give(self, w: Worker) -> None:
        """Hand a ready worker to the oldest waiter (marked WORKING; its job, if any, started on it),
        or park it idle (READY)."""
        while self._waiters:
            _, fut, job = self._waiters.popleft()
            if fut.done():
                continue
            w.become(WorkerState.WORKING)
            failed = job.start(w) if job is not None else None
            if failed is None:
                fut.set_result(w)
                return
            fut.set_exception(failed)
            if w.state is not WorkerState.WORKING:
                return  # the job found it gone and settled it
        w.become(WorkerState.READY)
        self.idle.append(w)

    async def wait(self, first: bool = False, job: Job | None = None) -> Worker:
        """Wait for a worker handed over by :meth:`give` (marked WORKING, with ``job`` started on
        it); ``first``: at the head of the line (a request taken back from a worker that could not
        run it).

        Raises:
            QueueFull: ``max_queue_size`` requests already wait.
            NoFreeWorkers: none came within ``allocate_timeout``.
        """
        if self._max and len(self._waiters) >= self._max and not first:
            raise QueueFull(f"{self._name} pool: max queue size reached ({self._max})")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[Worker] = loop.create_future()
        timeout = self._allocate_timeout
        deadline = loop.time() + timeout if timeout else float("inf")
        if first:
            self._waiters.appendleft((deadline, fut, job))
        else:
            self._waiters.append((deadline, fut, job))
        if timeout and self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        try:
            return await fut
        except asyncio.CancelledError:  # the caller went away (deadline, cancel) while queued
            self.dropped += 1
            if fut.done() and not fut.cancelled() and fut.exception() is None:  # handed over just as the caller gave up
                if job is None:
                    self.give(fut.result())
                else:
                    job.abandon(fut.result())
            raise
        finally:
            if not fut.done():
                fut.cancel()
            if fut.cancelled():  # a future that got its worker (or an error) was already popped
                self._forget(fut)

    def _forget(self, fut: asyncio.Future[Worker]) -> None:
        for i, (_, waiter, _) in enumerate(self._waiters):
            if waiter is fut:
                del self._waiters[i]
                return

    def _expire(self) -> None:
        """The earliest deadline came: waiters past allocate_timeout fail with NoFreeWorkers."""
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time() + _SLACK
        kept: deque[_Waiter] = deque()
        for deadline, fut, job in self._waiters:
            if fut.done():
                continue
            if deadline > now:
                kept.append((deadline, fut, job))
                continue
            self._on_shortage()
            fut.set_exception(
                NoFreeWorkers(f"{self._name} pool: no free worker within allocate_timeout ({self._allocate_timeout:g}s)")
            )
        self._waiters = kept
        if kept:
            self._timer = loop.call_at(min(d for d, _, _ in kept), self._expire)

    def fail(self, exc: PoolError) -> None:
        """Every waiter fails with ``exc`` (the pool failed or is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, fut, _ in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters.clear()
