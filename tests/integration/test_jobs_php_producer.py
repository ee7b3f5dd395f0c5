"""The PHP kit's producer (php/src/Jobs: Jobs, Queue, Options) against a real server and PHP consumers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually, php_cmd, running_host
from tests.integration.jobs_helpers import jobs_config, tasks

pytestmark = pytest.mark.php


async def produce(address: str, *args: str, code: int = 0) -> Any:
    proc = await asyncio.create_subprocess_exec(
        *php_cmd("jobs_producer.php", address, *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == code, (out + err).decode()
    return json.loads(out)


async def test_php_push_batch_delay_and_priority_reach_the_consumer(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    address = cfg["rpc"]["listen"]
    async with running_host(cfg):
        pushed = await produce(address, "push", "p", "App\\Mail", '{"to":"x"}')
        await eventually(lambda: len(tasks(tmp_path)) == 1, timeout=10)
        assert (await produce(address, "pause", "p")) == {"paused": True}
        later = await produce(address, "push", "p", "later", "", "1", "1")
        batch = await produce(address, "batch", "p", "ok", "2")
        assert (await produce(address, "list")) == {"p": {"driver": "memory", "ready": False, "active": 2}}
        assert (await produce(address, "resume", "p")) == {"paused": False}
        await eventually(lambda: len(tasks(tmp_path)) == 4, timeout=10)
    first, *rest = tasks(tmp_path)
    assert (first["id"], first["job"], first["payload"]) == (pushed["id"], "App\\Mail", '{"to":"x"}')
    # the delayed job (priority 1) comes after the batch, which was ready at once
    assert [t["id"] for t in rest] == [*batch["ids"], later["id"]]
    assert [t["headers"]["n"] for t in rest[:2]] == [["1"], ["2"]]


async def test_php_declare_destroy_and_the_servers_refusal(tmp_path: Path) -> None:
    cfg = jobs_config(tmp_path, {"p": {"driver": "memory"}})
    address = cfg["rpc"]["listen"]
    async with running_host(cfg):
        assert (await produce(address, "declare", "dyn", "memory")) == {"pipelines": ["dyn", "p"]}
        assert (await produce(address, "destroy", "dyn")) == {"destroyed": ["dyn"]}
        refused = await produce(address, "push", "dyn", "x", "", code=3)
        # spiral/goridge's ServiceException text, which spiral/roadrunner-jobs passes on unchanged
        assert refused == {"error": f"Error 'no such pipeline, requested: dyn' on {address}"}
        again = await produce(address, "declare", "q", "kafka", code=3)
        assert "driver 'kafka' is not supported (a RoadRunner driver rrgrpc does not implement)" in again["error"]
        assert tasks(tmp_path) == []  # nothing was consumed by mistake
