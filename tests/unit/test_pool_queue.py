"""pool.Queue: a request put back at the head of the line (its worker could not run it) is served
first, and it does not hold back the expiry of the waiters behind it."""

from __future__ import annotations

import asyncio

import pytest

from rrgrpc.errors import NoFreeWorkers
from rrgrpc.pool.queue import Queue


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
