"""Goridge RPC: the codec of the ``rpc.listen`` endpoint, its connection loop and an asyncio client.

Owns everything that is RPC-specific on the wire (PROTOCOL.md §6), nothing about plugins:

* request/reply frames: exactly two options ``[seq, len(method)]``, payload = method name ‖ body;
* codec selection from the request flags (PROTO → JSON → RAW → MSGPACK → GOB, none set ⇒ GOB),
  argument decoding, result encoding, and error replies (``codec | ERROR``, plain-text message);
* the minimal gob decoder for the ``bool`` / ``string`` arguments the Go ``rr`` CLI sends (§6.4).
  Gob requests are answered in JSON, which the Go client decodes by the reply's flags;
* :func:`serve_connection`: one client connection, requests read in order but executed
  concurrently and answered by sequence id (as Go's ``net/rpc`` does); a malformed frame, a frame
  left unfinished for longer than the frame timeout, or one that does not fit the shared
  :class:`ByteBudget` closes that connection only;
* :class:`RpcClient`: a pipelining-safe JSON client (the ``rr workers`` / ``rr reset`` commands and
  the tests use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from rrgrpc.errors import ProtocolError, RRError
from rrgrpc.gocompat import parse_address
from rrgrpc.goridge.frame import HEADER_SIZE, Flag, Frame, decode_header, decode_options, encode

log = logging.getLogger("rr.rpc")

#: Bound on one RPC frame's payload: far above any real request (metrics, informer) or reply.
MAX_RPC_FRAME: Final = 64 * 1024 * 1024
#: Requests of one connection executing at once; reading pauses beyond it (back-pressure).
MAX_IN_FLIGHT: Final = 256
#: Budget for a client to connect to the endpoint.
CONNECT_TIMEOUT: Final = 5.0
#: A frame whose first byte has arrived must be complete within this many seconds (server side).
FRAME_TIMEOUT: Final = 10.0

_CODEC_ORDER: Final = (Flag.CODEC_PROTO, Flag.CODEC_JSON, Flag.CODEC_RAW, Flag.CODEC_MSGPACK, Flag.CODEC_GOB)
_SEQ_MOD: Final = 2**32

#: The server's view of the methods: ``dispatch("Service.Method", argument) -> result``.
Dispatch = Callable[[str, Any], Awaitable[Any]]


class RpcError(RRError):
    """The server answered a call with an ERROR reply; ``str(exc)`` is the server's text."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(message)
        self.method = method


class RpcArgumentError(RRError):
    """An argument cannot be decoded into what the method takes (sent back as an error reply)."""


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
# codec


def select_codec(flags: int) -> Flag:
    """The codec of a request: the first of PROTO, JSON, RAW, MSGPACK, GOB set in ``flags``; none ⇒ GOB."""
    for codec in _CODEC_ORDER:
        if flags & codec:
            return codec
    return Flag.CODEC_GOB


def reply_codec(codec: int) -> Flag:
    """The codec a reply is written in: the request's, except GOB which is answered in JSON."""
    return Flag.CODEC_JSON if codec == Flag.CODEC_GOB else Flag(codec)


@dataclass(frozen=True, slots=True)
class Request:
    """One RPC request (or reply) frame taken apart."""

    seq: int
    method: str
    codec: Flag
    body: bytes
    flags: int = 0


def parse(frame: Frame) -> Request:
    """Split an RPC frame into sequence id, method name, codec and body.

    Raises:
        ProtocolError: not exactly two options, or a method length beyond the payload.
    """
    if len(frame.options) != 2:
        raise ProtocolError(f"an RPC frame carries 2 options [seq, method length], got {len(frame.options)}")
    seq, mlen = frame.options
    if mlen > len(frame.payload):
        raise ProtocolError(f"method name length {mlen} exceeds the payload of {len(frame.payload)} bytes")
    method = frame.payload[:mlen].decode("utf-8", "replace")
    return Request(seq, method, select_codec(frame.flags), frame.payload[mlen:], frame.flags)


def encode_request(seq: int, method: str, codec: int, body: bytes) -> bytes:
    name = method.encode()
    return encode(name + body, codec, (seq % _SEQ_MOD, len(name)))


