"""Request metrics across fronts: a front's snapshot, and the supervisor's merge of all snapshots.

With ``server.num_fronts`` above one, each front counts its own calls (``rr_grpc_*``, ``rr_http_*``)
and the supervisor serves the one ``/metrics``. A front puts :func:`families` of its collectors in
its state reply; the supervisor feeds every reply to one :class:`FrontMetrics`, which the metrics
plugin registers like any collector. The merge is by sample: series with the same name and labels
are summed across fronts (counters, histogram buckets, sums and counts, queue gauges), except the
few gauges that are not additive (uptime: the largest). Per-pid series never collide, so they are
simply listed. Worker gauges are not part of a snapshot: the supervisor builds them from the merged
worker list (:mod:`rrgrpc.worker_metrics`), so they keep one source. ``rr_fronts_up{front}`` says
which fronts answered the last round.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rrgrpc.worker_metrics import WorkersCollector

#: Gauges whose fronts' values do not add up: the merge keeps the largest.
NOT_ADDITIVE: Final = frozenset({"rr_http_uptime_seconds"})

Family = dict[str, Any]


def families(collectors: Iterable[Collector]) -> list[Family]:
    """A msgpack/JSON-able snapshot of ``collectors`` (worker gauges left out, see the module doc).

    Each family: ``{"name", "type", "help", "samples": [[sample name, {label: value}, value], ...]}``.
    """
    out: list[Family] = []
    for collector in collectors:
        if isinstance(collector, WorkersCollector):
            continue
        for metric in collector.collect():
            out.append({
                "name": metric.name,
                "type": metric.type,
                "help": metric.documentation,
                "samples": [[s.name, dict(s.labels), s.value] for s in metric.samples],
            })
    return out


class FrontMetrics(Collector):
    """The fronts' families, merged; ``templates`` name the families before any front answered.

    ``templates`` are unregistered collectors of the same kinds the fronts run (``GrpcMetrics``,
    ``HttpMetrics``): the registry learns the family names from them at registration, so a name
    another collector of the supervisor also exports is refused there, as in one process.
    """

    def __init__(self, templates: Iterable[Collector] = ()) -> None:
        self._templates = [m for c in templates for m in _metrics(c)]
        self._fronts: dict[int, list[Family] | None] = {}

    def update(self, front: int, snapshot: list[Family] | None) -> None:
        """Record front ``front``'s latest snapshot; ``None``: it did not answer (counted as down)."""
        self._fronts[front] = snapshot

    def forget(self, front: int) -> None:
        """Front ``front`` is gone for good (the number of fronts shrank)."""
        self._fronts.pop(front, None)

    def describe(self) -> Iterator[Metric]:
        for template in self._templates:
            yield Metric(template.name, template.documentation, template.type)
        yield GaugeMetricFamily("rr_fronts_up", "Whether the front answered the last state round (1) or not (0)")

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {t.name: Metric(t.name, t.documentation, t.type) for t in self._templates}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {name: {} for name in merged}
        for snapshot in self._fronts.values():
            for family in snapshot or ():
                name = family["name"]
                if name not in merged:
                    merged[name] = Metric(name, family["help"], family["type"])
                    values[name] = {}
                series = values[name]
                keep_max = name in NOT_ADDITIVE
                for sample_name, labels, value in family["samples"]:
                    key = (sample_name, tuple(labels.items()))
                    old = series.get(key)
                    if old is None:
                        series[key] = value
                    else:
                        series[key] = max(old, value) if keep_max else old + value
        for name, metric in merged.items():
            for (sample_name, labels), value in values[name].items():
                metric.add_sample(sample_name, dict(labels), value)
            yield metric
        up = GaugeMetricFamily(
            "rr_fronts_up", "Whether the front answered the last state round (1) or not (0)", labels=["front"]
        )
        for front in sorted(self._fronts):
            up.add_metric([str(front)], 0 if self._fronts[front] is None else 1)
        yield up


def _metrics(collector: Collector) -> list[Metric]:
    describe = getattr(collector, "describe", None)
    return list(describe() if describe is not None else collector.collect())


__all__ = ["NOT_ADDITIVE", "FrontMetrics", "families"]
