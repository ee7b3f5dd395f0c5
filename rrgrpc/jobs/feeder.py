"""FeedingDriver: the consuming half shared by drivers that feed the plugin's queue from a local store.

Owns the run/pause/resume state, the count of unsettled deliveries checked against ``prefetch``, the
``changed`` event that wakes the feeder (push, settle, resume), and the feeder task's life. A subclass
writes ``_feed()`` (the loop that moves due jobs into ``self.queue``) and calls ``_settled()`` when a
delivery is acked, nacked or requeued.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from rrgrpc.jobs.driver import DeliveryQueue, Driver, DriverError, Pipeline


class FeedingDriver(Driver):
    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        self._unsettled = 0
        self._running = False
        self._changed = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def _feed(self) -> None:
        """Move due jobs into ``self.queue`` while running, at most ``prefetch`` unsettled; never returns."""

    def _settled(self) -> None:
        self._unsettled -= 1
        self._changed.set()

    async def run(self) -> None:
        self._running = True
        if self._feeder is None:
            name = f"jobs {self.pipeline.driver} feeder {self.pipeline.name}"
            self._feeder = asyncio.create_task(self._feed(), name=name)
        self._changed.set()

    async def pause(self) -> None:
        self._running = False

    async def resume(self) -> None:
        await self.run()

    async def _stop_feeding(self) -> None:
        self._running = False
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, DriverError):
                await self._feeder
            self._feeder = None
