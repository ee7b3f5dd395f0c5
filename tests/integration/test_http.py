"""The HTTP plugin end to end: real PHP workers (tests/php/http_echo.php on RRGrpc\\Http\\HttpWorker)
behind ``running_host`` and a real aiohttp client, for both request context codecs."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import ssl
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.helpers import eventually, free_port, php_cmd, running_host, self_signed_certificate

pytestmark = pytest.mark.php


@asynccontextmanager
async def serve(http: dict[str, Any] | None = None, *, workers: int = 1, **top: Any) -> AsyncIterator[tuple[str, Any]]:
    port = free_port()
    section: dict[str, Any] = {
        "address": f"127.0.0.1:{port}",
        "pool": {"num_workers": workers, "allocate_timeout": "10s", "destroy_timeout": "5s"},
    }
    for key, value in (http or {}).items():
        if key == "pool":
            section["pool"] = {**section["pool"], **value}
        else:
            section[key] = value
    raw = {"version": "3", "server": {"command": php_cmd("http_echo.php")}, "http": section, **top}
    async with running_host(raw) as host:
        plugin = next(p for p in host.plugins if p.name == "http")
        yield f"http://127.0.0.1:{port}", plugin


@pytest.fixture(params=["proto", "json"])
def codec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def echo(client: aiohttp.ClientSession, url: str, method: str = "GET", **kw: Any) -> dict[str, Any]:
    async with client.request(method, url, **kw) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_get_post_query_headers_cookies(codec: str) -> None:
    async with serve({"codec": codec}) as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/") as resp:
            assert (resp.status, await resp.text(), resp.headers["Content-Type"]) == (200, "hello", "text/plain")
        data = await echo(
            client,
            base + "/echo?a=1&b[]=2&b[]=3&s=x+y",
            headers=[("X-Multi", "one"), ("X-Multi", "two"), ("Cookie", "sid=abc123; theme=dark%21")],
        )
        assert data["method"] == "GET" and data["uri"] == base + "/echo?a=1&b%5B%5D=2&b%5B%5D=3&s=x+y"
        assert data["query"] == {"a": "1", "b": ["2", "3"], "s": "x y"}
        assert data["headers"]["X-Multi"] == ["one", "two"]
        assert data["headers"]["Host"] == [base.removeprefix("http://")]
        assert data["cookies"] == {"sid": "abc123", "theme": "dark!"}
        assert data["remote_addr"] == "127.0.0.1" and data["protocol"] == "HTTP/1.1"
        assert data["attributes"] == {"rr_parsed_body": False}
        data = await echo(client, base + "/echo", "POST", json={"hello": "world"})
        assert data["body"] == '{"hello": "world"}' and data["parsed"] is None and data["input"] == {"hello": "world"}
        data = await echo(client, base + "/echo", "POST", data={"name": "rr", "list[]": "1", "m[k]": "v"})
        assert data["parsed"] == {"list": ["1"], "m": {"k": "v"}, "name": "rr"}
        assert data["attributes"] == {"rr_parsed_body": True}
        async with client.get(base + "/headers") as resp:
            assert resp.headers.getall("X-Multi") == ["a", "b"]
            assert resp.headers.getall("Set-Cookie") == ["c1=v1; Path=/", "c2=v2; Path=/"]
        async with client.get(base + "/status/404") as resp:
            assert (resp.status, await resp.text()) == (404, "status 404")


async def test_multipart_uploads_and_cleanup(codec: str, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    cfg = {"codec": codec, "uploads": {"dir": str(uploads), "forbid": [".php"]}}
    async with serve(cfg) as (base, _), aiohttp.ClientSession() as client:
        form = aiohttp.FormData()
        form.add_field("title", "two files")
        form.add_field("docs[]", b"first file", filename="a.txt", content_type="text/plain")
        form.add_field("docs[]", b"second!", filename="b.md", content_type="text/markdown")
        form.add_field("evil", b"<?php system('id');", filename="shell.PHP", content_type="application/x-php")
        data = await echo(client, base + "/echo", "POST", data=form)
        assert data["parsed"] == {"title": "two files"}
        docs = data["uploads"]["docs"]
        assert [(d["name"], d["mime"], d["size"], d["error"], d["content"]) for d in docs] == [
            ("a.txt", "text/plain", 10, 0, "first file"),
            ("b.md", "text/markdown", 7, 0, "second!"),
        ]
        assert all(d["tmp_exists"] and d["tmp_base"].startswith("upload") for d in docs)
        evil = data["uploads"]["evil"]
        assert (evil["error"], evil["size"], evil["tmp_base"], evil["content"]) == (8, 0, "", None)
        assert os.listdir(uploads) == []  # temp copies removed after the response


async def test_max_request_size_answers_413_without_php() -> None:
    async with serve({"max_request_size": 1}) as (base, plugin), aiohttp.ClientSession() as client:
        before = sum(w.num_execs for w in plugin.workers())
        async with client.post(base + "/echo", data=b"x" * (1024 * 1024 + 1)) as resp:
            assert resp.status == 413
        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 65536

        async with client.post(base + "/echo", data=chunked()) as resp:
            assert resp.status == 413
        assert sum(w.num_execs for w in plugin.workers()) == before


@pytest.mark.parametrize(("trusted", "expected"), [(["127.0.0.0/8"], "203.0.113.7"), (["10.0.0.0/8"], "127.0.0.1")])
async def test_forwarded_for_only_from_trusted_peers(trusted: list[str], expected: str) -> None:
    cfg = {"middleware": ["proxy_ip_parser"], "trusted_subnets": trusted}
    async with serve(cfg) as (base, _), aiohttp.ClientSession() as client:
        data = await echo(client, base + "/echo", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
        assert data["remote_addr"] == expected
        data = await echo(client, base + "/echo", headers={"X-Real-Ip": "198.51.100.2"})
        assert data["remote_addr"] == ("198.51.100.2" if expected != "127.0.0.1" else "127.0.0.1")


async def test_middleware_state_belongs_to_one_request_on_a_keep_alive_connection() -> None:
    cfg = {"middleware": ["proxy_ip_parser", "headers"], "trusted_subnets": ["127.0.0.0/8"],
           "headers": {"request": {"X-From-Rr": "yes"}}}
    connector = aiohttp.TCPConnector(limit=1)  # one connection: every request after the first reuses it
    async with serve(cfg) as (base, _), aiohttp.ClientSession(connector=connector) as client:
        data = await echo(client, base + "/echo", headers={"X-Forwarded-For": "203.0.113.7"})
        assert data["remote_addr"] == "203.0.113.7" and data["headers"]["X-From-Rr"] == ["yes"]
        data = await echo(client, base + "/echo")  # same connection, no proxy header
        assert data["remote_addr"] == "127.0.0.1" and data["headers"]["X-From-Rr"] == ["yes"]


async def test_static_files_etag_304_and_traversal(tmp_path: Path) -> None:
    root = tmp_path / "public"
    root.mkdir()
    (root / "app.css").write_text("body{}")
    (root / "secret.php").write_text("<?php")
    (root / ".env").write_text("KEY=1")
    (tmp_path / "outside.txt").write_text("nope")
    cfg = {
        "middleware": ["static"],
        "static": {"dir": str(root), "forbid": [".php"], "calculate_etag": True, "response": {"X-Static": "1"}},
    }
    async with serve(cfg) as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/app.css") as resp:
            assert (resp.status, await resp.text(), resp.headers["X-Static"]) == (200, "body{}", "1")
            assert resp.headers["Content-Type"].startswith("text/css")
            etag = resp.headers["ETag"]
        async with client.get(base + "/app.css", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
        async with client.get(base + "/secret.php") as resp:  # forbidden extension: PHP answers
            assert resp.status == 404 and await resp.text() == "not found"
        async with client.get(base + "/.env") as resp:  # dotfiles are never served
            assert resp.status == 404
        for attempt in ("/../outside.txt", "/%2e%2e/outside.txt", "/a/..%2f..%2foutside.txt"):
            async with client.get(URL(base + attempt, encoded=True)) as resp:
                assert resp.status in (403, 404), attempt
                assert await resp.text() != "nope"


async def test_static_files_stream_with_ranges_and_keep_roadrunners_etag(tmp_path: Path) -> None:
    root = tmp_path / "public"
    root.mkdir()
    big = os.urandom(3 * 1024 * 1024)
    (root / "big.bin").write_bytes(big)
    (root / "plain.txt").write_text("0123456789")
    cfg = {"middleware": ["static"], "static": {"dir": str(root), "calculate_etag": True}}
    crc = f"{zlib.crc32(big):08x}"
    async with serve(cfg) as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/big.bin") as resp:  # streamed from the file, not read whole
            assert (resp.status, resp.headers["ETag"]) == (200, f'"{len(big):x}-{crc}"')
            assert await resp.read() == big
        async with client.head(base + "/big.bin") as resp:
            assert (resp.status, resp.headers["Content-Length"]) == (200, str(len(big)))
            assert resp.headers["ETag"] == f'"{len(big):x}-{crc}"' and await resp.read() == b""
        async with client.get(base + "/plain.txt", headers={"Range": "bytes=2-5"}) as resp:
            assert (resp.status, await resp.text()) == (206, "2345")
            assert resp.headers["Content-Range"] == "bytes 2-5/10"
    cfg = {"middleware": ["static"], "static": {"dir": str(root), "calculate_etag": False}}
    async with serve(cfg) as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/plain.txt") as resp:
            assert (resp.status, await resp.text()) == (200, "0123456789")
            assert "ETag" not in resp.headers  # aiohttp's own mtime-size tag is not sent either
            modified = resp.headers["Last-Modified"]
        async with client.get(base + "/plain.txt", headers={"If-Modified-Since": modified}) as resp:
            assert (resp.status, await resp.read()) == (304, b"")


async def test_gzip_and_cors_preflight() -> None:
    cfg = {
        "middleware": ["headers", "gzip"],
        "headers": {
            "request": {"X-From-Rr": "yes"},
            "response": {"X-Powered-By": "rrgrpc"},
            "cors": {"allowed_origin": "https://app.example", "allowed_methods": "GET,POST", "allowed_headers": "*",
                     "allow_credentials": True, "max_age": 600},
        },
    }
    async with serve(cfg) as (base, _), aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.get(base + "/big?kb=8", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip" and resp.headers["X-Powered-By"] == "rrgrpc"
            assert gzip.decompress(await resp.read()).startswith(b"lorem ipsum")
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "X-Token"}
        async with client.options(base + "/echo", headers=preflight) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert resp.headers["Access-Control-Allow-Methods"] == "GET,POST"
            assert resp.headers["Access-Control-Allow-Headers"] == "X-Token"
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
            assert resp.headers["Access-Control-Max-Age"] == "600"
        async with client.get(base + "/echo", headers={"Origin": "https://app.example"}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
            raw = await resp.read()
            data = json.loads(gzip.decompress(raw) if resp.headers.get("Content-Encoding") == "gzip" else raw)
            assert data["headers"]["X-From-Rr"] == ["yes"]


async def test_streamed_response_with_ping_pong(codec: str) -> None:
    async with serve({"codec": codec}) as (base, plugin), aiohttp.ClientSession() as client:
        async with client.get(base + "/stream?n=12") as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            chunks = [line async for line in resp.content]
        assert chunks == [f"chunk {i}\n".encode() for i in range(1, 13)]  # 12 frames: PINGs at 5 and 10
        async with client.get(base + "/") as resp:
            assert await resp.text() == "hello"  # the worker is back in the pool


async def test_client_disconnect_mid_stream_frees_the_worker(capfd: pytest.CaptureFixture[str]) -> None:
    cfg = {"pool": {"allocate_timeout": "5s"}}
    async with serve(cfg) as (base, plugin), aiohttp.ClientSession() as client:
        pid = plugin.workers()[0].pid
        resp = await client.get(base + "/stream?n=100000&delay=20")
        assert (await resp.content.readline()) == b"chunk 1\n"
        resp.close()  # client goes away after one chunk of a ~30 minute stream
        err: list[str] = []

        def stream_stopped() -> bool:
            err.append(capfd.readouterr().err)
            return "stream stopped" in "".join(err)

        await eventually(stream_stopped, timeout=10)
        async with client.get(base + "/slow?ms=1") as again:
            assert (again.status, await again.text()) == (200, str(pid))  # same worker, free again


async def test_worker_error_is_500_without_details_unless_debug() -> None:
    async with serve() as (base, plugin), aiohttp.ClientSession() as client:
        pid = plugin.workers()[0].pid
        async with client.get(base + "/error") as resp:
            assert (resp.status, await resp.text()) == (500, "")
        async with client.get(base + "/slow?ms=1") as resp:
            assert await resp.text() == str(pid)  # soft error: the worker stayed
    async with serve({"internal_error_code": 502, "pool": {"debug": True}}) as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/error") as resp:
            assert resp.status == 502 and "boom: secret worker detail" in await resp.text()


async def test_parallel_slow_requests_share_two_workers() -> None:
    async with serve(workers=2) as (base, plugin), aiohttp.ClientSession() as client:
        pids = {w.pid for w in plugin.workers()}

        async def one() -> str:
            async with client.get(base + "/slow?ms=200") as resp:
                assert resp.status == 200
                return await resp.text()

        answers = await asyncio.gather(*(one() for _ in range(8)))
        assert {int(a) for a in answers} == pids  # both workers served, nothing else did
        assert sum(w.num_execs for w in plugin.workers()) == 8


async def test_no_free_workers_sets_header() -> None:
    cfg = {"pool": {"allocate_timeout": "200ms"}}
    async with serve(cfg) as (base, plugin), aiohttp.ClientSession() as client:
        slow = asyncio.create_task(client.get(base + "/slow?ms=3000"))
        await eventually(lambda: plugin.activity().busy)  # the slow request has the only worker
        async def busy() -> bool:
            async with client.get(base + "/") as resp:
                return resp.status == 500 and resp.headers.get("No-Workers") == "true"
        assert await eventually(busy, timeout=10)
        (await slow).close()


async def test_early_hints_then_response() -> None:
    async with serve() as (base, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
        writer.write(b"GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert raw.startswith(b"HTTP/1.1 103 ")
        assert b"Link: </style.css>; rel=preload" in raw.split(b"\r\n\r\n")[0]
        assert b"HTTP/1.1 200 OK" in raw and raw.endswith(b"after hints")


async def test_metrics_collectors_and_reset() -> None:
    async with serve({"middleware": ["http_metrics"]}, workers=2) as (base, plugin), aiohttp.ClientSession() as client:
        for _ in range(3):
            async with client.get(base + "/") as resp:
                assert resp.status == 200
        names = {m.name for c in plugin.collectors() for m in c.collect()}
        assert {"rr_http_request", "rr_http_request_duration_seconds", "rr_http_requests_queue",
                "rr_http_no_free_workers", "rr_http_uptime_seconds", "rr_http_total_workers",
                "rr_http_workers_ready"} <= names
        before = {w.pid for w in plugin.workers()}
        await plugin.reset()
        after = {w.pid for w in plugin.workers()}
        assert len(after) == 2 and not before & after
        async with client.get(base + "/") as resp:
            assert resp.status == 200


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    made = self_signed_certificate(tmp_path)
    if made is None:
        pytest.skip("openssl cannot make a test certificate")
    return made


async def test_tls_listener_and_redirect(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    tls_port = free_port()
    cfg = {"ssl": {"address": f"127.0.0.1:{tls_port}", "cert": str(cert), "key": str(key), "redirect": True}}
    async with serve(cfg) as (base, _), aiohttp.ClientSession() as client:
        ctx = ssl.create_default_context(cafile=str(cert))
        data = await echo(client, f"https://127.0.0.1:{tls_port}/echo", ssl=ctx)
        assert data["uri"].startswith("https://")
        async with client.get(base + "/echo?x=1", allow_redirects=False) as resp:
            assert resp.status == 308 and resp.headers["Location"] == f"https://127.0.0.1:{tls_port}/echo?x=1"


async def test_otel_injects_trace_headers_continuing_the_callers_trace() -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with serve({"middleware": ["otel"]}) as (base, _), aiohttp.ClientSession() as client:
        data = await echo(client, base + "/echo", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    (traceparent,) = data["headers"]["Traceparent"]
    version, tid, span_id, flags = traceparent.split("-")
    assert (version, tid, flags) == ("00", trace_id, "01") and span_id != parent
    assert data["headers"]["Uber-Trace-Id"] == [f"{trace_id}:{span_id}:0:1"]
    assert "traceparent" not in data["headers"]


async def test_graceful_shutdown_finishes_in_flight_requests() -> None:
    async with aiohttp.ClientSession() as client:
        async with serve() as (base, plugin):
            inflight = asyncio.create_task(client.get(base + "/slow?ms=500"))
            await eventually(lambda: plugin.activity().busy, timeout=5)
        resp = await inflight  # the host stopped while the request was running
        assert resp.status == 200 and (await resp.text()).isdigit()


def test_php_worker_script_exists() -> None:
    assert Path(php_cmd("http_echo.php")[1]).is_file()


async def test_cors_origin_regex_wins_over_allowed_origin() -> None:
    cors = {"allowed_origin": "https://listed.example", "allowed_origin_regex": r"^https://[a-z]+\.app\.example$",
            "allowed_methods": "GET", "options_success_status": 204}
    async with serve({"middleware": ["headers"], "headers": {"cors": cors}}) as (base, _), aiohttp.ClientSession() as client:
        for origin, allowed in (("https://tenant.app.example", True), ("https://listed.example", False),
                                ("https://evil.example", False)):
            async with client.get(base + "/echo", headers={"Origin": origin}) as resp:
                assert resp.status == 200
                assert resp.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None), origin
        preflight = {"Origin": "https://tenant.app.example", "Access-Control-Request-Method": "GET"}
        async with client.options(base + "/echo", headers=preflight) as resp:
            assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "https://tenant.app.example"


async def test_sendfile_sends_the_file_the_worker_names(tmp_path: Path) -> None:
    payload = os.urandom(256 * 1024)
    (tmp_path / "report.bin").write_bytes(payload)
    (tmp_path / "sub").mkdir()
    async with serve({"middleware": ["sendfile"]}) as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/sendfile", params={"path": str(tmp_path / "report.bin")}) as resp:
            assert resp.status == 200 and await resp.read() == payload
            assert resp.headers["X-Extra"] == "kept" and "X-Sendfile" not in resp.headers
        async with client.get(base + "/sendfile", params={"path": str(tmp_path / "report.bin")},
                              headers={"Range": "bytes=10-19"}) as resp:
            assert resp.status == 206 and await resp.read() == payload[10:20]
        async with client.get(base + "/sendfile", params={"path": str(tmp_path / "sub/../report.bin")}) as resp:
            assert resp.status == 403 and await resp.read() == b""
        for missing in (tmp_path / "absent.bin", tmp_path / "sub"):
            async with client.get(base + "/sendfile", params={"path": str(missing)}) as resp:
                assert (resp.status, await resp.text()) == (404, "not found")
        async with client.get(base + "/") as resp:  # no X-Sendfile: the worker's response as it is
            assert (resp.status, await resp.text()) == (200, "hello")


async def test_without_sendfile_middleware_the_header_passes_through(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("file")
    async with serve() as (base, _), aiohttp.ClientSession() as client:
        async with client.get(base + "/sendfile", params={"path": str(tmp_path / "f.txt")}) as resp:
            assert await resp.text() == "the worker body" and resp.headers["X-Sendfile"] == str(tmp_path / "f.txt")
