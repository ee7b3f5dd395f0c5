"""RoadRunner's gRPC request metrics: ``rr_grpc_request_total``, ``rr_grpc_request_duration_seconds``
and ``rr_grpc_requests_queue``, with RoadRunner's names, help texts, labels and buckets.

Owns the counting: a call adds to plain numbers of its method (:class:`MethodStats`, made once
per method when the handlers are built), and the metric families are assembled only when the
registry is scraped. The handlers run on the event loop; prometheus_client's labelled children
would take a lock per update, which costs more than the rest of the bookkeeping of a call.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["GrpcMetrics", "MethodStats"]

REQUESTS: Final = "rr_grpc_request_total"
REQUESTS_HELP: Final = "Total number of GRPC requests processed after the server restarted, including their status codes."
DURATION: Final = "rr_grpc_request_duration_seconds"
DURATION_HELP: Final = "GRPC request duration."
BOUNDS: Final = Histogram.DEFAULT_BUCKETS[:-1]  # prometheus' default buckets, as RoadRunner's; +Inf is the last slot
_LE: Final = [floatToGoString(b) for b in (*BOUNDS, float("inf"))]  # type: ignore[no-untyped-call]


class MethodStats:
    """The calls of one method: how many ended with each status, and (``timed``: a unary method)
    their durations; a unary method exports ``OK`` and its histogram from the start."""

    __slots__ = ("codes", "buckets", "sum", "timed")

    def __init__(self, timed: bool) -> None:
        self.codes: dict[str, int] = {"OK": 0} if timed else {}  # grpc-go's code name -> calls
        self.buckets = [0] * (len(BOUNDS) + 1)  # calls per bucket (not cumulative), +Inf last
        self.sum = 0.0
        self.timed = timed

    def count(self, code: str) -> None:
        """One call ended with ``code`` (grpc-go's name), not timed (a streaming method refused)."""
        self.codes[code] = self.codes.get(code, 0) + 1

    def finished(self, code: str, seconds: float) -> None:
        """One call ended with ``code`` after ``seconds``."""
        self.codes[code] = self.codes.get(code, 0) + 1
        self.buckets[bisect_left(BOUNDS, seconds)] += 1
        self.sum += seconds


class _RequestCollector(Collector):
    """The counter and the histogram families of every method, from its :class:`MethodStats`."""

    def __init__(self, methods: dict[str, MethodStats]) -> None:
        self._methods = methods

    def describe(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        return (CounterMetricFamily(REQUESTS, REQUESTS_HELP, labels=("grpc_method", "status_code")),
                HistogramMetricFamily(DURATION, DURATION_HELP, labels=("grpc_method",)))  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        requests, duration = self._families()
        for method, stats in list(self._methods.items()):
            for code, n in list(stats.codes.items()):
                requests.add_metric((method, code), n)
            if not stats.timed:
                continue
            cumulative, buckets = 0, []
            for le, n in zip(_LE, list(stats.buckets), strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            duration.add_metric((method,), buckets, stats.sum)
        yield requests
        yield duration


class GrpcMetrics:
    """The gRPC request collectors, unregistered (the metrics plugin registers them)."""

    def __init__(self) -> None:
        #: the unary calls in flight; the proxy makes it read its count when scraped
        self.queue = Gauge("rr_grpc_requests_queue", "Total number of queued requests.", registry=None)
        self._methods: dict[str, MethodStats] = {}
        self._requests = _RequestCollector(self._methods)

    def method(self, full: str, timed: bool = True) -> MethodStats:
        """The stats of ``/package.Service/Method``, the same object for the life of the plugin."""
        stats = self._methods.get(full)
        if stats is None:
            stats = self._methods[full] = MethodStats(timed)
        return stats

    def collectors(self) -> list[Any]:
        return [self.queue, self._requests]
