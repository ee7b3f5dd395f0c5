"""Push and consume throughput of the jobs plugin per driver, with CPU per process, in one run.

Usage: python bench/jobs.py [-n 20000] [--batch 100] [--workers 2] [--drivers memory,boltdb]

For each driver, ``rr serve`` runs with one pipeline and a pool of tests/php/jobs_consumer.php:
  push      n jobs sent with jobs.PushBatch (``--batch`` per call) while the pipeline is paused
  consume   resume, until jobs.Stat shows nothing active or reserved: the PHP consumers complete each
Baseline (same server, same run): ``rpc.Version`` round trips on the same connection, the floor of one
RPC call, and bare jobs.Push of single jobs (no batching). CPU is user+system seconds of the rr process
and of all its PHP workers over each phase (psutil), shown as CPU-ms per 1000 jobs.
The broker drivers (amqp, beanstalk, nats) are measured by bench/jobs_brokers.py, which adds them to
DRIVERS and passes their broker sections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rrgrpc.goridge.frame import Flag  # noqa: E402
from rrgrpc.goridge.rpc import RpcClient  # noqa: E402
from rrgrpc.jobs import jobs_pb2 as pb  # noqa: E402
from tests.helpers import free_port, php_cmd  # noqa: E402

#: driver -> pipeline config (``{tmp}`` is a fresh directory of this run)
DRIVERS: dict[str, dict[str, Any]] = {
    "memory": {"driver": "memory", "config": {"prefetch": 1000}},
    "boltdb": {"driver": "boltdb", "config": {"file": "{tmp}/bench.db", "prefetch": 1000}},
}


def cpu(proc: psutil.Process) -> tuple[float, float]:
    """(rr, workers) user+system CPU seconds."""
    own = proc.cpu_times()
    kids = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            kids += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return own.user + own.system, kids


async def proto(client: RpcClient, method: str, message: Any, result: Any = None) -> Any:
    reply = await client.call(method, message.SerializeToString(), codec=Flag.CODEC_PROTO)
    return result.FromString(reply) if result is not None else reply


def job(i: int) -> pb.Job:
    return pb.Job(job="ok", id=str(uuid.uuid4()), payload=b"%d" % i, options=pb.Options(pipeline="bench"))


async def run_driver(
    name: str, args: argparse.Namespace, tmp: Path, sections: dict[str, Any] | None = None
) -> dict[str, float]:
    """One driver's figures; ``sections`` are extra top-level config sections (a broker's address)."""
    pipeline = json.loads(json.dumps(DRIVERS[name]).replace("{tmp}", str(tmp)))
    rpc_address = f"tcp://127.0.0.1:{free_port()}"
    cfg = {
        "version": "3",
        "rpc": {"listen": rpc_address},
        "server": {"command": php_cmd("jobs_consumer.php"), "env": {"JOBS_LOG": "/dev/null"}},
        "jobs": {"pool": {"num_workers": args.workers}, "pipelines": {"bench": pipeline}, "consume": []},
        "logs": {"mode": "production", "level": "error"},
        **(sections or {}),
    }
    path = tmp / f"{name}.rr.yaml"
    path.write_text(json.dumps(cfg))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(path), "serve", cwd=ROOT, stderr=asyncio.subprocess.DEVNULL
    )
    proc = psutil.Process(server.pid)
    try:
        client = await _connect(rpc_address)
        out: dict[str, float] = {}
        t0 = time.perf_counter()
        for _ in range(args.n):
            await client.call("rpc.Version", True)
        out["rpc.Version/s"] = args.n / (time.perf_counter() - t0)
        single = max(1, args.n // 10)
        t0 = time.perf_counter()
        for i in range(single):
            await proto(client, "jobs.Push", pb.PushRequest(job=job(i)))
        out["push single/s"] = single / (time.perf_counter() - t0)
        rr0, php0 = cpu(proc)
        t0 = time.perf_counter()
        for start in range(0, args.n, args.batch):
            jobs = [job(i) for i in range(start, min(args.n, start + args.batch))]
            await proto(client, "jobs.PushBatch", pb.PushBatchRequest(jobs=jobs))
        push_s = time.perf_counter() - t0
        rr1, php1 = cpu(proc)
        out["push batch/s"] = args.n / push_s
        out["push rr CPU-ms/1000"] = (rr1 - rr0) * 1e6 / args.n
        total = args.n + single
        t0 = time.perf_counter()
        await proto(client, "jobs.Resume", pb.Pipelines(pipelines=["bench"]))
        while True:
            stats = await proto(client, "jobs.Stat", pb.Empty(), pb.Stats)
            s = stats.stats[0]
            if s.active == 0 and s.reserved == 0:
                break
            await asyncio.sleep(0.02)
        consume_s = time.perf_counter() - t0
        rr2, php2 = cpu(proc)
        out["consume/s"] = total / consume_s
        out["consume rr CPU-ms/1000"] = (rr2 - rr1) * 1e6 / total
        out["consume php CPU-ms/1000"] = (php2 - php1) * 1e6 / total
        await client.close()
        return out
    finally:
        server.terminate()
        await server.wait()


async def _connect(address: str) -> RpcClient:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await RpcClient.connect(address)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drivers", default=",".join(DRIVERS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.drivers.split(","):
            figures = await run_driver(name, args, Path(tmp))
            print(f"{name:8} " + "  ".join(f"{k} {v:,.0f}" for k, v in figures.items()), flush=True)
    print(f"(n={args.n}, batch={args.batch}, workers={args.workers}, cpus={os.cpu_count()})")


if __name__ == "__main__":
    asyncio.run(main())
