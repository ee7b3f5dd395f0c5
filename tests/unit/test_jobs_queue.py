"""The plugin's priority queue: order, bound, close and drain (deliveries of a stub driver)."""

from __future__ import annotations

import asyncio

from rrgrpc.jobs.driver import Delivery, Headers, Job
from rrgrpc.jobs.queue import PriorityQueue


class Recorded(Delivery):
    def __init__(self, name: str, priority: int = 10, pipeline: str = "p") -> None:
        super().__init__(Job(id=name, name=name, payload=b"", pipeline=pipeline, priority=priority), driver="x", queue="q")
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, *, requeue: bool, delay: int = 0) -> None:
        self.settled.append(f"nack requeue={requeue}")

    async def requeue(self, *, delay: int = 0, headers: Headers | None = None) -> None:
        self.settled.append("requeue")


async def test_lower_priority_first_then_arrival_order() -> None:
    q = PriorityQueue(10)
    for name, prio in (("a", 5), ("b", 1), ("c", 5), ("d", 1)):
        await q.put(Recorded(name, prio))
    assert [await _next_id(q) for _ in range(4)] == ["b", "d", "a", "c"]


async def _next_id(q: PriorityQueue) -> str:
    delivery = await q.get()
    assert delivery is not None
    return delivery.job.id


async def test_put_waits_while_full_and_drain_frees_room() -> None:
    q = PriorityQueue(1)
    await q.put(Recorded("a", pipeline="p1"))
    blocked = asyncio.create_task(q.put(Recorded("b", pipeline="p2")))
    await asyncio.sleep(0)
    assert not blocked.done() and len(q) == 1
    assert [d.job.id for d in await q.drain("p1")] == ["a"]
    await asyncio.wait_for(blocked, 1)
    assert [d.job.id for d in await q.drain()] == ["b"]


async def test_close_wakes_getters_with_none_and_hands_late_puts_back() -> None:
    q = PriorityQueue(5)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    await q.close()
    assert await asyncio.wait_for(getter, 1) is None
    late = Recorded("late")
    await q.put(late)
    assert (len(q), late.settled) == (0, ["nack requeue=True"])
