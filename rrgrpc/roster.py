"""The roster: which plugins a configuration enables, in start order. The one module naming them all.

Telemetry starts first and stops last (so the final requests' spans and logs still flush). The
control plane (status, RPC) comes next: PHP workers may call RPC while they boot (metrics
declarations, RoadRunner apps do), health must answer while pools start and drain, and its peers
are looked up at call time, so it needs nothing started before it. The serving plugins start last
and stop first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from rrgrpc.config.schema import LOADER_KEYS, SECTIONS, PoolConfig, RpcConfig, RRConfig
from rrgrpc.errors import ConfigError
from rrgrpc.plugin import Plugin

if TYPE_CHECKING:
    from rrgrpc.metrics.merge import FrontMetrics


def default_roster(cfg: RRConfig) -> list[Plugin]:
    """rr in one process: the control plane and the data plugins (``server.num_fronts`` 1)."""
    plugins = _control_roster(cfg)
    _data_plugins(cfg, plugins, reuse_port=False)
    _check_serves(cfg)
    return plugins


def supervisor_roster(cfg: RRConfig, fronts: int, on_fatal: Callable[[str], None]) -> list[Plugin]:
    """The supervisor of ``fronts`` front processes: the control plane, the fronts, and one stand-in
    per data section (``grpc``, ``http``) that reaches the fronts' pools (docs/data-plane.md)."""
    from rrgrpc.fronts.supervisor import Fronts, FrontsPlugin

    if cfg.otel is not None:  # one otel resource for the supervisor's spans and every front's
        from rrgrpc.otel import one_instance

        cfg = msgspec.structs.replace(cfg, otel=one_instance(cfg.otel))
    plugins = _control_roster(cfg)
    owner = Fronts(cfg, fronts, on_fatal, _front_metrics(cfg))
    plugins.append(owner)
    plugins += [FrontsPlugin(name, owner) for name, s in (("grpc", cfg.grpc), ("http", cfg.http)) if s is not None]
    _check_serves(cfg)
    return plugins


def front_roster(cfg: RRConfig, index: int, fronts: int, control: str, stop: Callable[[], None]) -> list[Plugin]:
    """Front ``index`` of ``fronts``: logs, otel, its control service on ``control`` (a private unix
    socket) and the data plugins sharing their ports (SO_REUSEPORT) with their share of the workers."""
    from rrgrpc.fronts.control import FrontControl
    from rrgrpc.fronts.count import share
    from rrgrpc.logs import LogsPlugin
    from rrgrpc.pool.spawn import pool_size
    from rrgrpc.rpc.server import RpcPlugin

    def split(pool: PoolConfig) -> PoolConfig:
        queue = share(pool.max_queue_size, index, fronts) if pool.max_queue_size else 0
        return msgspec.structs.replace(
            pool, num_workers=share(pool_size(pool), index, fronts), max_queue_size=max(queue, 1) if queue else 0
        )

    if cfg.grpc is not None:
        cfg = msgspec.structs.replace(cfg, grpc=msgspec.structs.replace(cfg.grpc, pool=split(cfg.grpc.pool)))
    if cfg.http is not None:
        cfg = msgspec.structs.replace(cfg, http=msgspec.structs.replace(cfg.http, pool=split(cfg.http.pool)))
    plugins: list[Plugin] = [LogsPlugin(cfg.logs, ())]
    if cfg.otel is not None:
        from rrgrpc.otel import OtelPlugin

        plugins.append(OtelPlugin(cfg.otel))
    channel = msgspec.structs.replace(cfg, rpc=RpcConfig(listen=f"unix://{control}"))
    snapshot = None
    if cfg.metrics is not None:
        from rrgrpc.metrics.merge import families

        snapshot = families
    plugins += [FrontControl(index, stop, snapshot), RpcPlugin(channel, role="front control")]
    _data_plugins(cfg, plugins, reuse_port=True)
    return plugins


def _front_metrics(cfg: RRConfig) -> FrontMetrics | None:
    """The supervisor's collector of the fronts' request metrics, knowing their family names from
    unregistered collectors of the kinds the fronts run (None without a metrics section)."""
    if cfg.metrics is None:
        return None
    from rrgrpc.metrics.merge import FrontMetrics

    templates: list[Any] = []
    if cfg.grpc is not None:
        from rrgrpc.grpc.metrics import GrpcMetrics

        templates += GrpcMetrics().collectors()
    if cfg.http is not None and "http_metrics" in cfg.http.middleware:
        from rrgrpc.http.metrics import HttpMetrics

        templates += HttpMetrics().collectors()
    return FrontMetrics(templates)


def _control_roster(cfg: RRConfig) -> list[Plugin]:
    from rrgrpc.logs import LogsPlugin

    plugins: list[Plugin] = [LogsPlugin(cfg.logs, cfg.notes)]
    if cfg.otel is not None:
        from rrgrpc.otel import OtelPlugin

        plugins.append(OtelPlugin(cfg.otel))
    if cfg.metrics is not None:
        from rrgrpc.metrics import MetricsPlugin

        plugins.append(MetricsPlugin(cfg.metrics))
    if cfg.server.on_init is not None:
        from rrgrpc.server import ServerPlugin

        plugins.append(ServerPlugin(cfg.server.on_init))
    if cfg.status is not None:
        from rrgrpc.status import StatusPlugin

        plugins.append(StatusPlugin(cfg.status))
    if cfg.rpc is not None:
        from rrgrpc.rpc.informer import Informer
        from rrgrpc.rpc.resetter import Resetter
        from rrgrpc.rpc.server import RpcPlugin

        plugins += [Informer(), Resetter(), RpcPlugin(cfg)]
    if cfg.jobs is not None:  # before the edges: their workers push jobs, and it drains after them
        from rrgrpc.jobs.plugin import JobsPlugin

        plugins.append(JobsPlugin(cfg))
    return plugins


def _data_plugins(cfg: RRConfig, plugins: list[Plugin], *, reuse_port: bool) -> None:
    if cfg.grpc is not None:
        from rrgrpc.grpc.plugin import GrpcPlugin

        rpc_listen = cfg.rpc.listen if cfg.rpc is not None else None
        plugins.append(
            GrpcPlugin(cfg.grpc, cfg.server, rpc_listen=rpc_listen, source=cfg.source, reuse_port=reuse_port)
        )
    if cfg.http is not None:
        from rrgrpc.http.plugin import HttpPlugin

        plugins.append(HttpPlugin(cfg, reuse_port=reuse_port))


def _check_serves(cfg: RRConfig) -> None:
    """A config that serves nothing would idle forever: refuse it (RoadRunner starts and waits).

    ``rpc`` alone counts: PHP scripts talk to it (metrics, status, ``rr workers``)."""
    if cfg.grpc is None and cfg.http is None and cfg.rpc is None and cfg.jobs is None:
        ignored = [k for k in cfg.raw if k not in SECTIONS and k not in LOADER_KEYS]
        why = f" (ignored: {', '.join(ignored)})" if ignored else ""
        raise ConfigError(f"{cfg.source}: nothing to serve: configure a grpc, http, rpc or jobs section{why}")
