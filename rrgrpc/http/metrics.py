"""The ``http_metrics`` middleware: RoadRunner's ``rr_http_*`` request collectors.

Owns ``rr_http_request_total{status}``, ``rr_http_request_duration_seconds{status}``,
``rr_http_requests_queue``, ``rr_http_no_free_workers_total`` and ``rr_http_uptime_seconds``. They are
created unregistered; the metrics plugin registers them (the http plugin lists them in ``collectors``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rrgrpc.http.state import Handler


class _Uptime(Collector):
    """``rr_http_uptime_seconds``: whole seconds since the plugin started (no _total suffix, as RR)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily("rr_http_uptime_seconds", "Uptime in seconds", value=int(time.monotonic() - self.started))


class HttpMetrics:
    """RoadRunner's ``http_metrics`` collectors (unregistered; the metrics plugin registers them)."""

    def __init__(self) -> None:
        self.queue = Gauge("rr_http_requests_queue", "Total number of queued requests.", registry=None)
        self.no_free_workers = Counter(
            "rr_http_no_free_workers_total", "Total number of NoFreeWorkers occurrences.", registry=None
        )
        self.requests = Counter(
            "rr_http_request_total", "Total number of handled http requests after server restart.", ["status"], registry=None
        )
        self.duration = Histogram("rr_http_request_duration_seconds", "HTTP request duration.", ["status"], registry=None)
        self.uptime = _Uptime()
        self._by_status: dict[str, tuple[Any, Any]] = {}  # status -> its (counter, histogram) children, found once

    def collectors(self) -> list[Any]:
        return [self.requests, self.duration, self.queue, self.no_free_workers, self.uptime]

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        self.queue.inc()
        status = "500"
        try:
            resp = await handler(request)
            status = str(resp.status)
            if resp.headers.get("No-Workers") == "true":
                self.no_free_workers.inc()
            return resp
        finally:
            self.queue.dec()
            children = self._by_status.get(status)
            if children is None:  # .labels() takes a lock and builds a key: once per status, not per request
                children = self._by_status[status] = (self.requests.labels(status), self.duration.labels(status))
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
