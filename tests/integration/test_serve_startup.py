"""``rr serve``'s startup as its debug log tells it: each plugin's start time, and protos compiled
once, then taken from the cache on the next start (and compiled again once an import changed).

Real ``rr serve`` processes (``python -m rrgrpc``) with 2 real PHP gRPC echo workers, a real
gRPC call once serving, SIGTERM, exit code 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import grpc
import pytest

from tests.helpers import ROOT, free_port, kill_tree, no_leftover_workers_fixture, php_cmd

pytestmark = pytest.mark.php
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running


def fields(line: str) -> dict[str, object]:
    """The JSON fields of a development-format log line (``<time>\\t<LEVEL>\\t<logger>\\t<msg>\\t{...}``)."""
    parsed: dict[str, object] = json.loads(line.rstrip("\n").split("\t")[4])
    return parsed


async def serve_once(workdir: Path, cache: Path) -> list[str]:
    """Start rr at debug level, make one echo call once it serves, SIGTERM it; its log lines."""
    port = free_port()
    (workdir / ".rr.yaml").write_text(
        'version: "3"\n'
        f"server: {{command: \"{' '.join(php_cmd('grpc_echo.php'))}\"}}\n"
        f"grpc: {{listen: 'tcp://127.0.0.1:{port}', proto: [proto/echo.proto], pool: {{num_workers: 2}}}}\n"
        "logs: {level: debug}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(workdir / ".rr.yaml"), "serve", cwd=workdir,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not any("\tserving\t" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, f"rr exited before serving: {''.join(lines)}"
                lines.append(line)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await channel.unary_unary("/echo.v1.Echo/Ping")(b"\x0a\x05hello", timeout=20)
        assert reply.startswith(b"\x0a\x05hello")  # PingReply{msg: "hello", ...}
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await kill_tree(proc)
    assert proc.returncode == 0, "".join(lines)
    return lines + out.decode().splitlines(keepends=True)


def said(lines: list[str], message: str) -> list[dict[str, object]]:
    return [fields(line) for line in lines if f"\t{message}\t" in line]


async def test_each_plugin_start_is_logged_with_its_duration(tmp_path: Path) -> None:
    (tmp_path / "proto").mkdir()
    shutil.copy(ROOT / "proto/echo/v1/echo.proto", tmp_path / "proto/echo.proto")
    lines = await serve_once(tmp_path, tmp_path / "cache")
    started = said(lines, "plugin started")
    assert [f["plugin"] for f in started] == ["logs", "grpc"]
    assert all(isinstance(f["ms"], int) and f["ms"] >= 0 for f in started)
    assert not any("Traceback" in line for line in lines)


async def test_protos_are_compiled_once_then_taken_from_the_cache_until_a_file_changes(tmp_path: Path) -> None:
    (tmp_path / "proto").mkdir()
    echo = tmp_path / "proto/echo.proto"
    shutil.copy(ROOT / "proto/echo/v1/echo.proto", echo)
    cache = tmp_path / "cache"

    cold = await serve_once(tmp_path, cache)
    assert [f["file"] for f in said(cold, "proto compiled")] == [str(echo)]
    assert said(cold, "proto taken from the cache") == []

    warm = await serve_once(tmp_path, cache)
    assert said(warm, "proto compiled") == []
    assert [f["file"] for f in said(warm, "proto taken from the cache")] == [str(echo)]

    echo.write_text(echo.read_text() + "\nmessage Added { string note = 1; }\n")
    edited = await serve_once(tmp_path, cache)
    assert [f["file"] for f in said(edited, "proto compiled")] == [str(echo)]
