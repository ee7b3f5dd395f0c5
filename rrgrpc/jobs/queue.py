"""The jobs plugin's priority queue: deliveries of every consuming pipeline, lowest priority value first.

Bounded by ``jobs.pipeline_size`` (``put`` waits while it is full), FIFO among equal priorities. Closing
it wakes every waiting ``get`` with ``None`` (the pollers' signal to stop); what is still inside is
taken back with ``drain`` and returned to the brokers by the plugin.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from rrgrpc.jobs.driver import Delivery


class PriorityQueue:
    """Implements the drivers' ``DeliveryQueue``; the plugin's pollers ``get`` from it."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._heap: list[tuple[int, int, Delivery]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap)

    async def put(self, delivery: Delivery) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or len(self._heap) < self._size)
            if not self._closed:
                heapq.heappush(self._heap, (delivery.job.priority, next(self._seq), delivery))
                self._changed.notify_all()
                return
        await delivery.nack(requeue=True)  # a driver racing the plugin's shutdown: straight back

    async def get(self) -> Delivery | None:
        """The next delivery, waiting for one; ``None`` once the queue is closed."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or bool(self._heap))
            if self._closed:
                return None
            delivery = heapq.heappop(self._heap)[2]
            self._changed.notify_all()
            return delivery

    def count(self, pipeline: str) -> int:
        return sum(1 for _, _, d in self._heap if d.job.pipeline == pipeline)

    async def drain(self, pipeline: str | None = None) -> list[Delivery]:
        """Take out (without settling) the deliveries of one pipeline, or all of them."""
        async with self._changed:
            keep = [e for e in self._heap if pipeline is not None and e[2].job.pipeline != pipeline]
            taken = [e[2] for e in self._heap if pipeline is None or e[2].job.pipeline == pipeline]
            heapq.heapify(keep)
            self._heap = keep
            self._changed.notify_all()
            return taken

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
