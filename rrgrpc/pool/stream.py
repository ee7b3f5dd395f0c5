"""Streamed replies: iterating over a worker's reply frames, answering PING, stopping a stream early.

The pool hands a :class:`StreamFrames` the worker, its first reply frame and a :class:`Handback`:
the three things a stream needs from the pool (give the worker back, kill it, drain it in the
background). Nothing here touches the pool's own state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from rrgrpc.errors import WorkerError, WorkerLost
from rrgrpc.goridge.frame import Stream
from rrgrpc.pool.execttl import ExecTTL
from rrgrpc.pool.payload import Payload
from rrgrpc.pool.worker import StopRequested, Worker

STREAM: Final = int(Stream.STREAM)  # plain ints: IntFlag arithmetic costs a microsecond per request
_PING: Final = int(Stream.PING)


@dataclass(frozen=True, slots=True)
class Handback:
    """How a worker goes back to its pool once a stream is done with it."""

    release: Callable[[Worker], None]  # it answered in full: back to the pool (or retired by its state)
    lost: Callable[[Worker], None]  # it broke: kill it and replace it
    drain: Callable[[Worker], None]  # it is mid-stream: stop the stream in the background, then release


async def drain(w: Worker, timeout: float, log: logging.Logger) -> bool:
    """Ask a streaming worker to stop (STOP frame) and read until its final frame.

    Returns whether the stream ended cleanly within ``timeout`` (stream_timeout); when it did not,
    the worker is broken and must be killed.
    """
    w.stop_stream()
    try:
        async with asyncio.timeout(timeout):
            while True:
                reply = await w.receive()
                if not reply.stream & STREAM:
                    return True
    except (TimeoutError, WorkerLost, StopRequested, WorkerError) as exc:
        log.warning("stream did not stop cleanly: %s", exc, extra={"pid": w.pid})
        return False


class StreamFrames:
    """Iterates over a (possibly streamed) reply; answers PING, and stops the stream when closed early."""

    def __init__(self, worker: Worker, first: Payload, exec_ttl: ExecTTL, handback: Handback) -> None:
        self._w = worker
        self._first: Payload | None = first
        self._exec_ttl = exec_ttl
        self._handback = handback
        self._done = not first.stream & STREAM
        self._closed = False
        if self._done:
            handback.release(worker)

    def __aiter__(self) -> StreamFrames:
        return self

    async def __anext__(self) -> Payload:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._done:
            raise StopAsyncIteration
        w = self._w
        try:
            reply = await self._exec_ttl.receive(w)
        except asyncio.CancelledError:
            raise
        except (WorkerError, StopRequested) as exc:
            self._done = True
            self._handback.lost(w)
            raise WorkerError(f"stream broken: {exc}") from exc
        except WorkerLost:
            self._done = True
            self._handback.lost(w)
            raise
        if reply.stream & _PING:
            w.pong()
        if not reply.stream & STREAM:
            self._done = True
            self._handback.release(w)
        return reply

    def close(self) -> None:
        """Stop iterating: a stream still running is stopped and drained in the background."""
        if not self._done and not self._closed:
            self._closed = True
            self._done = True
            self._handback.drain(self._w)
