"""Round trips through the pool vs a bare pipe ping-pong to the same PHP echo worker, in one run.

Usage: python bench/pool_roundtrip.py [-n 20000] [--payload 64] [--repeat 3] [--no-uvloop]

Baselines (same PHP script, same machine, same run):
  bare-sync   blocking os.write/os.read on the worker's pipes: the floor of the PHP side plus pipes
  bare-async  the same exchange through the event loop with a minimal protocol (no pool)
Then the pool with 1 worker (one client) and with 2 workers (two concurrent clients). The figure to
watch is "pool overhead": pool µs/round trip minus bare-async µs/round trip with one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rrgrpc.config.schema import PoolConfig, ServerConfig  # noqa: E402
from rrgrpc.goridge.frame import HEADER_SIZE, Flag, decode_header, encode  # noqa: E402
from rrgrpc.pool import Payload, open_pool  # noqa: E402

ECHO = [os.environ.get("PHP", "php"), str(ROOT / "tests" / "php" / "echo.php")]


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("worker closed its stdout")
        buf += chunk
    return buf


def _read_frame(fd: int) -> bytes:
    head = _read_exact(fd, HEADER_SIZE)
    h = decode_header(head)
    return _read_exact(fd, h.options_size + h.length)


def bare_sync(n: int, ctx: bytes, body: bytes) -> float:
    proc = subprocess.Popen(ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    win, rout = proc.stdin.fileno(), proc.stdout.fileno()
    os.write(win, encode(json.dumps({"pid": os.getpid()}).encode(), Flag.CONTROL | Flag.CODEC_JSON))
    _read_frame(rout)
    frame = encode(ctx + body, Flag.CODEC_JSON, (len(ctx),))
    for _ in range(1000):
        os.write(win, frame)
        _read_frame(rout)
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(win, frame)
        _read_frame(rout)
    elapsed = time.perf_counter() - t0
    os.write(win, encode(b'{"stop":true}', Flag.CONTROL | Flag.CODEC_JSON))
    proc.wait(10)
    return elapsed


class _Bare(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.need = 0

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1:
            return
        self.buf += data
        if len(self.buf) >= HEADER_SIZE and not self.need:
            h = decode_header(bytes(self.buf[:HEADER_SIZE]))
            self.need = HEADER_SIZE + h.options_size + h.length
        if self.need and len(self.buf) >= self.need:
            del self.buf[: self.need]
            self.need = 0
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    async def roundtrip(self, write, data: bytes) -> None:  # type: ignore[no-untyped-def]
        self.waiter = asyncio.get_running_loop().create_future()
        write(data)
        await self.waiter


async def bare_async(n: int, ctx: bytes, body: bytes) -> float:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.subprocess_exec(_Bare, *ECHO, stderr=None)
    stdin = transport.get_pipe_transport(0)
    write = stdin.write  # type: ignore[attr-defined]
    await proto.roundtrip(write, encode(json.dumps({"pid": os.getpid()}).encode(), Flag.CONTROL | Flag.CODEC_JSON))
    frame = encode(ctx + body, Flag.CODEC_JSON, (len(ctx),))
    for _ in range(1000):
        await proto.roundtrip(write, frame)
    t0 = time.perf_counter()
    for _ in range(n):
        await proto.roundtrip(write, frame)
    elapsed = time.perf_counter() - t0
    write(encode(b'{"stop":true}', Flag.CONTROL | Flag.CODEC_JSON))
    transport.close()
    return elapsed


async def through_pool(n: int, workers: int, ctx: bytes, body: bytes) -> float:
    cfg = PoolConfig(num_workers=workers, allocate_timeout=10.0)
    async with open_pool("bench", cfg, ServerConfig(command=ECHO), mode="grpc") as pool:
        payload = Payload(ctx, body, Flag.CODEC_JSON)

        async def client(k: int) -> None:
            for _ in range(k):
                await pool.exec(payload)

        await asyncio.gather(*(client(1000) for _ in range(workers)))
        t0 = time.perf_counter()
        await asyncio.gather(*(client(n // workers) for _ in range(workers)))
        return time.perf_counter() - t0


async def _blocking(fn: Callable[[int, bytes, bytes], float], n: int, ctx: bytes, body: bytes) -> float:
    return fn(n, ctx, body)  # on the loop's thread, blocking it: nothing else runs meanwhile


def line(name: str, n: int, elapsed: float) -> float:
    us = elapsed / n * 1e6
    print(f"{name:<26} {n / elapsed:>12,.0f} rt/s {us:>10.1f} µs/rt")
    return us


async def run(n: int, size: int, repeat: int) -> None:
    ctx = b'{"service":"echo.v1.Echo","method":"Ping","context":{}}'
    body = b"x" * size
    print(f"{n} round trips, context {len(ctx)} B, body {size} B, loop {type(asyncio.get_running_loop()).__module__}, "
          f"best of {repeat} interleaved runs")
    # The CPUs are shared: each variant runs `repeat` times, interleaved with the others, and the
    # fastest run counts (interference only ever makes a run slower).
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, make in (
            ("bare-sync (1 worker)", lambda: _blocking(bare_sync, n, ctx, body)),
            ("bare-async (1 worker)", lambda: bare_async(n, ctx, body)),
            ("pool, 1 worker", lambda: through_pool(n, 1, ctx, body)),
            ("pool, 2 workers, 2 clients", lambda: through_pool(n, 2, ctx, body)),
        ):
            elapsed = await make()
            best[name] = min(best.get(name, elapsed), elapsed)
    us = {name: line(name, n, elapsed) for name, elapsed in best.items()}
    pool1, bare_us, sync_us = us["pool, 1 worker"], us["bare-async (1 worker)"], us["bare-sync (1 worker)"]
    print(f"pool overhead over bare-async: {pool1 - bare_us:+.1f} µs/rt; over bare-sync: {pool1 - sync_us:+.1f} µs/rt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs per variant; the fastest counts")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.run(run(args.n, args.payload, args.repeat))
            return
        except ImportError:
            pass
    asyncio.run(run(args.n, args.payload, args.repeat))


if __name__ == "__main__":
    main()
