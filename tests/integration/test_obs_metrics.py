"""metrics end to end: /metrics of a real host with PHP gRPC workers, an application metric declared and
incremented from PHP over RPC, RoadRunner's errors for invalid calls, and the PHP client's bytes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import message_factory
from prometheus_client.parser import text_string_to_metric_families

from rrgrpc.goridge.frame import Flag, decode
from rrgrpc.goridge.rpc import read_frame
from rrgrpc.grpc.protos import load_protos
from tests.helpers import ROOT, VECTORS, eventually, free_port, php_cmd, running_host

pytestmark = pytest.mark.php

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
_POOL = load_protos([str(ECHO_PROTO)]).pool
PingRequest = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.PingRequest"))
PingReply = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.PingReply"))


def ping_stub(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        "/echo.v1.Echo/Ping",
        request_serializer=PingRequest.SerializeToString,
        response_deserializer=PingReply.FromString,
    )


def plugin(host: Any, name: str) -> Any:
    return next(p for p in host.plugins if p.name == name)


def grpc_target(address: str) -> str:
    return address.removeprefix("tcp://")


async def run_php(*argv: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *php_cmd(*argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_scrape_workers_requests_and_app_metric_from_php() -> None:
    rpc = f"tcp://127.0.0.1:{free_port()}"
    raw = {
        "version": "3",
        "server": {"command": php_cmd("metrics_app.php")},
        "rpc": {"listen": rpc},
        "grpc": {"listen": "tcp://127.0.0.1:0", "proto": [str(ECHO_PROTO)], "pool": {"num_workers": 2}},
        "metrics": {
            "address": "127.0.0.1:0",
            "collect": {"app_cfg_gauge": {"type": "gauge", "help": "From config"}},
        },
    }
    async with running_host(raw) as host:
        metrics, grpc_plugin = plugin(host, "metrics"), plugin(host, "grpc")
        url = f"http://127.0.0.1:{metrics.port}/metrics"
        async with grpc.aio.insecure_channel(grpc_target(grpc_plugin.address)) as channel:
            ping = ping_stub(channel)
            for msg in ("a", "a", "b"):
                assert (await ping(PingRequest(msg=msg), timeout=20)).msg == msg

        # invalid calls from PHP over RPC get RoadRunner's texts back
        bad = [
            ("add", {"name": "nope", "value": 1}, "undefined collector: nope"),
            ("add", {"name": "app_pings", "value": 1}, "required labels for collector: app_pings"),
            (
                "add",
                {"name": "app_pings", "value": -1, "labels": ["a"]},
                "counter cannot decrease in value: app_pings",
            ),
            (
                "sub",
                {"name": "app_pings", "value": 1, "labels": ["a"]},
                "collector does not support the requested operation: app_pings does not support Sub",
            ),
            ("set", {"name": "app_cfg_gauge", "value": 42}, None),
        ]
        for op, args, error in bad:
            result = await run_php("metrics_cli.php", rpc, "call", op, json.dumps(args))
            assert result == ({"ok": False, "error": error} if error else {"ok": True, "result": None})

        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            text = await resp.text()
        got = samples(text)
        pids = {w.pid for w in grpc_plugin.workers()}

    # the application metric, declared and incremented by the PHP workers over RPC
    assert 'app_pings{msg="a"} 2.0' in text
    assert 'app_pings{msg="b"} 1.0' in text
    assert got[("app_cfg_gauge", ())] == 42
    # RoadRunner's worker gauges for the grpc plugin
    assert got[("rr_grpc_total_workers", ())] == 2
    assert got[("rr_grpc_workers_ready", ())] + got[("rr_grpc_workers_working", ())] == 2
    assert {int(dict(k[1])["pid"]) for k in got if k[0] == "rr_grpc_worker_memory_bytes"} == pids
    assert got[("rr_grpc_workers_memory_bytes", ())] > 0
    assert ("rr_grpc_requests_queue", ()) in got
    # the gRPC plugin's request metrics, labelled by method and status
    ping_counts = {
        dict(labels)["status_code"]: value
        for (name, labels), value in got.items()
        if name == "rr_grpc_request_total" and dict(labels).get("grpc_method") == "/echo.v1.Echo/Ping"
    }
    assert sum(ping_counts.values()) == 3
    assert got[("rr_grpc_request_duration_seconds_count", (("grpc_method", "/echo.v1.Echo/Ping"),))] == 3


def _exchange(name: str) -> dict[str, Any]:
    vector = json.loads((VECTORS / "rpc_client.json").read_text())
    return next(e for e in vector["exchanges"] if e["name"] == name)


async def test_php_metrics_client_sends_the_vector_bytes() -> None:
    exchange = _exchange("metrics: declare counter + add")
    sent = [bytes.fromhex(f["hex"]) for f in exchange["frames"] if f["dir"] == "client->server"]
    replies = [bytes.fromhex(f["hex"]) for f in exchange["frames"] if f["dir"] == "server->client"]
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (frame := await read_frame(reader)) is not None:
            received.append(frame.encode())
            writer.write(replies[len(received) - 1])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_php("metrics_cli.php", f"tcp://127.0.0.1:{port}", "declare-add", "2", "probe")
    assert result == {"ok": True}
    assert [r.hex() for r in received] == [s.hex() for s in sent]
    first, _ = decode(received[0])
    assert first.flags == Flag.CODEC_JSON


async def test_php_client_reports_server_errors_without_retrying() -> None:
    calls = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        from rrgrpc.goridge.rpc import encode_error, parse

        while (frame := await read_frame(reader)) is not None:
            calls += 1
            req = parse(frame)
            writer.write(encode_error(req.seq, req.method, Flag.CODEC_JSON, "undefined collector: x"))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_php(
            "metrics_cli.php", f"tcp://127.0.0.1:{port}", "call", "add", '{"name":"x","value":1}'
        )
    assert result == {"ok": False, "error": "undefined collector: x"}
    await eventually(lambda: calls == 1)


async def test_http_plugin_with_its_own_worker_gauges_is_scraped_once() -> None:
    port = free_port()
    raw = {
        "version": "3",
        "server": {"command": php_cmd("http_echo.php")},
        "http": {"address": f"127.0.0.1:{port}", "middleware": ["http_metrics"], "pool": {"num_workers": 1}},
        "metrics": {"address": "127.0.0.1:0"},
    }
    async with running_host(raw) as host, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200
        async with session.get(f"http://127.0.0.1:{plugin(host, 'metrics').port}/metrics") as resp:
            text = await resp.text()
    for name in ("rr_http_total_workers", "rr_http_workers_memory_bytes", "rr_http_requests_queue"):
        assert text.count(f"# TYPE {name} gauge") == 1, name
    assert samples(text)[("rr_http_total_workers", ())] == 1
    assert "rr_http_request_total" in text