def encode_reply(seq: int, method: str, codec: int, body: bytes) -> bytes:
    """A success reply: flags = the codec, options ``[seq, len(method)]``, payload = method ‖ body."""
    return encode_request(seq, method, codec, body)


def encode_error(seq: int, method: str, codec: int, text: str) -> bytes:
    """An error reply: flags = codec | ERROR, payload = method ‖ plain UTF-8 text (never codec-encoded)."""
    name = method.encode()
    return encode(name + text.encode(), codec | Flag.ERROR, (seq % _SEQ_MOD, len(name)))


def decode_argument(codec: int, body: bytes) -> Any:
    """Decode a request argument. Empty bytes are Go's zero value, passed on as ``None`` (JSON, GOB,
    MSGPACK); RAW and PROTO arguments are the bytes themselves.

    Raises:
        RpcArgumentError: the bytes are not valid for the codec.
    """
    if codec in (Flag.CODEC_RAW, Flag.CODEC_PROTO):
        return bytes(body)
    if not body:
        return None
    try:
        if codec == Flag.CODEC_JSON:
            return msgspec.json.decode(body)
        if codec == Flag.CODEC_MSGPACK:
            return msgspec.msgpack.decode(body)
        return gob_decode_basic(body)
    except (msgspec.DecodeError, ValueError, IndexError) as exc:
        name = _CODEC_NAMES.get(Flag(codec), "codec")
        raise RpcArgumentError(f"{name}: cannot decode the argument: {exc}") from exc


def encode_result(codec: int, result: Any) -> bytes:
    """Encode a method's result in the reply codec (JSON as Go does it: bytes become base64 strings).

    Raises:
        RpcArgumentError: RAW needs bytes, PROTO needs bytes or a protobuf message.
    """
    if codec == Flag.CODEC_RAW:
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result)
        raise RpcArgumentError(f"raw codec needs a []byte result, got {type(result).__name__}")
    if codec == Flag.CODEC_PROTO:
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result)
        serialize = getattr(result, "SerializeToString", None)
        if serialize is None:
            raise RpcArgumentError("message type is not a proto")
        return bytes(serialize())
    if codec == Flag.CODEC_MSGPACK:
        return msgspec.msgpack.encode(result)
    return msgspec.json.encode(result)


_CODEC_NAMES: Final = {Flag.CODEC_JSON: "json", Flag.CODEC_MSGPACK: "msgpack", Flag.CODEC_GOB: "gob"}


# --------------------------------------------------------------------------------------------
# gob: just what the Go rr CLI sends (one bool or one string per request)

_GOB_BOOL: Final = 1
_GOB_STRING: Final = 6


def _gob_uint(b: bytes, i: int) -> tuple[int, int]:
    x = b[i]
    if x < 0x80:
        return x, i + 1
    n = 256 - x
    if n > 8 or i + 1 + n > len(b):
        raise ValueError("gob: bad unsigned integer")
    return int.from_bytes(b[i + 1 : i + 1 + n], "big"), i + 1 + n


def _gob_int(b: bytes, i: int) -> tuple[int, int]:
    u, i = _gob_uint(b, i)
    return (~(u >> 1) if u & 1 else u >> 1), i


def gob_decode_basic(b: bytes) -> bool | str:
    """Decode a gob stream holding one ``bool`` or ``string`` (PROTOCOL.md §6.4).

    Type-definition messages (negative type id) are skipped.

    Raises:
        ValueError: truncated stream, a struct value, or a type other than bool and string.
    """
    i = 0
    while i < len(b):
        size, i = _gob_uint(b, i)
        end = i + size
        if end > len(b):
            raise ValueError("gob: message is truncated")
        tid, j = _gob_int(b, i)
        if tid < 0:
            i = end
            continue
        if j >= end or b[j] != 0:
            raise ValueError(f"gob: type id {tid} is not a basic top-level value")
        j += 1
        if tid == _GOB_BOOL:
            v, _ = _gob_uint(b, j)
            return bool(v)
        if tid == _GOB_STRING:
            n, j = _gob_uint(b, j)
            if j + n > end:
                raise ValueError("gob: string is truncated")
            return b[j : j + n].decode()
        raise ValueError(f"gob: unsupported type id {tid} (only bool and string are understood)")
    raise ValueError("gob: no value in the stream")


