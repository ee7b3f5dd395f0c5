"""The pool against real PHP worker processes: exec, errors, crashes, limits, recycling, reset."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from rrgrpc.config.schema import ServerConfig
from rrgrpc.errors import (
    BootError,
    ExecTTLExceeded,
    NoFreeWorkers,
    QueueFull,
    RequestDropped,
    WorkerError,
    WorkerLost,
)
from rrgrpc.goridge.frame import Flag
from rrgrpc.pool import Payload, open_pool
from rrgrpc.pool.state import WorkerState
from tests.helpers import (
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
event_loop_policy = stock_and_uvloop  # every test here runs on both loops
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running


def server(script: str, *args: str, relay: str = "pipes", **env: str) -> ServerConfig:
    return section(ServerConfig, command=php_cmd(script, *args), relay=relay, env=env)


def replaced(caplog: pytest.LogCaptureFixture) -> dict[int, str]:
    """pid -> why that worker left the pool, from the pool's "leaves the pool" debug lines."""
    return {r.__dict__["pid"]: r.__dict__["reason"] for r in caplog.records if r.msg == "worker %d leaves the pool: %s"}


async def test_echo_roundtrip_and_env() -> None:
    async with open_pool("grpc", pool_cfg(2), server("echo.php"), mode="grpc", env={"extra": "1"}) as pool:
        reply = await pool.exec(Payload(b'{"a":1}', b"body", Flag.CODEC_JSON))
        assert (reply.context, reply.body) == (b'{"a":1}', b"body")
        states = pool.workers()
        assert len(states) == 2 and all(s.status_str == "ready" for s in states)
        assert sum(s.num_execs for s in states) == 1
        assert pool.env["RR_MODE"] == "grpc" and pool.env["RR_RELAY"] == "pipes" and pool.env["EXTRA"] == "1"


@pytest.mark.parametrize("relay", ["tcp", "unix"])
async def test_socket_relays(relay: str, tmp_path: Path) -> None:
    if relay == "unix":
        relay = f"unix://{tmp_path}/rr.sock"
    else:
        relay = f"tcp://127.0.0.1:{free_port()}"
    async with open_pool("http", pool_cfg(2), server("pid.php", relay=relay), mode="http") as pool:
        replies = await asyncio.gather(*(pool.exec(Payload(b"", b"x")) for _ in range(6)))
        pids = {r.body.split(b":")[0] for r in replies}
        assert pids <= {str(s.pid).encode() for s in pool.workers()}


