"""logs end to end: a host with PHP gRPC workers in each log mode; worker stderr lines become records
with the worker's pid and, in a traced request, the trace id the caller sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory

from rrgrpc.grpc.protos import load_protos
from tests.helpers import ROOT, eventually, free_port, php_cmd, running_host
from tests.obs_otlp import otlp_receiver

pytestmark = pytest.mark.php

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
_POOL = load_protos([str(ECHO_PROTO)]).pool
PingRequest = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.PingRequest"))
PingReply = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.PingReply"))

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def config(logs: dict[str, Any], otel_endpoint: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "version": "3",
        "server": {"command": php_cmd("metrics_app.php")},
        "rpc": {"listen": f"tcp://127.0.0.1:{free_port()}"},
        "grpc": {"listen": "tcp://127.0.0.1:0", "proto": [str(ECHO_PROTO)], "pool": {"num_workers": 1}},
        "metrics": {"address": "127.0.0.1:0"},
        "logs": logs,
    }
    if otel_endpoint:
        raw["otel"] = {"client": "grpc", "endpoint": otel_endpoint, "insecure": True}
    return raw


async def ping(host: Any, msg: str) -> int:
    grpc_plugin = next(p for p in host.plugins if p.name == "grpc")
    async with grpc.aio.insecure_channel(grpc_plugin.address.removeprefix("tcp://")) as channel:
        stub = channel.unary_unary(
            "/echo.v1.Echo/Ping",
            request_serializer=PingRequest.SerializeToString,
            response_deserializer=PingReply.FromString,
        )
        reply = await stub(PingRequest(msg=msg), metadata=(("traceparent", TRACEPARENT),), timeout=20)
    return int(reply.pid)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_production_json_lines_carry_pid_and_trace_id(tmp_path: Path) -> None:
    out = tmp_path / "rr.log"
    async with (
        otlp_receiver() as rx,
        running_host(config({"mode": "production", "output": str(out)}, rx.endpoint)) as host,
    ):
        pid = await ping(host, "traced")
        await eventually(lambda: any("ping traced" in line for line in lines(out)), timeout=10)
    records = [json.loads(line) for line in lines(out)]
    worker_line = next(r for r in records if r["msg"].startswith("ping traced"))
    assert worker_line["logger"] == "server"
    assert worker_line["level"] == "info"
    assert worker_line["pid"] == pid
    assert worker_line["trace_id"] == TRACE_ID
    assert isinstance(worker_line["ts"], float)
    # plugin records are JSON too, with their fields flattened, and no debug records in production
    assert any(r["logger"] == "grpc" for r in records)
    assert all(r["level"] != "debug" for r in records)
    # the exported spans of that request belong to the same trace
    assert {s.trace_id for s in rx.spans if s.name == "rr.pool.exec"} == {TRACE_ID}


async def test_development_raw_and_off(tmp_path: Path) -> None:
    dev, raw, off = tmp_path / "dev.log", tmp_path / "raw.log", tmp_path / "off.log"
    async with running_host(config({"mode": "development", "output": str(dev)})) as host:
        pid = await ping(host, "dev")
        await eventually(lambda: any("ping dev" in line for line in lines(dev)), timeout=10)
    line = next(x for x in lines(dev) if "ping dev" in x)
    stamp, level, logger, msg, fields = line.split("\t")
    assert (level, logger) == ("INFO", "server")
    assert msg.startswith("ping dev traceparent=00-")  # the gRPC plugin always propagates a context
    assert json.loads(fields)["pid"] == pid
    assert any("\tDEBUG\t" in x for x in lines(dev))  # development logs debug

    async with running_host(config({"mode": "raw", "output": str(raw)})) as host:
        await ping(host, "raw")
        await eventually(lambda: any("ping raw" in line for line in lines(raw)), timeout=10)
    assert any(x.startswith("ping raw traceparent=00-") for x in lines(raw))  # the worker's text alone
    assert not any("\t" in x or x.startswith("{") for x in lines(raw))

    async with running_host(config({"mode": "off", "output": str(off)})) as host:
        await ping(host, "off")
    assert lines(off) == []


async def test_channel_level_for_one_plugin(tmp_path: Path) -> None:
    out, grpc_out = tmp_path / "rr.log", tmp_path / "grpc.log"
    logs = {
        "mode": "production",
        "level": "error",
        "output": str(out),
        "channels": {"server": {"level": "info", "output": str(grpc_out)}},
    }
    async with running_host(config(logs)) as host:
        await ping(host, "chan")
        await eventually(lambda: any("ping chan" in line for line in lines(grpc_out)), timeout=10)
    assert all(json.loads(x)["logger"] == "server" for x in lines(grpc_out))
    assert lines(out) == []  # nothing at error level elsewhere
