"""Prometheus metrics from the ``metrics:`` section: the registry, ``/metrics``, and the ``metrics`` RPC.

Owns one ``CollectorRegistry`` per host. On start it registers, in this order: the process and
platform collectors (RoadRunner registers Go's process and runtime collectors), the collectors every
``ProvidesMetrics`` peer hands over (``rr_grpc_request_total`` ...), one worker collector per
``HasWorkers`` peer with RoadRunner's names (``rr_<plugin>_total_workers``,
``rr_<plugin>_workers_memory_bytes``, ``rr_<plugin>_worker_state{state,pid}``,
``rr_<plugin>_worker_memory_bytes{pid}``, ``rr_<plugin>_workers_ready|working|invalid``,
``rr_<plugin>_requests_dropped_total`` and, unless the peer already exports it,
``rr_<plugin>_requests_queue``), and the collectors predeclared under ``metrics.collect``. It then serves the text exposition on ``metrics.address`` (any path, as
RoadRunner's promhttp handler does).

The RPC service ``metrics`` (Declare/Add/Sub/Observe/Set/Unregister) follows RoadRunner's semantics and
error texts (PROTOCOL.md §6.5). Counters keep the exact name they were declared with, as in Go:
prometheus_client would expose a counter ``app_requests`` as ``app_requests_total``, so the exposition
renames those families back; ``_created`` series are switched off.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final

import msgspec
import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from rrgrpc.errors import ConfigError
from rrgrpc.obs import parse_host_port, serve_app
from rrgrpc.plugin import HasWorkers, Peers, ProvidesMetrics, RpcProvider
from rrgrpc.pool.state import Activity, WorkerState

if TYPE_CHECKING:
    from rrgrpc.config.schema import MetricsConfig

log = logging.getLogger("rr.metrics")

#: The classic text format, what generate_latest writes (and what Go's promhttp answers by default).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
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


class WorkersCollector(Collector):
    """RoadRunner's per-plugin worker gauges, read from the plugin's pool at scrape time."""

    def __init__(self, plugin: HasWorkers, with_queue: bool) -> None:
        self._plugin = plugin
        self._ns = f"rr_{plugin.name}"
        self._with_queue = with_queue

    def names(self) -> list[str]:
        names = [
            f"{self._ns}_{n}"
            for n in (
                "total_workers",
                "workers_memory_bytes",
                "worker_state",
                "worker_memory_bytes",
                "workers_ready",
                "workers_working",
                "workers_invalid",
                "requests_dropped",
            )
        ]
        if self._with_queue:
            names.append(f"{self._ns}_requests_queue")
        return names

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(n, n) for n in self.names()]

    def collect(self) -> Iterator[Metric]:
        ns = self._ns
        try:
            workers = self._plugin.workers()
        except Exception:  # the pool is not up yet (or is going away): report nothing, like Go's nil list
            log.debug("no workers to report", extra={"plugin": self._plugin.name}, exc_info=True)
            workers = []
        state = GaugeMetricFamily(f"{ns}_worker_state", "Worker current state", labels=["state", "pid"])
        memory = GaugeMetricFamily(f"{ns}_worker_memory_bytes", "Worker current memory usage", labels=["pid"])
        ready = working = invalid = 0
        total_memory = 0.0
        for w in workers:
            total_memory += w.memory_usage
            # RoadRunner exports the state as a label with the value 0
            state.add_metric([w.status_str, str(w.pid)], 0)
            memory.add_metric([str(w.pid)], w.memory_usage)
            if w.status == WorkerState.READY:
                ready += 1
            elif w.status == WorkerState.WORKING:
                working += 1
            else:
                invalid += 1
        yield state
        yield memory
        yield GaugeMetricFamily(f"{ns}_workers_ready", "Workers currently in ready state", value=ready)
        yield GaugeMetricFamily(f"{ns}_workers_working", "Workers currently in working state", value=working)
        yield GaugeMetricFamily(
            f"{ns}_workers_invalid",
            "Workers currently in invalid,killing,destroyed,errored,inactive states",
            value=invalid,
        )
        yield GaugeMetricFamily(
            f"{ns}_total_workers", "Total number of workers used by the plugin", value=len(workers)
        )
        yield GaugeMetricFamily(f"{ns}_workers_memory_bytes", "Memory usage by workers", value=total_memory)
        try:
            activity = self._plugin.activity()
        except Exception:
            activity = Activity()
        yield CounterMetricFamily(
            f"{ns}_requests_dropped",
            "Requests dropped unexecuted: their client went away while they waited for a worker",
            value=activity.dropped,
        )
        if self._with_queue:
            queue = activity.queue
            yield GaugeMetricFamily(
                f"{ns}_requests_queue", "Total number of queued requests waiting for a worker", value=queue
            )


# --------------------------------------------------------------------------------------------
# the plugin


def _arg_fields(arg: Any, what: str) -> dict[str, Any]:
    """A JSON object argument with keys matched case-insensitively, as Go's encoding/json does."""
    if not isinstance(arg, Mapping):
        raise MetricsRpcError(f"json: cannot unmarshal {type(arg).__name__} into Go value of type {what}")
    return {str(k).lower(): v for k, v in arg.items()}


def _metric_arg(arg: Any) -> tuple[str, float, list[str]]:
    fields = _arg_fields(arg, "metrics.Metric")
    value = fields.get("value") or 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetricsRpcError(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field Metric.value of type float64"
        )
    labels = fields.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise MetricsRpcError(
            "json: cannot unmarshal labels into Go struct field Metric.labels of type []string"
        )
    return str(fields.get("name") or ""), float(value), labels


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

    # -- lifecycle ---------------------------------------------------------------------------
    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run(peers)

    def _register_peers(self, peers: Peers) -> None:
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
        text = prometheus_client.generate_latest(self.registry)
        if not self._bare:
            return text
        out = []
        for line in text.decode().splitlines(keepends=True):
            out.append(self._unsuffix(line))
        return "".join(out).encode()

    def _unsuffix(self, line: str) -> str:
        if line.startswith("# "):
            kind, _, rest = line[2:].partition(" ")
            name, _, tail = rest.partition(" ")
            base = name.removesuffix("_total")
            if name.endswith("_total") and base in self._bare:
                return f"# {kind} {base} {tail}"
            return line
        end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=len(line))
        name = line[:end]
        base = name.removesuffix("_total")
        if name.endswith("_total") and base in self._bare:
            return base + line[end:]
        return line

    async def _scrape(self, request: web.Request) -> web.Response:
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
        fields = _arg_fields(arg, "metrics.NamedCollector")
        spec = fields.get("collector")
        if not isinstance(spec, Mapping):
            spec = {}
        return self.declare(str(fields.get("name") or ""), {str(k).lower(): v for k, v in spec.items()})

    def _metric_op(self, op: str) -> Callable[[Any], Awaitable[bool]]:
        """An RPC method applying ``AppCollector.<op>`` (add, sub, observe, set) to a Metric argument."""

        async def call(arg: Any) -> bool:
            name, value, labels = _metric_arg(arg)
            getattr(self._lookup(name), op)(value, labels)
            return True

        return call

    async def _unregister(self, arg: Any) -> bool:
        if not isinstance(arg, str):
            raise MetricsRpcError(f"json: cannot unmarshal {type(arg).__name__} into Go value of type string")
        return self.unregister(arg)


__all__ = ["AppCollector", "MetricsPlugin", "MetricsRpcError", "WorkersCollector"]
