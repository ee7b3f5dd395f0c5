"""The exchange with one worker: write a request, read its reply within exec_ttl, iterate over a
streamed reply, and settle the worker by the outcome (back to the pool, retired, killed), also
when the caller gave up midway.

The pool hands an :class:`Exchanger` a :class:`Handback`: the few things an exchange needs from
the pool. Nothing here touches the pool's own state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from rrgrpc.errors import ExecTTLExceeded, WorkerError, WorkerLost
from rrgrpc.goridge.frame import Stream
from rrgrpc.pool.execttl import ExecTTL
from rrgrpc.pool.payload import Payload
from rrgrpc.pool.worker import NotDelivered, StopRequested, Worker

STREAM: Final = int(Stream.STREAM)  # plain ints: IntFlag arithmetic costs a microsecond per request
_PING: Final = int(Stream.PING)


@dataclass(frozen=True, slots=True)
class Handback:
    """How a worker goes back to its pool once an exchange is done with it."""

    release: Callable[[Worker], None]  # it answered: back to the pool (or retired by its state)
    lost: Callable[[Worker], None]  # it broke: kill it and replace it
    stop_requested: Callable[[Worker], None]  # it asked to be replaced: retire it
    background: Callable[[Coroutine[Any, Any, None]], None]  # run a task the pool owns (and cancels at the end)


class Exchanger:
    """Request/reply exchanges with the pool's workers."""

    __slots__ = ("exec_ttl", "handback", "_stream_timeout", "_log")

    def __init__(self, exec_ttl: ExecTTL, handback: Handback, stream_timeout: float, log: logging.Logger) -> None:
        self.exec_ttl = exec_ttl
        self.handback = handback
        self._stream_timeout = stream_timeout
        self._log = log

    def deliver(self, w: Worker, payload: Payload) -> None:
        """Write the request frame; a worker found gone (NotDelivered) is settled before it propagates."""
        try:
            w.send(payload)
        except NotDelivered:
            self.handback.lost(w)
            raise

    async def roundtrip(self, w: Worker, payload: Payload | None) -> Payload:
        """Send ``payload`` (None: already :meth:`deliver`-ed) and read the first reply frame. A
        failed exchange settles the worker; a cancelled one is finished in the background, so the
        worker is never stranded."""
        if payload is not None:
            self.deliver(w, payload)
        try:
            return await self.exec_ttl.receive(w)
        except asyncio.CancelledError:
            self.abandon(w)
            raise
        except WorkerError:
            self.handback.release(w)
            raise
        except WorkerLost as exc:
            self.handback.lost(w)
            if w.ttl_expired:
                raise ExecTTLExceeded(
                    f"worker {w.pid} did not answer within exec_ttl ({self.exec_ttl.ttl:g}s) and was killed"
                ) from exc
            raise

    def abandon(self, w: Worker) -> None:
        """Nobody waits for the reply of the request ``w`` runs: read it in the background, then settle ``w``."""
        self.handback.background(self._finish_abandoned(w))

    async def _finish_abandoned(self, w: Worker) -> None:
        try:
            reply = await self.exec_ttl.receive(w)
        except StopRequested:
            self.handback.stop_requested(w)
        except WorkerError:
            self.handback.release(w)
        except WorkerLost:
            self.handback.lost(w)
        else:
            if reply.stream & STREAM:
                await self._drain(w)
            else:
                self.handback.release(w)

    def drain_in_background(self, w: Worker) -> None:
        """Stop a stream nobody reads any more, then give the worker back."""
        self.handback.background(self._drain(w))

    async def _drain(self, w: Worker) -> None:
        """Ask a streaming worker to stop (STOP frame) and read until its final frame, within
        stream_timeout; a worker that does not end its stream cleanly is killed."""
        w.stop_stream()
        try:
            async with asyncio.timeout(self._stream_timeout):
                while True:
                    reply = await w.receive()
                    if not reply.stream & STREAM:
                        break
        except (TimeoutError, WorkerLost, StopRequested, WorkerError) as exc:
            self._log.warning("stream did not stop cleanly: %s", exc, extra={"pid": w.pid})
            self.handback.lost(w)
            return
        self.handback.release(w)


class StreamFrames:
    """Iterates over a (possibly streamed) reply; answers PING, and stops the stream when closed early."""

    def __init__(self, worker: Worker, first: Payload, exchanger: Exchanger) -> None:
        self._w = worker
        self._first: Payload | None = first
        self._exchanger = exchanger
        self._done = not first.stream & STREAM
        self._closed = False
        if self._done:
            exchanger.handback.release(worker)

    def __aiter__(self) -> StreamFrames:
        return self

    async def __anext__(self) -> Payload:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._done:
            raise StopAsyncIteration
        w, handback = self._w, self._exchanger.handback
        try:
            reply = await self._exchanger.exec_ttl.receive(w)
        except asyncio.CancelledError:
            raise
        except (WorkerError, StopRequested) as exc:
            self._done = True
            handback.lost(w)
            raise WorkerError(f"stream broken: {exc}") from exc
        except WorkerLost:
            self._done = True
            handback.lost(w)
            raise
        if reply.stream & _PING:
            w.pong()
        if not reply.stream & STREAM:
            self._done = True
            handback.release(w)
        return reply

    def close(self) -> None:
        """Stop iterating: a stream still running is stopped and drained in the background."""
        if not self._done and not self._closed:
            self._closed = True
            self._done = True
            self._exchanger.drain_in_background(self._w)
