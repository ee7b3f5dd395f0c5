"""tracing: the one propagator every edge uses, and the Go form of what it injects."""

from __future__ import annotations

from opentelemetry import baggage, trace

from rrgrpc import otel, tracing
from rrgrpc.grpc import proxy
from rrgrpc.http import middleware
from rrgrpc.jobs import plugin as jobs_plugin


def test_every_edge_propagates_with_the_one_propagator() -> None:
    assert vars(proxy)["PROPAGATOR"] is tracing.PROPAGATOR
    assert vars(middleware)["PROPAGATOR"] is tracing.PROPAGATOR
    assert vars(jobs_plugin)["PROPAGATOR"] is tracing.PROPAGATOR
    assert vars(otel)["PROPAGATOR"] is tracing.PROPAGATOR  # what the otel plugin makes global


def test_baggage_travels_as_w3c_only_and_uber_trace_id_in_go_form() -> None:
    # sent: a sampled span with baggage; Go's Jaeger propagator writes no uberctx- keys and no parent id
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=trace.TraceFlags(1),
        )
    )
    context = baggage.set_baggage("user", "alice", trace.set_span_in_context(span))
    carrier: dict[str, str] = {}
    tracing.PROPAGATOR.inject(carrier, context=context)
    assert carrier == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "baggage": "user=alice",
        "uber-trace-id": "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1",
    }
