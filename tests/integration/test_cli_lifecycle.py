"""``rr`` as systemd, Laravel Octane and RoadRunner's docs run it: global flags after the
subcommand, ``-p`` + ``rr stop [-f]``, the forced second signal, SIGUSR2, and ``NOTIFY_SOCKET``.

Real processes (``python -m rrgrpc``), real PHP workers, real signals, a real unix datagram socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import psutil
import pytest

from rrgrpc.cli import hoist_globals, rr
from tests.helpers import eventually, free_port, kill_tree, php_cmd

pytestmark = pytest.mark.php


def rr_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rrgrpc", *args]


async def run_rr(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *rr_argv(*args), cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def write_app(tmp_path: Path, script: str = "http_echo.php", workers: int = 1, extra: str = "") -> tuple[Path, int, int]:
    """A .rr.yaml serving ``script`` over HTTP with an RPC endpoint; returns (path, http port, rpc port)."""
    http_port, rpc_port = free_port(), free_port()
    cfg = tmp_path / ".rr.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        version: "3"
        server:
          command: "{' '.join(php_cmd(script))}"
        http:
          address: 127.0.0.1:{http_port}
          pool:
            num_workers: {workers}
        rpc:
          listen: tcp://127.0.0.1:{rpc_port}
        """) + extra)
    return cfg, http_port, rpc_port


@asynccontextmanager
async def serving(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, until: str = "rrgrpc server started"
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """``rr serve ARGS`` until a line contains ``until``; killed (with its workers) if the test fails."""
    proc = await asyncio.create_subprocess_exec(
        *rr_argv("serve", *args), cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    seen: list[str] = []
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while not any(until in line for line in seen):
                line = (await proc.stdout.readline()).decode()
                assert line, f"rr serve exited early: {''.join(seen)}"
                seen.append(line)
        yield proc, seen
    finally:
        await kill_tree(proc)


async def rest_of_output(proc: asyncio.subprocess.Process, seen: list[str]) -> str:
    assert proc.stdout is not None
    out = await asyncio.wait_for(proc.stdout.read(), 30)
    await asyncio.wait_for(proc.wait(), 30)
    return "".join(seen) + out.decode()


async def worker_pids(cfg: Path) -> list[int]:
    code, out = await run_rr("workers", "--json", "-c", str(cfg), cwd=cfg.parent)
    assert code == 0, out
    return sorted(w["pid"] for w in json.loads(out)["http"]["workers"])


# ---------------------------------------------------------------------------------------------


def test_global_options_are_hoisted_from_after_the_subcommand() -> None:
    cases = {
        ("serve", "-c", "a.yaml"): ["-c", "a.yaml", "serve"],
        ("serve", "--config=a.yaml", "-ok=v", "--dotenv", ".env", "-s", "-p"): ["--config=a.yaml", "-ok=v", "--dotenv", ".env", "-s", "-p", "serve"],
        ("-c", "a.yaml", "workers", "-i", "-w", "/srv", "http"): ["-c", "a.yaml", "-w", "/srv", "workers", "-i", "http"],
        ("reset", "grpc", "-s", "--", "-c"): ["-s", "reset", "grpc", "--", "-c"],
        ("stop", "-f"): ["-f", "stop"],
        ("-d", "-e", "serve"): ["-d", "-e", "serve"],
    }
    for argv, expected in cases.items():
        assert hoist_globals(rr, argv) == expected, argv


async def test_the_command_everybody_types(tmp_path: Path) -> None:
    # `rr serve -c .rr.yaml -o http.pool.num_workers=3 --dotenv .env`, the port coming from .env
    cfg, http_port, _ = write_app(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"address: 127.0.0.1:{http_port}", "address: 127.0.0.1:${HTTP_PORT}"))
    (tmp_path / ".env").write_text(f"HTTP_PORT={http_port}\n")
    env = {k: v for k, v in os.environ.items() if k != "HTTP_PORT"}
    async with serving(tmp_path, "-c", ".rr.yaml", "-o", "http.pool.num_workers=3", "--dotenv", ".env", env=env) as (proc, _):
        assert len(await worker_pids(cfg)) == 3
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{http_port}/") as resp:
            assert (resp.status, await resp.text()) == (200, "hello")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_pid_file_and_rr_stop(tmp_path: Path) -> None:
    cfg, _, _ = write_app(tmp_path)
    code, out = await run_rr("stop", "-c", str(cfg), cwd=tmp_path)
    assert (code, out.strip()) == (1, f"Error: {tmp_path / '.pid'}: No such file or directory: start the server with `rr serve -p` to write it")
    async with serving(tmp_path, "-c", str(cfg), "-p") as (proc, seen):
        assert (tmp_path / ".pid").read_text() == str(proc.pid)
        code, out = await run_rr("stop", "-c", str(cfg), cwd=tmp_path)
        assert (code, out.strip()) == (0, f"stopping process with PID: {proc.pid}")
        output = await rest_of_output(proc, seen)
        assert proc.returncode == 0, output
        assert "exit forced" not in output
    assert not (tmp_path / ".pid").exists()


async def test_second_signal_forces_exit_1_and_kills_a_worker_hung_in_a_request(tmp_path: Path) -> None:
    cfg, http_port, _ = write_app(tmp_path, "hang.php")
    async with serving(tmp_path, "-c", str(cfg), "-p") as (proc, seen):
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers
        async with aiohttp.ClientSession() as http:
            request = asyncio.ensure_future(http.get(f"http://127.0.0.1:{http_port}/"))

            async def busy() -> bool:
                code, out = await run_rr("workers", "--json", "-c", str(cfg), cwd=tmp_path)
                return code == 0 and json.loads(out)["http"]["workers"][0]["statusStr"] == "working"

            await eventually(busy, timeout=30, interval=0.2)
            # `rr stop -f`: SIGTERM, then SIGTERM again one second later (RoadRunner's)
            code, out = await run_rr("stop", "-f", "-c", str(cfg), cwd=tmp_path)
            assert code == 0, out
            output = await rest_of_output(proc, seen)
            assert proc.returncode == 1, output
            assert "exit forced" in output.splitlines()
            # the hung request fails: 500 (its worker was killed) or the connection closes with rr
            try:
                resp = await asyncio.wait_for(request, 30)
            except aiohttp.ClientError:
                pass
            else:
                assert resp.status == 500
    await eventually(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers))


