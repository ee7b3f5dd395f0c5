"""HttpPlugin: the ``http:`` section served by aiohttp's low-level server in front of a PHP pool.

One ``web.Server`` with a single handler (no router, no Application): bundled access log and
``max_request_size`` outermost, then the configured middlewares in order, then the dispatcher.
Listeners: ``address`` (plain; a redirect to HTTPS when ``ssl.redirect``) and ``ssl.address``
(TLS, optional client certificates), each an :class:`~rrgrpc.http.edge.EdgeServer` (connection cap,
header and idle timeouts). Keep-alive is on. Shutdown closes the listeners, lets
in-flight requests finish (bounded by ``pool.destroy_timeout``), then destroys the pool.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import ssl
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from rrgrpc.errors import ConfigError
from rrgrpc.gocompat import parse_address
from rrgrpc.http.convert import RequestOptions
from rrgrpc.http.dispatch import Dispatcher
from rrgrpc.http.edge import EdgeLimits, EdgeServer
from rrgrpc.http.metrics import HttpMetrics
from rrgrpc.http.middleware import Setup, build, chain
from rrgrpc.http.state import Handler, send_plain
from rrgrpc.plugin import PoolBacked, ProvidesMetrics
from rrgrpc.pool import Pool, open_pool
from rrgrpc.worker_metrics import HTTP_HELPS, WorkersCollector

if TYPE_CHECKING:
    from rrgrpc.config.schema import HttpConfig, RRConfig
    from rrgrpc.plugin import Peers

log = logging.getLogger("rr.http")

MB: Final = 1024 * 1024
_CLIENT_AUTH: Final = {
    "no_client_certs": ssl.CERT_NONE,
    "request_client_cert": ssl.CERT_OPTIONAL,
    "verify_client_cert_if_given": ssl.CERT_OPTIONAL,
    "require_any_client_cert": ssl.CERT_REQUIRED,
    "require_and_verify_client_cert": ssl.CERT_REQUIRED,
}


class HttpPlugin(PoolBacked):
    """RoadRunner's http plugin: listeners, middlewares, a worker pool in ``http`` mode."""

    capabilities = (*PoolBacked.capabilities, ProvidesMetrics)
    name = "http"

    def __init__(self, cfg: RRConfig, *, reuse_port: bool = False) -> None:
        """``reuse_port`` (fronts only, docs/data-plane.md): share the listen ports with the other fronts."""
        if cfg.http is None:
            raise ConfigError(f"{cfg.source}: http: section missing")
        self.cfg = cfg
        self._reuse_port = reuse_port
        self.http: HttpConfig = cfg.http
        self.pool: Pool | None = None
        self._serving = False  # the listeners accept: ready means a request would be served
        self.addresses: list[str] = []  # bound listeners, e.g. "http://127.0.0.1:8080"
        self.metrics = HttpMetrics() if "http_metrics" in self.http.middleware else None
        self._stats = WorkersCollector(self, with_queue=False, helps=HTTP_HELPS)
        self._tls = self._ssl_context() if self.http.ssl is not None else None  # bad files: fail before any worker

    # -- capabilities (the pool-backed ones come from PoolBacked) -------------------------------
    def readiness(self) -> int:
        """Not ready before the listeners accept nor once they are closed, whatever the workers say."""
        return super().readiness() if self._serving else 503

    def collectors(self) -> list[Any]:
        return [self._stats, *(self.metrics.collectors() if self.metrics else [])]

    # -- assembly -----------------------------------------------------------------------------
    def request_options(self) -> RequestOptions:
        h = self.http
        return RequestOptions(
            codec=h.codec,
            raw_body=h.raw_body,
            max_request_size=h.max_request_size * MB,
            uploads_dir=h.uploads.dir,
            uploads_forbid=frozenset(e.lower() for e in h.uploads.forbid),
            uploads_allow=frozenset(e.lower() for e in h.uploads.allow),
            uploads_owner=self._worker_owner(),
        )

    def _worker_owner(self) -> tuple[int, int] | None:
        """uid/gid of ``server.user``/``server.group`` when running as root (uploads are chowned)."""
        user = self.cfg.server.user
        if not user or os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(user)
            gid = grp.getgrnam(self.cfg.server.group).gr_gid if self.cfg.server.group else entry.pw_gid
        except KeyError as exc:
            raise ConfigError(f"{self.cfg.source}: server.user: unknown user or group: {exc}") from exc
        return entry.pw_uid, gid

    def build_handler(self, terminal: Handler) -> Handler:
        """Bundled middlewares, then ``http.middleware`` in the configured order, then ``terminal``."""
        named = build(self.http.middleware, Setup(self.http, self.metrics))
        return self._front(chain(named, terminal))

    def _front(self, inner: Handler) -> Handler:
        """The bundled outermost layer: max_request_size and the access log."""
        limit = self.http.max_request_size * MB

        def sized(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
            # the request's own coroutine is returned: no coroutine layer of ours per request
            length = request.content_length
            if limit and length is not None and length > limit:
                return send_plain(request, 413, "request body exceeds max_request_size")
            return inner(request)

        if not self.http.access_logs:
            return sized

        async def logged(request: web.BaseRequest) -> web.StreamResponse:
            start = time.perf_counter()
            status = 500
            try:
                resp = await sized(request)
                status = resp.status
                return resp
            finally:
                log.info(
                    "http log",
                    extra={
                        "status": status,
                        "method": request.method,
                        "URI": request.raw_path,
                        "remote_address": request.remote,
                        "elapsed": round((time.perf_counter() - start) * 1000, 3),
                    },
                )

        return logged

    def _ssl_context(self) -> ssl.SSLContext:
        s = self.http.ssl
        assert s is not None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _load_certificates(ctx, f"{self.cfg.source}: http.ssl", s.cert, s.key, s.root_ca)
        ctx.verify_mode = _CLIENT_AUTH[s.client_auth_type]
        return ctx

    async def _listen(self, server: web.Server, address: str, tls: ssl.SSLContext | None) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        key = "http.ssl.address" if tls else "http.address"
        addr = parse_address(address, f"{self.cfg.source}: {key}", bare=True)
        handshake = float(self.http.read_header_timeout) if tls else None  # bounds a TLS client that stalls
        if addr.scheme == "unix":
            srv = await loop.create_unix_server(server, addr.path, ssl=tls, ssl_handshake_timeout=handshake)
            self.addresses.append(f"unix://{addr.path}")
            return srv
        srv = await loop.create_server(
            server, addr.host or None, addr.port, ssl=tls, ssl_handshake_timeout=handshake, reuse_address=True,
            reuse_port=self._reuse_port or None, backlog=1024,
        )
        for sock in srv.sockets:
            bound = sock.getsockname()
            scheme = "https" if tls else "http"
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            self.addresses.append(f"{scheme}://{shown}:{bound[1]}")
        return srv

    @asynccontextmanager
    async def _serve(self, handler: Handler) -> AsyncIterator[None]:
        h = self.http
        limits = EdgeLimits(float(h.read_header_timeout), float(h.idle_timeout), h.max_connections)
        main = EdgeServer(handler, limits, access_log=None)
        servers: list[tuple[web.Server, asyncio.Server]] = []
        try:
            if h.ssl is not None:
                tls = self._tls
                servers.append((main, await self._listen(main, h.ssl.address, tls)))
                if h.address:
                    plain = EdgeServer(_redirect_to(h.ssl.address), limits, access_log=None) if h.ssl.redirect else main
                    servers.append((plain, await self._listen(plain, h.address, None)))
            else:
                servers.append((main, await self._listen(main, h.address, None)))
            log.info("http server started", extra={"addresses": self.addresses})
            self._serving = True
            yield
        finally:
            self._serving = False
            # stop accepting first (one listener at a time), then let in-flight requests finish
            for _, srv in servers:
                srv.close()
            grace = h.pool.destroy_timeout or 60.0
            for web_server in {id(w): w for w, _ in servers}.values():
                await web_server.shutdown(grace)
            self.addresses.clear()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        rpc = self.cfg.rpc.listen if self.cfg.rpc is not None else None
        async with open_pool("http", self.http.pool, self.cfg.server, mode="http", rpc_listen=rpc) as pool:
            self.pool = pool
            dispatcher = Dispatcher(
                pool, self.request_options(), self.http.internal_error_code, forwarding=bool(self.http.middleware)
            )
            try:
                async with self._serve(self.build_handler(dispatcher)):
                    yield
            finally:
                self.pool = None

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._lifespan()


def _load_certificates(ctx: ssl.SSLContext, where: str, cert: str, key: str, root_ca: str) -> None:
    """Load ``cert``/``key``/``root_ca`` into ``ctx``; a failure is one ConfigError naming the key
    (``http.ssl.cert`` ...), the file and what is wrong with it (OpenSSL's "PEM lib" names neither)."""
    for name, path in (("cert", cert), ("key", key), ("root_ca", root_ca)):
        try:
            if path:
                Path(path).open("rb").close()
        except OSError as exc:
            raise ConfigError(f"{where}.{name}: cannot read {path}: {exc.strerror or exc}") from None
    for name, path in (("cert", cert), ("root_ca", root_ca)):
        try:
            if path:
                ssl.create_default_context().load_verify_locations(cafile=path)
        except ssl.SSLError as exc:
            raise ConfigError(f"{where}.{name}: {path} holds no PEM certificate ({exc.reason or exc})") from None
    try:
        ctx.load_cert_chain(cert, key)
        if root_ca:
            ctx.load_verify_locations(root_ca)
    except ssl.SSLError as exc:
        problem = "does not match the certificate" if "MISMATCH" in str(exc) else "holds no usable PEM private key for"
        raise ConfigError(f"{where}.key: {key} {problem} {cert} ({exc.reason or exc})") from None


def _redirect_to(ssl_address: str) -> Handler:
    port = parse_address(ssl_address, "http.ssl.address", bare=True).port

    async def redirect(request: web.BaseRequest) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        elif ":" in host:
            host = host.rpartition(":")[0]
        target = f"https://{host}{'' if port == 443 else f':{port}'}{request.raw_path}"
        return await send_plain(request, 308, "", {"Location": target})

    return redirect
