"""The RPC port under abuse, over real sockets: each client that misbehaves is closed with one
clear log line, and the clients that behave keep being answered.

Scenarios (each sends the bad bytes, checks the bad client was closed and why, and calls
``rpc.Version`` on a well-behaved connection opened *before* and one opened *after*):

* garbage: an HTTP request sent to the RPC port;
* a partial frame: a header declaring 1000 bytes, then silence (``rpc.frame_timeout``);
* over budget: a frame that does not fit ``rpc.max_buffer_size`` while another client holds most of it;
* oversized: a frame declaring more than the per-frame limit;
* a connection flood beyond ``rpc.max_connections``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from rrgrpc import RR_COMPAT_VERSION
from rrgrpc.config import config_from_dict
from rrgrpc.errors import ConfigError
from rrgrpc.goridge.rpc import RpcClient, encode_request
from rrgrpc.rpc.server import RpcPlugin
from tests.helpers import StaticPeers, eventually

MB = 1024 * 1024


@asynccontextmanager
async def endpoint(**rpc: Any) -> AsyncIterator[RpcPlugin]:
    cfg = config_from_dict({"version": "3", "rpc": {"listen": "tcp://127.0.0.1:0", **rpc}})
    plugin = RpcPlugin(cfg)
    async with plugin.lifespan(StaticPeers()):
        yield plugin


async def raw_connection(plugin: RpcPlugin) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = plugin.address.removeprefix("tcp://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


def header(length: int, options: int = 2) -> bytes:
    """A valid frame header (JSON codec) declaring ``length`` payload bytes, with its option words."""
    head = bytes((0x10 | (3 + options), 0x08)) + struct.pack("<I", length)
    return head + struct.pack("<I", zlib.crc32(head)) + b"\0\0" + b"\0" * (4 * options)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server closed the connection (EOF or reset) within 5 s."""
    try:
        async with asyncio.timeout(5):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True


async def works(plugin: RpcPlugin, client: RpcClient | None = None) -> bool:
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(await RpcClient.connect(plugin.address))
        async with asyncio.timeout(5):
            return bool(await client.call("rpc.Version", True))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rr.rpc" and r.levelno >= logging.WARNING]


async def test_http_request_on_the_rpc_port_is_named_as_such(caplog: pytest.LogCaptureFixture) -> None:
    async with endpoint() as rpc, await RpcClient.connect(rpc.address) as before:
        reader, writer = await raw_connection(rpc)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await closed_by_server(reader)
        writer.close()
        assert await works(rpc, before) and await works(rpc)
    [line] = warnings(caplog)
    assert line.startswith("closing the connection of rpc client 127.0.0.1:")
    assert "not a Goridge frame but text ('GET /metrics'...) -- is an HTTP or other non-RPC client" in line
    assert "stdout" not in line and "worker" not in line


async def test_partial_frame_is_dropped_after_frame_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async with endpoint(frame_timeout="300ms") as rpc, await RpcClient.connect(rpc.address) as before:
        reader, writer = await raw_connection(rpc)
        writer.write(header(1000) + b"x" * 10)
        await eventually(lambda: rpc.budget.used == 1000)
        assert await works(rpc, before)  # served while the partial frame is pending
        assert await closed_by_server(reader)
        writer.close()
        assert rpc.budget.used == 0
        assert await works(rpc, before) and await works(rpc)
    [line] = warnings(caplog)
    assert line.endswith("the frame was not complete within 0.3s")


async def test_client_over_the_buffer_budget_is_closed_others_are_served(caplog: pytest.LogCaptureFixture) -> None:
    async with endpoint(max_buffer_size=1, frame_timeout="30s") as rpc, await RpcClient.connect(rpc.address) as before:
        holder_r, holder_w = await raw_connection(rpc)
        holder_w.write(header(900_000) + b"x" * 1000)  # holds 900 KB of the 1 MB budget
        await eventually(lambda: rpc.budget.used == 900_000)
        greedy_r, greedy_w = await raw_connection(rpc)
        greedy_w.write(header(200_000) + b"y" * 1000)
        assert await closed_by_server(greedy_r)
        greedy_w.close()
        assert rpc.budget.used == 900_000
        assert await works(rpc, before) and await works(rpc)  # small requests still fit
        holder_w.close()
        await eventually(lambda: rpc.budget.used == 0)
        assert await closed_by_server(holder_r)
        assert await works(rpc, before)
    [line] = warnings(caplog)
    assert "a frame of 200000 bytes does not fit the RPC buffer budget (900000 of 1048576 bytes" in line


