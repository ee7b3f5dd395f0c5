"""The jobs plugin end to end on each real broker (amqp, beanstalk, nats): a PHP producer pushes over
RPC, PHP consumers (tests/php/jobs_consumer.php) answer ack / fail / requeue / nack, a consumer killed
mid-task gets its task again, rr stopped with tasks in flight leaves them to the next start, and a
broker restart under a running rr is survived."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rrgrpc.goridge.rpc import RpcClient
from tests.helpers import eventually, running_host
from tests.integration.jobs_helpers import idle, job, jobs_config, jobs_errors, push, stats, tasks
from tests.integration.test_jobs_durable import _kill_mid_task
from tests.integration.test_jobs_php_producer import produce
from tests.jobs.broker_kit import broker_addr, pipeline_config, restartable

pytestmark = [pytest.mark.php, pytest.mark.timeout(120)]


@pytest.fixture(params=["amqp", "beanstalk", "nats"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def broker_config(tmp_path: Path, driver: str, config: dict[str, Any], **jobs: Any) -> dict[str, Any]:
    """An rr config consuming pipeline ``p`` on ``driver``'s broker (its top-level section set)."""
    cfg = jobs_config(tmp_path, {"p": {"driver": driver, "config": config}}, **jobs)
    cfg[driver] = {"addr": broker_addr(driver)}
    return cfg


async def test_php_producer_to_php_consumer(tmp_path: Path, driver: str) -> None:
    conf = pipeline_config(driver)
    cfg = broker_config(tmp_path, driver, conf)
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        pushed = await produce(cfg["rpc"]["listen"], "push", "p", "App\\Mail", '{"to":"x"}', "0", "3")
        batch = await produce(cfg["rpc"]["listen"], "batch", "p", "ok", "2")
        await eventually(lambda: len(tasks(tmp_path)) == 3, timeout=15)
        await eventually(lambda: idle(rpc), timeout=10)
        row = (await stats(rpc))["p"]
    first, *rest = tasks(tmp_path)
    assert (first["id"], first["job"], first["payload"], first["driver"], first["pipeline"]) == (
        pushed["id"], "App\\Mail", '{"to":"x"}', driver, "p")
    assert sorted(t["id"] for t in rest) == sorted(batch["ids"])
    assert sorted(t["headers"]["n"] for t in rest) == [["1"], ["2"]]
    assert (row.driver, row.ready) == (driver, True)


async def test_worker_answers_fail_requeue_nack_and_ack(tmp_path: Path, driver: str) -> None:
    cfg = broker_config(tmp_path, driver, pipeline_config(driver))
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, job("fail_once", "p"), job("requeue_once", "p"), job("fail", "p"), job("nack", "p"),
                   job("ok", "p"))
        await eventually(lambda: len(tasks(tmp_path)) == 7, timeout=20)
        await eventually(lambda: idle(rpc), timeout=10)
    seen = [(t["job"], (t["headers"] or {}).get("attempt")) for t in tasks(tmp_path)]
    # each answer settled its job once: the requeued ones ran again with their new header, no more
    assert sorted(seen, key=str) == sorted(
        [("fail_once", None), ("fail_once", ["1"]), ("requeue_once", None), ("requeue_once", ["1"]),
         ("fail", None), ("nack", None), ("ok", None)], key=str,
    )  # fmt: skip


async def test_a_consumer_killed_mid_task_gets_the_task_redelivered(tmp_path: Path, driver: str) -> None:
    cfg = broker_config(tmp_path, driver, pipeline_config(driver))
    with jobs_errors() as failures:
        await _kill_mid_task(tmp_path, cfg)
    [failure] = failures  # what failed: the first run, in one line naming the task and the worker's pid
    fields = vars(failure)  # the record's extra fields: the job id and the worker's error
    assert (failure.getMessage(), fields["id"]) == ("job processed with errors, requeued", tasks(tmp_path)[0]["id"])
    assert str(tasks(tmp_path)[0]["pid"]) in fields["error"]


async def test_stop_with_tasks_in_flight_leaves_them_to_the_next_start(tmp_path: Path, driver: str) -> None:
    conf = pipeline_config(driver)
    keep = {k: v for k, v in conf.items() if not k.startswith("delete_")}  # the broker keeps them meanwhile
    sent = [job("sleep", "p", b"0.4") for _ in range(4)]
    cfg = broker_config(tmp_path, driver, keep)
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, *sent)
        await eventually(lambda: (tmp_path / "tasks.log.busy").exists(), timeout=10)
    # rr stopped while one task ran and three waited: the running one finished, the rest went back
    first_run = [t["id"] for t in tasks(tmp_path)]
    assert 1 <= len(first_run) < 4
    cfg = broker_config(tmp_path, driver, conf)
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await eventually(lambda: len(tasks(tmp_path)) == 4, timeout=20)
        await eventually(lambda: idle(rpc), timeout=10)
    assert sorted(t["id"] for t in tasks(tmp_path)) == sorted(j.id for j in sent)  # each once: none lost


@pytest.mark.slow
async def test_broker_restart_while_rr_consumes(tmp_path: Path, driver: str) -> None:
    """The broker stops and starts under a running rr: the next push reaches it (the driver redialed)
    and is consumed; the job done before the restart is not run again."""
    async with restartable(driver, tmp_path / "broker") as (broker, stop, start):
        cfg = jobs_config(tmp_path, {"p": {"driver": driver, "config": pipeline_config(driver)}})
        cfg[driver] = broker
        async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
            first = job("ok", "p")
            await push(rpc, first)
            await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=15)
            await eventually(lambda: idle(rpc), timeout=10)
            await stop()
            await start()
            second = job("ok", "p")
            await push(rpc, second)
            await eventually(lambda: len(tasks(tmp_path)) == 2, timeout=30)
            await eventually(lambda: idle(rpc), timeout=10)
    assert [t["id"] for t in tasks(tmp_path)] == [first.id, second.id]