async def test_soft_error_keeps_worker() -> None:
    async with open_pool("grpc", pool_cfg(1), server("error.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        with pytest.raises(WorkerError, match="boom: hi"):
            await pool.exec(Payload(b"", b"hi"))
        assert [s.pid for s in pool.workers()] == [pid]


async def test_crash_mid_request_is_reported_and_replaced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    async with open_pool("grpc", pool_cfg(2), server("crash.php"), mode="grpc") as pool:
        before = {s.pid for s in pool.workers()}
        with pytest.raises(WorkerLost, match="exited with code 3"):
            async with asyncio.timeout(1):
                await pool.exec(Payload(b"", b"x"))
        await eventually(lambda: len(pool.workers()) == 2 and {s.pid for s in pool.workers()} != before)
        assert all(s.status_str == "ready" for s in pool.workers())
        gone = before - {s.pid for s in pool.workers()}
        assert len(gone) == 1 and replaced(caplog) == dict.fromkeys(gone, "errored")


async def test_exec_ttl_kills_hung_worker(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    cfg = pool_cfg(1, supervisor={"exec_ttl": 0.3})
    async with open_pool("grpc", cfg, server("hang.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        with pytest.raises(ExecTTLExceeded):
            await pool.exec(Payload(b"", b"x"))
        await eventually(lambda: [s.pid for s in pool.workers() if s.status_str == "ready"] not in ([], [pid]))
        assert replaced(caplog) == {pid: "exec_ttl_reached"}


async def test_leaking_worker_recycled_at_max_memory(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    cfg = pool_cfg(1, supervisor={"max_worker_memory": 40})
    async with open_pool("grpc", cfg, server("leak.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        for _ in range(6):
            await pool.exec(Payload(b"", b"x"))
        await eventually(lambda: pool.workers() and pool.workers()[0].pid != pid, timeout=10)
        assert replaced(caplog)[pid] == "max_memory_reached"


@pytest.mark.parametrize(("key", "reason"), [("idle_ttl", "idle_ttl_reached"), ("ttl", "ttl_reached")])
async def test_idle_ttl_and_ttl_replace_workers(caplog: pytest.LogCaptureFixture, key: str, reason: str) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    cfg = pool_cfg(1, supervisor={key: 0.3})
    async with open_pool("grpc", cfg, server("echo.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        await eventually(lambda: [s.pid for s in pool.workers() if s.status_str == "ready"] not in ([], [pid]))
        assert replaced(caplog)[pid] == reason


async def test_garbage_on_stdout_fails_boot_with_clear_error() -> None:
    with pytest.raises(BootError, match="wrote text to stdout"):
        async with open_pool("grpc", pool_cfg(1), server("garbage.php"), mode="grpc"):
            pass


async def test_missing_script_fails_boot_naming_the_cause() -> None:
    with pytest.raises(BootError, match="Could not open input file"):
        async with open_pool("grpc", pool_cfg(1), server("does-not-exist.php"), mode="grpc"):
            pass


async def test_no_respawn_storm_after_repeated_boot_failures(tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    script = tmp_path / "flaky.php"
    script.write_text(
        "<?php\nif (file_exists({!r})) {{ fwrite(STDERR, \"broken on purpose\\n\"); exit(7); }}\n"
        "require {!r};\n$w = RRGrpc\\Worker\\Worker::create();\n"
        "while (($r = $w->waitPayload()) !== null) {{ exit(1); }}\n".format(str(flag), str(ROOT / "php" / "autoload.php"))
    )
    with pytest.raises(BootError, match="broken on purpose"):
        async with open_pool("grpc", pool_cfg(1), section(ServerConfig, command=php_cmd(str(script))), mode="grpc") as pool:
            flag.write_text("1")
            with pytest.raises(WorkerLost):
                await pool.exec(Payload(b"", b"x"))
            async with asyncio.timeout(10):
                await asyncio.Event().wait()  # the failing pool ends this block with its cause


async def test_slow_boot_within_allocate_timeout() -> None:
    async with open_pool("grpc", pool_cfg(1, allocate_timeout=5.0), server("slowboot.php", "400"), mode="grpc") as pool:
        assert (await pool.exec(Payload(b"c", b"b"))).body == b"b"


async def test_slow_boot_beyond_allocate_timeout_fails() -> None:
    with pytest.raises(BootError, match="allocate_timeout"):
        async with open_pool("grpc", pool_cfg(1, allocate_timeout=0.2), server("slowboot.php", "3000"), mode="grpc"):
            pass


async def test_max_jobs_recycling_under_load_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    async with open_pool("grpc", pool_cfg(2, max_jobs=3), server("pid.php"), mode="grpc") as pool:
        replies = await asyncio.gather(*(pool.exec(Payload(b"", b"x")) for _ in range(40)))
        assert len(replies) == 40
        pids = {int(r.body.split(b":")[0]) for r in replies}
        assert len(pids) >= 40 // 4  # each worker serves at most 3 + jitter (< 15%) requests
        live = {s.pid for s in pool.workers() if s.status_str == "ready"}
        await eventually(lambda: set(replaced(caplog)) >= pids - live)
        assert set(replaced(caplog).values()) == {"max_jobs_reached"}


async def test_stop_request_reruns_on_another_worker(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    async with open_pool("grpc", pool_cfg(2), server("stop.php", RR_STOP_EVERY="3"), mode="grpc") as pool:
        replies = await asyncio.gather(*(pool.exec(Payload(b"c", b"x")) for _ in range(10)))
        assert all(r.body == b"x" for r in replies)
        assert replaced(caplog) and set(replaced(caplog).values()) == {"stop_requested"}


async def test_no_free_workers_and_queue_full() -> None:
    async with open_pool("grpc", pool_cfg(1, allocate_timeout=0.2), server("sleep.php"), mode="grpc") as pool:
        slow = asyncio.create_task(pool.exec(Payload(b"", b"2500")))  # the only worker, busy well past the 0.2 s wait below even on a loaded box
        await eventually(lambda: pool.activity().busy)
        with pytest.raises(NoFreeWorkers):
            await pool.exec(Payload(b"", b"1"))
        await slow
    async with open_pool("grpc", pool_cfg(1, max_queue_size=1), server("sleep.php"), mode="grpc") as pool:
        slow = asyncio.create_task(pool.exec(Payload(b"", b"2500")))  # still busy while one queues and one is refused, even loaded
        await eventually(lambda: pool.activity().busy)
        queued = asyncio.create_task(pool.exec(Payload(b"", b"1")))
        await eventually(lambda: pool.activity().queue == 1)
        with pytest.raises(QueueFull):
            await pool.exec(Payload(b"", b"1"))
        await asyncio.gather(slow, queued)


async def test_cancelled_caller_does_not_strand_the_worker() -> None:
    async with open_pool("grpc", pool_cfg(1), server("sleep.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        with pytest.raises(TimeoutError):
            await pool.exec(Payload(b"", b"300"), timeout=0.05)
        reply = await pool.exec(Payload(b"", b"1"), timeout=5)
        assert reply.body == str(pid).encode()
        assert pool.workers()[0].num_execs == 2


async def test_a_queued_request_whose_client_left_is_dropped_when_a_worker_frees() -> None:
    """The worker given back starts the waiting requests itself: one whose client went away while it
    waited is dropped (never runs) and the same worker serves the request behind it."""
    async with open_pool("grpc", pool_cfg(1), server("sleep.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        slow = asyncio.create_task(pool.exec(Payload(b"", b"300")))
        await eventually(lambda: pool.activity().busy)
        gone = False
        left = asyncio.create_task(pool.exec(Payload(b"", b"1"), alive=lambda: not gone))
        behind = asyncio.create_task(pool.exec(Payload(b"", b"1"), alive=lambda: True))
        await eventually(lambda: pool.activity().queue == 2)
        gone = True
        with pytest.raises(RequestDropped):
            await left
        assert (await slow).body == (await behind).body == str(pid).encode()
        assert pool.workers()[0].num_execs == 2 and pool.activity().dropped == 1


async def test_reset_replaces_all_workers_under_load(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "rr.grpc")
    async with open_pool("grpc", pool_cfg(3), server("sleep.php"), mode="grpc") as pool:
        before = {s.pid for s in pool.workers()}
        stop = asyncio.Event()
        served = 0

        async def load() -> None:
            nonlocal served
            while not stop.is_set():
                await pool.exec(Payload(b"", b"5"), timeout=10)
                served += 1

        loaders = [asyncio.create_task(load()) for _ in range(4)]
        await eventually(lambda: served > 5)
        await pool.reset()
        n = served
        await eventually(lambda: served > n + 5)
        stop.set()
        await asyncio.gather(*loaders)  # any failed request raises here
        after = {s.pid for s in pool.workers()}
        assert len(after) == 3 and not after & before
        assert replaced(caplog) == dict.fromkeys(before, "reset")


async def test_stderr_lines_logged_with_pid(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rr.server")
    async with open_pool("grpc", pool_cfg(1), server("stderr.php"), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        await pool.exec(Payload(b"", b"x"))
        await eventually(lambda: any(getattr(r, "pid", None) == pid for r in caplog.records))


async def test_add_and_remove_worker() -> None:
    async with open_pool("grpc", pool_cfg(1), server("echo.php"), mode="grpc") as pool:
        await pool.add_worker()
        assert len(pool.workers()) == 2
        await pool.remove_worker()
        await eventually(lambda: len(pool.workers()) == 1)
        await pool.remove_worker()  # the last worker stays
        assert len(pool.workers()) == 1 and pool.workers()[0].status == WorkerState.READY


async def test_streamed_reply_with_ping_pong() -> None:
    async with open_pool("http", pool_cfg(1), server("stream.php"), mode="http") as pool:
        async with pool.stream(Payload(b"", b"12")) as frames:
            chunks = [f async for f in frames]
        assert [c.body for c in chunks] == [b"chunk %d" % i for i in range(1, 13)]
        async with pool.stream(Payload(b"", b"1000:5")) as frames:
            first = await anext(frames)  # then the client goes away: the pool sends STOP and drains
        assert first.body == b"chunk 1"
        await eventually(lambda: pool.workers()[0].status_str == "ready")
        assert (await pool.exec(Payload(b"", b"1"))).body == b"chunk 1"


def test_worker_env_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from rrgrpc.pool.spawn import worker_env

    monkeypatch.setenv("RRGRPC_TEST_ENV", "from-rr")
    env = worker_env(section(ServerConfig, command=["x"], env={"RR_MODE": "nope", "app": "1"}), "grpc", {"k": "v"}, "tcp://127.0.0.1:6001")
    assert env["RRGRPC_TEST_ENV"] == "from-rr" and env["APP"] == "1" and env["K"] == "v"
    assert env["RR_MODE"] == "grpc" and env["RR_RPC"] == "tcp://127.0.0.1:6001" and env["RR_RELAY"] == "pipes"
