"""What only the amqp driver does, against a real RabbitMQ (RRGRPC_AMQP_ADDR, started by
.ci/services); the shared contract is in test_brokers_drivers.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import pytest

from rrgrpc.jobs.driver import DriverError
from tests.jobs.broker_kit import broker_addr, job, opened, pipeline_config, restartable, unique

pytestmark = pytest.mark.timeout(90)


async def test_delayed_push_waits() -> None:
    addr = broker_addr("amqp")
    async with opened("amqp", "p", pipeline_config("amqp"), {"addr": addr}) as (drv, sink):
        await drv.run()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await drv.push(job("p", 1, delay=1))
        got = await sink.take(timeout=15)
        assert loop.time() - t0 >= 0.9
        assert got.job.delay == 1
        await got.ack()


async def test_message_from_a_roadrunner_producer_and_from_a_foreign_one() -> None:
    """Headers as RoadRunner's amqp driver packs them are understood; a bare message becomes deduced_by_rr."""
    addr = broker_addr("amqp")
    conf = pipeline_config("amqp")
    q = conf["queue"]
    async with opened("amqp", "p", conf, {"addr": addr}) as (drv, sink):
        conn = await aio_pika.connect(addr)
        async with conn:
            ch = await conn.channel()
            ex = await ch.get_exchange(f"ex-{q}")
            rr_headers: dict[str, aio_pika.abc.FieldValue] = {"rr_id": "rr-1", "rr_job": "App\\Job", "rr_pipeline": "p",
                          "rr_headers": bytearray(json.dumps({"k": ["v"]}).encode()), "rr_delay": 0,
                          "rr_priority": 4, "rr_auto_ack": False}
            await ex.publish(aio_pika.Message(b"hello", headers=rr_headers), routing_key=q)
            await ex.publish(aio_pika.Message(b"raw", headers={"trace": "t1"}), routing_key=q)
        await drv.run()
        a, b = await sink.take_n(2)
        assert (a.job.id, a.job.name, a.job.payload, a.job.priority, a.job.headers) == (
            "rr-1", "App\\Job", b"hello", 4, {"k": ["v"]})
        assert (b.job.name, b.job.payload, b.job.priority, b.job.headers) == ("deduced_by_rr", b"raw", 10, {"trace": ["t1"]})
        assert b.job.id
        await a.ack()
        await b.ack()


async def test_consume_without_queue_names_the_key() -> None:
    addr = broker_addr("amqp")
    async with opened("amqp", "p", {"exchange": unique("ex")}, {"addr": addr}) as (drv, _sink):
        with pytest.raises(DriverError, match=r"test.rr.yaml: jobs.pipelines.p.config.queue: empty queue name"):
            await drv.run()


@pytest.mark.slow
async def test_a_push_sent_while_rabbitmq_restarts_is_consumed(tmp_path: Path) -> None:
    """Sent: one push while RabbitMQ's app is stopped, then the app started. The restart dropped the
    (not durable) exchange and with it the queue's binding; the push waits until the driver has
    redialled and declared both again, and the job is consumed. Published once the connection is up
    but before its channels are restored, the broker would drop it as unroutable and still confirm
    it: the push returns and the job is lost (this test cannot force that interleaving, which needs
    the push to land between aio-pika reopening the channel and binding the queue again)."""
    async with restartable("amqp", tmp_path) as (broker, stop, start):
        async with opened("amqp", "p", pipeline_config("amqp"), broker) as (drv, sink):
            await drv.run()
            await stop()
            pushed = asyncio.create_task(drv.push(job("p", 1)))
            await start()
            await asyncio.wait_for(pushed, 30)
            got = await sink.take(timeout=15)
            assert got.job.payload == b'{"n":1}'
            await got.ack()
