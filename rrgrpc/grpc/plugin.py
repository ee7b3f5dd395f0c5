"""GrpcPlugin: serves the services of the configured ``.proto`` files from a pool of PHP workers.

Owns the ``grpc:`` section at run time: proto loading (fails startup with protoc's message), the
grpc.aio server and its options (listen tcp/unix, TLS and mTLS, message size limits, keepalive and
connection age, concurrent streams), ``grpc.health.v1`` with a status per service, reflection over
the private descriptor pool, the worker pool, reset and graceful shutdown.

Lifecycle (RoadRunner's order): load protos -> build the server and bind the port (a port in use
fails before any worker starts) -> start the pool -> start the server -> every health status
SERVING. Reset: health NOT_SERVING -> ``pool.reset()`` (zero-downtime: calls keep being served and
none fail) -> SERVING. Stop: health NOT_SERVING for good -> the server stops accepting calls ->
in-flight calls finish within ``pool.destroy_timeout`` -> open streams (health Watch) are cancelled
-> the pool is destroyed.

Choices where grpcio differs from grpc-go:

* ``tls.client_auth_type``: grpcio can only "not request" or "require and verify" a client
  certificate. ``require_and_verify_client_cert`` and ``require_any_client_cert`` require and
  verify against ``root_ca``; ``no_client_certs``, ``request_client_cert`` and
  ``verify_client_cert_if_given`` do not request one (a warning says so for the last two). As in
  RoadRunner, the auth type only applies when ``root_ca`` is set.
* ``SO_REUSEPORT`` is off, so a second server on the same port fails instead of sharing it; only the
  fronts of one rr (``reuse_port``, docs/data-plane.md) share the port, after their supervisor has
  checked that nothing else listens there.
* grpc-core's stream "overload protection" is off: with it, ``max_concurrent_streams`` (10 by
  default) refuses streams the client already considers finished, failing calls that grpc-go
  would serve.
* ``interceptors``: each name must be in ``INTERCEPTORS`` (empty: rrgrpc ships none); an unknown
  name fails startup, since a silently skipped interceptor (auth, say) is a security hole.
* Reflection: the v1alpha service (grpcio-reflection) and ``grpc.reflection.v1`` (same messages,
  served by the same servicer) answer from the private pool, so descriptor queries work without
  RoadRunner's separate ``protoreg`` plugin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2

from rrgrpc.errors import ConfigError
from rrgrpc.gocompat import parse_address
from rrgrpc.grpc.metrics import GrpcMetrics
from rrgrpc.grpc.protos import ProtoSet, load_protos
from rrgrpc.grpc.proxy import Executor, Proxy
from rrgrpc.plugin import (
    Peers,
    PoolBacked,
    ProvidesMetrics,
)
from rrgrpc.pool import Pool, open_pool
from rrgrpc.tracing import tracer

if TYPE_CHECKING:
    from rrgrpc.config.schema import GrpcConfig, GrpcTlsConfig, ServerConfig

__all__ = ["GrpcPlugin"]

log = logging.getLogger("rr.grpc")

MB = 1024 * 1024
#: The gRPC interceptors ``grpc.interceptors`` may name: name -> factory (RoadRunner's interceptor plugins).
INTERCEPTORS: Mapping[str, Callable[[], grpc.aio.ServerInterceptor]] = {}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class GrpcPlugin(PoolBacked):
    """The ``grpc`` plugin: Plugin, HasWorkers, ManagesWorkers, Resettable, HasStatus, ProvidesMetrics."""

    capabilities = (*PoolBacked.capabilities, ProvidesMetrics)
    name = "grpc"

    def __init__(
        self,
        section: GrpcConfig,
        server: ServerConfig,
        *,
        rpc_listen: str | None = None,
        source: str = "<dict>",
        reuse_port: bool = False,
    ) -> None:
        """``section`` is ``grpc:``; the workers run ``server``'s command and reach RPC at ``rpc_listen``;
        ``source`` (the config file) is named in configuration errors; ``reuse_port`` (fronts only)
        shares the port with the other fronts."""
        self.cfg = section
        self._reuse_port = reuse_port
        self._server = server
        self._rpc_listen = rpc_listen
        unknown = [name for name in section.interceptors if name not in INTERCEPTORS]
        if unknown:
            have = ", ".join(sorted(INTERCEPTORS)) or "rrgrpc has none"
            raise ConfigError(f"{source}: grpc.interceptors: unknown interceptor {unknown[0]!r} (known: {have})")
        self._metrics = GrpcMetrics()
        self.pool: Pool | None = None  # PoolBacked delegates workers, scaling and health to it
        self._health: HealthServicer | None = None
        self._statuses: tuple[str, ...] = ()
        self._reset_lock = asyncio.Lock()
        self._serving = False
        #: The services served (full names), known once the plugin has started.
        self.services: tuple[str, ...] = ()
        #: The address bound: ``tcp://host:<port>`` (the real port when the config said 0) or ``unix://path``.
        self.address: str = self.cfg.listen

    # ------------------------------------------------------------------ Plugin

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        cfg = self.cfg
        protos = load_protos(cfg.proto, cfg.import_paths, extra=_builtin_files())
        if not protos.services:
            log.warning("grpc.proto: no service found in %s; only health and reflection are served", list(cfg.proto))
        server = grpc.aio.server(
            options=self._options(), interceptors=[INTERCEPTORS[name]() for name in cfg.interceptors]
        )
        try:
            authority = self._bind(server)
            health = HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            self._health = health
            proxy = Proxy(self._executor, tracer("rrgrpc.grpc"), authority, self._metrics, tls=bool(cfg.tls))
            self._register(server, proxy, protos)
            self._statuses = ("", *self.services)
            await self._set_all(NOT_SERVING)
            async with open_pool(
                name="grpc",
                pool=cfg.pool,
                server=self._server,
                mode="grpc",
                env=dict(cfg.env),
                rpc_listen=self._rpc_listen,
            ) as pool:
                self.pool = pool
                await server.start()
                self._serving = True
                await self._set_all(SERVING)
                log.info("grpc server started on %s, services %s", self.address, list(self.services))
                try:
                    yield
                finally:
                    self._serving = False
                    await self._stop(server, health, proxy)
                    self.pool = None
        finally:
            await server.stop(None)
            self._health = None

    def _options(self) -> list[tuple[str, Any]]:
        c = self.cfg
        opts: list[tuple[str, Any]] = [
            ("grpc.so_reuseport", int(self._reuse_port)),
            # grpc-core's "overload protection" counts a stream until the server has cleaned it up,
            # after the client already saw it end; at RoadRunner's default of 10 streams a client
            # with more calls in flight then gets REFUSED_STREAM (UNAVAILABLE). Off, the limit is
            # applied as grpc-go applies it.
            ("grpc.http.overload_protection", 0),
            ("grpc.max_send_message_length", c.max_send_msg_size * MB),
            ("grpc.max_receive_message_length", c.max_recv_msg_size * MB),
            ("grpc.max_concurrent_streams", c.max_concurrent_streams),
            ("grpc.keepalive_time_ms", _ms(c.ping_time)),
            ("grpc.keepalive_timeout_ms", _ms(c.timeout)),
        ]
        for key, value in (
            ("grpc.max_connection_idle_ms", c.max_connection_idle),
            ("grpc.max_connection_age_ms", c.max_connection_age),
            ("grpc.max_connection_age_grace_ms", c.max_connection_age_grace),
        ):
            if value > 0:  # 0 = infinite, grpcio's default
                opts.append((key, _ms(value)))
        return opts

    def _bind(self, server: grpc.aio.Server) -> str:
        """Bind the listen address; return what ``:authority`` reports to PHP."""
        addr = parse_address(self.cfg.listen, "grpc.listen")
        if addr.scheme == "unix":
            target, authority = f"unix:{Path(addr.path).absolute()}", "localhost"
        else:
            host = f"[{addr.host}]" if ":" in addr.host else addr.host
            target = f"{host}:{addr.port}"
        creds = self._credentials(self.cfg.tls) if self.cfg.tls else None
        try:
            port = server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
        except RuntimeError as exc:
            raise ConfigError(f"grpc.listen: cannot listen on {self.cfg.listen}: {exc}") from exc
        if addr.scheme == "unix":
            self.address = f"unix://{addr.path}"
        else:
            authority = f"{host}:{port}"
            self.address = f"tcp://{authority}"
        return authority

    def _credentials(self, tls: GrpcTlsConfig) -> grpc.ServerCredentials:
        def read(key: str, path: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"grpc.tls.{key}: cannot read {path!r}: {exc.strerror}") from exc

        pair = [(read("key", tls.key), read("cert", tls.cert))]
        if not tls.root_ca:
            return grpc.ssl_server_credentials(pair)
        ca = read("root_ca", tls.root_ca)
        mode = tls.client_auth_type
        if mode in ("request_client_cert", "verify_client_cert_if_given"):
            log.warning("grpc.tls.client_auth_type %s: grpcio cannot request an optional client "
                        "certificate; none is requested", mode)
        require = mode in ("require_and_verify_client_cert", "require_any_client_cert")
        return grpc.ssl_server_credentials(pair, root_certificates=ca, require_client_auth=require)

    def _register(self, server: grpc.aio.Server, proxy: Proxy, protos: ProtoSet) -> None:
        names: list[str] = []
        for svc in protos.services:
            if svc.full_name in (HEALTH_SERVICE, reflection.SERVICE_NAME, REFLECTION_V1):
                log.warning("grpc.proto: %s is served by rrgrpc itself; the proto's definition is ignored", svc.full_name)
                continue
            handlers = proxy.handlers(svc)
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(svc.full_name, handlers),))
            server.add_registered_method_handlers(svc.full_name, handlers)
            names.append(svc.full_name)
        self.services = tuple(names)
        listed = (*names, HEALTH_SERVICE, REFLECTION_V1, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(listed, server, pool=protos.pool)
        v1 = reflection.aio.ReflectionServicer(listed, pool=protos.pool)
        info = grpc.stream_stream_rpc_method_handler(
            v1.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": info}),)
        )

    def _executor(self) -> Executor:
        pool = self.pool
        if pool is None:
            from rrgrpc.errors import PoolClosed

            raise PoolClosed("the grpc pool is not running")
        return pool

    async def _stop(self, server: grpc.aio.Server, health: HealthServicer, proxy: Proxy) -> None:
        grace = self.cfg.pool.destroy_timeout
        await health.enter_graceful_shutdown()
        stopping = asyncio.create_task(server.stop(grace))  # no new calls from here on
        try:
            async with asyncio.timeout(grace):
                await proxy.drained()
        except TimeoutError:
            log.warning("grpc: in-flight calls did not finish within %.1fs; cancelled", grace)
        await server.stop(0)  # ends what is left: health Watch streams
        await stopping
        log.info("grpc server stopped")

    async def _set_all(self, status: int) -> None:
        if self._health is not None:
            for name in self._statuses:
                await self._health.set(name, status)

    # ------------------------------------------------------------------ capabilities (the rest: PoolBacked)

    async def reset(self) -> None:
        """Replace every worker; health reports NOT_SERVING meanwhile, calls keep being served."""
        pool = self.pool
        if pool is None:
            return
        async with self._reset_lock:
            log.info("grpc: reset requested")
            await self._set_all(NOT_SERVING)
            try:
                await pool.reset()
            finally:
                await self._set_all(SERVING)
            log.info("grpc: workers replaced")

    def readiness(self) -> int:
        return 200 if self._serving and self.pool is not None and self.pool.ready else 503

    def collectors(self) -> Sequence[Any]:
        return self._metrics.collectors()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _builtin_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """health.proto and reflection.proto, so reflection can describe rrgrpc's own services."""
    return [
        descriptor_pb2.FileDescriptorProto.FromString(mod.DESCRIPTOR.serialized_pb)
        for mod in (health_pb2, reflection_pb2)
    ]


