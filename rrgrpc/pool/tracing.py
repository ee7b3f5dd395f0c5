"""The pool's spans (OpenTelemetry API only): ``rr.pool.wait`` while a request waits for a worker,
``rr.pool.exec`` around its exchange with the worker.

Tracing is off (no tracer, no span objects on the request path) unless an SDK tracer provider is
installed when the pool starts (``rrgrpc.tracing.tracer``, the one "is tracing on" check).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from opentelemetry import trace

from rrgrpc.pool.payload import Payload
from rrgrpc.pool.worker import Worker


async def traced_wait(
    tracer: trace.Tracer, plugin: str, take: Callable[[], Awaitable[Worker]], timeout: float | None
) -> Worker:
    """``take()`` a worker (within ``timeout``) inside an ``rr.pool.wait`` span."""
    with tracer.start_as_current_span("rr.pool.wait", attributes={"rr.plugin": plugin}) as span:
        queued = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                w = await take()
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            raise
        span.set_attribute("rr.queue_wait_ms", (time.monotonic() - queued) * 1000)
        span.set_attribute("rr.worker.pid", w.pid)
        return w


async def traced_exec(
    tracer: trace.Tracer, plugin: str, w: Worker, info: str, roundtrip: Awaitable[Payload]
) -> Payload:
    """Await the exchange ``roundtrip`` with ``w`` inside an ``rr.pool.exec`` span; the worker's
    stderr lines carry its trace id meanwhile."""
    with tracer.start_as_current_span(
        "rr.pool.exec", attributes={"rr.plugin": plugin, "rr.worker.pid": w.pid, "rr.exec": info}
    ) as span:
        w.trace_id = format(span.get_span_context().trace_id, "032x")
        try:
            return await roundtrip
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            raise
