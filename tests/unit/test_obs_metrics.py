"""metrics: RPC semantics and RoadRunner's error texts, config collectors, worker gauges, /metrics."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from rrgrpc.config import CollectorConfig, MetricsConfig, StrList, config_from_dict
from rrgrpc.errors import ConfigError
from rrgrpc.metrics import MetricsPlugin, MetricsRpcError
from rrgrpc.plugin import HasWorkers, ProvidesMetrics
from rrgrpc.pool.state import Activity, ProcessState
from tests.helpers import StaticPeers as Peers


class FakePool:
    name = "grpc"

    def __init__(self) -> None:
        self.requests = Counter(
            "rr_grpc_request_total", "Requests", ["grpc_method", "status_code"], registry=None
        )

    def workers(self) -> list[ProcessState]:
        return [
            ProcessState(1, 1, 3, 0, 1000, 0.0, "", "ready"),
            ProcessState(2, 2, 1, 0, 2000, 0.0, "", "working"),
            ProcessState(3, 3, 0, 0, 500, 0.0, "", "invalid"),
        ]

    def activity(self) -> Activity:
        return Activity(queue=4)

    def collectors(self) -> list[Collector]:
        return [self.requests]


def _plugin(collect: dict[str, object] | None = None) -> MetricsPlugin:
    raw: dict[str, Any] = {"version": "3", "metrics": {"address": "127.0.0.1:0"}}
    if collect:
        raw["metrics"]["collect"] = collect
    section = config_from_dict(raw).metrics
    assert section is not None
    return MetricsPlugin(section)


async def _scrape(plugin: MetricsPlugin) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{plugin.port}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await r.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_scrape_has_worker_gauges_peer_collectors_and_config_collectors() -> None:
    pool = FakePool()
    assert isinstance(pool, HasWorkers) and isinstance(pool, ProvidesMetrics)
    plugin = _plugin({"app_jobs": {"type": "counter", "help": "Jobs", "labels": ["queue"]}})
    async with plugin.lifespan(Peers(pool, plugin)):
        pool.requests.labels("/echo.v1.Echo/Say", "0").inc()
        await plugin.rpc_methods()["Add"]({"name": "app_jobs", "value": 2, "labels": ["emails"]})
        text = await _scrape(plugin)
    samples = _samples(text)
    assert samples[("rr_grpc_total_workers", ())] == 3
    assert samples[("rr_grpc_workers_memory_bytes", ())] == 3500
    assert samples[("rr_grpc_workers_ready", ())] == 1
    assert samples[("rr_grpc_workers_working", ())] == 1
    assert samples[("rr_grpc_workers_invalid", ())] == 1
    assert samples[("rr_grpc_worker_memory_bytes", (("pid", "2"),))] == 2000
    assert ("rr_grpc_worker_state", (("pid", "1"), ("state", "ready"))) in samples
    assert samples[("rr_grpc_requests_queue", ())] == 4
    assert (
        samples[("rr_grpc_request_total", (("grpc_method", "/echo.v1.Echo/Say"), ("status_code", "0")))] == 1
    )
    # counters keep the name they were declared with, as in Go (no _total appended, no _created)
    assert 'app_jobs{queue="emails"} 2.0' in text
    assert "# TYPE app_jobs counter" in text
    assert "_created" not in text
    assert "process_cpu_seconds_total" in text


async def test_queue_gauge_is_left_to_a_peer_that_exports_it() -> None:
    from prometheus_client import Gauge

    pool = FakePool()
    queue = Gauge("rr_grpc_requests_queue", "queue", registry=None)
    pool.collectors = lambda: [pool.requests, queue]  # type: ignore[method-assign]
    plugin = _plugin()
    async with plugin.lifespan(Peers(pool)):
        text = await _scrape(plugin)
    assert text.count("# TYPE rr_grpc_requests_queue gauge") == 1


async def test_rpc_semantics_and_errors() -> None:
    plugin = _plugin({"cfg_gauge": {"type": "gauge", "help": "from config"}})
    rpc = plugin.rpc_methods()
    async with plugin.lifespan(Peers()):
        declare = rpc["Declare"]
        collector = {
            "namespace": "",
            "subsystem": "",
            "type": "counter",
            "help": "Requests",
            "labels": ["method"],
            "buckets": [],
        }
        assert await declare({"name": "app_requests", "collector": collector}) is True
        assert await declare({"name": "app_requests", "collector": collector}) is True  # existing: ok
        assert await declare(
            {"name": "lat", "collector": {"type": "histogram", "help": "h", "buckets": [0.1, 1]}}
        )
        assert await declare({"name": "sz", "collector": {"type": "summary", "help": "s", "labels": ["k"]}})
        assert await declare(
            {
                "name": "g",
                "collector": {
                    "type": "gauge",
                    "help": "g",
                    "namespace": "app",
                    "subsystem": "db",
                    "labels": ["pool"],
                },
            }
        )

        assert await rpc["Add"]({"name": "app_requests", "value": 1, "labels": ["GET"]})
        assert await rpc["Observe"]({"name": "lat", "value": 0.5})
        assert await rpc["Observe"]({"name": "sz", "value": 3, "labels": ["x"]})
        assert await rpc["Set"]({"name": "g", "value": 10, "labels": ["main"]})
        assert await rpc["Sub"]({"name": "g", "value": 3, "labels": ["main"]})
        assert await rpc["Add"]({"name": "cfg_gauge", "value": 5})

        errors = [
            (rpc["Add"], {"name": "nope", "value": 1}, "undefined collector: nope"),
            (rpc["Add"], {"name": "app_requests", "value": 1}, "required labels for collector: app_requests"),
            (
                rpc["Add"],
                {"name": "app_requests", "value": -1, "labels": ["GET"]},
                "counter cannot decrease in value: app_requests",
            ),
            (
                rpc["Add"],
                {"name": "app_requests", "value": 1, "labels": ["GET", "x"]},
                'inconsistent label cardinality: expected 1 label values but got 2 in []string{"GET", "x"}',
            ),
            (
                rpc["Sub"],
                {"name": "app_requests", "value": 1, "labels": ["GET"]},
                "collector does not support the requested operation: app_requests does not support Sub",
            ),
            (
                rpc["Set"],
                {"name": "lat", "value": 1},
                "collector does not support the requested operation: lat does not support Set",
            ),
            (
                rpc["Observe"],
                {"name": "g", "value": 1, "labels": ["main"]},
                "collector does not support the requested operation: g does not support Observe",
            ),
            (
                rpc["Add"],
                {"name": "lat", "value": 1},
                "collector does not support the requested operation: lat does not support Add",
            ),
            (declare, {"name": "bad", "collector": {"type": "meter"}}, "unknown collector type: meter"),
            (rpc["Unregister"], "nope", "undefined collector: nope"),
        ]
        for method, arg, text in errors:
            with pytest.raises(MetricsRpcError) as info:
                await method(arg)
            assert str(info.value) == text

        text = await _scrape(plugin)
        assert 'app_requests{method="GET"} 1.0' in text  # the parser would rename it app_requests_total
        scraped = _samples(text)
        assert scraped[("app_db_g", (("pool", "main"),))] == 7
        assert scraped[("lat_count", ())] == 1
        assert scraped[("lat_bucket", (("le", "1.0"),))] == 1
        assert scraped[("sz_sum", (("k", "x"),))] == 3
        assert scraped[("cfg_gauge", ())] == 5

        assert await rpc["Unregister"]("app_requests") is True
        assert "app_requests" not in await _scrape(plugin)
        assert (
            await declare({"name": "app_requests", "collector": collector}) is True
        )  # again after unregister


async def test_summary_objectives_from_config() -> None:
    plugin = _plugin({"rt": {"type": "summary", "help": "rt", "objectives": [{0.5: 0.05}, {0.99: 0.001}]}})
    async with plugin.lifespan(Peers()):
        for v in range(1, 101):
            await plugin.rpc_methods()["Observe"]({"name": "rt", "value": v})
        samples = _samples(await _scrape(plugin))
    assert samples[("rt", (("quantile", "0.5"),))] == 50
    assert samples[("rt", (("quantile", "0.99"),))] == 99
    assert samples[("rt_count", ())] == 100


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="metrics.address"):
        MetricsPlugin(MetricsConfig(address="nowhere"))
    with pytest.raises(ConfigError, match="metrics.collect.dup"):
        MetricsPlugin(MetricsConfig(collect={"dup": CollectorConfig(type="gauge", labels=StrList(["a", "a"]))}))
