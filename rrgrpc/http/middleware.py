"""The ``http.middleware`` registry (``{name: factory}``, first listed = outermost) and the small ones.

``headers`` (:mod:`~rrgrpc.http.cors`), ``static`` (:mod:`~rrgrpc.http.static`) and ``http_metrics``
(:mod:`~rrgrpc.http.metrics`) live in their own modules; ``gzip``, ``otel`` (server span from the
caller's context, trace headers injected into the forwarded request), ``proxy_ip_parser`` (client IP
from trusted proxies) and ``sendfile`` (the file a worker names in an ``X-Sendfile`` response header
is sent instead) live here. Middlewares never import the dispatcher: on the worker path they edit
the request's :class:`~rrgrpc.http.state.Forward` state, which the dispatcher applies.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace

from rrgrpc.gocompat import canonical_header
from rrgrpc.http.convert import peer_ip
from rrgrpc.http.cors import headers_middleware
from rrgrpc.http.metrics import HttpMetrics
from rrgrpc.http.state import Handler, forward_of
from rrgrpc.http.static import StaticFiles
from rrgrpc.tracing import PROPAGATOR, tracer

if TYPE_CHECKING:
    from rrgrpc.config.schema import HttpConfig

Middleware = Callable[[web.BaseRequest, Handler], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Setup:
    """What a middleware factory may read: the ``http:`` section and the plugin's request metrics."""

    http: HttpConfig
    metrics: HttpMetrics | None = None


def _headers(setup: Setup) -> Middleware | None:
    return headers_middleware(setup.http.headers) if setup.http.headers is not None else None


def _static(setup: Setup) -> Middleware | None:
    return StaticFiles(setup.http.static) if setup.http.static is not None else None


#: Every middleware ``http.middleware`` may name; a factory returns None when its section is absent.
#: The config keeps the same names (``config.schema.HTTP_MIDDLEWARE``) to warn about unknown ones.
REGISTRY: Final[Mapping[str, Callable[[Setup], Middleware | None]]] = {
    "headers": _headers,
    "gzip": lambda setup: gzip_middleware,
    "static": _static,
    "otel": lambda setup: otel_middleware(),
    "http_metrics": lambda setup: setup.metrics,
    "proxy_ip_parser": lambda setup: proxy_ip_middleware(parse_subnets(setup.http.trusted_subnets)),
    "sendfile": lambda setup: sendfile_middleware,
}


def build(names: Iterable[str], setup: Setup) -> list[Middleware]:
    """The middlewares ``names`` asks for, in order (unknown names were dropped, with a warning, by
    the config loader)."""
    out: list[Middleware] = []
    for name in names:
        factory = REGISTRY.get(name)
        mw = factory(setup) if factory is not None else None
        if mw is not None:
            out.append(mw)
    return out


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

# --------------------------------------------------------------------------- gzip


async def gzip_middleware(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        forward_of(request).gzip = True
    return await handler(request)

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


def _tracer() -> trace.Tracer:
    """The global tracer when the otel plugin configured one, else a local SDK tracer (valid ids)."""
    found = tracer("rrgrpc.http")
    if found is None:
        from opentelemetry.sdk.trace import TracerProvider

        return TracerProvider().get_tracer("rrgrpc.http")
    return found


def otel_middleware() -> Middleware:
    http_tracer = _tracer()

    async def otel(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        parent = PROPAGATOR.extract(request.headers)
        attrs = {"http.request.method": request.method, "url.path": request.path}
        with http_tracer.start_as_current_span(request.method, context=parent, kind=trace.SpanKind.SERVER, attributes=attrs) as span:
            with http_tracer.start_as_current_span("http"):
                carrier: dict[str, str] = {}
                PROPAGATOR.inject(carrier)
            forward_of(request).set_headers.update({canonical_header(k): v for k, v in carrier.items()})
            resp = await handler(request)
            span.set_attribute("http.response.status_code", resp.status)
            if resp.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return resp

    return otel

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
        peer = peer_ip(request)
        if peer:
            addr = ipaddress.ip_address(peer)
            if any(addr in net for net in trusted if net.version == addr.version):
                resolved = resolve_forwarded_ip(request.headers)
                if resolved:
                    forward_of(request).remote_addr = resolved
        return await handler(request)

    return proxy_ip_parser
