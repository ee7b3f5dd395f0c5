"""Prometheus metrics from the ``metrics:`` section: the registry, ``/metrics``, and the ``metrics`` RPC.

Owns one ``CollectorRegistry`` per host. On start it registers, in this order: the process and
platform collectors (RoadRunner registers Go's process and runtime collectors), the collectors every
``ProvidesMetrics`` peer hands over (``rr_grpc_request_total`` ...), one worker collector per
``HasWorkers`` peer (:mod:`rrgrpc.worker_metrics`, RoadRunner's names: ``rr_<plugin>_total_workers``,
``rr_<plugin>_workers_memory_bytes``, ``rr_<plugin>_worker_state{state,pid}``,
``rr_<plugin>_worker_memory_bytes{pid}``, ``rr_<plugin>_workers_ready|working|invalid``,
``rr_<plugin>_requests_dropped_total`` and, unless the peer already exports it,
``rr_<plugin>_requests_queue``), and the collectors predeclared under ``metrics.collect``. It then serves the text exposition on ``metrics.address`` (any path, as
RoadRunner's promhttp handler does); a scrape first awaits every ``Refreshable`` peer (the fronts'
supervisor pulls its fronts' metrics then).

The RPC service ``metrics`` (Declare/Add/Sub/Observe/Set/Unregister) follows RoadRunner's semantics and
error texts (PROTOCOL.md §6.5). Counters keep the exact name they were declared with, as in Go:
prometheus_client would expose a counter ``app_requests`` as ``app_requests_total``, so the exposition
renames those families back; ``_created`` series are switched off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final

import msgspec
import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry

from rrgrpc.errors import ConfigError
from rrgrpc.metrics.collectors import AppCollector, MetricsRpcError
from rrgrpc.metrics.exposition import exposition
from rrgrpc.metrics.rpc import arg_fields, metric_arg
from rrgrpc.obs import parse_host_port, serve_app
from rrgrpc.plugin import HasWorkers, Peers, ProvidesMetrics, Refreshable, RpcProvider
from rrgrpc.worker_metrics import WorkersCollector

if TYPE_CHECKING:
    from rrgrpc.config.schema import MetricsConfig

log = logging.getLogger("rr.metrics")

#: The classic text format, what generate_latest writes (and what Go's promhttp answers by default).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class MetricsPlugin:
    """The Prometheus endpoint and the ``metrics`` RPC service."""

    capabilities: ClassVar[tuple[type, ...]] = (RpcProvider,)
    name = "metrics"
    rpc_service = "metrics"

    def __init__(self, section: MetricsConfig) -> None:
        self.address_cfg = section.address
        parse_host_port(self.address_cfg, "metrics.address")  # fail at construction
        self.registry = CollectorRegistry(auto_describe=True)
        self._collectors: dict[str, AppCollector] = {}
        self._pending: list[AppCollector] = []
        for name, spec in section.collect.items():
            fields = msgspec.structs.asdict(spec)
            try:
                collector = AppCollector(name, fields)
            except (MetricsRpcError, ValueError) as exc:
                raise ConfigError(f"metrics.collect.{name}: {exc}") from None
            self._collectors[name] = collector
            self._pending.append(collector)
        self._bare: set[str] = {c.bare_counter for c in self._collectors.values() if c.bare_counter}
        self.port: int | None = None
        self._lock = threading.Lock()
        self._refreshable: list[Refreshable] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run(peers)

    def _register_peers(self, peers: Peers) -> None:
        self._refreshable = peers.having(Refreshable)
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.PlatformCollector(registry=self.registry)
        prometheus_client.GCCollector(registry=self.registry)
        for provider in peers.having(ProvidesMetrics):
            for collector in provider.collectors():
                self.registry.register(collector)
        for plugin in peers.having(HasWorkers):
            self._register_workers(plugin)
        for collector in self._pending:
            self.registry.register(collector.metric)
        self._pending.clear()

    def _register_workers(self, plugin: HasWorkers) -> None:
        """RoadRunner's worker gauges for ``plugin``, minus what the plugin already exports itself
        (the registry refuses a second owner of a name: the queue gauge first, then all of them)."""
        for with_queue in (True, False):
            try:
                self.registry.register(WorkersCollector(plugin, with_queue))
                return
            except ValueError:
                continue
        log.debug("worker gauges exported by the plugin itself", extra={"plugin": plugin.name})

    @asynccontextmanager
    async def _run(self, peers: Peers) -> AsyncIterator[None]:
        self._register_peers(peers)
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._scrape)
        async with serve_app(app, self.address_cfg, "metrics.address", log) as port:
            self.port = port
            try:
                yield
            finally:
                self.port = None

    # -- exposition --------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The registry in Prometheus text format, counters under the exact names they were declared."""
        return exposition(self.registry, self._bare)

    async def _scrape(self, request: web.Request) -> web.Response:
        for peer in self._refreshable:  # the fronts' request metrics, as of this scrape
            await peer.refresh()
        body = self.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    # -- RPC ---------------------------------------------------------------------------------
    def rpc_methods(self) -> Mapping[str, Any]:
        return {
            "Declare": self._declare,
            "Add": self._metric_op("add"),
            "Sub": self._metric_op("sub"),
            "Observe": self._metric_op("observe"),
            "Set": self._metric_op("set"),
            "Unregister": self._unregister,
        }

    def _lookup(self, name: str) -> AppCollector:
        collector = self._collectors.get(name)
        if collector is None:
            log.error("undefined collector", extra={"collector": name})
            raise MetricsRpcError(f"undefined collector: {name}")
        return collector

    def declare(self, name: str, spec: Mapping[str, Any]) -> bool:
        """``metrics.Declare``: register a new collector; an existing name is a warning, not an error."""
        with self._lock:
            if name in self._collectors:
                log.warning("metric with provided name already exist", extra={"collector": name})
                return True
            try:
                collector = AppCollector(name, spec)
            except ValueError as exc:  # prometheus_client's name/label validation
                raise MetricsRpcError(str(exc)) from None
            try:
                self.registry.register(collector.metric)
            except ValueError:
                raise MetricsRpcError(
                    f"duplicate metrics collector registration attempted: {collector.fq_name}"
                ) from None
            self._collectors[name] = collector
            if collector.bare_counter:
                self._bare.add(collector.bare_counter)
        log.debug("metric declared", extra={"collector": name, "type": collector.kind})
        return True

    def unregister(self, name: str) -> bool:
        """``metrics.Unregister``: False when the registry no longer knew the collector."""
        with self._lock:
            collector = self._collectors.pop(name, None)
            if collector is None:
                raise MetricsRpcError(f"undefined collector: {name}")
            if collector.bare_counter:
                self._bare.discard(collector.bare_counter)
            try:
                self.registry.unregister(collector.metric)
            except KeyError:
                return False
        return True

    async def _declare(self, arg: Any) -> bool:
        fields = arg_fields(arg, "metrics.NamedCollector")
        spec = fields.get("collector")
        if not isinstance(spec, Mapping):
            spec = {}
        return self.declare(str(fields.get("name") or ""), {str(k).lower(): v for k, v in spec.items()})

    def _metric_op(self, op: str) -> Callable[[Any], Awaitable[bool]]:
        """An RPC method applying ``AppCollector.<op>`` (add, sub, observe, set) to a Metric argument."""

        async def call(arg: Any) -> bool:
            name, value, labels = metric_arg(arg)
            getattr(self._lookup(name), op)(value, labels)
            return True

        return call

    async def _unregister(self, arg: Any) -> bool:
        if not isinstance(arg, str):
            raise MetricsRpcError(f"json: cannot unmarshal {type(arg).__name__} into Go value of type string")
        return self.unregister(arg)


__all__ = ["MetricsPlugin"]
