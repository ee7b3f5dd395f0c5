"""The server side of one Goridge RPC connection, and the byte budget all connections share.

:func:`serve_connection` reads requests in order, executes them concurrently and answers them by
sequence id (as Go's ``net/rpc`` does); a malformed frame, a frame left unfinished for longer than the
frame timeout, or one that does not fit the shared :class:`ByteBudget` closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from rrgrpc.errors import ProtocolError, RRError
from rrgrpc.goridge.frame import HEADER_SIZE, Frame, decode_header, decode_options
from rrgrpc.goridge.rpc.codec import (
    MAX_RPC_FRAME,
    Request,
    decode_argument,
    encode_error,
    encode_reply,
    encode_result,
    parse,
    reply_codec,
)

log = logging.getLogger("rr.rpc")

#: Requests of one connection executing at once; reading pauses beyond it (back-pressure).
MAX_IN_FLIGHT: Final = 256
#: A frame whose first byte has arrived must be complete within this many seconds (server side).
FRAME_TIMEOUT: Final = 10.0

#: The server's view of the methods: ``dispatch("Service.Method", argument) -> result``.
Dispatch = Callable[[str, Any], Awaitable[Any]]


class ByteBudget:
    """Bytes of request payload held by all connections of one endpoint: read, queued or executing.

    A frame reserves its declared payload length as soon as its header is read, before any byte of
    the payload is buffered, and gives it back when its reply is written (or its connection dies).
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; ``False`` (and nothing reserved) when that would exceed the total."""
        if self.used + size > self.total:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size

    def give_when_done(self, task: asyncio.Task[Any], size: int) -> None:
        """Give ``size`` back when ``task`` ends (a done callback runs even for a task cancelled
        before it started, which a ``finally`` in its coroutine would not)."""
        task.add_done_callback(lambda _task: self.give(size))




# --------------------------------------------------------------------------------------------
# transport


async def read_frame(
    reader: asyncio.StreamReader,
    max_payload: int = MAX_RPC_FRAME,
    *,
    timeout: float | None = None,
    budget: ByteBudget | None = None,
    sender: str = "worker",
) -> Frame | None:
    """Read one frame; ``None`` on a clean end of stream before a frame starts.

    Waiting for the first byte is unbounded (an idle connection is fine); from there the whole frame
    must arrive within ``timeout`` seconds. With a ``budget``, the payload length is reserved from it
    before the payload is read; the caller gives ``len(frame.payload)`` back when done with it.
    ``sender="client"`` explains non-frame bytes as a wrong client rather than worker output.

    Raises:
        ProtocolError: bad header, the stream ends inside a frame, the frame is not complete within
            ``timeout``, or its payload does not fit the budget.
    """
    try:
        first = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        return None
    reserved = 0
    try:
        async with asyncio.timeout(timeout):
            try:
                head = first + await reader.readexactly(HEADER_SIZE - 1)
            except asyncio.IncompleteReadError as exc:
                raise ProtocolError(
                    f"short read: got {1 + len(exc.partial)} of the {HEADER_SIZE} header bytes"
                ) from exc
            header = decode_header(head, max_payload, sender=sender)
            if budget is not None:
                if not budget.take(header.length):
                    raise ProtocolError(
                        f"a frame of {header.length} bytes does not fit the RPC buffer budget "
                        f"({budget.used} of {budget.total} bytes held by pending requests)"
                    )
                reserved = header.length
            try:
                options = decode_options(header, await reader.readexactly(header.options_size))
                payload = await reader.readexactly(header.length) if header.length else b""
            except asyncio.IncompleteReadError as exc:
                raise ProtocolError("short read: the stream ended inside a frame") from exc
    except BaseException as exc:
        if budget is not None:
            budget.give(reserved)
        if isinstance(exc, TimeoutError):
            raise ProtocolError(f"the frame was not complete within {timeout:g}s") from None
        raise
    return Frame(payload, header.flags, options, header.byte10)


def peer_name(conn: asyncio.StreamWriter | asyncio.BaseTransport | None) -> str:
    """``host:port`` of a TCP client, ``unix socket`` for a unix one (from a writer or a transport)."""
    name = conn.get_extra_info("peername") if conn is not None else None
    if isinstance(name, tuple) and len(name) >= 2:
        return f"[{name[0]}]:{name[1]}" if ":" in str(name[0]) else f"{name[0]}:{name[1]}"
    return "unix socket"


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    dispatch: Dispatch,
    *,
    max_payload: int = MAX_RPC_FRAME,
    frame_timeout: float | None = FRAME_TIMEOUT,
    budget: ByteBudget | None = None,
    warn: Callable[..., None] = log.warning,
) -> None:
    """Serve one client connection until it closes or sends a frame that cannot be served.

    Requests are executed concurrently (at most :data:`MAX_IN_FLIGHT` at once) and each reply carries
    its request's sequence id and method, in the request's codec (GOB ⇒ JSON). Any exception from
    ``dispatch`` becomes an error reply with ``str(exc)``. A malformed frame, one not complete within
    ``frame_timeout``, or one whose payload does not fit ``budget`` is reported through ``warn`` and
    closes this connection; the requests it has in flight are cancelled.
    """
    peer = peer_name(writer)
    write_lock = asyncio.Lock()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    pending: set[asyncio.Task[None]] = set()

    async def answer(req: Request) -> None:
        try:
            codec = reply_codec(req.codec)
            try:
                result = await dispatch(req.method, decode_argument(req.codec, req.body))
                data = encode_reply(req.seq, req.method, codec, encode_result(codec, result))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure of a method is the caller's answer
                if not isinstance(exc, RRError):
                    log.warning("rpc %s failed: %r", req.method, exc)
                data = encode_error(req.seq, req.method, codec, str(exc) or type(exc).__name__)
            async with write_lock:
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            log.debug("rpc client %s went away before the reply to %s", peer, req.method)
        finally:
            slots.release()

    try:
        while True:
            await slots.acquire()
            try:
                frame = await read_frame(
                    reader, max_payload, timeout=frame_timeout, budget=budget, sender="client"
                )
                if frame is None:
                    slots.release()
                    break
                try:
                    req = parse(frame)
                except ProtocolError:
                    if budget is not None:
                        budget.give(len(frame.payload))
                    raise
            except ProtocolError as exc:
                slots.release()
                warn("closing the connection of rpc client %s: %s", peer, exc)
                for task in pending:
                    task.cancel()
                break
            task = asyncio.create_task(answer(req), name=f"rpc {req.method} #{req.seq}")
            pending.add(task)
            task.add_done_callback(pending.discard)
            if budget is not None:
                budget.give_when_done(task, len(frame.payload))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    except (ConnectionError, asyncio.IncompleteReadError):
        log.debug("rpc client %s disconnected", peer)
    finally:
        for task in pending:
            task.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
