"""The one worker-gauge collector: RoadRunner's per-plugin worker metrics, read from a pool at scrape time.

Owns ``rr_<plugin>_total_workers``, ``_workers_memory_bytes``, ``_worker_state{state,pid}``,
``_worker_memory_bytes{pid}``, ``_workers_ready|working|invalid``, ``_requests_dropped`` and,
optionally, ``_requests_queue``, for any ``HasWorkers`` plugin. The metrics plugin registers one per
peer; the http plugin hands over its own (RoadRunner words the http help texts differently). It sits
below the plugins and above the capability protocols, so both plugins can import it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rrgrpc.plugin import HasWorkers
from rrgrpc.pool.state import Activity, WorkerState

log = logging.getLogger("rr.metrics")


@dataclass(frozen=True, slots=True)
class Helps:
    """The help texts of one plugin's worker gauges."""

    total: str = "Total number of workers used by the plugin"
    memory: str = "Memory usage by workers"
    ready: str = "Workers currently in ready state"
    working: str = "Workers currently in working state"
    invalid: str = "Workers currently in invalid,killing,destroyed,errored,inactive states"
    dropped: str = "Requests dropped unexecuted: their client went away while they waited for a worker"


#: RoadRunner's wording for the http plugin's exporter.
HTTP_HELPS: Final = Helps(
    total="Total number of workers used by the HTTP plugin",
    memory="Memory usage by HTTP workers.",
    ready="HTTP workers currently in ready state",
    working="HTTP workers currently in working state",
    invalid="HTTP workers currently in invalid,killing,destroyed,errored,inactive states",
    dropped="Requests dropped unexecuted: the client left while queued",
)

_NAMES: Final = (
    "total_workers",
    "workers_memory_bytes",
    "worker_state",
    "worker_memory_bytes",
    "workers_ready",
    "workers_working",
    "workers_invalid",
    "requests_dropped",
)


class WorkersCollector(Collector):
    """RoadRunner's per-plugin worker gauges, read from the plugin's pool at scrape time."""

    def __init__(self, plugin: HasWorkers, with_queue: bool, helps: Helps = Helps()) -> None:
        self._plugin = plugin
        self._ns = f"rr_{plugin.name}"
        self._with_queue = with_queue
        self._helps = helps

    def names(self) -> list[str]:
        names = [f"{self._ns}_{n}" for n in _NAMES]
        if self._with_queue:
            names.append(f"{self._ns}_requests_queue")
        return names

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(n, n) for n in self.names()]

    def collect(self) -> Iterator[Metric]:
        ns, helps = self._ns, self._helps
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
        yield GaugeMetricFamily(f"{ns}_workers_ready", helps.ready, value=ready)
        yield GaugeMetricFamily(f"{ns}_workers_working", helps.working, value=working)
        yield GaugeMetricFamily(f"{ns}_workers_invalid", helps.invalid, value=invalid)
        yield GaugeMetricFamily(f"{ns}_total_workers", helps.total, value=len(workers))
        yield GaugeMetricFamily(f"{ns}_workers_memory_bytes", helps.memory, value=total_memory)
        try:
            activity = self._plugin.activity()
        except Exception:
            activity = Activity()
        yield CounterMetricFamily(f"{ns}_requests_dropped", helps.dropped, value=activity.dropped)
        if self._with_queue:
            yield GaugeMetricFamily(
                f"{ns}_requests_queue", "Total number of queued requests waiting for a worker", value=activity.queue
            )
