"""Abuse of the RPC and HTTP edges: RSS and open fds of ``rr serve`` under attack, now vs a baseline.

Runs the same attacks, in one run, against ``rr serve`` from this checkout and from a baseline git
revision (exported with ``git archive``; default ``4b7926e``, before issue 10's edge bounds):

* rpc-partial: 10 connections each send a frame header declaring 60 MiB, then 50 MiB of it, and stall;
* rpc-idle: 2000 connections to the RPC port that send nothing;
* http-idle: 1000 connections to the HTTP port that send nothing;
* slowloris: 200 HTTP connections that send a request line and one header byte every second.

For each it prints rr's RSS (MB) and open fds at rest, while the attack holds, and 15 s later (80 s
for http-idle, past the 75 s ``http.idle_timeout``),
whether a fresh client was served during the attack, and how many attack sockets rr had closed.

    python bench/edge_abuse.py [--baseline REV] [--only rpc-partial rpc-idle http-idle slowloris]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def frame_header(length: int) -> bytes:
    head = bytes((0x15, 0x08)) + struct.pack("<I", length)
    return head + struct.pack("<I", zlib.crc32(head)) + b"\0\0" + b"\0" * 8


@contextlib.asynccontextmanager
async def rr(src: Path, workdir: Path) -> AsyncIterator[tuple[psutil.Process, int, int]]:
    rpc_port, http_port = free_port(), free_port()
    php = ROOT / "tests" / "php" / "http_echo.php"
    (workdir / ".rr.yaml").write_text(
        f'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:{rpc_port}\n'
        f"server:\n  command: php {php}\n"
        f"http:\n  address: 127.0.0.1:{http_port}\n  pool:\n    num_workers: 1\n"
        "logs:\n  level: error\n"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from rrgrpc.cli import main; main()", "-c", ".rr.yaml", "serve",
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not await http_ok(http_port):
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError(f"rr from {src} did not start")
            await asyncio.sleep(0.2)
        yield psutil.Process(proc.pid), rpc_port, http_port
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def usage(p: psutil.Process) -> str:
    return f"{p.memory_info().rss / 1e6:6.0f} MB {p.num_fds():5d} fds"


async def http_ok(port: int) -> bool:
    try:
        async with asyncio.timeout(5):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            ok = (await r.readline()).startswith(b"HTTP/1.1 200")
            w.close()
            return ok
    except (OSError, TimeoutError):
        return False


async def rpc_ok(port: int) -> bool:
    from rrgrpc.goridge.rpc import RpcClient

    try:
        async with asyncio.timeout(5), await RpcClient.connect(f"tcp://127.0.0.1:{port}") as c:
            return bool(await c.call("rpc.Version", True))
    except (OSError, TimeoutError, ConnectionError):
        return False


async def closed(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> int:
    n = 0
    for r, _ in conns:
        with contextlib.suppress(TimeoutError):
            try:
                async with asyncio.timeout(0.01):
                    n += (await r.read(1)) == b""
            except ConnectionError:
                n += 1
    return n


async def open_many(port: int, n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    conns = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            conns.append(await asyncio.open_connection("127.0.0.1", port))
    return conns


async def rpc_partial(port: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    conns = await open_many(port, 10)
    chunk = b"x" * MIB
    for _, w in conns:
        with contextlib.suppress(ConnectionError):
            w.write(frame_header(60 * MIB))
    for _ in range(50):
        for _, w in conns:
            with contextlib.suppress(ConnectionError):
                if not w.is_closing():
                    w.write(chunk)
        for _, w in conns:
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(2):
                    await w.drain()
    return conns


_DRIPS: set[asyncio.Task[None]] = set()


async def slowloris(port: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """200 connections, each sending a request head one byte per second, forever."""

    async def drip(writer: asyncio.StreamWriter) -> None:
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-a: "
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            while not writer.is_closing():
                await asyncio.sleep(1)
                writer.write(b"a")

    conns = await open_many(port, 200)
    for _, w in conns:
        task = asyncio.get_running_loop().create_task(drip(w))
        _DRIPS.add(task)
        task.add_done_callback(_DRIPS.discard)
    return conns


Attack = Callable[[int], Awaitable[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]]


async def scenario(name: str, src: Path, attack: Attack, target: str, later: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        async with rr(src, Path(tmp)) as (proc, rpc_port, http_port):
            port = rpc_port if target == "rpc" else http_port
            rest = usage(proc)
            conns = await attack(port)
            await asyncio.sleep(1)
            held = usage(proc)
            served = await (rpc_ok(rpc_port) if target == "rpc" else http_ok(http_port))
            await asyncio.sleep(later)
            after = usage(proc)
            gone = await closed(conns)
            for _, w in conns:
                w.close()
            return f"{name:12} rest {rest} | attack {held} | +{later:g}s {after} | fresh client served: {served} | closed by rr: {gone}/{len(conns)}"


async def run(baseline: str, base: Path, only: list[str]) -> None:
    attacks: list[tuple[str, Attack, str, float]] = [
        ("rpc-partial", rpc_partial, "rpc", 15),
        ("rpc-idle", lambda port: open_many(port, 2000), "rpc", 15),
        ("http-idle", lambda port: open_many(port, 1000), "http", 80),  # http.idle_timeout is 75s
        ("slowloris", slowloris, "http", 15),
    ]
    for name, attack, target, later in attacks:
        if only and name not in only:
            continue
        for label, src in ((f"baseline {baseline}", base), ("this checkout", ROOT)):
            print(f"[{label:>16}] " + await scenario(name, src, attack, target, later), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="4b7926e")
    parser.add_argument("--only", nargs="*", default=[], help="rpc-partial rpc-idle http-idle slowloris")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", base], input=archive.stdout, check=True)
        asyncio.run(run(args.baseline, Path(base), args.only))


if __name__ == "__main__":
    main()
