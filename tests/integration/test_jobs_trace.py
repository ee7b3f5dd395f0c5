"""A trace that enters by gRPC, pushes a job from PHP and is consumed by a PHP worker is one trace,
as exported to a real OTLP receiver (the HTTP entry is in test_jobs_example.py)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.helpers import eventually, php_cmd, running_host
from tests.integration.jobs_helpers import jobs_config, tasks
from tests.integration.test_obs_metrics import ECHO_PROTO, PingRequest, ping_stub
from tests.obs_otlp import otlp_receiver

pytestmark = pytest.mark.php

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # opentelemetry.proto SpanKind


async def test_grpc_call_push_and_consume_are_one_trace(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    cfg["server"]["command"] = php_cmd("jobs_grpc_push.php")
    cfg["grpc"] = {"listen": "tcp://127.0.0.1:0", "proto": [str(ECHO_PROTO)], "pool": {"num_workers": 1}}
    trace_id, caller = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    async with otlp_receiver() as rx:
        cfg["otel"] = {"client": "grpc", "endpoint": rx.endpoint, "insecure": True, "resource": {"service_name": "t"}}
        async with running_host(cfg) as host:
            grpc_plugin = next(p for p in host.plugins if p.name == "grpc")
            async with grpc.aio.insecure_channel(grpc_plugin.address.removeprefix("tcp://")) as channel:
                ping = ping_stub(channel)
                metadata = (("traceparent", f"00-{trace_id}-{caller}-01"),)
                reply = await ping(PingRequest(msg="hello"), metadata=metadata, timeout=30)
            await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=15)
    spans = [s for s in rx.spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in spans}
    server = next(s for s in spans if s.kind == SERVER and s.name == "/echo.v1.Echo/Ping")
    push = next(s for s in spans if s.name == "jobs push p")
    consume = next(s for s in spans if s.name == "jobs consume p")
    assert server.parent_id == caller
    assert (push.kind, consume.kind, consume.parent_id) == (PRODUCER, CONSUMER, push.span_id)
    ancestors, span = [], push
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        ancestors.append(span.span_id)
    assert server.span_id in ancestors  # the push happened inside the gRPC call
    assert push.attributes["messaging.message.id"] == reply.msg == tasks(tmp_path)[0]["id"]
    assert tasks(tmp_path)[0]["headers"]["traceparent"][0].split("-")[1] == trace_id
