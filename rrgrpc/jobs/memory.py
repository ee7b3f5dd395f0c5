"""The ``memory`` driver: RoadRunner's embedded queue, no broker needed, jobs live in this process.

Keys (``jobs.pipelines.<name>.config``): ``priority`` (10), ``prefetch`` (100000). Jobs wait in a heap
ordered by (priority, arrival); delayed jobs wait on a timer first. While consuming, a feeder task hands
jobs to the plugin's queue, never more than ``prefetch`` unsettled. Requeued and nacked-with-requeue
jobs go back into the heap. What the process holds is lost when it stops, as in RoadRunner.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping
from typing import Any

from rrgrpc.jobs.driver import Delivery, DeliveryQueue, Headers, Job, Pipeline, Stat
from rrgrpc.jobs.feeder import FeedingDriver


class MemoryDelivery(Delivery):
    __slots__ = ("_owner", "_settled")

    def __init__(self, job: Job, owner: MemoryDriver) -> None:
        super().__init__(job, driver="memory", queue=owner.pipeline.name)
        self._owner = owner
        self._settled = False

    def _settle(self) -> bool:
        if self._settled:
            return False
        self._settled = True
        self._owner._settled()
        return not self._owner._stopped

    async def ack(self) -> None:
        self._settle()

    async def nack(self, *, requeue: bool, delay: int = 0) -> None:
        if self._settle() and requeue:
            self._owner._insert(self.job, delay)

    async def requeue(self, *, delay: int = 0, headers: Headers | None = None) -> None:
        if self._settle():
            self._owner._insert(self.job.with_(headers={**self.job.headers, **(headers or {})}), delay)


class MemoryDriver(FeedingDriver):
    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        self._ready: list[tuple[int, int, Job]] = []
        self._seq = itertools.count()
        self._timers: set[asyncio.TimerHandle] = set()
        self._stopped = False
        self.prefetch = pipeline.prefetch

    def _insert(self, job: Job, delay: int) -> None:
        if self._stopped:
            return
        if delay > 0:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def due() -> None:
                self._timers.discard(handle)
                self._insert(job, 0)

            handle = loop.call_later(delay, due)
            self._timers.add(handle)
            return
        heapq.heappush(self._ready, (job.priority, next(self._seq), job))
        self._changed.set()

    async def push(self, job: Job) -> None:
        self._insert(job, job.delay)

    async def _feed(self) -> None:
        while True:
            if not (self._running and self._ready and self._unsettled < self.prefetch):
                self._changed.clear()
                await self._changed.wait()
                continue
            job = heapq.heappop(self._ready)[2]
            self._unsettled += 1
            await self.queue.put(MemoryDelivery(job, self))

    async def stop(self) -> None:
        self._stopped = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        await self._stop_feeding()

    async def stat(self) -> Stat:
        return Stat(
            pipeline=self.pipeline.name,
            driver="memory",
            queue=self.pipeline.name,
            active=len(self._ready),
            delayed=len(self._timers),
            reserved=self._unsettled,
            ready=self._running,
            priority=self.pipeline.priority,
        )
