"""The roster: which plugins a configuration enables, in start order. The one module naming them all.

Telemetry starts first and stops last (so the final requests' spans and logs still flush). The
control plane (status, RPC) comes next: PHP workers may call RPC while they boot (metrics
declarations, RoadRunner apps do), health must answer while pools start and drain, and its peers
are looked up at call time, so it needs nothing started before it. The serving plugins start last
and stop first.
"""

from __future__ import annotations

from rrgrpc.config.schema import LOADER_KEYS, SECTIONS, RRConfig
from rrgrpc.errors import ConfigError
from rrgrpc.plugin import Plugin


def default_roster(cfg: RRConfig) -> list[Plugin]:
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
    if cfg.grpc is not None:
        from rrgrpc.grpc.plugin import GrpcPlugin

        rpc_listen = cfg.rpc.listen if cfg.rpc is not None else None
        plugins.append(GrpcPlugin(cfg.grpc, cfg.server, rpc_listen=rpc_listen, source=cfg.source))
    if cfg.http is not None:
        from rrgrpc.http.plugin import HttpPlugin

        plugins.append(HttpPlugin(cfg))
    _check_serves(cfg)
    return plugins


def _check_serves(cfg: RRConfig) -> None:
    """A config that serves nothing would idle forever: refuse it (RoadRunner starts and waits).

    ``rpc`` alone counts: PHP scripts talk to it (metrics, status, ``rr workers``)."""
    if cfg.grpc is None and cfg.http is None and cfg.rpc is None and cfg.jobs is None:
        ignored = [k for k in cfg.raw if k not in SECTIONS and k not in LOADER_KEYS]
        why = f" (ignored: {', '.join(ignored)})" if ignored else ""
        raise ConfigError(f"{cfg.source}: nothing to serve: configure a grpc, http, rpc or jobs section{why}")
