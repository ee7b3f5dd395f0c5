"""Helpers for the broker driver tests (not a test module): broker addresses from .ci/services, a
collecting DeliveryQueue, and bounded waits for deliveries.

A test that needs a broker skips, naming the variable, when its address is not exported; .ci/run
always exports all three, so nothing skips in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rrgrpc.jobs.driver import Delivery, Driver, DriverError, Job, Pipeline, driver_factory
from tests.helpers import free_port

ENV = {"amqp": "RRGRPC_AMQP_ADDR", "beanstalk": "RRGRPC_BEANSTALK_ADDR", "nats": "RRGRPC_NATS_ADDR"}


def broker_addr(driver: str) -> str:
    """The address .ci/services exported for ``driver``'s broker, or skip the test saying which is missing."""
    addr = os.environ.get(ENV[driver])
    if not addr:
        pytest.skip(f"{ENV[driver]} is not set: start the brokers with `eval \"$(bash .ci/services)\"`")
    return addr


def unique(prefix: str) -> str:
    """A broker-side name no other test (or concurrent suite) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Collect:
    """A DeliveryQueue that keeps what a driver hands over, in order, for the test to settle."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[Delivery] = asyncio.Queue()

    async def put(self, delivery: Delivery) -> None:
        await self.items.put(delivery)

    async def take(self, timeout: float = 10.0) -> Delivery:
        return await asyncio.wait_for(self.items.get(), timeout)

    async def take_n(self, n: int, timeout: float = 10.0) -> list[Delivery]:
        return [await self.take(timeout) for _ in range(n)]

    async def none_within(self, seconds: float) -> bool:
        """True when nothing is handed over within ``seconds`` (a bounded wait, not a timing claim)."""
        try:
            await asyncio.wait_for(self.items.get(), seconds)
        except TimeoutError:
            return True
        return False


def job(pipeline: str, n: int = 0, **kw: Any) -> Job:
    fields: dict[str, Any] = {
        "id": f"job-{n}-{uuid.uuid4().hex[:6]}",
        "name": "App\\Jobs\\Ping",
        "payload": f'{{"n":{n}}}'.encode(),
        "pipeline": pipeline,
        "headers": {"x-test": [str(n)]},
    }
    fields.update(kw)
    return Job(**fields)


@asynccontextmanager
async def opened(driver: str, name: str, config: Mapping[str, Any], broker: Mapping[str, Any],
                 sink: Collect | None = None) -> AsyncIterator[tuple[Driver, Collect]]:
    """A driver built through the registry, opened, and stopped at the end whatever happens."""
    pipeline = Pipeline(name=name, driver=driver, config=dict(config), source="test.rr.yaml")
    sink = sink or Collect()
    drv = driver_factory(pipeline)(pipeline, broker, sink)
    await drv.open()
    try:
        yield drv, sink
    finally:
        await drv.stop()


def pipeline_config(driver: str, **kw: Any) -> dict[str, Any]:
    """A pipeline ``config:`` on broker-side names no other test uses, removed again when it stops."""
    if driver == "amqp":
        q = unique("amqp")
        base: dict[str, Any] = {"queue": q, "exchange": f"ex-{q}", "routing_key": q, "durable": True,
                                "delete_queue_on_stop": True}
    elif driver == "beanstalk":
        base = {"tube": unique("tube"), "reserve_timeout": 1}
    else:
        s = unique("stream")
        base = {"stream": s, "subject": f"{s}.jobs", "delete_stream_on_stop": True}
    return {**base, **kw}


async def _answers(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


class PrivateBroker:
    """A broker process of the test's own (beanstalkd, nats-server) on a free loopback port, so that a
    test can stop and start it without disturbing the shared one of .ci/services."""

    def __init__(self, argv: list[str], port: int) -> None:
        self.argv = argv
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = asyncio.get_running_loop().time() + 20
        while not await _answers(self.port):
            assert self.proc.returncode is None, f"{self.argv[0]} exited with {self.proc.returncode}"
            assert asyncio.get_running_loop().time() < deadline, f"{self.argv[0]} did not answer within 20 s"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=60, capture_output=True)


@asynccontextmanager
async def restartable(driver: str, tmp: Path) -> AsyncIterator[tuple[dict[str, Any], Any, Any]]:
    """(broker section, stop, start) of a broker the test may stop and start: the local RabbitMQ node
    of .ci/services (stop_app/start_app), or a private beanstalkd (with a binlog) or nats-server (file
    storage) on a free port, so that jobs outlive the restart."""
    if driver == "amqp":
        addr = broker_addr("amqp")
        if shutil.which("rabbitmqctl") is None or "127.0.0.1" not in addr:
            pytest.skip("needs the local RabbitMQ node of .ci/services (rabbitmqctl)")
        yield ({"addr": addr}, lambda: asyncio.to_thread(_rabbitmqctl, "stop_app"),
               lambda: asyncio.to_thread(_rabbitmqctl, "start_app"))
        return
    binary = "beanstalkd" if driver == "beanstalk" else "nats-server"
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed (.ci/services installs it)")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    if driver == "beanstalk":
        argv, addr = ["beanstalkd", "-l", "127.0.0.1", "-p", str(port), "-b", str(tmp)], f"tcp://127.0.0.1:{port}"
    else:
        argv, addr = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp)], f"nats://127.0.0.1:{port}"
    server = PrivateBroker(argv, port)
    await server.start()
    try:
        yield {"addr": addr}, server.stop, server.start
    finally:
        await server.stop()


async def survives_broker_restart(driver: str, broker: Mapping[str, Any], stop: Callable[[], Awaitable[None]],
                                  start: Callable[[], Awaitable[None]], *, failed_ack_returns: bool = True,
                                  watch: float = 1.5, **config: Any) -> None:
    """Consume, ack one job, stop the broker, ack the other, start the broker: the driver redials and a
    new push is consumed. An ack that returned is never undone (its job does not come back within
    ``watch`` seconds). An ack that raised DriverError leaves the job to the broker: it comes back, or
    (``failed_ack_returns=False``: a client that sends the ack again once it is back) may not."""
    async with opened(driver, "p", pipeline_config(driver, **config), broker) as (drv, sink):
        await drv.push(job("p", 1))
        await drv.push(job("p", 2))
        await drv.run()
        one, two = sorted(await sink.take_n(2), key=lambda d: d.job.payload)
        await one.ack()
        await stop()
        try:
            await two.ack()
            acked = True
        except DriverError:  # the broker is down: the ack cannot reach it
            acked = False
        finally:
            await start()
        await drv.push(job("p", 3))
        seen: list[bytes] = []
        while not seen or seen[-1] != b'{"n":3}':  # redialed and consuming again
            delivery = await sink.take(timeout=30)
            await delivery.ack()
            seen.append(delivery.job.payload)
        if acked:
            assert seen == [b'{"n":3}'], f"an acknowledged job came back: {seen}"
        elif failed_ack_returns:
            assert seen == [b'{"n":2}', b'{"n":3}'], seen
        else:
            assert set(seen) <= {b'{"n":2}', b'{"n":3}'}, seen
        assert await sink.none_within(watch), "an acknowledged job came back after the restart"
