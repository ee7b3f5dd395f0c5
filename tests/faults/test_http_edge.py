"""The HTTP port under abuse, with real PHP workers (tests/php/http_header.php) and raw sockets.

Each scenario sends what a hostile or broken client sends, checks how rr answered it (status or
closed socket) and the one log line it wrote, and that a well-behaved client opened before the
attack, and one opened after it, were answered 200 (nothing else failed):

* slowloris: headers dripped a byte at a time (``http.read_header_timeout``);
* an idle flood beyond ``http.max_connections`` (cap of 50 here), then ``http.idle_timeout``;
* oversized bodies (413, with and without Content-Length) and oversized headers (400);
* malformed requests (400, one throttled line, no traceback), HTTP/0.9 request lines (400);
* worker response header names that are not tokens (``internal_error_code``);
* no ``Server:`` header; no access line unless ``access_logs``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, php_cmd, running_host, self_signed_certificate

pytestmark = pytest.mark.php

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def serve(log: Path, level: str = "info", **http: Any) -> AsyncIterator[tuple[int, Any]]:
    """rr with one http_header.php worker; its log in rr's production format (JSON lines) at ``log``."""
    port = free_port()
    raw = {
        "version": "3",
        "logs": {"mode": "production", "level": level, "output": str(log)},
        "server": {"command": php_cmd("http_header.php")},
        "http": {
            "address": f"127.0.0.1:{port}",
            "pool": {"num_workers": 1, "allocate_timeout": "10s", "destroy_timeout": "5s"},
            **http,
        },
    }
    async with running_host(raw) as host:
        yield port, next(p for p in host.plugins if p.name == "http")


async def connect(port: int) -> Conn:
    return await asyncio.open_connection("127.0.0.1", port)


async def exchange(conn: Conn, request: bytes) -> bytes:
    """Send one request on ``conn`` and read one whole response (headers + Content-Length body)."""
    reader, writer = conn
    writer.write(request)
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            0,
        )
        return head + await reader.readexactly(length)


