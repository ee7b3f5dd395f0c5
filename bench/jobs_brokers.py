"""Push and consume throughput of the broker drivers (amqp, beanstalk, nats), each beside a bare client
of the same broker, in one run, with CPU per process.

Usage: eval "$(bash .ci/services)"; python bench/jobs_brokers.py [-n 5000] [--batch 100] [--workers 2]
       [--brokers amqp,beanstalk,nats]

For each broker (address from RRGRPC_<BROKER>_ADDR, as .ci/services exports it):
  bare      the broker's Python client alone, in this process: n jobs published one after the other,
            each confirmed (AMQP publisher confirm, JetStream PubAck, beanstalk INSERTED), then consumed
            and acknowledged one by one (prefetch 1000 / fetch 256 / reserve+delete). No rr, no PHP.
  rr        bench/jobs.py's run for the driver: ``rr serve`` with a pool of PHP consumers; push with
            jobs.PushBatch while paused, then resume until jobs.Stat shows nothing left.
CPU is user+system time per 1000 jobs: of this process (bare), of rr and of its PHP workers (rr), and
of the broker process in both. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import aiostalk  # noqa: E402
import nats  # noqa: E402
from nats.js.api import ConsumerConfig  # noqa: E402

from bench.jobs import DRIVERS, run_driver  # noqa: E402
from rrgrpc.jobs._broker import host_port  # noqa: E402

ENV = {"amqp": "RRGRPC_AMQP_ADDR", "beanstalk": "RRGRPC_BEANSTALK_ADDR", "nats": "RRGRPC_NATS_ADDR"}
PORTS = {"amqp": 5672, "beanstalk": 11300, "nats": 4222}


def broker_process(broker: str, addr: str) -> psutil.Process | None:
    """The process listening on the broker's port (its CPU is measured too), when it can be seen."""
    port = host_port(addr.split("@")[-1], PORTS[broker])[1]
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def cpu_s(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return t.user + t.system


async def phase(n: int, work: Callable[[], Awaitable[None]], broker: psutil.Process | None,
                out: dict[str, float], name: str) -> None:
    me = psutil.Process()
    c0, b0, t0 = cpu_s(me), cpu_s(broker), time.perf_counter()
    await work()
    out[f"{name}/s"] = n / (time.perf_counter() - t0)
    out[f"{name} client CPU-ms/1000"] = (cpu_s(me) - c0) * 1e6 / n
    out[f"{name} broker CPU-ms/1000"] = (cpu_s(broker) - b0) * 1e6 / n


async def bare_amqp(addr: str, n: int, broker: psutil.Process | None) -> dict[str, float]:
    out: dict[str, float] = {}
    name = f"bench-bare-{uuid.uuid4().hex[:8]}"
    conn = await aio_pika.connect(addr)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        queue = await ch.declare_queue(name, durable=True)

        async def push() -> None:
            for i in range(n):
                msg = aio_pika.Message(b"%d" % i, headers={"rr_id": str(i), "rr_job": "ok"},
                                       delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await ch.default_exchange.publish(msg, routing_key=name)

        async def consume() -> None:
            cch = await conn.channel()
            await cch.set_qos(prefetch_count=1000)
            cq = await cch.get_queue(name)
            done = asyncio.Event()
            count = 0

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal count
                await message.ack()
                count += 1
                if count == n:
                    done.set()

            tag = await cq.consume(on_message)
            await done.wait()
            await cq.cancel(tag)

        await phase(n, push, broker, out, "push")
        await phase(n, consume, broker, out, "consume")
        await queue.delete(if_unused=False, if_empty=False)
    return out


async def bare_beanstalk(addr: str, n: int, broker: psutil.Process | None) -> dict[str, float]:
    out: dict[str, float] = {}
    tube = f"bench-bare-{uuid.uuid4().hex[:8]}"
    address = host_port(addr, 11300)

    async def push() -> None:
        async with aiostalk.Client(address, encoding=None, use=tube) as client:
            for i in range(n):
                await client.put(b"%d" % i)

    async def consume() -> None:
        async with aiostalk.Client(address, encoding=None, watch=tube) as client:
            for _ in range(n):
                job = await client.reserve(5)
                await client.delete(job)

    await phase(n, push, broker, out, "push")
    await phase(n, consume, broker, out, "consume")
    return out


async def bare_nats(addr: str, n: int, broker: psutil.Process | None) -> dict[str, float]:
    out: dict[str, float] = {}
    stream = f"bench-bare-{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(addr)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.jobs"])

        async def push() -> None:
            for i in range(n):
                await js.publish(f"{stream}.jobs", b"%d" % i)

        async def consume() -> None:
            sub = await js.pull_subscribe(f"{stream}.jobs", durable="bare", stream=stream,
                                          config=ConsumerConfig(max_ack_pending=1000))
            got = 0
            while got < n:
                for msg in await sub.fetch(min(256, n - got), timeout=5):
                    await msg.ack()
                    got += 1

        await phase(n, push, broker, out, "push")
        await phase(n, consume, broker, out, "consume")
        await js.delete_stream(stream)
    finally:
        await nc.close()
    return out


BARE = {"amqp": bare_amqp, "beanstalk": bare_beanstalk, "nats": bare_nats}


def pipeline(broker: str) -> dict[str, object]:
    name = f"bench-rr-{uuid.uuid4().hex[:8]}"
    config: dict[str, object] = {
        "amqp": {"queue": name, "exchange": name, "routing_key": name, "durable": True, "delete_queue_on_stop": True},
        "beanstalk": {"tube": name, "reserve_timeout": 1},
        "nats": {"stream": name, "subject": f"{name}.jobs", "delete_stream_on_stop": True},
    }[broker]
    return {"driver": broker, "config": {**config, "prefetch": 1000}}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--brokers", default="amqp,beanstalk,nats")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for broker in args.brokers.split(","):
            addr = os.environ.get(ENV[broker])
            if not addr:
                print(f"{broker:9} skipped: {ENV[broker]} is not set (eval \"$(bash .ci/services)\")")
                continue
            proc = broker_process(broker, addr)
            bare = await BARE[broker](addr, args.n, proc)
            print(f"{broker:9} bare  " + "  ".join(f"{k} {v:,.0f}" for k, v in bare.items()), flush=True)
            DRIVERS[broker] = pipeline(broker)
            b0 = cpu_s(proc)
            rr = await run_driver(broker, args, Path(tmp), sections={broker: {"addr": addr}})
            total = args.n + max(1, args.n // 10)  # run_driver also pushes n/10 single jobs
            rr["broker CPU-ms/1000 (push+consume)"] = (cpu_s(proc) - b0) * 1e6 / total
            print(f"{broker:9} rr    " + "  ".join(f"{k} {v:,.0f}" for k, v in rr.items()), flush=True)
    print(f"(n={args.n}, batch={args.batch}, workers={args.workers}, cpus={os.cpu_count()})")


if __name__ == "__main__":
    asyncio.run(main())
