"""One trace across two rrgrpc hosts: a grpcio client with its own span -> host A (gRPC, PHP worker A)
-> PHP worker A calls host B over HTTP (``otel`` middleware) passing the trace context it received ->
PHP worker B. Both hosts export to a real OTLP/gRPC receiver (opentelemetry-proto's TraceService),
which must end up with one trace: the client span as root, A's server, queue-wait and exec spans, B's
server span and B's spans, with correct parent links and service names.

Host A runs in this process, host B as ``python -m rrgrpc serve`` (the tracer provider is
process-wide, so two hosts with their own service names need two processes, as in production).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import message_factory
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from rrgrpc.grpc.protos import load_protos
from tests.helpers import ROOT, free_port, php_cmd, running_host
from tests.obs_otlp import ReceivedSpan, Receiver, otlp_receiver

pytestmark = pytest.mark.php

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
_POOL = load_protos([str(ECHO_PROTO)]).pool
PingRequest = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.PingRequest"))
PingReply = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.PingReply"))

SERVER = 2  # opentelemetry.proto SpanKind: SERVER
CLIENT = 3


async def start_host_b(workdir: Path, endpoint: str, port: int) -> asyncio.subprocess.Process:
    cfg = {
        "version": "3",
        "server": {"command": php_cmd("obs_mesh_b.php")},
        "http": {"address": f"127.0.0.1:{port}", "middleware": ["otel"], "pool": {"num_workers": 1}},
        "otel": {
            "client": "grpc",
            "endpoint": endpoint,
            "insecure": True,
            "resource": {"service_name": "mesh-b"},
        },
        "logs": {"mode": "production", "level": "warn"},
    }
    path = workdir / "b.rr.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rrgrpc",
        "-c",
        str(path),
        "serve",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    async with asyncio.timeout(30), aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"host B exited: {(await proc.stderr.read()).decode()}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/health-probe") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        await proc.wait()


def one(spans: list[ReceivedSpan], **match: Any) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span with {match}, got {found}"
    return found[0]


async def test_one_trace_through_two_hosts(tmp_path: Path) -> None:
    b_port = free_port()
    async with otlp_receiver() as rx:
        host_b = await start_host_b(tmp_path, rx.endpoint, b_port)
        try:
            raw_a = {
                "version": "3",
                "server": {
                    "command": php_cmd("obs_mesh_a.php"),
                    "env": {"MESH_B_URL": f"http://127.0.0.1:{b_port}/"},
                },
                "grpc": {
                    "listen": "tcp://127.0.0.1:0",
                    "proto": [str(ECHO_PROTO)],
                    "pool": {"num_workers": 1},
                },
                "otel": {
                    "client": "grpc",
                    "endpoint": rx.endpoint,
                    "insecure": True,
                    "resource": {"service_name": "mesh-a"},
                },
            }
            async with running_host(raw_a) as host_a:
                reply, client_span = await call_through(host_a, rx)
        finally:
            await stop(host_b)
        check_trace(rx, reply, client_span)


async def call_through(host_a: Any, rx: Receiver) -> tuple[Any, trace.SpanContext]:
    """The grpcio client: its own provider (service mesh-client) and a CLIENT span around the call."""
    provider = TracerProvider(resource=Resource.create({"service.name": "mesh-client"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=rx.endpoint, insecure=True)))
    tracer = provider.get_tracer("mesh-test")
    grpc_plugin = next(p for p in host_a.plugins if p.name == "grpc")
    try:
        async with grpc.aio.insecure_channel(grpc_plugin.address.removeprefix("tcp://")) as channel:
            ping = channel.unary_unary(
                "/echo.v1.Echo/Ping",
                request_serializer=PingRequest.SerializeToString,
                response_deserializer=PingReply.FromString,
            )
            with tracer.start_as_current_span("client-call", kind=trace.SpanKind.CLIENT) as span:
                carrier: dict[str, str] = {}
                TraceContextTextMapPropagator().inject(carrier)
                reply = await ping(PingRequest(msg="hello"), metadata=tuple(carrier.items()), timeout=30)
                context = span.get_span_context()
    finally:
        # the receiver lives in this event loop: flush from a thread
        await asyncio.to_thread(provider.force_flush)
        await asyncio.to_thread(provider.shutdown)
    return reply, context


def check_trace(rx: Receiver, reply: Any, client: trace.SpanContext) -> None:
    trace_id = format(client.trace_id, "032x")
    spans = [s for s in rx.spans if s.trace_id == trace_id]
    assert {s.trace_id for s in rx.spans if s.service == "mesh-a"} == {trace_id}

    root = one(spans, name="client-call")
    assert (root.service, root.parent_id, root.kind) == ("mesh-client", "", CLIENT)

    a_server = one(spans, service="mesh-a", kind=SERVER)
    assert a_server.parent_id == root.span_id
    assert a_server.name == "/echo.v1.Echo/Ping"
    a_wait = one(spans, service="mesh-a", name="rr.pool.wait")
    a_exec = one(spans, service="mesh-a", name="rr.pool.exec")
    assert a_wait.parent_id == a_exec.parent_id == a_server.span_id
    assert a_exec.attributes["rr.plugin"] == "grpc"
    assert a_exec.attributes["rr.worker.pid"] == reply.pid
    assert "rr.queue_wait_ms" in a_wait.attributes

    # PHP A passed on the context it received: the A server span's
    b_server = one(spans, service="mesh-b", kind=SERVER)
    assert b_server.parent_id == a_server.span_id
    assert b_server.name == "GET"
    b_spans = {s.span_id: s for s in spans if s.service == "mesh-b"}
    assert {s.name for s in b_spans.values()} >= {"GET", "http", "rr.pool.wait", "rr.pool.exec"}
    for span in b_spans.values():  # every B span hangs off another B span, up to B's server span
        if span is not b_server:
            assert span.parent_id in b_spans, span
    b_exec = one(spans, service="mesh-b", name="rr.pool.exec")
    assert b_exec.attributes["rr.plugin"] == "http"

    # what PHP B saw is a span of this trace, created by host B
    _, msg, traceparent = reply.msg.split(":", 2)
    assert msg == "hello"
    _, seen_trace, seen_span, _ = traceparent.split("-")
    assert seen_trace == trace_id
    assert seen_span in b_spans
    assert {s.service for s in spans} == {"mesh-client", "mesh-a", "mesh-b"}