# --------------------------------------------------------------------------------------------
# argument helpers for methods (Go's json texts, since the Go argument types are string/bool)


def arg_str(arg: Any) -> str:
    """A ``string`` argument: ``None`` (empty/null) is ``""``; bytes (RAW) are decoded as UTF-8."""
    if arg is None:
        return ""
    if isinstance(arg, str):
        return arg
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    raise RpcArgumentError(f"json: cannot unmarshal {_json_kind(arg)} into Go value of type string")


def arg_bool(arg: Any) -> bool:
    """A ``bool`` argument: ``None`` (empty/null) is ``False``."""
    if arg is None:
        return False
    if isinstance(arg, bool):
        return arg
    raise RpcArgumentError(f"json: cannot unmarshal {_json_kind(arg)} into Go value of type bool")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


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


# --------------------------------------------------------------------------------------------
# client


async def open_stream(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``tcp://host:port``, ``host:port`` or ``unix://path``.

    Raises:
        ConfigError: the address is malformed; OSError: nobody listens there.
    """
    addr = parse_address(address, "rpc.listen", bare=True)
    if addr.scheme == "unix":
        return await asyncio.open_unix_connection(addr.path)
    return await asyncio.open_connection(addr.host or "127.0.0.1", addr.port)


class RpcClient:
    """A Goridge RPC client: JSON codec by default, sequence ids from 1, any number of calls in flight.

    Use ``async with await RpcClient.connect(address) as client: await client.call("informer.List", True)``.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._seq = 0
        self._calls: dict[int, asyncio.Future[Request]] = {}
        self._closed: BaseException | None = None
        self._pump = asyncio.create_task(self._read_replies(), name=f"rpc client {address}")

    @classmethod
    async def connect(cls, address: str) -> RpcClient:
        """Connect within :data:`CONNECT_TIMEOUT` seconds.

        Raises:
            OSError: the endpoint refused or does not exist; TimeoutError: no answer in time.
        """
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await open_stream(address)
        return cls(reader, writer, address)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, method: str, arg: Any = None, *, codec: int = Flag.CODEC_JSON) -> Any:
        """Call ``method`` and return its decoded result (bytes for RAW and PROTO).

        ``arg`` is JSON/msgpack-encoded, or sent as-is for RAW/PROTO (it must be bytes then). The
        caller bounds the wait (``asyncio.timeout``); a cancelled call leaves the connection usable.

        Raises:
            RpcError: the server answered with an error reply.
            ConnectionError: the connection broke.
        """
        if self._closed is not None:
            raise ConnectionError(f"rpc connection to {self.address} is closed: {self._closed}")
        self._seq = self._seq % (_SEQ_MOD - 1) + 1
        seq = self._seq
        body = bytes(arg) if codec in (Flag.CODEC_RAW, Flag.CODEC_PROTO) else encode_result(codec, arg)
        future: asyncio.Future[Request] = asyncio.get_running_loop().create_future()
        self._calls[seq] = future
        try:
            self._writer.write(encode_request(seq, method, codec, body))
            await self._writer.drain()
            reply = await future
        finally:
            self._calls.pop(seq, None)
        if reply.flags & Flag.ERROR:
            raise RpcError(method, reply.body.decode("utf-8", "replace"))
        if reply.codec in (Flag.CODEC_RAW, Flag.CODEC_PROTO):
            return reply.body
        return decode_argument(reply.codec, reply.body)

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _read_replies(self) -> None:
        error: BaseException = ConnectionError(f"rpc server {self.address} closed the connection")
        try:
            while (frame := await read_frame(self._reader)) is not None:
                reply = parse(frame)
                future = self._calls.get(reply.seq)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (ProtocolError, ConnectionError) as exc:
            error = exc
        finally:
            self._closed = error
            for future in self._calls.values():
                if not future.done():
                    future.set_exception(ConnectionError(str(error)))
