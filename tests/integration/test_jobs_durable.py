"""Nothing is lost: a consumer killed mid-task, rr stopped with tasks in flight, boltdb across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from rrgrpc.goridge.rpc import RpcClient
from tests.helpers import ROOT, eventually, running_host
from tests.integration.jobs_helpers import idle, job, jobs_config, jobs_errors, push, stats, tasks

pytestmark = pytest.mark.php


def pipeline(driver: str, tmp_path: Path) -> dict[str, Any]:
    config = {"file": str(tmp_path / "queue.db")} if driver == "boltdb" else {}
    return {"driver": driver, "config": config}


@pytest.mark.parametrize("driver", ["memory", "boltdb"])
async def test_a_consumer_killed_mid_task_gets_the_task_redelivered(tmp_path: Path, driver: str) -> None:
    cfg = jobs_config(tmp_path, {"p": pipeline(driver, tmp_path)})
    with jobs_errors() as failures:
        await _kill_mid_task(tmp_path, cfg)
    # what was sent: one task; what failed: its first run, in one line naming the task and the worker
    [failure] = failures
    fields = vars(failure)  # the record's extra=
    assert (failure.getMessage(), fields["id"]) == ("job processed with errors, requeued", tasks(tmp_path)[0]["id"])
    assert str(tasks(tmp_path)[0]["pid"]) in fields["error"]


async def _kill_mid_task(tmp_path: Path, cfg: dict[str, Any]) -> None:
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        (tmp_path / "tasks.log.hold").touch()  # the task runs until the file goes away
        sent = job("hold", "p")
        await push(rpc, sent)
        await eventually(lambda: (tmp_path / "tasks.log.busy").exists(), timeout=10)
        victim = tasks(tmp_path)[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        # the pool replaces the worker and the task comes back to the new one
        await eventually(lambda: len(tasks(tmp_path)) == 2, timeout=15)
        again = tasks(tmp_path)[1]
        assert (again["id"], again["job"]) == (sent.id, "hold")
        assert again["pid"] != victim
        assert (await stats(rpc))["p"].reserved == 1  # the redelivered task is running, not lost
        (tmp_path / "tasks.log.hold").unlink()
        await eventually(lambda: idle(rpc), timeout=10)
    assert len(tasks(tmp_path)) == 2  # ran once more, and only once


async def test_boltdb_stop_with_tasks_in_flight_keeps_them_for_the_next_start(tmp_path: Path) -> None:
    pipes = {"p": pipeline("boltdb", tmp_path)}
    cfg = jobs_config(tmp_path, pipes)
    sent = [job("sleep", "p", b"0.4") for _ in range(4)]
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, *sent)
        await eventually(lambda: (tmp_path / "tasks.log.busy").exists(), timeout=10)
    # rr stopped while one task ran and three waited: the running one finished, the rest went back
    first_run = [t["id"] for t in tasks(tmp_path)]
    assert 1 <= len(first_run) < 4
    cfg = jobs_config(tmp_path, pipes)
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await eventually(lambda: len(tasks(tmp_path)) == 4, timeout=15)
        await eventually(lambda: idle(rpc), timeout=5)
    assert sorted(t["id"] for t in tasks(tmp_path)) == sorted(j.id for j in sent)  # each once: none lost


async def test_boltdb_jobs_pushed_before_a_restart_are_consumed_after_it(tmp_path: Path) -> None:
    pipes = {"p": pipeline("boltdb", tmp_path)}
    cfg = jobs_config(tmp_path, pipes)
    cfg["jobs"]["consume"] = []  # push only
    sent = [job("ok", "p", priority=prio) for prio in (3, 1, 2)]
    async with running_host(cfg), await RpcClient.connect(cfg["rpc"]["listen"]) as rpc:
        await push(rpc, *sent)
        row = (await stats(rpc))["p"]
        assert (row.ready, row.active) == (False, 3)
    cfg = jobs_config(tmp_path, pipes)
    async with running_host(cfg):
        await eventually(lambda: len(tasks(tmp_path)) == 3, timeout=15)
    assert [t["id"] for t in tasks(tmp_path)] == [sent[1].id, sent[2].id, sent[0].id]


async def test_boltdb_keeps_every_job_when_rr_itself_is_killed(tmp_path: Path) -> None:
    """SIGKILL of rr with a task running and others taken: the next rr runs all of them."""
    cfg = jobs_config(tmp_path, {"p": pipeline("boltdb", tmp_path)})
    (tmp_path / ".rr.yaml").write_text(json.dumps(cfg))
    (tmp_path / "tasks.log.hold").touch()
    sent = [job("hold", "p"), job("ok", "p"), job("ok", "p")]
    rr = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(tmp_path / ".rr.yaml"), "serve", cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        rpc = await eventually(lambda: _connect(cfg["rpc"]["listen"]), timeout=30, interval=0.1)
        async with rpc:
            await push(rpc, *sent)
            await eventually(lambda: (tmp_path / "tasks.log.busy").exists(), timeout=10)
    finally:
        rr.kill()
        await rr.wait()
        (tmp_path / "tasks.log.hold").unlink()  # lets the orphaned PHP worker finish and exit
    assert [t["id"] for t in tasks(tmp_path)] == [sent[0].id]  # only the held one had started
    async with running_host(jobs_config(tmp_path, {"p": pipeline("boltdb", tmp_path)})) as _:
        await eventually(lambda: len(tasks(tmp_path)) == 4, timeout=15)
    assert sorted(t["id"] for t in tasks(tmp_path)) == sorted([sent[0].id, *(j.id for j in sent)])


async def _connect(address: str) -> RpcClient | None:
    try:
        return await RpcClient.connect(address)
    except OSError:
        return None
