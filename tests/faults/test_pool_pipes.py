"""What a worker process gets from rr: real pipes (so PHP socket timeouts never apply), no other
descriptor, and an exit that is seen with or without pidfd.

Run on the stock loop and on uvloop (what ``rr serve`` uses): uvloop's own subprocess support
gives children socketpairs and leaks descriptors, which is why workers are spawned by the pool.
"""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from rrgrpc.config.schema import ServerConfig
from rrgrpc.errors import WorkerLost
from rrgrpc.goridge.frame import Flag
from rrgrpc.pool import Payload, open_pool
from tests.helpers import (
    PHP,
    ROOT,
    eventually,
    free_port,
    no_leftover_workers_fixture,
    php_cmd,
    pool_cfg,
    section,
    stock_and_uvloop,
)

pytestmark = pytest.mark.php
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running
event_loop_policy = stock_and_uvloop  # every test here runs on both loops

async def test_idle_workers_outlive_php_default_socket_timeout() -> None:
    """PHP's default_socket_timeout (here 1 s) never ends a worker blocked waiting for a request."""
    command = [PHP or "php", "-d", "default_socket_timeout=1", *php_cmd("echo.php")[1:]]
    async with open_pool("grpc", pool_cfg(2), section(ServerConfig, command=command), mode="grpc") as pool:
        before = sorted(s.pid for s in pool.workers())
        for pid in before:
            for fd in (0, 1):
                assert stat.S_ISFIFO(os.stat(f"/proc/{pid}/fd/{fd}").st_mode), f"worker {pid} fd {fd} is not a pipe"
        await asyncio.sleep(3)  # three socket timeouts' worth of idleness
        assert sorted(s.pid for s in pool.workers()) == before
        assert all(s.status_str == "ready" for s in pool.workers())
        reply = await pool.exec(Payload(b"{}", b"still here", Flag.CODEC_JSON), timeout=10)
        assert reply.body == b"still here"
        assert sorted(s.pid for s in pool.workers()) == before


def _foreign_fds(pid: int, relay_socket: bool) -> dict[int, str]:
    """The worker's descriptors beyond 0-2 that PHP did not open itself (its script, the relay)."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        fd = int(name)
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if fd <= 2 or target.startswith(str(ROOT)) or (relay_socket and target.startswith("socket:")):
            continue
        out[fd] = target
    return out


@pytest.mark.parametrize("relay", ["pipes", "tcp"])
async def test_workers_inherit_no_descriptor_of_rr(relay: str) -> None:
    address = "pipes" if relay == "pipes" else f"tcp://127.0.0.1:{free_port()}"
    r, w = os.pipe()
    os.set_inheritable(r, True)  # a descriptor rr holds without CLOEXEC (as C libraries leave them)
    os.set_inheritable(w, True)
    try:
        server = section(ServerConfig, command=php_cmd("echo.php"), relay=address)
        async with open_pool("grpc", pool_cfg(2), server, mode="grpc") as pool:
            await pool.exec(Payload(b"{}", b"x", Flag.CODEC_JSON), timeout=10)
            for s in pool.workers():
                assert _foreign_fds(s.pid, relay != "pipes") == {}, f"worker {s.pid}"
                assert sorted(int(n) for n in os.listdir(f"/proc/{s.pid}/fd"))[:3] == [0, 1, 2]
    finally:
        os.close(r)
        os.close(w)


async def test_exits_are_seen_without_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where os.pidfd_open does not exist (macOS), a waiting thread reports the exit: a crash
    mid-request still fails with the exit code and the worker is replaced."""
    monkeypatch.delattr(os, "pidfd_open")
    async with open_pool("grpc", pool_cfg(1), section(ServerConfig, command=php_cmd("crash.php")), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        with pytest.raises(WorkerLost, match=f"worker {pid} exited with code 3 mid-request"):
            await pool.exec(Payload(b"{}", b"x", Flag.CODEC_JSON), timeout=10)
        await eventually(lambda: [(s.pid != pid, s.status_str) for s in pool.workers()] == [(True, "ready")])
