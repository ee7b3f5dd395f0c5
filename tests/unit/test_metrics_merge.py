"""metrics.merge: fronts' request metrics summed by series, scraped from the supervisor's /metrics.

Two "fronts" are two sets of the real gRPC and HTTP collectors, each counting its own requests;
their snapshots cross a msgpack round trip (as they do over the control socket) and the merged
families are read back from a real ``/metrics`` scrape by Prometheus's own parser."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from rrgrpc.config import config_from_dict
from rrgrpc.grpc.metrics import GrpcMetrics
from rrgrpc.http.metrics import HttpMetrics
from rrgrpc.metrics import MetricsPlugin
from rrgrpc.metrics.merge import FrontMetrics, families
from rrgrpc.plugin import HasWorkers, ProvidesMetrics
from rrgrpc.pool.state import Activity, ProcessState
from rrgrpc.worker_metrics import WorkersCollector
from tests.helpers import StaticPeers

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Fronts:
    """The supervisor's view of the grpc section: workers of both fronts, and their merged metrics."""

    name = "grpc"
    capabilities = (HasWorkers, ProvidesMetrics)

    def __init__(self, merged: FrontMetrics) -> None:
        self.merged = merged

    def workers(self) -> list[ProcessState]:
        return [ProcessState(11, 1, 3, 0, 1000, 0.0, "", "ready"), ProcessState(22, 1, 5, 0, 2000, 0.0, "", "working")]

    def activity(self) -> Activity:
        return Activity(queue=3)

    def collectors(self) -> list[Collector]:
        return [self.merged]


def _front(grpc_calls: int, http_ok: int, queue: int) -> tuple[GrpcMetrics, HttpMetrics]:
    grpc, http = GrpcMetrics(), HttpMetrics()
    for _ in range(grpc_calls):
        grpc.method("/svc.Echo/Ping").finished("OK", 0.004)
    grpc.method("/svc.Echo/Fail").finished("Internal", 0.001)
    grpc.queue.set(queue)
    for _ in range(http_ok):
        http.requests.labels("200").inc()
        http.duration.labels("200").observe(0.2)
    return grpc, http


def _wire(collectors: list[Any]) -> list[dict[str, Any]]:
    """A front's snapshot after the control socket's msgpack round trip."""
    snapshot: list[dict[str, Any]] = msgspec.msgpack.decode(msgspec.msgpack.encode(families(collectors)))
    return snapshot


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_scrape_sums_fronts_series_and_says_which_fronts_answered() -> None:
    grpc0, http0 = _front(grpc_calls=3, http_ok=2, queue=1)
    grpc1, http1 = _front(grpc_calls=4, http_ok=5, queue=2)
    merged = FrontMetrics(templates=[*GrpcMetrics().collectors(), *HttpMetrics().collectors()])
    merged.update(0, _wire([*grpc0.collectors(), *http0.collectors()]))
    merged.update(1, _wire([*grpc1.collectors(), *http1.collectors()]))
    merged.update(2, None)  # a front that did not answer the round
    section = config_from_dict({"version": "3", "metrics": {"address": "127.0.0.1:0"}}).metrics
    assert section is not None
    plugin = MetricsPlugin(section)
    async with plugin.lifespan(StaticPeers(Fronts(merged), plugin)):
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{plugin.port}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    got = _samples(text)
    ping = (("grpc_method", "/svc.Echo/Ping"), ("status_code", "OK"))
    assert got[("rr_grpc_request_total", ping)] == 7
    assert got[("rr_grpc_request_total", (("grpc_method", "/svc.Echo/Fail"), ("status_code", "Internal")))] == 2
    assert got[("rr_grpc_request_duration_seconds_count", (("grpc_method", "/svc.Echo/Ping"),))] == 7
    bucket = ("rr_grpc_request_duration_seconds_bucket", (("grpc_method", "/svc.Echo/Ping"), ("le", "0.005")))
    assert got[bucket] == 7
    assert got[("rr_http_request_total", (("status", "200"),))] == 7
    assert abs(got[("rr_http_request_duration_seconds_sum", (("status", "200"),))] - 1.4) < 1e-9
    # the queue gauge is the fronts' sum, exported once: the worker collector left it to the fronts
    assert got[("rr_grpc_requests_queue", ())] == 3
    assert text.count("# TYPE rr_grpc_requests_queue ") == 1
    # worker gauges come from the merged worker list, not from the snapshots
    assert got[("rr_grpc_total_workers", ())] == 2
    assert got[("rr_fronts_up", (("front", "0"),))] == 1
    assert got[("rr_fronts_up", (("front", "1"),))] == 1
    assert got[("rr_fronts_up", (("front", "2"),))] == 0


def test_uptime_is_the_longest_not_the_sum() -> None:
    older, newer = HttpMetrics(), HttpMetrics()
    older.uptime.started -= 100
    merged = FrontMetrics()
    merged.update(0, _wire(older.collectors()))
    merged.update(1, _wire(newer.collectors()))
    (uptime,) = [m for m in merged.collect() if m.name == "rr_http_uptime_seconds"]
    assert [s.value for s in uptime.samples] == [100]


def test_snapshot_leaves_worker_gauges_out_and_a_forgotten_front_counts_no_more() -> None:
    grpc, _ = _front(grpc_calls=1, http_ok=0, queue=0)
    snapshot = _wire([*grpc.collectors(), WorkersCollector(Fronts(FrontMetrics()), with_queue=False)])
    assert sorted(f["name"] for f in snapshot) == [
        "rr_grpc_request", "rr_grpc_request_duration_seconds", "rr_grpc_requests_queue",
    ]
    merged = FrontMetrics()
    merged.update(0, snapshot)
    merged.update(1, snapshot)
    merged.forget(1)
    counts = {
        (s.labels["grpc_method"], s.labels["status_code"]): s.value
        for m in merged.collect() if m.name == "rr_grpc_request" for s in m.samples
    }
    assert counts == {("/svc.Echo/Ping", "OK"): 1, ("/svc.Echo/Fail", "OK"): 0, ("/svc.Echo/Fail", "Internal"): 1}
    up = [m for m in merged.collect() if m.name == "rr_fronts_up"][0]
    assert [(s.labels, s.value) for s in up.samples] == [({"front": "0"}, 1)]
