"""The PHP kit's consumer speaks the verified wire: a task frame in, the bytes of the real
spiral/roadrunner-jobs answers out (PROTOCOL.md §8a.2), over a real pool and a real PHP worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrgrpc.config.schema import PoolConfig, ServerConfig
from rrgrpc.pool import Payload, open_pool
from tests.helpers import php_cmd, section

pytestmark = pytest.mark.php


def context(name: str, headers: dict[str, list[str]] | None = None) -> bytes:
    ctx = {"id": "id-1", "job": name, "driver": "memory", "queue": "q", "pipeline": "p", "headers": headers or {}}
    return json.dumps(ctx).encode()


async def test_php_consumer_answers_with_the_real_librarys_bytes(tmp_path: Path) -> None:
    server = section(ServerConfig, command=php_cmd("jobs_consumer.php"), env={"JOBS_LOG": str(tmp_path / "log")})
    async with open_pool("jobs", section(PoolConfig, num_workers=1, allocate_timeout=10.0), server, mode="jobs") as pool:
        ok = await pool.exec(Payload(context=context("ok"), body=b"x"))
        failed = await pool.exec(Payload(context=context("fail_once"), body=b"x"))
        plain = await pool.exec(Payload(context=context("fail"), body=b"x"))
        nacked = await pool.exec(Payload(context=context("nack"), body=b"x"))
        requeued = await pool.exec(Payload(context=context("requeue_once"), body=b"x"))
    assert ok.body == b'{"type":0,"data":[]}'
    # the verified fail($e, true) bytes, plus the header the script adds (sent when headers are set)
    assert failed.body == (
        b'{"type":1,"data":{"message":"first attempt fails","requeue":true,"delay_seconds":0,'
        b'"headers":{"attempt":["1"]}}}'
    )
    assert plain.body == b'{"type":1,"data":{"message":"always fails","requeue":false,"delay_seconds":0}}'
    assert nacked.body == b'{"type":3,"data":{"message":"no","requeue":false,"delay_seconds":0}}'
    assert requeued.body == b'{"type":4,"data":{"message":"again","delay_seconds":1,"headers":{"attempt":["1"]}}}'
    assert ok.context == failed.context == b""
