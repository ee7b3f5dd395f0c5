"""Trace propagation as RoadRunner does it, and the one "is tracing on" check.

Owns ``PROPAGATOR``, the only composite propagator in rrgrpc: W3C TraceContext, W3C Baggage and
Jaeger's ``uber-trace-id`` written as Go's propagator writes it (RoadRunner's composite, the same in
its gRPC, HTTP and jobs plugins). The gRPC and HTTP edges and the jobs plugin extract and inject with
it whether or not the otel plugin runs; the otel plugin also makes it the global propagator.

``tracer(name)`` is the global tracer when a real provider is installed (the otel plugin's, which
stays installed for the process once set), else ``None``: callers then skip recording spans.

OpenTelemetry API only (no SDK), so every layer down to the pool may import it.
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.propagators.textmap import Setter, default_setter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


class GoJaegerPropagator(JaegerPropagator):
    """Jaeger's ``uber-trace-id`` written as Go's propagator (RoadRunner's) writes it.

    ``<trace id>:<span id>:0:<1|0>``: no parent id and no debug bit (the Python propagator writes the
    parent span id and ORs the debug flag into sampled traces); baggage travels as W3C ``baggage``
    only. Extraction is the Python propagator's, which accepts both spellings.
    """

    def inject(
        self,
        carrier: Any,
        context: Context | None = None,
        setter: Setter[Any] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        flag = "1" if span_context.trace_flags.sampled else "0"
        setter.set(
            carrier,
            self.TRACE_ID_KEY,
            f"{span_context.trace_id:032x}:{span_context.span_id:016x}:0:{flag}",
        )


#: RoadRunner's propagator: W3C TraceContext, W3C Baggage and Jaeger's ``uber-trace-id`` (Go's form).
PROPAGATOR: Final = CompositePropagator(
    [TraceContextTextMapPropagator(), W3CBaggagePropagator(), GoJaegerPropagator()]
)


def tracer(name: str) -> trace.Tracer | None:
    """The global tracer ``name`` when a real tracer provider is installed, else ``None``."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer(name)


__all__ = ["PROPAGATOR", "GoJaegerPropagator", "tracer"]
