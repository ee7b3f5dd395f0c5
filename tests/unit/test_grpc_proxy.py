"""The proxy over a real grpc.aio server and channel, with a scripted executor instead of PHP.

Covers what the PHP workers cannot easily produce: every pool failure's status, the legacy
``code|:|message|:|details`` ERROR text, a recorded server span with its parent and attributes,
and id-only spans when no tracer provider is installed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rrgrpc.errors import ExecTTLExceeded, NoFreeWorkers, PoolClosed, QueueFull, WorkerError, WorkerLost
from rrgrpc.grpc.metrics import GrpcMetrics
from rrgrpc.grpc.protos import MethodSpec, ServiceSpec
from rrgrpc.grpc.proxy import Proxy
from rrgrpc.pool.payload import Payload

SERVICE = ServiceSpec("test.v1.T", "t.proto", (MethodSpec("Call", "test.v1.In", "test.v1.Out"),))
INCOMING = "00-2678b910f57fe3320587f4126a390868-6b87f1600005b643-01"


class Script:
    """An executor that records the payload and answers with ``answer(payload)``."""

    def __init__(self, answer: Callable[[Payload], Payload]) -> None:
        self.answer = answer
        self.seen: list[tuple[Payload, float | None, str]] = []

    async def exec(self, payload: Payload, *, timeout: float | None = None, info: str = "", alive: Any = None) -> Payload:
        self.seen.append((payload, timeout, info))
        return self.answer(payload)


@asynccontextmanager
async def proxied(executor: Any, tracer: trace.Tracer | None = None) -> AsyncIterator[Any]:
    server = grpc.aio.server()
    proxy = Proxy(lambda: executor, tracer, "test-authority", GrpcMetrics())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, proxy.handlers(SERVICE)),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel.unary_unary("/test.v1.T/Call")
    finally:
        await server.stop(None)


def raising(exc: BaseException) -> Callable[[Payload], Payload]:
    def answer(_: Payload) -> Payload:
        raise exc

    return answer


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (NoFreeWorkers("none"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (QueueFull("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ExecTTLExceeded("killed"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (PoolClosed("stopping"), grpc.StatusCode.UNAVAILABLE),
        (WorkerLost("relay closed"), grpc.StatusCode.INTERNAL),
        (WorkerError("php says no"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_pool_failures_reach_the_client(exc: BaseException, code: grpc.StatusCode) -> None:
    async with proxied(Script(raising(exc))) as call:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"req")
        assert err.value.code() == code
        assert str(exc) in err.value.details()


async def test_legacy_error_text_with_details() -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="LEGACY"))
    raw = b"7|:|denied|:|" + detail.SerializeToString()
    async with proxied(Script(raising(WorkerError(raw.decode("utf-8", "replace"), raw)))) as call:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"req")
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.PERMISSION_DENIED, "denied")
        st = rpc_status.from_call(err.value)
        assert st is not None and st.details[0] == detail


async def test_request_body_and_context_reach_the_executor_and_the_body_comes_back() -> None:
    script = Script(lambda p: Payload(b'{"headers":"{\\"x-h\\":\\"1\\"}","trailers":"{}"}', b"reply:" + p.body, 0))
    async with proxied(script) as call:
        reply = await call(b"\x00raw\xffbytes", metadata=(("x-in", "a"),), timeout=30)
    assert reply == b"reply:\x00raw\xffbytes"
    payload, timeout, info = script.seen[0]
    assert payload.body == b"\x00raw\xffbytes" and info == "/test.v1.T/Call"
    assert timeout is not None and 0 < timeout <= 31
    ctx = json.loads(payload.context)
    assert (ctx["service"], ctx["method"]) == ("test.v1.T", "Call")
    assert ctx["context"]["x-in"] == ["a"] and ctx["context"][":authority"] == ["test-authority"]
    assert list(ctx["context"]) == sorted(ctx["context"])


async def test_recorded_server_span_continues_the_callers_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    script = Script(lambda p: Payload(b"{}", b"", 0))
    async with proxied(script, provider.get_tracer("test")) as call:
        await call(b"", metadata=(("traceparent", INCOMING),))
        script.answer = raising(NoFreeWorkers("busy"))
        with pytest.raises(grpc.aio.AioRpcError):
            await call(b"", metadata=(("traceparent", INCOMING),))
    # a span ends after its call's status went out, so the two may finish in either order
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    ok, failed = sorted(spans, key=lambda span: span.status.status_code == trace.StatusCode.ERROR)
    assert ok.name == "/test.v1.T/Call" and ok.kind == trace.SpanKind.SERVER
    assert ok.parent is not None and format(ok.parent.span_id, "016x") == "6b87f1600005b643"
    assert format(ok.context.trace_id, "032x") == "2678b910f57fe3320587f4126a390868"
    assert ok.attributes is not None and ok.attributes["rpc.grpc.status_code"] == 0
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    ctx = json.loads(script.seen[0][0].context)["context"]
    assert ctx["Traceparent"] == [f"00-2678b910f57fe3320587f4126a390868-{ok.context.span_id:016x}-01"]


async def test_without_a_provider_ids_are_minted_and_continue_the_trace() -> None:
    script = Script(lambda p: Payload(b"{}", b"", 0))
    async with proxied(script) as call:
        await call(b"", metadata=(("traceparent", INCOMING),))
        await call(b"")
    first = json.loads(script.seen[0][0].context)["context"]
    second = json.loads(script.seen[1][0].context)["context"]
    version, trace_id, span_id, flags = first["Traceparent"][0].split("-")
    assert (version, trace_id, flags) == ("00", "2678b910f57fe3320587f4126a390868", "01")
    assert span_id != "6b87f1600005b643" and int(span_id, 16) != 0
    assert first["Uber-Trace-Id"] == [f"{trace_id}:{span_id}:0:1"]
    fresh = second["Traceparent"][0].split("-")
    assert fresh[1] != trace_id and int(fresh[1], 16) != 0 and fresh[3] == "01"
