"""``rr serve`` as a user runs it: a real process, real signals, real exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import eventually, php_cmd


async def start_rr(tmp_path: Path, config: str, *args: str) -> asyncio.subprocess.Process:
    (tmp_path / ".rr.yaml").write_text(textwrap.dedent(config))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(tmp_path / ".rr.yaml"), *args, "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )


async def read_until(proc: asyncio.subprocess.Process, needle: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"rr exited before printing {needle!r}: {''.join(seen)}"
            seen.append(line)
            if needle in line:
                return


async def test_startup_error_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    proc = await start_rr(tmp_path, """
        version: "3"
        server:
          command: "php worker.php"
          relay: pipes
        rpc:
          listen: 127.0.0.1:6001
    """)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    lines = out.decode().strip().splitlines()
    assert lines == [
        f"rr: error: {tmp_path / '.rr.yaml'}: rpc.listen: expected tcp://host:port or unix://path, got '127.0.0.1:6001'"
    ]


async def test_unknown_grpc_interceptor_is_a_startup_error(tmp_path: Path) -> None:
    # sent: a grpc section naming an interceptor rrgrpc does not have (a skipped auth check would
    # be a security hole); failed: the start-up, exit code 1, with one line naming key, file and name
    (tmp_path / "svc.proto").write_text('syntax = "proto3";\npackage t;\n')
    proc = await start_rr(tmp_path, """
        version: "3"
        server:
          command: "php worker.php"
        grpc:
          listen: tcp://127.0.0.1:0
          proto: svc.proto
          interceptors: [auth]
    """)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert out.decode().splitlines() == [
        f"rr: error: {tmp_path / '.rr.yaml'}: grpc.interceptors: unknown interceptor 'auth' (known: rrgrpc has none)"
    ]


async def test_missing_version_is_rejected(tmp_path: Path) -> None:
    proc = await start_rr(tmp_path, "server:\n  command: php x.php\n")
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1 and "version" in out.decode()


async def test_nothing_to_serve_is_a_startup_error(tmp_path: Path) -> None:
    # RoadRunner would start and idle; a config that serves nothing is almost always a mistake
    # (a typo in the section name, a section rrgrpc does not have)
    proc = await start_rr(tmp_path, 'version: "3"\nserver:\n  command: "php worker.php"\nkv:\n  local: {}\n')
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert out.decode().splitlines() == [
        f"rr: error: {tmp_path / '.rr.yaml'}: nothing to serve: configure a grpc, http, rpc or jobs section (ignored: kv)"
    ]


@pytest.mark.php
async def test_second_signal_forces_stop_and_kills_workers(tmp_path: Path) -> None:
    # a gRPC-free pool host: the rpc plugin is not needed, the worker pool comes with grpc/http;
    # use the http plugin when present, else skip
    pytest.importorskip("rrgrpc.http.plugin")
    sleep = " ".join(php_cmd("sleep.php"))
    proc = await start_rr(tmp_path, f"""
        version: "3"
        server:
          command: "{sleep}"
        http:
          address: 127.0.0.1:0
          pool:
            num_workers: 1
            destroy_timeout: 60s
    """)
    seen: list[str] = []
    await read_until(proc, "serving", seen)
    import psutil

    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), 20)
    await eventually(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children))
    assert os.path.exists(tmp_path)


async def test_rpc_port_in_use_is_one_line_naming_rpc_listen_and_the_file(tmp_path: Path) -> None:
    # sent: rpc.listen on a port another socket holds; fails: exit 1, one error line, no warning
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await start_rr(tmp_path, f'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:{port}\n')
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    lines = [line for line in out.decode().splitlines() if "\tDEBUG\t" not in line and "\tINFO\t" not in line]
    assert lines == [f"rr: error: {tmp_path / '.rr.yaml'}: rpc.listen: tcp://127.0.0.1:{port} is already in use"]
