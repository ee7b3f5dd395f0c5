"""The data plane of the gRPC plugin: one call in, one worker exchange, one answer out.

Owns the generic raw-bytes method handlers (no deserializer: the request arrives as ``bytes`` and
the response leaves as the worker's bytes), the worker request context of PROTOCOL.md §4.2 built
byte-for-byte as Go's ``encoding/json`` would, the server span, deadlines, and the request metrics.
What does not change from call to call is worked out once per method (the context's constant part,
metric children) or once per client connection and metadata (a context template the common call
splices its fresh trace ids into).

What the worker receives in ``context`` (one array of strings per key, keys sorted bytewise):

* ``Traceparent``, ``Tracestate`` (if any), ``Baggage`` (if any), ``Uber-Trace-Id``: injected from the
  call's server span with W3C TraceContext + Baggage + Jaeger, Go's canonical capitalisation.
* the incoming metadata, lower-case, repeated keys as several elements; ``-bin`` values are the
  decoded bytes rendered as text (invalid UTF-8 -> U+FFFD per byte, as Go does). grpcio hides
  ``:authority`` and ``content-type`` from servers; the proxy supplies them: ``:authority`` is the
  address the server listens on (``localhost`` for unix sockets), ``content-type`` is
  ``application/grpc``.
* ``:peer.address`` (``ip:port``) and ``:peer.auth-type`` = ``tls`` on TLS connections.
* beyond RoadRunner, ``grpc-timeout``: the client's remaining deadline when the request was
  forwarded, in gRPC wire format (``<n>m`` milliseconds; ``<n>S`` seconds above 8 digits). Absent
  when the client set no deadline. PHP code can stop early instead of working for nobody.

Tracing: the proxy opens a SERVER span ``/pkg.Svc/Method`` itself, parented on the context extracted
from the incoming metadata (opentelemetry-instrumentation-grpc is not a dependency, and its aio
interceptor would not give us the span to inject), and makes it current for the pool's
``rr.pool.exec`` child span. With a tracer provider installed (the otel plugin) the span is
recorded and exported; without one the proxy only mints valid ids (continuing the caller's trace
when the metadata carries one), makes nothing current and records nothing, so PHP always receives
trace headers, as with RoadRunner's always-on local tracer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol
from urllib.parse import unquote

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from rrgrpc.errors import PoolError
from rrgrpc.gocompat import canonical_header, go_json, go_string
from rrgrpc.goridge.frame import Flag
from rrgrpc.grpc.metrics import GrpcMetrics
from rrgrpc.grpc.protos import MethodSpec, ServiceSpec
from rrgrpc.grpc.status import (
    Failure,
    Metadata,
    Reply,
    failure_from_exception,
    go_code_name,
    parse_reply,
    plain_body,
)
from rrgrpc.pool.payload import Payload
from rrgrpc.tracing import PROPAGATOR

__all__ = [
    "ContextEncoder",
    "Executor",
    "Proxy",
    "format_timeout",
    "peer_address",
]

log = logging.getLogger("rr.grpc")

_INJECTED = ("traceparent", "tracestate", "baggage", "uber-trace-id")
_EXTRACTED = frozenset(_INJECTED)  # and jaeger's "uberctx-" baggage keys
_CANONICAL = {key: canonical_header(key) for key in _INJECTED}
_CODEC_JSON = int(Flag.CODEC_JSON)


class Executor(Protocol):
    """What the proxy needs from the pool."""

    async def exec(
        self, payload: Payload, *, timeout: float | None = None, info: str = "", alive: Callable[[], bool] | None = None
    ) -> Payload: ...


# ---------------------------------------------------------------------------------- the context


def format_timeout(seconds: float) -> str:
    """A remaining deadline in gRPC's ``grpc-timeout`` wire format (at most 8 digits)."""
    ms = max(0, int(seconds * 1000))
    return f"{ms}m" if ms < 100_000_000 else f"{min(int(seconds), 99_999_999)}S"


def peer_address(peer: str) -> str:
    """grpcio's peer string (``ipv4:1.2.3.4:5``, ``ipv6:%5B::1%5D:5``, ``unix:/p``) as Go's ``Addr.String()``."""
    scheme, _, rest = peer.partition(":")
    return unquote(rest) if scheme in ("ipv4", "ipv6", "unix", "unix-abstract") else peer