async def fresh(port: int, request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") -> bytes:
    conn = await connect(port)
    try:
        return await exchange(conn, request)
    finally:
        conn[1].close()


def ok(response: bytes) -> bool:
    return response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\nhello")


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def closed_by_server(reader: asyncio.StreamReader, within: float = 5) -> bool:
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b"" or True
    except ConnectionResetError:
        return True


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def warnings(log: Path) -> list[str]:
    """The messages of the http plugin's warnings; also checks that nothing was logged as an error
    or with a traceback."""
    text = log.read_text()
    assert "Traceback" not in text and "aiohttp" not in text
    assert all(r["level"] in ("debug", "info", "warn") for r in records(log))
    return [r["msg"] for r in records(log) if r["logger"] == "http" and r["level"] == "warn"]


async def test_slowloris_connections_are_closed_after_read_header_timeout(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", read_header_timeout="500ms") as (port, _):
        before = await connect(port)
        assert ok(await exchange(before, GET))
        slow = [await connect(port) for _ in range(20)]
        for _, writer in slow:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ")

        async def drip() -> None:
            while True:
                await asyncio.sleep(0.1)
                for _, writer in slow:
                    writer.write(b"a")

        dripping = asyncio.create_task(drip())
        try:
            assert ok(await exchange(before, GET))  # served while the slow ones drip
            for reader, _ in slow:
                assert await closed_by_server(reader)
        finally:
            dripping.cancel()
        assert ok(await exchange(before, GET)) and ok(await fresh(port))
        before[1].close()
    [line] = warnings(tmp_path / "rr.log")  # 20 closed, one line
    assert "closed: request headers not complete within 0.5s (http.read_header_timeout)" in line


async def test_a_slow_but_honest_client_within_the_timeout_is_served(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", read_header_timeout="2s") as (port, _):
        conn = await connect(port)
        for piece in (b"GET / HT", b"TP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            conn[1].write(piece)
            await asyncio.sleep(0.1)
        assert ok(await exchange(conn, b""))
        conn[1].close()


async def test_idle_flood_beyond_max_connections_is_refused_then_timed_out(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", max_connections=50, idle_timeout="1500ms") as (port, plugin):
        before = await connect(port)
        assert ok(await exchange(before, GET))
        idle = [await connect(port) for _ in range(49)]  # with `before`: 50, the cap
        refused = [await connect(port) for _ in range(30)]
        for reader, _ in refused:
            assert await closed_by_server(reader, 2)
        assert ok(await exchange(before, GET))  # the keep-alive client keeps its connection
        for reader, _ in idle:  # idle_timeout frees the slots of the idle ones
            assert await closed_by_server(reader, 10)
        assert ok(await fresh(port))
        for _, writer in [before, *idle, *refused]:
            writer.close()
    [line] = warnings(tmp_path / "rr.log")  # 30 refused, one line
    assert "refused: 50 connections are open (http.max_connections)" in line


async def test_oversized_bodies_get_413_and_others_are_served(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", max_request_size=1) as (port, _):
        before = await connect(port)
        assert ok(await exchange(before, GET))
        big = b"x" * (1024 * 1024 + 1)
        with_length = await fresh(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        assert with_length.startswith(b"HTTP/1.1 413 ")
        chunked = b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n"
        without = await fresh(port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        assert without.startswith(b"HTTP/1.1 413 ")
        assert ok(await exchange(before, GET)) and ok(await fresh(port))
        before[1].close()


async def test_oversized_and_malformed_headers_get_400_in_one_line_each_kind(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log") as (port, _):
        before = await connect(port)
        assert ok(await exchange(before, GET))
        huge = await fresh(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert huge.startswith(b"HTTP/1.0 400 Bad Request\r\n")
        for _ in range(30):
            assert (await fresh(port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")).startswith(b"HTTP/1.0 400 ")
        assert ok(await exchange(before, GET)) and ok(await fresh(port))
        before[1].close()
    [line] = warnings(tmp_path / "rr.log")  # 31 bad requests, one line
    assert line.startswith("bad request from 127.0.0.1: Got more than 8190 bytes")


async def test_http09_request_line_gets_400(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log") as (port, _):
        answer = await fresh(port, b"GET /hello\r\n\r\n")
        assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")
        assert answer.endswith(b"HTTP/0.9 requests are not supported\n")
        assert ok(await fresh(port))


@pytest.mark.parametrize("name", ["X:Y", "X%20Y", "X%0D%0AInjected", ""])
async def test_worker_header_names_that_are_not_tokens_get_internal_error_code(
    name: str, tmp_path: Path
) -> None:
    async with serve(tmp_path / "rr.log", internal_error_code=502) as (port, plugin):
        answer = await fresh(port, b"GET /?name=%s&value=v HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode())
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert b"Injected" not in answer and b"X:Y" not in answer and b"X Y" not in answer
        assert ok(await fresh(port))  # the worker is fine
    [line] = warnings(tmp_path / "rr.log")
    assert line == "bad worker response"


async def test_worker_header_value_with_crlf_gets_internal_error_code(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", internal_error_code=502) as (port, _):
        answer = await fresh(port, b"GET /?name=X-Ok&value=a%0D%0AInjected:%20b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and b"Injected" not in answer
        assert ok(await fresh(port))


async def test_no_server_header_on_worker_rr_and_aiohttp_answers(tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", max_request_size=1) as (port, _):
        answers = [
            await fresh(port),  # from PHP
            await fresh(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),  # rr's 413
            await fresh(port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n"),  # aiohttp's 400
        ]
    assert [a.split(b" ")[1] for a in answers] == [b"200", b"413", b"400"]
    assert all(b"\r\nserver:" not in a.lower() for a in answers)


@pytest.mark.parametrize("access_logs", [False, True])
async def test_access_lines_only_when_access_logs(access_logs: bool, tmp_path: Path) -> None:
    async with serve(tmp_path / "rr.log", "debug", access_logs=access_logs) as (port, _):
        for _ in range(5):
            assert ok(await fresh(port))
    access = [r for r in records(tmp_path / "rr.log") if r["msg"] == "http log"]
    assert len(access) == (5 if access_logs else 0)
    assert all(r["level"] == "info" and r["status"] == 200 and r["URI"] == "/" for r in access)


@pytest.mark.parametrize(
    ("key", "value"), [("read_header_timeout", "0s"), ("idle_timeout", "-1"), ("max_connections", 0)]
)
def test_edge_bounds_must_be_positive(key: str, value: object) -> None:
    from rrgrpc.config import config_from_dict
    from rrgrpc.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^/app/.rr.yaml: http.{key}: "):
        config_from_dict({"version": "3", "http": {"address": ":8080", key: value}}, source="/app/.rr.yaml")


async def test_tls_client_that_stalls_the_handshake_is_closed_after_read_header_timeout(tmp_path: Path) -> None:
    made = self_signed_certificate(tmp_path)
    if made is None:
        pytest.skip("openssl cannot make a test certificate")
    cert, key = made
    tls_port = free_port()
    ssl_section = {"address": f"127.0.0.1:{tls_port}", "cert": str(cert), "key": str(key)}
    async with serve(tmp_path / "rr.log", read_header_timeout="500ms", ssl=ssl_section):
        stalled = await connect(tls_port)  # TCP only: no ClientHello
        ctx = ssl.create_default_context(cafile=str(cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", tls_port, ssl=ctx)
        assert ok(await exchange((reader, writer), b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        writer.close()
        assert await closed_by_server(stalled[0])
        stalled[1].close()
