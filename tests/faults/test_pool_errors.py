"""Workers that fail in telling ways: each failure gives one clear line (pid, exit code, cause), never a repr.

Pool-level, against real PHP processes, on the stock loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from rrgrpc.config.schema import ServerConfig
from rrgrpc.errors import BootError, RequestDropped, WorkerLost
from rrgrpc.goridge.frame import Flag
from rrgrpc.pool import Payload, open_pool
from tests.helpers import (
    PHP,
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


def ping(text: str) -> Payload:
    return Payload(b"{}", text.encode(), Flag.CODEC_JSON)


def assert_one_clear_line(text: str) -> None:
    assert "\n" not in text and "Traceback" not in text and "Transport" not in text and " object at 0x" not in text, text


async def test_boot_failure_shows_the_php_fatal_line(tmp_path: Path) -> None:
    """An uncaught exception at boot: the error carries PHP's fatal line, even under a long stack trace."""
    script = tmp_path / "worker.php"
    calls = "".join(f"function f{i}() {{ f{i + 1}(); }}\n" for i in range(8))
    script.write_text(f"<?php\n{calls}function f8() {{ throw new Exception('boom'); }}\nf0();\n")
    with pytest.raises(BootError) as err:
        async with open_pool("grpc", pool_cfg(1), section(ServerConfig, command=[PHP or "php", str(script)]), mode="grpc"):
            pass
    text = str(err.value)
    assert f"PHP Fatal error:  Uncaught Exception: boom in {script}:10" in text
    assert "exited with code 255" in text
    assert_one_clear_line(text)


async def test_worker_dying_in_the_handshake_gives_one_clear_line() -> None:
    """A worker that exits at once, racing the pid handshake: a BootError naming the exit code, every time."""
    for _ in range(8):
        with pytest.raises(BootError) as err:
            cmd = [PHP or "php", "-r", 'fwrite(STDERR, "bye\\n"); exit(7);']
            async with open_pool("grpc", pool_cfg(1), section(ServerConfig, command=cmd), mode="grpc"):
                pass
        assert "exited with code 7" in str(err.value) and "bye" in str(err.value)
        assert_one_clear_line(str(err.value))


async def test_text_on_stdout_mid_request_fails_it_at_once() -> None:
    """A worker prints to stdout mid-request (then sleeps 30 s): that request fails at once, naming the
    worker and the text, the worker is replaced, and the next request is served."""
    async with open_pool("http", pool_cfg(1), section(ServerConfig, command=php_cmd("fault.php")), mode="grpc") as pool:
        pid = pool.workers()[0].pid
        with pytest.raises(WorkerLost) as err:
            await pool.exec(ping("print-now"), timeout=10)  # well before PHP's 30 s sleep ends
        text = str(err.value)
        assert f"worker {pid} wrote text to stdout" in text and "debug output from PHP" in text
        assert_one_clear_line(text)
        reply = await pool.exec(ping("next"), timeout=10)
        assert reply.body == b"next"
        await eventually(lambda: [(s.pid != pid, s.status_str) for s in pool.workers()] == [(True, "ready")])


async def test_reset_kills_a_hung_idle_worker_and_completes(caplog: pytest.LogCaptureFixture) -> None:
    """rr reset with one SIGSTOPped idle worker: killed after destroy_timeout, the reset completes."""
    cfg = pool_cfg(2, destroy_timeout=1.0, reset_timeout=20.0)
    async with open_pool("grpc", cfg, section(ServerConfig, command=php_cmd("fault.php")), mode="grpc") as pool:
        old = {s.pid for s in pool.workers()}
        hung = min(old)
        os.kill(hung, signal.SIGSTOP)
        try:
            with caplog.at_level(logging.WARNING):
                await pool.reset()
        finally:
            if hung in {s.pid for s in pool.workers()}:
                os.kill(hung, signal.SIGCONT)
        states = pool.workers()
        assert len(states) == 2 and not old & {s.pid for s in states}
        assert all(s.status_str == "ready" for s in states)
        assert f"worker {hung} did not stop within 1s, killing it" in caplog.text
        assert (await pool.exec(ping("after"), timeout=10)).body == b"after"


async def test_reset_kills_a_hung_busy_worker_after_reset_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A worker SIGSTOPped mid-request never finishes it: reset_timeout kills it (by pid) and the reset
    completes; its request fails naming the signal; nothing else fails."""
    cfg = pool_cfg(2, destroy_timeout=1.0, reset_timeout=3.0)  # room to start 2 workers on a busy machine
    async with open_pool("grpc", cfg, section(ServerConfig, command=php_cmd("fault.php")), mode="grpc") as pool:
        # 2 s: still running when the SIGSTOP lands even on a loaded box, yet within reset_timeout,
        # so only the stop makes the reset kill it; no slower, the kill comes at reset_timeout anyway
        stuck = asyncio.create_task(pool.exec(ping("sleep:2000 stuck"), timeout=20))
        busy = await eventually(lambda: [s.pid for s in pool.workers() if s.status_str == "working"])
        os.kill(busy[0], signal.SIGSTOP)
        with caplog.at_level(logging.WARNING):
            await pool.reset()
        with pytest.raises(WorkerLost) as err:
            await stuck
        assert str(err.value) == f"worker {busy[0]} was killed by SIGKILL mid-request"
        assert f"reset: worker {busy[0]} (invalid) did not stop within reset_timeout (3s); killing it" in caplog.text
        await eventually(lambda: len(pool.workers()) == 2 and busy[0] not in {s.pid for s in pool.workers()})
        assert (await pool.exec(ping("after"), timeout=10)).body == b"after"


async def test_socket_relay_worker_exiting_between_requests_never_leaks_a_repr() -> None:
    """tcp relay, workers exit(0) after every answer: a request racing an exit either runs elsewhere
    or fails as WorkerLost naming pid and exit code; no transport repr, no other exception."""
    server = section(ServerConfig, command=php_cmd("fault.php"), relay=f"tcp://127.0.0.1:{free_port()}", env={"FAULT_EXIT_AFTER": "1"})
    async with open_pool("grpc", pool_cfg(2), server, mode="grpc") as pool:
        ok, lost = 0, []
        for i in range(30):
            try:
                reply = await pool.exec(ping(f"r{i}"), timeout=10)
            except WorkerLost as exc:
                lost.append(str(exc))
                continue
            assert reply.body == f"r{i}".encode()
            ok += 1
        assert ok + len(lost) == 30 and ok > 0
        for text in lost:
            assert_one_clear_line(text)
            assert "exited with code 0" in text or "is gone" in text, text


@pytest.mark.parametrize("debug", [False, True])
async def test_a_request_dead_when_its_worker_is_taken_is_dropped(tmp_path: Path, debug: bool) -> None:
    """exec(alive=...) false when the worker is taken: RequestDropped, PHP never sees it, the worker
    serves the next request (debug mode: the fresh worker is retired, none is left behind)."""
    log = tmp_path / "requests.log"
    server = section(ServerConfig, command=php_cmd("fault.php"), env={"FAULT_LOG": str(log)})
    async with open_pool("grpc", pool_cfg(1, debug=debug), server, mode="grpc") as pool:
        with pytest.raises(RequestDropped, match="the client went away while the request waited for a worker"):
            await pool.exec(ping("req-dead"), timeout=10, alive=lambda: False)
        assert (await pool.exec(ping("req-alive"), timeout=10, alive=lambda: True)).body == b"req-alive"
        assert pool.activity().dropped == 1
        await eventually(lambda: len(pool.workers()) == (0 if debug else 1))
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["req-alive"]
