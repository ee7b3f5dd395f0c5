"""A pipelining-safe asyncio JSON client of the Goridge RPC endpoint (``rr workers``, ``rr reset``,
``rr jobs`` and the tests use it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from rrgrpc.errors import ProtocolError
from rrgrpc.gocompat import parse_address
from rrgrpc.goridge.frame import Flag
from rrgrpc.goridge.rpc.codec import (
    SEQ_MOD,
    Request,
    RpcError,
    decode_argument,
    encode_request,
    encode_result,
    parse,
)
from rrgrpc.goridge.rpc.conn import read_frame

#: Budget for a client to connect to the endpoint.
CONNECT_TIMEOUT: Final = 5.0


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
        self._seq = self._seq % (SEQ_MOD - 1) + 1
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
