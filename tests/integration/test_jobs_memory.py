"""The jobs plugin with the memory driver and real PHP consumers (tests/php/jobs_consumer.php)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrgrpc.goridge.rpc import RpcClient, RpcError
from rrgrpc.jobs import jobs_pb2 as pb
from tests.helpers import eventually, running_host
from tests.integration.jobs_helpers import call, idle, job, jobs_config, jobs_errors, push, stats, tasks

pytestmark = pytest.mark.php


async def test_pushed_jobs_reach_a_php_consumer_with_roadrunners_context(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"emails": {"driver": "memory", "config": {"priority": 3}}})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        sent = job("App\\Jobs\\Mail", "emails", b'{"to":"a@b"}', headers={"X-Tenant": ["7"]})
        await push(rpc, sent)
        await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=10)
        assert (await call(rpc, "jobs.List", pb.Empty(), pb.Pipelines)).pipelines == ["emails"]
        row = (await stats(rpc))["emails"]
    [task] = tasks(tmp_path)
    assert {k: task[k] for k in ("id", "job", "pipeline", "queue", "driver", "payload")} == {
        "id": sent.id, "job": "App\\Jobs\\Mail", "pipeline": "emails", "queue": "emails", "driver": "memory",
        "payload": '{"to":"a@b"}',
    }  # fmt: skip
    assert task["headers"]["X-Tenant"] == ["7"]
    assert (row.driver, row.ready, row.priority) == ("memory", True, 3)


async def test_priorities_order_the_queue_and_pause_holds_it(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await call(rpc, "jobs.Pause", pb.Pipelines(pipelines=["p"]))
        await push(rpc, *(job(f"j{prio}", "p", priority=prio) for prio in (5, 1, 3)))
        row = (await stats(rpc))["p"]
        assert (row.ready, row.active, tasks(tmp_path)) == (False, 3, [])
        await call(rpc, "jobs.Resume", pb.Pipelines(pipelines=["p"]))
        await eventually(lambda: len(tasks(tmp_path)) == 3, timeout=10)
    assert [t["job"] for t in tasks(tmp_path)] == ["j1", "j3", "j5"]


async def test_delay_holds_a_job_back_and_stat_counts_it(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, job("later", "p", delay=1))
        await push(rpc, job("now", "p"))
        assert (await stats(rpc))["p"].delayed == 1  # asked at once: a PHP run first could outlast the 1 s
        await eventually(lambda: len(tasks(tmp_path)) == 2, timeout=10)
    assert [t["job"] for t in tasks(tmp_path)] == ["now", "later"]


async def test_worker_answers_requeue_with_headers_and_fail_counts_once(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, job("fail_once", "p"), job("requeue_once", "p"), job("fail", "p"), job("nack", "p"))
        await eventually(lambda: len(tasks(tmp_path)) == 6, timeout=15)
        assert (await stats(rpc))["p"].active == 0
    seen = [(t["job"], (t["headers"] or {}).get("attempt")) for t in tasks(tmp_path)]
    assert sorted(seen, key=str) == sorted(
        [("fail_once", None), ("fail_once", ["1"]), ("requeue_once", None), ("requeue_once", ["1"]),
         ("fail", None), ("nack", None)], key=str,
    )  # fmt: skip


async def test_push_to_an_unknown_pipeline_is_refused_with_roadrunners_text(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        with pytest.raises(RpcError) as err:
            await push(rpc, job("x", "nope"))
        assert "no such pipeline, requested: nope" in str(err.value)
        with pytest.raises(RpcError) as err:
            await call(rpc, "jobs.Push", pb.PushRequest(job=pb.Job(job="x", options=pb.Options(pipeline="p"))))
        assert "empty ID field not allowed" in str(err.value)
        await push(rpc, job("ok", "p"))  # the endpoint still works
        await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=10)


async def test_auto_ack_takes_the_job_off_before_the_worker_runs_it(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, job("fail_once", "p", auto_ack=True), job("fail_once", "p"))
        await eventually(lambda: len(tasks(tmp_path)) == 3, timeout=10)
        await eventually(lambda: idle(rpc), timeout=10)
    # the auto-acked job ran once although its worker asked for a requeue; the other ran twice
    runs = [t["id"] for t in tasks(tmp_path)]
    assert sorted(runs.count(i) for i in set(runs)) == [1, 2]


async def test_prefetch_bounds_the_jobs_taken_from_a_pipeline(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory", "config": {"prefetch": 1}}}, workers=2)
    (tmp_path / "tasks.log.hold").touch()
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, job("hold", "p"), job("hold", "p"))
        await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=10)
        row = (await stats(rpc))["p"]
        assert (row.reserved, row.active, len(tasks(tmp_path))) == (1, 1, 1)  # a free worker waits
        (tmp_path / "tasks.log.hold").unlink()
        await eventually(lambda: len(tasks(tmp_path)) == 2, timeout=10)


async def test_a_worker_error_frame_is_logged_and_not_redelivered(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    with jobs_errors() as failures:
        async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
            sent = job("worker_error", "p")
            await push(rpc, sent, job("ok", "p"))
            await eventually(lambda: len(tasks(tmp_path)) == 2, timeout=10)
            await eventually(lambda: idle(rpc), timeout=10)
    assert sorted(t["job"] for t in tasks(tmp_path)) == ["ok", "worker_error"]  # each ran once
    [failure] = failures
    fields = vars(failure)  # the record's extra=
    assert (failure.getMessage(), fields["id"]) == ("job processed with errors, negatively acknowledged", sent.id)
    assert "boom" in fields["error"]


async def test_requeue_on_fail_requeues_a_worker_error(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory", "config": {"requeue_on_fail": True}}})
    with jobs_errors() as failures:
        async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
            await push(rpc, job("worker_error", "p"))
            await eventually(lambda: len(tasks(tmp_path)) >= 2, timeout=10)
            await call(rpc, "jobs.Pause", pb.Pipelines(pipelines=["p"]))
    assert {t["job"] for t in tasks(tmp_path)} == {"worker_error"}
    assert all(f.getMessage() == "job processed with errors, requeued" for f in failures) and len(failures) >= 2
