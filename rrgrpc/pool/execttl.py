"""``supervisor.exec_ttl``: the one timer that bounds the wait for a worker's reply.

Every read of a reply (a request's answer, the next frame of a stream, the end of an abandoned
exchange) goes through :meth:`ExecTTL.receive`; when the time passes, ``on_expiry`` kills the
worker, so the read fails with WorkerLost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rrgrpc.pool.payload import Payload
from rrgrpc.pool.worker import Worker


class ExecTTL:
    """Bounds each reply read to ``ttl`` seconds (0: unbounded)."""

    __slots__ = ("ttl", "_on_expiry")

    def __init__(self, ttl: float, on_expiry: Callable[[Worker], None]) -> None:
        self.ttl = ttl
        self._on_expiry = on_expiry

    def receive(self, w: Worker) -> Awaitable[Payload]:
        """``w.receive()``, with ``on_expiry(w)`` called if no frame arrives within the TTL.

        Without a TTL this is ``w.receive()`` itself: no coroutine of its own on the request path.
        """
        return self._bounded(w) if self.ttl else w.receive()

    async def _bounded(self, w: Worker) -> Payload:
        # a timer handle, not asyncio.timeout(): it runs once per request
        handle = asyncio.get_running_loop().call_later(self.ttl, self._on_expiry, w)
        try:
            return await w.receive()
        finally:
            handle.cancel()
