"""Pool modes beyond the static pool: debug (a worker per request) and the dynamic allocator."""

from __future__ import annotations

import asyncio

import pytest

from rrgrpc.config.schema import DynamicAllocatorConfig, PoolConfig, ServerConfig, SupervisorConfig
from rrgrpc.errors import NoFreeWorkers
from rrgrpc.pool import Payload, open_pool
from tests.helpers import eventually, php_cmd, section

pytestmark = pytest.mark.php


async def test_debug_mode_spawns_a_fresh_worker_per_request() -> None:
    cfg = section(PoolConfig, num_workers=4, debug=True, allocate_timeout=10.0)
    async with open_pool("http", cfg, section(ServerConfig, command=php_cmd("pid.php")), mode="http") as pool:
        assert pool.workers() == []
        replies = [await pool.exec(Payload(b"", b"x")) for _ in range(3)]
        assert len({r.body for r in replies}) == 3 and all(r.body.endswith(b":1") for r in replies)
        await eventually(lambda: pool.workers() == [])
        await pool.add_worker()  # a no-op in debug mode, as in RoadRunner
        assert pool.workers() == []


async def test_dynamic_allocator_grows_on_no_free_workers_and_shrinks_when_idle() -> None:
    cfg = section(PoolConfig, 
        num_workers=1, allocate_timeout=0.2,
        supervisor=section(SupervisorConfig, watch_tick=0.05),
        dynamic_allocator=section(DynamicAllocatorConfig, max_workers=2, spawn_rate=2, idle_timeout=1.0),
    )
    async with open_pool("http", cfg, section(ServerConfig, command=php_cmd("sleep.php")), mode="http") as pool:
        busy = asyncio.create_task(pool.exec(Payload(b"", b"3000")))  # busy well past the 0.2 s wait below even on a loaded box
        await eventually(lambda: pool.activity().busy)
        with pytest.raises(NoFreeWorkers):  # the request that hits the limit still fails
            await pool.exec(Payload(b"", b"1"))
        await eventually(lambda: sum(s.status_str == "ready" for s in pool.workers()) == 2)
        assert pool.size == 3
        assert (await pool.exec(Payload(b"", b"1"))).body.isdigit()  # served by an extra worker
        await busy
        await eventually(lambda: pool.size == 1 and len([s for s in pool.workers() if s.status_str == "ready"]) == 1, timeout=10)
