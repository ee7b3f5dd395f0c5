"""pool.Queue: a request put back at the head of the line (its worker could not run it) is served
first, and it does not hold back the expiry of the waiters behind it; a worker given back starts
the request that waits for it (a Job) itself."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import pytest

from rrgrpc.errors import NoFreeWorkers, RequestDropped
from rrgrpc.pool.queue import Queue
from rrgrpc.pool.state import WorkerState
from rrgrpc.pool.worker import Worker


async def test_a_waiter_put_back_at_the_head_keeps_the_others_deadlines() -> None:
    shortages: list[int] = []
    # the deadlines are 0.5 s apart: a loaded box may run this coroutine late, but not that late
    queue = Queue("grpc", allocate_timeout=1.0, max_queue_size=1, on_shortage=lambda: shortages.append(1))
    behind = asyncio.create_task(queue.wait())
    await asyncio.sleep(0.5)
    head = asyncio.create_task(queue.wait(first=True))  # past max_queue_size: a put-back request still waits
    await asyncio.sleep(0)
    assert queue.waiting == 2
    with pytest.raises(NoFreeWorkers, match=r"grpc pool: no free worker within allocate_timeout \(1s\)"):
        await asyncio.wait_for(behind, 2)
    assert not head.done()  # its own deadline is later: the expiry of the one behind it did not wait for it
    with pytest.raises(NoFreeWorkers):
        await asyncio.wait_for(head, 2)
    assert queue.waiting == 0 and len(shortages) == 2


class Recorder:
    """A queue.Job that records what the queue asks of it; ``refuse``: the error its start returns,
    ``gone``: its start finds the worker gone and settles it (as the pool's does)."""

    def __init__(self, refuse: BaseException | None = None, gone: bool = False) -> None:
        self.refuse = refuse
        self.gone = gone
        self.started: list[tuple[int, WorkerState]] = []
        self.abandoned: list[int] = []

    def start(self, w: Worker) -> BaseException | None:
        self.started.append((w.pid, w.state))
        if self.gone:
            w.become(WorkerState.ERRORED)
        return self.refuse

    def abandon(self, w: Worker) -> None:
        self.abandoned.append(w.pid)


def ready_worker(pid: int) -> Worker:
    w = Worker("http", logging.getLogger("test"))
    w.pid = pid
    w.become(WorkerState.READY)
    return w


async def test_a_worker_given_back_starts_the_waiting_job_and_skips_the_ones_that_cannot_start() -> None:
    """The job starts on the worker marked WORKING; a job refused (client gone) fails its waiter and the
    worker goes on to the next one; a job that found the worker gone fails its waiter and ends the hand-off."""
    queue = Queue("http", allocate_timeout=0, max_queue_size=0, on_shortage=lambda: None)
    dropped, served = Recorder(refuse=RequestDropped("client gone")), Recorder()
    waiters = [asyncio.create_task(queue.wait(job=dropped)), asyncio.create_task(queue.wait(job=served))]
    await asyncio.sleep(0)
    w = ready_worker(101)
    queue.give(w)
    with pytest.raises(RequestDropped):
        await waiters[0]
    assert await waiters[1] is w and w.state is WorkerState.WORKING
    assert dropped.started == [(101, WorkerState.WORKING)] and served.started == [(101, WorkerState.WORKING)]

    lost, next_one = Recorder(refuse=ConnectionError("gone"), gone=True), Recorder()
    waiters = [asyncio.create_task(queue.wait(job=lost)), asyncio.create_task(queue.wait(job=next_one))]
    await asyncio.sleep(0)
    queue.give(ready_worker(102))
    with pytest.raises(ConnectionError):
        await waiters[0]
    assert next_one.started == [] and not waiters[1].done() and queue.waiting == 1
    queue.give(ready_worker(103))
    assert (await waiters[1]).pid == 103 and queue.idle == deque()


async def test_a_waiter_cancelled_after_its_job_started_abandons_the_exchange() -> None:
    """Cancelled between the hand-off and its wake-up: the worker runs its request, so the job finishes
    that exchange (abandon), it is not given to anybody else."""
    queue = Queue("http", allocate_timeout=0, max_queue_size=0, on_shortage=lambda: None)
    job, other = Recorder(), Recorder()
    waiter = asyncio.create_task(queue.wait(job=job))
    await asyncio.sleep(0)
    queue.give(ready_worker(104))  # its future has the worker; the task has not run yet
    waiter.cancel()
    behind = asyncio.create_task(queue.wait(job=other))
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert job.started == [(104, WorkerState.WORKING)] and job.abandoned == [104]
    assert other.started == [] and not behind.done() and queue.waiting == 1 and not queue.idle
    behind.cancel()
