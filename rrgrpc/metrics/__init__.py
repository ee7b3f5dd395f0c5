"""Prometheus metrics from the ``metrics:`` section: the plugin (:mod:`.plugin`), application
collectors (:mod:`.collectors`), RPC arguments (:mod:`.rpc`), the exposition (:mod:`.exposition`) and the merge of
several fronts' request metrics (:mod:`.merge`).
The worker gauges every pool-backed plugin gets live in :mod:`rrgrpc.worker_metrics`."""

from rrgrpc.metrics.collectors import AppCollector, MetricsRpcError
from rrgrpc.metrics.plugin import MetricsPlugin

__all__ = ["AppCollector", "MetricsPlugin", "MetricsRpcError"]
