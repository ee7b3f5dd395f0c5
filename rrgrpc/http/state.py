"""Per-request forwarding state and the helpers every HTTP layer answers with.

Owns :class:`Forward`, the state middlewares change before the worker's request context is built
(extra headers, the resolved client address, response headers, gzip, a response replacement). It
lives on the request itself (``request[FORWARD]``, aiohttp's typed request key), so a middleware
writes it and the dispatcher reads it with no module-level state, and neither imports the other.
:func:`start_response` applies it to whatever response is sent, from a middleware or the dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

log = logging.getLogger("rr.http")

#: Smaller bodies are not worth compressing (gzhttp's default threshold).
GZIP_MIN_SIZE: Final = 1024

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Forward:
    """Per-request state the middlewares change before the context is built.

    Attributes:
        add_headers: header lines appended to the forwarded request (``headers.request``).
        set_headers: headers that replace same-named incoming ones (trace context from ``otel``).
        remote_addr: client address resolved by ``proxy_ip_parser``; None = the TCP peer.
        attributes: request attributes (values as lists) sent in the context.
        response_headers: headers added to every response (``headers.response``, CORS).
        gzip: the client accepts gzip and the ``gzip`` middleware is on.
        replace_response: given the worker's (status, headers) of a whole response, returns the
            response to send instead of the worker's body, or None (``sendfile``'s X-Sendfile).
    """

    add_headers: list[tuple[str, str]] = field(default_factory=list)
    set_headers: dict[str, str] = field(default_factory=dict)
    remote_addr: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    gzip: bool = False
    replace_response: Callable[[int, CIMultiDict[str]], web.StreamResponse | None] | None = None


#: Where a request keeps its Forward state (absent until a middleware needs one).
FORWARD: Final = web.RequestKey("rr_http_forward", Forward)


def forward_of(request: web.BaseRequest) -> Forward:
    """The request's mutable forwarding state, created on first use."""
    fwd = request.get(FORWARD)
    if fwd is None:
        fwd = request[FORWARD] = Forward()
    return fwd


async def start_response(
    request: web.BaseRequest, resp: web.StreamResponse, fwd: Forward | None | EllipsisType = ...
) -> None:
    """Apply the middlewares' response headers and gzip choice, then send the head.

    ``fwd`` is the request's state when the caller already looked it up (the dispatcher does, once:
    a lookup that misses costs an exception inside aiohttp's request mapping).
    """
    if fwd is ...:
        fwd = request.get(FORWARD)
    if fwd is not None:
        for name, value in fwd.response_headers:
            resp.headers[name] = value
        if fwd.gzip and "Content-Encoding" not in resp.headers and resp.status not in (204, 304):
            length = resp.content_length  # None while streaming: compress
            if length is None or length >= GZIP_MIN_SIZE:
                resp.enable_compression(web.ContentCoding.gzip)
    await resp.prepare(request)


async def finish(
    request: web.BaseRequest, resp: web.StreamResponse, fwd: Forward | None | EllipsisType = ...
) -> web.StreamResponse:
    """Send a whole response; a client that already went away is not an error."""
    try:
        await start_response(request, resp, fwd)
        await resp.write_eof()
    except ConnectionResetError:
        log.debug("client disconnected before the response was written")
    return resp


async def send_plain(
    request: web.BaseRequest, status: int, text: str = "", headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """A short text response (errors, redirects, preflights) through :func:`finish`."""
    return await finish(request, web.Response(status=status, text=text, headers=headers))
