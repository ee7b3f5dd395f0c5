"""Application metrics declared under ``metrics.collect`` or over ``metrics.Declare``: one
:class:`AppCollector` per name, with the operations RoadRunner allows per type and its error texts,
plus the quantile summary (``objectives``) prometheus_client lacks."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec
from prometheus_client import Counter, Gauge, Histogram, Summary
from prometheus_client.core import Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

TYPES: Final = ("histogram", "gauge", "counter", "summary")


class MetricsRpcError(Exception):
    """An RPC call was refused; the text is RoadRunner's and travels as the error reply."""


# --------------------------------------------------------------------------------------------
# collectors


def _fq_name(namespace: str, subsystem: str, name: str) -> str:
    """Go's ``prometheus.BuildFQName``: non-empty parts joined with ``_`` (empty name => empty)."""
    if not name:
        return ""
    return "_".join(p for p in (namespace, subsystem, name) if p)


def _go_strings(values: Sequence[str]) -> str:
    return "[]string{" + ", ".join(msgspec.json.encode(v).decode() for v in values) + "}"


class _WindowedSummary(Collector):
    """A summary with quantile ``objectives``, which prometheus_client's Summary lacks.

    Quantiles are exact over the observations of the last ``max_age`` seconds (Go's default window is
    10 minutes), capped at ``cap`` samples per label set; count and sum are cumulative, as in Go.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        objectives: Mapping[float, float],
        max_age: float = 600.0,
        cap: int = 10_000,
    ) -> None:
        self._name = name
        self._doc = documentation
        self._labelnames = tuple(labelnames)
        self._quantiles = sorted(objectives)
        self._max_age = max_age
        self._cap = cap
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], tuple[deque[tuple[float, float]], list[float]]] = {}

    @property
    def labelnames(self) -> tuple[str, ...]:
        return self._labelnames

    def observe(self, value: float, labelvalues: Sequence[str] = ()) -> None:
        key = tuple(labelvalues)
        now = time.monotonic()
        with self._lock:
            window, totals = self._series.setdefault(key, (deque(maxlen=self._cap), [0.0, 0.0]))
            window.append((now, value))
            totals[0] += 1
            totals[1] += value

    def describe(self) -> Iterable[Metric]:
        return [SummaryMetricFamily(self._name, self._doc, labels=self._labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = Metric(self._name, self._doc, "summary")
        horizon = time.monotonic() - self._max_age
        with self._lock:
            for key, (window, (count, total)) in self._series.items():
                while window and window[0][0] < horizon:
                    window.popleft()
                values = sorted(v for _, v in window)
                labels = dict(zip(self._labelnames, key, strict=True))
                for q in self._quantiles:
                    value = (
                        values[min(len(values) - 1, math.ceil(q * len(values)) - 1)] if values else math.nan
                    )
                    family.add_sample(self._name, {**labels, "quantile": repr(q)}, value)
                family.add_sample(self._name + "_sum", labels, total)
                family.add_sample(self._name + "_count", labels, count)
        return [family]


class AppCollector:
    """One declared metric (config ``collect`` or ``metrics.Declare``) and the operations RoadRunner allows."""

    def __init__(self, name: str, spec: Mapping[str, Any]) -> None:
        kind = str(spec.get("type") or "")
        if kind not in TYPES:
            raise MetricsRpcError(f"unknown collector type: {kind}")
        self.name = name
        self.kind = kind
        self.labels: tuple[str, ...] = tuple(spec.get("labels") or ())
        fq = _fq_name(str(spec.get("namespace") or ""), str(spec.get("subsystem") or ""), name)
        self.fq_name = fq
        if len(set(self.labels)) != len(self.labels):
            raise MetricsRpcError(f'duplicate label names in constant and variable labels for metric "{fq}"')
        help_text = str(spec.get("help") or "")
        if not help_text:
            # prometheus_client refuses an empty help; Go accepts it and prints "# HELP name "
            help_text = fq
        self._windowed: _WindowedSummary | None = None
        self.metric: Any
        if kind == "counter":
            self.metric = Counter(fq, help_text, self.labels, registry=None)
        elif kind == "gauge":
            self.metric = Gauge(fq, help_text, self.labels, registry=None)
        elif kind == "histogram":
            buckets = [float(b) for b in spec.get("buckets") or ()]
            if buckets:
                self.metric = Histogram(fq, help_text, self.labels, registry=None, buckets=buckets)
            else:
                self.metric = Histogram(fq, help_text, self.labels, registry=None)
        else:
            objectives = _objectives(spec.get("objectives"))
            if objectives:
                self._windowed = _WindowedSummary(fq, help_text, self.labels, objectives)
                self.metric = self._windowed
            else:
                self.metric = Summary(fq, help_text, self.labels, registry=None)

    @property
    def bare_counter(self) -> str | None:
        """The family name to restore when prometheus_client would append ``_total`` to a counter."""
        if self.kind == "counter" and not self.fq_name.endswith("_total"):
            return self.fq_name
        return None

    def _check_labels(self, labels: Sequence[str]) -> None:
        if not labels:
            raise MetricsRpcError(f"required labels for collector: {self.name}")
        if len(labels) != len(self.labels):
            raise MetricsRpcError(
                f"inconsistent label cardinality: expected {len(self.labels)} label values "
                f"but got {len(labels)} in {_go_strings(labels)}"
            )

    def _child(self, labels: Sequence[str]) -> Any:
        if not self.labels:
            return self.metric
        self._check_labels(labels)
        return self.metric.labels(*labels)

    def _unsupported(self, op: str) -> MetricsRpcError:
        return MetricsRpcError(
            f"collector does not support the requested operation: {self.name} does not support {op}"
        )

    def add(self, value: float, labels: Sequence[str]) -> None:
        if self.kind == "counter":
            if value < 0:
                raise MetricsRpcError(f"counter cannot decrease in value: {self.name}")
            self._child(labels).inc(value)
        elif self.kind == "gauge":
            self._child(labels).inc(value)
        else:
            raise self._unsupported("Add")

    def sub(self, value: float, labels: Sequence[str]) -> None:
        if self.kind != "gauge":
            raise self._unsupported("Sub")
        self._child(labels).dec(value)

    def set(self, value: float, labels: Sequence[str]) -> None:
        if self.kind != "gauge":
            raise self._unsupported("Set")
        self._child(labels).set(value)

    def observe(self, value: float, labels: Sequence[str]) -> None:
        if self.kind not in ("histogram", "summary"):
            raise self._unsupported("Observe")
        if self._windowed is not None:
            if self.labels:
                self._check_labels(labels)
            self._windowed.observe(value, labels if self.labels else ())
            return
        self._child(labels).observe(value)


def _objectives(raw: Any) -> dict[float, float]:
    """``objectives`` as RoadRunner's YAML writes them (a list of ``{quantile: error}`` maps) or one map."""
    if not raw:
        return {}
    maps = raw if isinstance(raw, list | tuple) else [raw]
    out: dict[float, float] = {}
    for item in maps:
        if not isinstance(item, Mapping):
            raise MetricsRpcError(f"invalid objectives: {raw!r}")
        for q, err in item.items():
            out[float(q)] = float(err)
    return out
