"""The jobs control plane against a real server: ``rr jobs`` and ``rr workers``, jobs.Declare/Destroy,
informer.Jobs, status ``/jobs`` and the ``rr_jobs_*`` metrics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from rrgrpc.cli import rr
from rrgrpc.goridge.rpc import RpcClient, RpcError
from rrgrpc.jobs import jobs_pb2 as pb
from tests.helpers import eventually, free_port, running_host
from tests.integration.jobs_helpers import call, job, jobs_config, push, stats, tasks

pytestmark = pytest.mark.php


async def invoke(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop while the server runs in ours."""
    return await asyncio.to_thread(CliRunner().invoke, rr, list(args))


def plugin(host: Any, name: str) -> Any:
    return next(p for p in host.plugins if p.name == name)


async def test_rr_jobs_pause_resume_destroy_list(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"a": {"driver": "memory"}, "b": {"driver": "memory", "config": {"priority": 4}}})
    path = tmp_path / ".rr.yaml"
    path.write_text(yaml.safe_dump(cfg))
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        paused = await invoke("-c", str(path), "jobs", "--pause", "a,b")
        assert paused.exit_code == 0, paused.output
        assert "Pipeline(s)" in paused.output and "a" in paused.output and "b" in paused.output
        assert [(s.pipeline, s.ready) for s in (await stats(rpc)).values()] == [("a", False), ("b", False)]
        await push(rpc, job("ok", "b"))
        listed = await invoke("-c", str(path), "jobs", "--list")
        row = next(line for line in listed.output.splitlines() if " b " in line)
        assert listed.exit_code == 0 and "paused" in row and "memory" in row and " 1 " in row and " 4 " in row
        shown = await invoke("-c", str(path), "workers", "jobs")
        assert shown.exit_code == 0 and "jobs pipelines" in shown.output
        assert any(" b " in line and "paused" in line and " 1 " in line for line in shown.output.splitlines())
        as_json = json.loads((await invoke("-c", str(path), "workers", "jobs", "--json")).output)
        assert [(p["Pipeline"], p["Active"]) for p in as_json["jobs"]["pipelines"]] == [("a", 0), ("b", 1)]
        resumed = await invoke("-c", str(path), "jobs", "--resume", "b", "-s")
        assert (resumed.exit_code, resumed.output) == (0, "")
        await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=10)
        destroyed = await invoke("-c", str(path), "jobs", "--destroy", "a")
        assert destroyed.exit_code == 0 and " a " in destroyed.output
        assert list(await stats(rpc)) == ["b"]
        # what fails: one line each, the server's text, exit code 1; nothing else changed
        missing = await invoke("-c", str(path), "jobs", "--pause", "nope")
        assert missing.exit_code == 1
        assert missing.output.strip().splitlines() == [
            f"Error: {cfg['rpc']['listen']}: jobs.Pause: no such pipeline, requested: nope"
        ]
        bare = await invoke("-c", str(path), "jobs")
        assert bare.exit_code == 2 and "rr jobs --<destroy/resume/pause> pipe1,pipe2" in bare.output
        assert list(await stats(rpc)) == ["b"]


async def test_declare_at_run_time_consumes_after_resume(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        declare = pb.DeclareRequest(pipeline={"name": "dyn", "driver": "memory", "priority": "2", "prefetch": "5"})
        await call(rpc, "jobs.Declare", declare)
        with pytest.raises(RpcError) as err:
            await call(rpc, "jobs.Declare", declare)
        assert "pipeline already exists, name: dyn, driver: memory" in str(err.value)
        with pytest.raises(RpcError) as err:
            await call(rpc, "jobs.Declare", pb.DeclareRequest(pipeline={"name": "q", "driver": "sqs"}))
        assert "jobs.Declare: jobs.pipelines.q.driver: driver 'sqs' is not supported" in str(err.value)
        with pytest.raises(RpcError) as err:
            await call(rpc, "jobs.Declare", pb.DeclareRequest(pipeline={"name": "x", "driver": "memory", "prefetch": "a"}))
        assert str(err.value) == "jobs.Declare: jobs.pipelines.x.config.prefetch: expected an integer, got 'a'"
        await push(rpc, job("ok", "dyn"))
        row = (await stats(rpc))["dyn"]
        assert (row.ready, row.active, row.priority) == (False, 1, 2)  # declared, not in consume: waits
        await call(rpc, "jobs.Resume", pb.Pipelines(pipelines=["dyn"]))
        await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=10)
        gone = await call(rpc, "jobs.Destroy", pb.Pipelines(pipelines=["dyn"]), pb.Pipelines)
        assert list(gone.pipelines) == ["dyn"]
        assert (await call(rpc, "jobs.List", pb.Empty(), pb.Pipelines)).pipelines == []


async def test_informer_status_and_metrics_report_the_pipelines(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory", "config": {"priority": 7}}})
    cfg["status"] = {"address": f"127.0.0.1:{free_port()}"}
    cfg["metrics"] = {"address": f"127.0.0.1:{free_port()}"}
    async with running_host(cfg) as host, await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, job("ok", "p"), job("fail", "p"))
        with pytest.raises(RpcError):
            await push(rpc, job("ok", "nope"))
        await eventually(lambda: len(tasks(tmp_path)) == 2, timeout=10)
        assert "jobs" in await rpc.call("informer.List", True)
        assert await rpc.call("informer.Jobs", "jobs") == [
            {"Pipeline": "p", "Driver": "memory", "Queue": "p", "Active": 0, "Delayed": 0, "Reserved": 0,
             "Ready": True, "Priority": 7, "ErrorMessage": ""}
        ]  # fmt: skip
        assert await rpc.call("informer.Jobs", "http") is None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{cfg['status']['address']}/jobs") as resp:
                assert resp.status == 200
                assert await resp.json(content_type=None) == [
                    {"pipeline": "p", "priority": 7, "ready": True, "queue": "p", "active": 0, "delayed": 0,
                     "reserved": 0, "driver": "memory", "error_message": ""}
                ]  # fmt: skip
            async with session.get(f"http://127.0.0.1:{plugin(host, 'metrics').port}/metrics") as resp:
                text = await resp.text()
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert values[("rr_jobs_push_ok", ())] == 2
    assert values[("rr_jobs_push_err", ())] == 0  # an unknown pipeline is refused before any push
    assert values[("rr_jobs_jobs_ok", ())] == 1
    assert values[("rr_jobs_jobs_err", ())] == 1
    assert values[("rr_jobs_requests_total", (("driver", "memory"), ("job", "p"), ("source", "batch")))] == 2
    assert values[("rr_jobs_push_latency_count", (("driver", "memory"), ("job", "p"), ("source", "batch")))] == 2
    assert values[("rr_jobs_total_workers", ())] == 1