async def test_oversized_frame_is_refused_before_any_payload_is_read(caplog: pytest.LogCaptureFixture) -> None:
    async with endpoint() as rpc, await RpcClient.connect(rpc.address) as before:
        reader, writer = await raw_connection(rpc)
        writer.write(header(2**31))
        assert await closed_by_server(reader)
        writer.close()
        assert rpc.budget.used == 0
        assert await works(rpc, before) and await works(rpc)
    [line] = warnings(caplog)
    assert "frame payload of 2147483648 bytes exceeds the limit of 67108864 bytes" in line


async def test_beyond_max_connections_unused_connections_make_room(caplog: pytest.LogCaptureFixture) -> None:
    async with (
        endpoint(max_connections=50) as rpc,
        await RpcClient.connect(rpc.address) as before,
        AsyncExitStack() as stack,
    ):
        assert await works(rpc, before)  # `before` has sent a request: it is never the one closed
        idle = [await raw_connection(rpc) for _ in range(49)]  # the cap: 50
        await eventually(lambda: len(rpc._connections) == 50)
        for n in range(20):  # each new client takes the place of the oldest idle connection
            client = await stack.enter_async_context(await RpcClient.connect(rpc.address))
            assert await works(rpc, client)
            assert await closed_by_server(idle[n][0])
        assert len(rpc._connections) == 50  # `before`, the 29 younger idle ones, the 20 new clients
        assert await works(rpc, before)
        for _, writer in idle:
            writer.close()
    lines = warnings(caplog)
    assert len(lines) == 1  # 20 evictions, one line (throttled)
    assert "closed to make room for 127.0.0.1:" in lines[0]
    assert "50 connections are open (rpc.max_connections) and it has sent no request since it connected" in lines[0]


async def test_beyond_max_connections_new_clients_are_refused_when_all_are_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with endpoint(max_connections=5) as rpc, AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(await RpcClient.connect(rpc.address)) for _ in range(5)]
        for client in clients:
            assert await works(rpc, client)
        refused = [await raw_connection(rpc) for _ in range(10)]
        for reader, _ in refused:
            assert await closed_by_server(reader)
        for client in clients:  # nobody in use was closed
            assert await works(rpc, client)
        for _, writer in refused:
            writer.close()
    lines = warnings(caplog)
    assert len(lines) == 1  # 10 refusals, one line (throttled)
    assert "refused: 5 connections are open (rpc.max_connections), all of them used" in lines[0]


async def test_pipelined_requests_on_one_connection_give_their_budget_back() -> None:
    async with endpoint(max_buffer_size=1) as rpc:
        reader, writer = await raw_connection(rpc)
        writer.write(b"".join(encode_request(seq, "rpc.Version", 0x08, b"true") for seq in range(1, 201)))
        async with asyncio.timeout(5):
            for _ in range(200):
                await reader.readexactly(12)  # header of each reply...
                await reader.readexactly(8 + 11 + len(f'"{RR_COMPAT_VERSION}"'))  # options, method, body
        await eventually(lambda: rpc.budget.used == 0)
        writer.close()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_connections", 0, "rpc.max_connections: must be positive, got 0"),
        ("frame_timeout", "0s", "rpc.frame_timeout: must be positive, got 0.0"),
        ("max_buffer_size", -1, "rpc.max_buffer_size: must be positive, got -1"),
    ],
)
def test_bounds_must_be_positive(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"version": "3", "rpc": {key: value}}, source="/app/.rr.yaml")
    assert str(err.value) == f"/app/.rr.yaml: {message}"
