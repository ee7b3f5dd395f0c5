"""The HTTP connection edge: what a client can make rr hold before any handler runs.

aiohttp's low-level server, with its connection protocol extended:

* ``http.max_connections``: a connection beyond it is closed as soon as it is accepted;
* ``http.read_header_timeout``: from the first byte of a request to the end of its headers (a
  slowloris client is closed); ``http.idle_timeout``: a keep-alive connection waiting for its next
  request (aiohttp's keep-alive timeout);
* a malformed request is answered 400 by aiohttp and logged here in one line, not a traceback;
* an HTTP/0.9 request line (``GET /path`` without a version) is answered ``HTTP/1.0 400``;
* no ``Server:`` header (RoadRunner sends none; aiohttp would name itself and Python's version);
* the client IP, worked out once per connection (``peer_ip``, read by :func:`~rrgrpc.http.convert.peer_ip`).

Every log line here is throttled (:class:`rrgrpc.obs.Throttle`): a flood of bad clients writes
one line per 10 s per kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http import SERVER_SOFTWARE, HttpProcessingError, HttpVersion10, RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from rrgrpc.goridge.rpc import peer_name
from rrgrpc.http.convert import client_ip
from rrgrpc.obs import Throttle

log = logging.getLogger("rr.http")


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The bounds of one HTTP server (from the ``http:`` section)."""

    read_header_timeout: float
    idle_timeout: float
    max_connections: int


class _Logs:
    """The throttled lines of one server, one throttle per kind of event."""

    def __init__(self) -> None:
        self.refused = Throttle(log)
        self.slow = Throttle(log)
        self.bad = Throttle(log)


class EdgeServer(web.Server):
    """``aiohttp.web.Server`` whose connections follow :class:`EdgeLimits`."""

    def __init__(self, handler: Any, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(
            handler,
            request_factory=self._request,
            keepalive_timeout=limits.idle_timeout,
            **kwargs,
        )
        self.limits = limits
        self.logs = _Logs()

    def __call__(self) -> RequestHandler:
        return _EdgeProtocol(self, loop=self._loop, **self._kwargs)

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        cls = web.BaseRequest
        if message.version < HttpVersion10:  # answered 400 in HTTP/1.0, and closed
            message = message._replace(version=HttpVersion10, should_close=True)
            cls = _Http09Request
        return cls(message, payload, protocol, _QuietWriter(protocol, self._loop), task, self._loop)


class _Http09Request(web.BaseRequest):
    """A request that came as an HTTP/0.9 request line (``GET /path``): it gets a 400."""


class _QuietWriter(StreamWriter):
    """aiohttp's writer without the ``Server: Python/3.x aiohttp/3.y`` header it adds by default."""

    def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> Coroutine[Any, Any, None]:
        # returns aiohttp's coroutine rather than awaiting it in one of its own
        if headers.get(hdrs.SERVER) == SERVER_SOFTWARE:
            del headers[hdrs.SERVER]
        return super().write_headers(status_line, headers)


async def _refuse_http09(request: web.BaseRequest) -> web.StreamResponse:
    """The handler of an HTTP/0.9 request line, in place of the server's (see _EdgeProtocol)."""
    server = request.protocol._manager
    if isinstance(server, EdgeServer):
        server.logs.bad("bad request from %s: HTTP/0.9 request line %r", request.remote, request.raw_path)
    return web.Response(status=400, text="HTTP/0.9 requests are not supported\n")


class _EdgeProtocol(RequestHandler):
    """One connection: the header read timer, the connection cap, one-line bad-request logs."""

    __slots__ = ("_head_timer", "_edge", "peer_ip")

    def __init__(self, manager: EdgeServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager
        self._head_timer: asyncio.TimerHandle | None = None
        self.peer_ip: str | None = None  # the client IP, once connected (convert.peer_ip reads it)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.peer_ip = client_ip(transport.get_extra_info("peername"))
        open_now = len(self._edge.connections)
        if open_now > self._edge.limits.max_connections:
            self._edge.logs.refused(
                "connection from %s refused: %d connections are open (http.max_connections)",
                peer_name(transport),
                open_now - 1,
            )
            self.force_close()
            transport.close()

    def data_received(self, data: bytes) -> None:
        # A request starts when bytes arrive on a connection that waits for one: time its headers,
        # unless these bytes already complete them (the usual case: then no timer at all).
        starts = self._head_timer is None and not self._messages and (self._waiter is not None or self._request_count == 0)
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        elif starts:
            self._head_timer = self._loop.call_later(self._edge.limits.read_header_timeout, self._head_too_slow)

    def _handle_request(self, request: web.BaseRequest, start_time: float | None, request_handler: Any) -> Any:
        # HTTP/0.9 is refused by a handler of its own, chosen here rather than by a wrapper around
        # the server's handler that every request would go through
        if type(request) is _Http09Request:
            request_handler = _refuse_http09
        return super()._handle_request(request, start_time, request_handler)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        transport = self.transport
        self._edge.logs.slow(
            "connection from %s closed: request headers not complete within %gs (http.read_header_timeout)",
            peer_name(transport),
            self._edge.limits.read_header_timeout,
        )
        self.force_close()
        if transport is not None:
            transport.close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):  # the client's fault: one line, no traceback
            remote = args[1] if len(args) > 1 else "?"
            self._edge.logs.bad("bad request from %s: %s", remote, exc.message or type(exc).__name__)
            return
        super().log_exception(*args, **kw)