class ContextEncoder:
    """The worker context JSON of one method (PROTOCOL.md §4.2), byte-compatible with RoadRunner's.

    What is the same on every call is encoded once: the service and method, and the entries every
    call carries first (``head``). :meth:`encode` adds a call's entries, sorted as Go sorts a map's
    keys. :meth:`encode_fresh`, the common case (a fresh trace, nothing to continue or record),
    splices the new trace ids (and the deadline) into a template made once per client connection
    and metadata, so a call costs a join instead of an encoding.

    Args:
        service: full service name ``package.Service``.
        method: bare rpc name.
        head: entries before the incoming metadata (the proxy's ``:authority`` and ``content-type``).
        auth_type: ``tls`` when the server listens with TLS, else ``None``.
    """

    __slots__ = ("_prefix", "_head", "_auth_type", "_templates")

    def __init__(
        self, service: str, method: str, head: Metadata = (), auth_type: str | None = None
    ) -> None:
        self._prefix = b'{"service":' + go_json(service) + b',"method":' + go_json(method) + b',"context":'
        self._head = head
        self._auth_type = auth_type
        self._templates: dict[tuple[str, bool, Metadata], tuple[bytes, ...] | None] = {}

    def encode(
        self,
        metadata: Iterable[tuple[str, str | bytes]],
        *,
        peer: str,
        injected: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """The context of one call.

        Args:
            metadata: incoming metadata pairs in arrival order (``-bin`` values as bytes).
            peer: the remote address, already ``ip:port``.
            injected: the trace carrier (lower-case keys, as ``tracing.PROPAGATOR`` writes them).
            timeout: the remaining deadline in seconds, if the client set one.
        """
        return self._encode(metadata, peer, injected, None if timeout is None else format_timeout(timeout))

    def encode_fresh(self, metadata: Metadata, peer: str, timeout: float | None) -> bytes:
        """:meth:`encode` with the ids of a fresh trace, as injecting a parentless :func:`_local_span`
        writes them (drawn in its order: span id, then trace id); ``peer`` is grpcio's peer string."""
        key = (peer, timeout is None, metadata)
        parts = self._templates.get(key, _MISSING)
        if parts is _MISSING:
            parts = self._template(metadata, peer, timeout is not None)
            if len(self._templates) >= _TEMPLATES_PER_METHOD:  # one-off connections must not grow it forever
                self._templates.clear()
            self._templates[key] = parts
        bits = random.getrandbits(192)  # the same draws as getrandbits(64), then getrandbits(128)
        trace_id = b"%032x" % (bits >> 64 or 1)
        span_id = b"%016x" % (bits & _SPAN_BITS or 1)
        if parts is None:  # a metadata value holds a template mark: no template for it
            carrier = {
                "traceparent": f"00-{trace_id.decode()}-{span_id.decode()}-01",
                "uber-trace-id": f"{trace_id.decode()}:{span_id.decode()}:0:1",
            }
            return self.encode(metadata, peer=peer_address(peer), injected=carrier, timeout=timeout)
        out = [parts[0], b"00-", trace_id, b"-", span_id, b"-01", parts[1], trace_id, b":", span_id, b":0:1", parts[2]]
        if timeout is not None:
            out += (format_timeout(timeout).encode(), parts[3])
        return b"".join(out)

    def _template(self, metadata: Metadata, peer: str, timed: bool) -> tuple[bytes, ...] | None:
        """The context with marks where the trace ids and the deadline go, cut at the marks."""
        marks = _MARKS if timed else _MARKS[:2]
        raw = self._encode(metadata, peer_address(peer), _MARKED_CARRIER, _MARKS[2].decode() if timed else None)
        if any(raw.count(mark) != 1 for mark in marks):
            return None
        parts: list[bytes] = []
        rest = raw
        for mark in marks:
            before, found, rest = rest.partition(mark)
            if not found:  # the marks are not in the order the sorted keys give them
                return None
            parts.append(before)
        return (*parts, rest)

    def _encode(
        self, metadata: Iterable[tuple[str, str | bytes]], peer: str, injected: Mapping[str, str] | None, timeout: str | None
    ) -> bytes:
        ctx: dict[str, list[str]] = {}
        for key, raw in (*self._head, *metadata):
            value = raw if isinstance(raw, str) else go_string(raw)
            values = ctx.get(key)
            if values is None:
                ctx[key] = [value]
            else:
                values.append(value)
        if injected:
            for key, value in injected.items():
                canonical = _CANONICAL.get(key)
                if canonical is not None and canonical not in ctx:  # the metadata's own key wins
                    ctx[canonical] = [value]
        ctx[":peer.address"] = [peer]
        if self._auth_type:
            ctx[":peer.auth-type"] = [self._auth_type]
        if timeout is not None:
            ctx["grpc-timeout"] = [timeout]
        return self._prefix + go_json(ctx, sort_maps=True) + b"}"


_MISSING: Final[Any] = object()
_TEMPLATES_PER_METHOD: Final = 256
_SPAN_BITS: Final = (1 << 64) - 1
# where encode_fresh puts the traceparent and uber-trace-id values and the grpc-timeout (the
# order of the sorted keys: "Traceparent" < "Uber-Trace-Id" < "grpc-timeout")
_MARKS: Final = (b"rr-mark-traceparent", b"rr-mark-uber-trace-id", b"rr-mark-grpc-timeout")
_MARKED_CARRIER: Final = {"traceparent": _MARKS[0].decode(), "uber-trace-id": _MARKS[1].decode()}


# ---------------------------------------------------------------------------------- the handlers

Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


class Proxy:
    """Builds the method handlers for the loaded services and runs each call against the pool.

    Args:
        executor: returns the pool to use (looked up per call, the plugin swaps it never but may
            not have it yet when handlers are built).
        tracer: the tracer for the server span; ``None``: no provider is installed, mint ids only.
        authority: what ``:authority`` reports to PHP.
        metrics: request collectors to update.
        tls: the server listens with TLS (``:peer.auth-type`` is ``tls`` on every call).
    """

    def __init__(
        self,
        executor: Callable[[], Executor],
        tracer: trace.Tracer | None,
        authority: str,
        metrics: GrpcMetrics,
        *,
        tls: bool = False,
    ) -> None:
        self._executor = executor
        self._tracer = tracer
        self._authority = authority
        self._tls = tls
        self._metrics = metrics
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # the unary calls in flight, read when scraped (two gauge updates per call cost more)
        metrics.queue.set_function(lambda: self._inflight)

    async def drained(self) -> None:
        """Return once no unary call is in flight."""
        await self._idle.wait()

    def handlers(self, service: ServiceSpec) -> dict[str, grpc.RpcMethodHandler]:
        """Method name -> handler: unary proxies, and UNIMPLEMENTED for streaming rpcs."""
        out: dict[str, grpc.RpcMethodHandler] = {}
        for m in service.methods:
            if m.streaming:
                out[m.name] = grpc.stream_stream_rpc_method_handler(self._streaming(service.full_name, m))
            else:
                out[m.name] = grpc.unary_unary_rpc_method_handler(self._unary(service.full_name, m.name))
        return out

    def _streaming(self, service: str, m: MethodSpec) -> Callable[..., Any]:
        kind = "bidirectional" if m.client_streaming and m.server_streaming else (
            "client" if m.client_streaming else "server"
        )
        message = f"/{service}/{m.name} is a {kind}-streaming method; rrgrpc proxies unary methods only"
        stats = self._metrics.method(f"/{service}/{m.name}", timed=False)

        async def answer(requests: Any, context: grpc.aio.ServicerContext) -> None:
            stats.count("Unimplemented")
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        return answer

    def _unary(self, service: str, method: str) -> Handler:
        """The handler of one unary method; what does not change per call is computed here, once."""
        full = f"/{service}/{method}"
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        auth_type = "tls" if self._tls else None  # a grpc.aio server listens either with TLS or without
        head = ((":authority", self._authority), ("content-type", "application/grpc"))
        encoder = ContextEncoder(service, method, head, auth_type)
        tracer = self._tracer
        stats = self._metrics.method(full)
        perf_counter = time.perf_counter
        OK = grpc.StatusCode.OK

        async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            start = perf_counter()
            self._inflight += 1
            self._idle.clear()
            code = grpc.StatusCode.UNKNOWN
            metadata: Metadata = tuple(context.invocation_metadata() or ())  # grpc's own tuple: no copy
            span: trace.Span | None = None
            token = None
            try:
                remaining = context.time_remaining()
                if tracer is None and not _carries_trace(metadata):
                    # nothing to continue and nothing to record: fresh ids only
                    ctx = encoder.encode_fresh(metadata, context.peer(), remaining)
                else:
                    parent = PROPAGATOR.extract({k: v for k, v in metadata if isinstance(v, str)})
                    if tracer is None:  # the caller's trace continues in PHP; nothing records or reads it here
                        current = trace.set_span_in_context(_local_span(parent), parent)
                    else:
                        span = tracer.start_span(full, parent, trace.SpanKind.SERVER, attributes)
                        current = trace.set_span_in_context(span, parent)
                        token = otel_context.attach(current)  # the pool's rr.pool.exec span is its child
                    carrier: dict[str, str] = {}
                    PROPAGATOR.inject(carrier, context=current)
                    ctx = encoder.encode(metadata, peer=peer_address(context.peer()), injected=carrier, timeout=remaining)
                try:
                    raw = await self._executor().exec(
                        Payload(ctx, request, _CODEC_JSON), timeout=remaining, info=full, alive=lambda: not context.done()
                    )
                except (PoolError, TimeoutError) as exc:
                    lost = failure_from_exception(exc)
                    log.warning("%s: %s: %s", full, go_code_name(lost.code), lost.message)
                    reply = Reply(failure=lost)
                else:
                    body = plain_body(raw)
                    if body is not None and span is None:  # the common answer: a body, nothing else
                        code = OK
                        return body
                    reply = parse_reply(raw)
                failure = reply.failure
                code = failure.code if failure else OK
                if span is not None and span.is_recording():
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if failure:
                        span.set_status(trace.Status(trace.StatusCode.ERROR, failure.message))
                return await _answer(context, reply)
            except asyncio.CancelledError:
                code = _cancelled_code(context)
                if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    log.warning("%s: DeadlineExceeded: the client's deadline passed before the PHP worker answered", full)
                raise
            finally:
                if token is not None:
                    otel_context.detach(token)
                if span is not None:
                    span.end()
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()
                stats.finished("OK" if code is OK else go_code_name(code), perf_counter() - start)

        return call


def _cancelled_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """Why grpc cancelled the handler: the client's deadline passing, or the client going away."""
    remaining = context.time_remaining()
    return grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else grpc.StatusCode.CANCELLED


def _carries_trace(metadata: Sequence[tuple[str, str | bytes]]) -> bool:
    """Does the incoming metadata hold anything the propagators would extract?"""
    for key, _ in metadata:
        if key in _EXTRACTED or key.startswith("uberctx-"):
            return True
    return False


def _local_span(parent: otel_context.Context) -> trace.Span:
    """A span with fresh ids and no recording: what PHP needs when no tracer provider is installed.

    RoadRunner runs a local SDK provider for this; ids are all it yields, and minting them here
    costs a fraction of an SDK span. The trace continues the caller's when there is one.
    """
    caller = trace.get_current_span(parent).get_span_context()
    span_id = random.getrandbits(64) or 1
    if caller.is_valid:
        ctx = trace.SpanContext(caller.trace_id, span_id, False, caller.trace_flags, caller.trace_state)
    else:
        trace_id = random.getrandbits(128) or 1
        ctx = trace.SpanContext(trace_id, span_id, False, trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.NonRecordingSpan(ctx)


async def _answer(context: grpc.aio.ServicerContext, reply: Reply) -> bytes:
    """Send headers, then either the body with trailers or the failure status (which raises)."""
    if reply.headers:
        await context.send_initial_metadata(reply.headers)
    if reply.failure is not None:
        await _abort(context, reply.failure, reply.trailers)
    if reply.trailers:
        context.set_trailing_metadata(reply.trailers)
    return reply.body


async def _abort(context: grpc.aio.ServicerContext, failure: Failure, trailers: Sequence[Any]) -> None:
    """Raise the call's status; ``context.abort`` never returns."""
    await context.abort(failure.code, failure.message, trailing_metadata=(*trailers, *failure.trailers()))
