"""A soak of ``rr serve``: workers left idle past PHP's socket timeout, then steady gRPC + HTTP load,
with rr's memory and descriptors sampled throughout.

Usage: python bench/soak.py [--idle 70] [--duration 60] [--workers 4] [--concurrency 8]

One rr serves gRPC (tests/php/grpc_echo.php) and HTTP (tests/php/http_echo.php), ``--workers`` PHP
workers each, with PHP's own ``default_socket_timeout`` (60 s). The run has two phases:

1. **Idle** for ``--idle`` seconds (longer than that timeout): the workers' pids must not change, as
   they did when workers read their requests from sockets instead of pipes (issue 10.1).
2. **Load** for ``--duration`` seconds: ``--concurrency`` gRPC callers (one HTTP/2 channel) and as
   many HTTP callers (keep-alive) call without pause; every 5 s the script prints rr's RSS, its open
   descriptors, its threads, the PHP workers' total RSS and how many worker pids are new.

At the end it prints the calls made and failed (with codes), and the growth of RSS and descriptors
between the first and the last sample. It asserts nothing: a figure worth quoting is read off it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, rr_command, run_loop, running, wait_grpc, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PING = "/echo.v1.Echo/Ping"
PING_BODY = b"\n\x04soak"  # echo.v1.PingRequest{msg: "soak"}

CONFIG = """\
version: "3"
server:
  command: "php {root}/tests/php/http_echo.php"
rpc:
  listen: tcp://127.0.0.1:{rpc}
logs:
  level: warn
grpc:
  listen: tcp://127.0.0.1:{grpc}
  proto: ["{root}/proto/echo/v1/echo.proto"]
  pool:
    command: "php {root}/tests/php/grpc_echo.php"
    num_workers: {workers}
http:
  address: 127.0.0.1:{http}
  pool:
    num_workers: {workers}
"""


def workers(rr: psutil.Process) -> dict[int, int]:
    """pid -> RSS of every PHP process under rr."""
    out = {}
    for child in rr.children(recursive=True):
        try:
            if "php" in child.name():
                out[child.pid] = child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return out


def sample(rr: psutil.Process, first: set[int]) -> tuple[float, int, int, float, int]:
    php = workers(rr)
    return rr.memory_info().rss / 2**20, rr.num_fds(), rr.num_threads(), sum(php.values()) / 2**20, len(set(php) - first)


async def load(grpc_port: int, http_port: int, duration: float, concurrency: int, rr: psutil.Process) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    first = set(workers(rr))
    stop = time.monotonic() + duration

    async def grpc_caller(channel: grpc.aio.Channel) -> None:
        call = channel.unary_unary(PING)
        while time.monotonic() < stop:
            try:
                await call(PING_BODY, timeout=10)
                outcomes["grpc OK"] += 1
            except grpc.aio.AioRpcError as exc:
                outcomes[f"grpc {exc.code().name}"] += 1

    async def http_caller(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop:
            try:
                async with session.get(f"http://127.0.0.1:{http_port}/") as resp:
                    await resp.read()
                    outcomes[f"http {resp.status}"] += 1
            except aiohttp.ClientError as exc:
                outcomes[f"http {type(exc).__name__}"] += 1

    async def sampler() -> list[tuple[float, int, int, float, int]]:
        rows = []
        print(f"{'t':>4} {'rr RSS MiB':>11} {'rr fds':>7} {'threads':>8} {'PHP RSS MiB':>12} {'new pids':>9} {'calls':>8}")
        start = time.monotonic()
        while True:
            row = sample(rr, first)
            rows.append(row)
            t = time.monotonic() - start
            print(f"{t:4.0f} {row[0]:11.1f} {row[1]:7d} {row[2]:8d} {row[3]:12.1f} {row[4]:9d} {sum(outcomes.values()):8d}")
            if time.monotonic() >= stop:
                return rows
            await asyncio.sleep(min(5.0, max(0.0, stop - time.monotonic())))

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, aiohttp.ClientSession() as session:
        callers = [grpc_caller(channel) for _ in range(concurrency)] + [http_caller(session) for _ in range(concurrency)]
        rows, *_ = await asyncio.gather(sampler(), *callers)
    rows.append(sample(rr, first))
    print(f"\ncalls: {sum(outcomes.values())}; " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    (rss0, fds0, *_), (rss1, fds1, _, _, new) = rows[0], rows[-1]
    print(f"from the first sample to after the load (clients closed): rr RSS {rss0:.1f} -> {rss1:.1f} MiB "
          f"({rss1 - rss0:+.1f}), fds {fds0} -> {fds1} ({fds1 - fds0:+d}); PHP workers replaced: {new}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=70.0, help="seconds idle before the load (PHP's socket timeout is 60)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="callers per protocol")
    args = parser.parse_args()

    ports = {"rpc": free_port(), "grpc": free_port(), "http": free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / ".rr.yaml"
        config.write_text(CONFIG.format(root=ROOT, workers=args.workers, **ports))
        log = Path(tmp) / "rr.log"
        with running([*rr_command(), "serve", "-c", str(config)], cwd=Path(tmp), log=log) as proc:
            wait_http(ports["http"], proc, log=log)
            wait_grpc(ports["grpc"], proc, call=(PING, PING_BODY), log=log)
            rr = psutil.Process(proc.pid)
            before = set(workers(rr))
            print(f"rr pid {proc.pid}, {len(before)} PHP workers; idle for {args.idle:g} s")
            time.sleep(args.idle)
            after = set(workers(rr))
            print(f"after {args.idle:g} s idle: {len(before & after)} of {len(before)} workers kept their pid "
                  f"({len(after - before)} new)\n")
            run_loop(load(ports["grpc"], ports["http"], args.duration, args.concurrency, rr))
            warnings = [line for line in log.read_text(errors="replace").splitlines() if "\tWARN\t" in line or "\tERROR\t" in line]
            print(f"rr log: {len(warnings)} warning/error lines" + (f"; first: {warnings[0]}" if warnings else ""))


if __name__ == "__main__":
    main()
