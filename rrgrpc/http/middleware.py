"""HTTP middlewares named in ``http.middleware`` (first listed = outermost), plus the bundled ones.

``headers`` (request/response headers, CORS incl. preflight), ``gzip``, ``static`` (files from
``static.dir``: forbid/allow, ETag, 304, no traversal, no dotfiles), ``otel`` (server span from the
caller's context, trace headers injected into the forwarded request), ``http_metrics``
(RoadRunner's ``rr_http_*`` collectors), ``proxy_ip_parser`` (client IP from trusted proxies) and
``sendfile`` (the file a worker names in an ``X-Sendfile`` response header is sent instead).
Middlewares never build responses for the worker path themselves: they edit the request's
:class:`~rrgrpc.http.convert.Forward` state, which the dispatcher applies.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import mimetypes
import os
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rrgrpc.gocompat import canonical_header
from rrgrpc.http.convert import client_ip
from rrgrpc.http.dispatch import Handler, finish, forward_of, send_plain

if TYPE_CHECKING:
    from rrgrpc.config.schema import CorsConfig, HeadersConfig, StaticConfig

Middleware = Callable[[web.BaseRequest, Handler], Awaitable[web.StreamResponse]]


def chain(middlewares: Sequence[Middleware], terminal: Handler) -> Handler:
    """Wrap ``terminal`` so that ``middlewares[0]`` runs first."""
    handler = terminal
    for mw in reversed(middlewares):
        handler = _bind(mw, handler)
    return handler


def _bind(mw: Middleware, inner: Handler) -> Handler:
    async def bound(request: web.BaseRequest) -> web.StreamResponse:
        return await mw(request, inner)

    return bound


# --------------------------------------------------------------------------- headers + CORS


def headers_middleware(cfg: HeadersConfig) -> Middleware:
    request_headers = [(canonical_header(k), str(v)) for k, v in cfg.request.items()]
    response_headers = [(canonical_header(k), str(v)) for k, v in cfg.response.items()]
    cors = cfg.cors

    async def headers(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        fwd = forward_of(request)
        fwd.add_headers.extend(request_headers)
        fwd.response_headers.extend(response_headers)
        if cors is not None:
            origin = request.headers.get("Origin")
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return await _preflight(request, cors, origin)
            if origin is not None:
                fwd.response_headers.append(("Vary", "Origin"))
                if _origin_allowed(cors, origin):
                    fwd.response_headers.extend(_cors_common(cors, origin))
                    if cors.exposed_headers:
                        fwd.response_headers.append(("Access-Control-Expose-Headers", cors.exposed_headers))
        return await handler(request)

    return headers


def _origin_allowed(cors: CorsConfig, origin: str) -> bool:
    """``allowed_origin_regex`` (searched, as Go's MatchString does) wins over ``allowed_origin``."""
    if cors.allowed_origin_regex:
        return re.search(cors.allowed_origin_regex, origin) is not None
    allowed = [o.strip() for o in cors.allowed_origin.split(",") if o.strip()]
    return "*" in allowed or origin in allowed


def _cors_common(cors: CorsConfig, origin: str) -> list[tuple[str, str]]:
    wildcard = cors.allowed_origin.strip() == "*" and not cors.allowed_origin_regex and not cors.allow_credentials
    out = [("Access-Control-Allow-Origin", "*" if wildcard else origin)]
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    return out


async def _preflight(request: web.BaseRequest, cors: CorsConfig, origin: str | None) -> web.StreamResponse:
    """Answer a CORS preflight here; it never reaches PHP."""
    headers = {"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
    if origin is not None and _origin_allowed(cors, origin):
        headers.update(_cors_common(cors, origin))
        method = request.headers.get("Access-Control-Request-Method", "").upper()
        headers["Access-Control-Allow-Methods"] = cors.allowed_methods or method
        wanted = request.headers.get("Access-Control-Request-Headers", "")
        allowed = cors.allowed_headers.strip()
        if allowed == "*":
            allowed = wanted
        if allowed:
            headers["Access-Control-Allow-Headers"] = allowed
        if cors.max_age > 0:
            headers["Access-Control-Max-Age"] = str(cors.max_age)
    return await finish(request, web.Response(status=cors.options_success_status, headers=headers))


# --------------------------------------------------------------------------- gzip


async def gzip_middleware(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        forward_of(request).gzip = True
    return await handler(request)


# --------------------------------------------------------------------------- static files


class StaticFiles:
    """Serves files under ``static.dir`` before the request reaches PHP."""

    def __init__(self, cfg: StaticConfig) -> None:
        self.root = Path(cfg.dir or ".").resolve()
        self.forbid = {e.lower() for e in cfg.forbid}
        self.allow = {e.lower() for e in cfg.allow}
        self.calculate_etag = cfg.calculate_etag
        self.weak = cfg.weak
        self.response_headers = [(canonical_header(k), str(v)) for k, v in cfg.response.items()]
        self._etags: dict[tuple[str, int, int], str] = {}

    def _lookup(self, raw_path: str) -> Path | int | None:
        """The file to serve, an error status (403) or None (not ours: pass to PHP)."""
        path = unquote(raw_path.partition("?")[0])
        segments = [s for s in path.replace("\\", "/").split("/") if s]
        if any(s == ".." for s in segments) or "\x00" in path:
            return 403
        if not segments or any(s.startswith(".") for s in segments):
            return None
        ext = os.path.splitext(segments[-1])[1].lower()
        if ext in self.forbid or (self.allow and ext not in self.allow):
            return None
        candidate = self.root.joinpath(*segments)
        try:
            real = candidate.resolve()
        except OSError:
            return None
        if not real.is_relative_to(self.root):
            return 403
        return real if real.is_file() else None

    def _etag(self, path: Path, st: os.stat_result) -> str:
        key = (str(path), st.st_mtime_ns, st.st_size)
        tag = self._etags.get(key)
        if tag is None:
            if self.weak:
                tag = f'W/"{st.st_size:x}-{zlib.crc32(path.name.encode()):08x}"'
            else:
                tag = f'"{st.st_size:x}-{zlib.crc32(path.read_bytes()):08x}"'
            if len(self._etags) > 4096:
                self._etags.clear()
            self._etags[key] = tag
        return tag

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return await handler(request)
        found = self._lookup(request.raw_path)
        if found is None:
            return await handler(request)
        if isinstance(found, int):
            return await send_plain(request, found, "forbidden")
        st = found.stat()
        headers = dict(self.response_headers)
        headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        etag = None
        if self.calculate_etag:
            etag = await asyncio.to_thread(self._etag, found, st)
            headers["ETag"] = etag
        if etag is not None and _etag_matches(request.headers.get("If-None-Match", ""), etag):
            return await _not_modified(request, headers)
        since = request.if_modified_since
        if etag is None and since is not None and int(st.st_mtime) <= since.timestamp():
            return await _not_modified(request, headers)
        body = b"" if request.method == "HEAD" else await asyncio.to_thread(found.read_bytes)
        ctype, encoding = mimetypes.guess_type(found.name)
        headers["Content-Type"] = ctype or "application/octet-stream"
        if encoding:
            headers["Content-Encoding"] = encoding
        resp = web.Response(body=body, headers=headers)
        if request.method == "HEAD":
            resp.content_length = st.st_size
        return await finish(request, resp)


def _etag_matches(header: str, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


async def _not_modified(request: web.BaseRequest, headers: dict[str, str]) -> web.StreamResponse:
    return await finish(request, web.Response(status=304, headers=headers))


# --------------------------------------------------------------------------- sendfile

SENDFILE_HEADER = "X-Sendfile"


def _sendfile_response(status: int, headers: CIMultiDict[str]) -> web.StreamResponse | None:
    """The file a worker names in ``X-Sendfile`` instead of its body; None when it names none.

    As RoadRunner's ``sendfile``: a path with ``..`` is 403, a missing one 404 ("not found"); the
    worker's other headers and status are kept. aiohttp's FileResponse streams the file (with
    sendfile(2) when it can) and answers Range and If-Modified-Since.
    """
    path = headers.get(SENDFILE_HEADER, "")
    if not path:
        return None
    kept = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in ("x-sendfile", "content-length"))
    if ".." in path:
        return web.Response(status=403, headers=kept)
    if not os.path.isfile(path):
        return web.Response(status=404, text="not found", headers={"Content-Type": "text/plain; charset=utf-8"})
    return web.FileResponse(path, status=status, headers=kept)


async def sendfile_middleware(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
    forward_of(request).replace_response = _sendfile_response
    return await handler(request)


# --------------------------------------------------------------------------- otel


#: RoadRunner's composite propagator for HTTP: W3C TraceContext, W3C Baggage, Jaeger.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator(), JaegerPropagator()])


def _tracer() -> trace.Tracer:
    """The global tracer when the otel plugin configured one, else a local SDK tracer (valid ids)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        from opentelemetry.sdk.trace import TracerProvider

        return TracerProvider().get_tracer("rrgrpc.http")
    return trace.get_tracer("rrgrpc.http")


def _go_uber_trace_id(value: str) -> str:
    """``uber-trace-id`` as Go's Jaeger propagator writes it: ``trace:span:0:<sampled bit>``."""
    parts = value.split(":")
    if len(parts) != 4:
        return value
    try:
        return f"{parts[0]}:{parts[1]}:0:{int(parts[3], 16) & 1:x}"
    except ValueError:
        return value


def otel_middleware() -> Middleware:
    tracer = _tracer()

    async def otel(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        parent = PROPAGATOR.extract(request.headers)
        attrs = {"http.request.method": request.method, "url.path": request.path}
        with tracer.start_as_current_span(request.method, context=parent, kind=trace.SpanKind.SERVER, attributes=attrs) as span:
            with tracer.start_as_current_span("http"):
                carrier: dict[str, str] = {}
                PROPAGATOR.inject(carrier)
            if "uber-trace-id" in carrier:
                carrier["uber-trace-id"] = _go_uber_trace_id(carrier["uber-trace-id"])
            forward_of(request).set_headers.update({canonical_header(k): v for k, v in carrier.items()})
            resp = await handler(request)
            span.set_attribute("http.response.status_code", resp.status)
            if resp.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return resp

    return otel


# --------------------------------------------------------------------------- http_metrics


class _Uptime(Collector):
    """``rr_http_uptime_seconds``: whole seconds since the plugin started (no _total suffix, as RR)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily("rr_http_uptime_seconds", "Uptime in seconds", value=int(time.monotonic() - self.started))


class HttpMetrics:
    """RoadRunner's ``http_metrics`` collectors (unregistered; the metrics plugin registers them)."""

    def __init__(self) -> None:
        self.queue = Gauge("rr_http_requests_queue", "Total number of queued requests.", registry=None)
        self.no_free_workers = Counter(
            "rr_http_no_free_workers_total", "Total number of NoFreeWorkers occurrences.", registry=None
        )
        self.requests = Counter(
            "rr_http_request_total", "Total number of handled http requests after server restart.", ["status"], registry=None
        )
        self.duration = Histogram("rr_http_request_duration_seconds", "HTTP request duration.", ["status"], registry=None)
        self.uptime = _Uptime()

    def collectors(self) -> list[Any]:
        return [self.requests, self.duration, self.queue, self.no_free_workers, self.uptime]

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        self.queue.inc()
        status = "500"
        try:
            resp = await handler(request)
            status = str(resp.status)
            if resp.headers.get("No-Workers") == "true":
                self.no_free_workers.inc()
            return resp
        finally:
            self.queue.dec()
            self.requests.labels(status).inc()
            self.duration.labels(status).observe(time.perf_counter() - start)


# --------------------------------------------------------------------------- proxy_ip_parser

_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_subnets(subnets: Iterable[str]) -> list[_Net]:
    return [ipaddress.ip_network(s.strip(), strict=False) for s in subnets if s.strip()]


def _valid_ip(text: str) -> str | None:
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def resolve_forwarded_ip(headers: Any) -> str | None:
    """The client IP a trusted proxy reports: X-Forwarded-For (first), X-Real-Ip, Forwarded for=, ..."""
    xff = headers.get("X-Forwarded-For")
    if xff:
        return _valid_ip(xff.split(",")[0])
    real = headers.get("X-Real-Ip")
    if real:
        return _valid_ip(real)
    fwd = headers.get("Forwarded")
    if fwd:
        for element in fwd.split(",")[0].split(";"):
            key, _, value = element.strip().partition("=")
            if key.lower() == "for":
                return _valid_ip(value)
    for name in ("CF-Connecting-IP", "True-Client-IP"):
        value = headers.get(name)
        if value:
            return _valid_ip(value)
    return None


def proxy_ip_middleware(trusted: Sequence[_Net]) -> Middleware:
    async def proxy_ip_parser(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        peer = client_ip(request.transport.get_extra_info("peername") if request.transport else None)
        if peer:
            addr = ipaddress.ip_address(peer)
            if any(addr in net for net in trusted if net.version == addr.version):
                resolved = resolve_forwarded_ip(request.headers)
                if resolved:
                    forward_of(request).remote_addr = resolved
        return await handler(request)

    return proxy_ip_parser
