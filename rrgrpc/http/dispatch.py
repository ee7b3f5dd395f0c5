"""The terminal HTTP handler: request -> worker payload -> pool -> (streamed) HTTP response.

Every request goes through ``pool.stream()`` because only the worker knows whether it streams:
a single reply frame becomes a plain response, STREAM frames are written and flushed as they
arrive (the pool answers PING with PONG), and a client that goes away mid-stream makes us leave
the stream, which sends STOP and frees the worker. Pool failures become ``internal_error_code``
(plus ``No-Workers: true`` when no worker was free), with the worker's text only in debug mode.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from aiohttp import web
from aiohttp.web_exceptions import HTTPException
from multidict import CIMultiDict

from rrgrpc.errors import NoFreeWorkers, PoolError, RequestDropped
from rrgrpc.goridge.frame import Stream
from rrgrpc.http.convert import RequestError, RequestOptions, bodiless_payload, build_request
from rrgrpc.http.reply import BadWorkerResponse, Head, decode_head, response_headers, sniff_content_type
from rrgrpc.http.state import FORWARD, Forward, finish, send_plain, start_response
from rrgrpc.pool.payload import Payload

log = logging.getLogger("rr.http")
_STREAM = int(Stream.STREAM)  # plain ints: IntFlag arithmetic is slow on the hot path

class StreamingPool(Protocol):
    """What the dispatcher needs from a pool."""

    debug: bool

    def stream(
        self, payload: Payload, *, timeout: float | None = None, info: str = "", alive: Callable[[], bool] | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[Payload]]: ...


class Dispatcher:
    """Sends requests to a pool and writes the worker's reply back."""

    def __init__(
        self, pool: StreamingPool, opts: RequestOptions, internal_error_code: int = 500, *, forwarding: bool = True
    ) -> None:
        self.pool = pool
        self.opts = opts
        self.error_code = internal_error_code
        self.forwarding = forwarding  # False: no middleware in front, so no request has Forward state

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        # looked up once, and only when a middleware may have set it: a miss raises inside aiohttp's mapping
        fwd = request.get(FORWARD) if self.forwarding else None
        payload = bodiless_payload(request, self.opts, fwd)
        if payload is not None:  # the usual GET: nothing to read, nothing to clean up
            return await self._serve(request, payload, fwd)
        try:
            built = await build_request(request, self.opts, fwd)
        except RequestError as exc:
            return await send_plain(request, exc.status, str(exc))
        except HTTPException as exc:  # the client sent a malformed body aiohttp refused
            return await send_plain(request, exc.status, exc.reason)
        try:
            return await self._serve(request, built.payload, fwd)
        finally:
            built.cleanup()

    async def _serve(self, request: web.BaseRequest, payload: Payload, fwd: Forward | None) -> web.StreamResponse:
        resp: web.StreamResponse | None = None
        try:
            alive = lambda: not _client_gone(request)  # noqa: E731 -- aiohttp does not cancel the handler
            async with self.pool.stream(payload, info=f"{request.method} {request.path}", alive=alive) as frames:
                async for frame in frames:
                    streaming = bool(frame.stream & _STREAM)
                    if resp is None:
                        head = decode_head(frame.context, frame.codec)
                        if head is not None and 100 <= head.status < 200:
                            self._informational(request, head)
                            continue
                        if not streaming:
                            return await self._single(request, head, frame.body, fwd)
                        resp = self._stream_response(head)
                        await start_response(request, resp, fwd)
                    if frame.body:
                        await resp.write(frame.body)
                    if _client_gone(request):
                        break  # leaving the context sends STOP; the worker is drained and freed
        except BadWorkerResponse as exc:
            log.warning("bad worker response", extra={"error": str(exc)})
            if resp is None:
                return await self._error(request, exc)
        except NoFreeWorkers as exc:
            if resp is None:
                return await self._error(request, exc, {"No-Workers": "true"})
        except RequestDropped:  # the client left while queued: nobody to answer (nginx's 499)
            return web.Response(status=499)
        except (PoolError, TimeoutError) as exc:
            log.warning("worker error: %s", exc)
            if resp is None:
                return await self._error(request, exc)
        except ConnectionResetError:
            # the client went away mid-stream: leaving the pool's stream context sent STOP
            log.debug("client disconnected during a streamed response")
            if resp is None:
                raise
            return resp
        if resp is None:  # the stream ended with informational frames only
            return await send_plain(request, 200)
        if not _client_gone(request):
            await resp.write_eof()
        return resp

    async def _single(
        self, request: web.BaseRequest, head: Head | None, body: bytes, fwd: Forward | None
    ) -> web.StreamResponse:
        status, lines, typed = (head.status, head.lines, head.typed) if head is not None else (200, (), False)
        if fwd is not None and fwd.replace_response is not None:
            replaced = fwd.replace_response(status, CIMultiDict(lines))
            if replaced is not None:
                return await finish(request, replaced, fwd)
        if body and not typed:
            lines = (*lines, ("Content-Type", sniff_content_type(body)))
        resp = web.Response(status=status, body=body, headers=lines)
        if not self.forwarding:  # no middleware to see it sent: aiohttp sends it (and copes with a client gone)
            return resp
        return await finish(request, resp, fwd)

    @staticmethod
    def _stream_response(head: Head | None) -> web.StreamResponse:
        headers = response_headers(head) if head is not None else CIMultiDict()
        resp = web.StreamResponse(status=head.status if head else 200, headers=headers)
        resp.enable_chunked_encoding()
        return resp

    @staticmethod
    def _informational(request: web.BaseRequest, head: Head) -> None:
        """1xx (not 101): written ahead of the real response, body dropped (HTTP/1.1 only)."""
        if head.status == 101 or request.version < (1, 1) or request.transport is None:
            log.debug("informational status %s not sent", head.status)
            return
        lines = [f"HTTP/1.1 {head.status} Informational\r\n"]
        lines += [f"{n}: {v}\r\n" for n, v in head.headers if "\r" not in v and "\n" not in v]
        request.transport.write(("".join(lines) + "\r\n").encode("latin-1", "replace"))

    async def _error(
        self, request: web.BaseRequest, exc: BaseException, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        text = html.escape(str(exc)) if self.pool.debug else ""
        return await send_plain(request, self.error_code, text, headers)


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