async def test_sigusr2_resets_the_workers(tmp_path: Path) -> None:
    cfg, http_port, _ = write_app(tmp_path, workers=2)
    async with serving(tmp_path, "-c", str(cfg)) as (proc, _):
        before = await worker_pids(cfg)
        proc.send_signal(signal.SIGUSR2)

        async def replaced() -> bool:
            now = await worker_pids(cfg)
            return len(now) == 2 and not set(now) & set(before)

        await eventually(replaced, timeout=30, interval=0.2)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{http_port}/") as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_ready_and_stopping_reach_notify_socket(tmp_path: Path) -> None:
    cfg, _, _ = write_app(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.setblocking(False)
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        loop = asyncio.get_running_loop()
        async with serving(tmp_path, "-c", str(cfg), "-s", env=env, until="serving") as (proc, seen):
            assert await asyncio.wait_for(loop.sock_recv(sock, 256), 30) == b"READY=1"
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(loop.sock_recv(sock, 256), 30) == b"STOPPING=1"
            output = await rest_of_output(proc, seen)
            assert proc.returncode == 0, output
            assert "rrgrpc server started" not in output  # -s: no startup message


async def test_workdir_first_then_the_config_relative_to_it(tmp_path: Path) -> None:
    # RoadRunner 2025: -w is entered first and a relative -c is found there; without -w, rr
    # enters the config file's directory (where `rr stop` then looks for .pid)
    app = tmp_path / "app"
    app.mkdir()
    (app / ".rr.yaml").write_text('version: "3"\n')
    code, out = await run_rr("workers", "-w", str(app), "-c", ".rr.yaml", cwd=tmp_path)
    assert (code, out) == (1, f"Error: {app / '.rr.yaml'}: no rpc section: the server exposes no RPC endpoint to talk to\n")
    code, out = await run_rr("stop", "-c", "app/.rr.yaml", cwd=tmp_path)
    assert code == 1 and out.startswith(f"Error: {app / '.pid'}: "), out


def test_sd_notify_abstract_socket_and_an_unreachable_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rrgrpc.cli.serve import sd_notify

    name = f"rrgrpc-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("READY=1") is True
        assert sock.recv(64) == b"READY=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
    assert sd_notify("READY=1") is False  # logged, never fatal
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sd_notify("READY=1") is False
