"""The gRPC request metrics expose what prometheus_client's Counter and Histogram would, byte for byte."""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from rrgrpc.grpc.metrics import DURATION, DURATION_HELP, REQUESTS, REQUESTS_HELP, GrpcMetrics

# durations on, below and above bucket bounds; a streaming method only counts
CALLS = [
    ("/a.v1.S/Ping", "OK", 0.004),
    ("/a.v1.S/Ping", "OK", 0.005),
    ("/a.v1.S/Ping", "NotFound", 0.0051),
    ("/a.v1.S/Ping", "Canceled", 2.5),
    ("/a.v1.S/Ping", "DeadlineExceeded", 11.0),
    ("/a.v1.S/Other", "Unavailable", 0.3),
]


def test_exposition_matches_prometheus_client() -> None:
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # as the metrics plugin does
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    metrics = GrpcMetrics()
    for c in metrics.collectors():
        ours.register(c)
    requests = Counter(REQUESTS, REQUESTS_HELP, ["grpc_method", "status_code"], registry=theirs)
    duration = Histogram(DURATION, DURATION_HELP, ["grpc_method"], registry=theirs)
    gauge = prometheus_client.Gauge("rr_grpc_requests_queue", "Total number of queued requests.", registry=theirs)
    metrics.queue.set_function(lambda: 3)
    gauge.set(3)
    for method in ("/a.v1.S/Ping", "/a.v1.S/Other"):  # children made when the handlers are built
        metrics.method(method)
        requests.labels(method, "OK")
        duration.labels(method)
    metrics.method("/a.v1.S/Stream", timed=False)
    for method, code, seconds in CALLS:
        metrics.method(method).finished(code, seconds)
        requests.labels(method, code).inc()
        duration.labels(method).observe(seconds)
    metrics.method("/a.v1.S/Stream", timed=False).count("Unimplemented")
    requests.labels("/a.v1.S/Stream", "Unimplemented").inc()

    def lines(registry: CollectorRegistry) -> list[str]:
        return sorted(generate_latest(registry).decode().splitlines())

    assert lines(ours) == lines(theirs)
    assert 'rr_grpc_request_duration_seconds_bucket{grpc_method="/a.v1.S/Ping",le="0.005"} 2.0' in lines(ours)
