"""What only the beanstalk driver does, against a real beanstalkd (RRGRPC_BEANSTALK_ADDR, started by
.ci/services); the shared contract is in test_brokers_drivers.py."""

from __future__ import annotations

import asyncio

import aiostalk
import pytest

from rrgrpc.jobs._broker import host_port
from tests.jobs.broker_kit import broker_addr, job, opened, pipeline_config
from tests.jobs.test_gob import GO_ITEM

pytestmark = pytest.mark.timeout(90)


async def test_delayed_push_and_nack_with_delay_wait_in_beanstalkd() -> None:
    addr = broker_addr("beanstalk")
    async with opened("beanstalk", "p", pipeline_config("beanstalk"), {"addr": addr}) as (drv, sink):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await drv.push(job("p", 1, delay=1))
        assert (await drv.stat()).delayed == 1
        await drv.run()
        got = await sink.take(timeout=15)
        assert loop.time() - t0 >= 0.9  # not before its delay
        assert got.job.delay == 1
        t1 = loop.time()
        await got.nack(requeue=True, delay=1)
        again = await sink.take(timeout=15)
        assert loop.time() - t1 >= 0.9
        assert again.job.id == got.job.id
        await again.ack()


async def test_a_job_put_by_roadrunner_and_a_foreign_body() -> None:
    """A body as RoadRunner's beanstalk driver writes it (the gob of its Item, made by Go) is the same
    job here; a body that is no such gob becomes a deduced_by_rr job, as in RoadRunner."""
    addr = broker_addr("beanstalk")
    conf = pipeline_config("beanstalk")
    async with opened("beanstalk", "p", conf, {"addr": addr}) as (drv, sink):
        async with aiostalk.Client(host_port(addr, 11300), encoding=None, use=conf["tube"]) as client:
            await client.put(GO_ITEM)
            await client.put(b"plain text body")
        await drv.run()
        rr, foreign = await sink.take_n(2)
        assert (rr.job.id, rr.job.name, rr.job.payload, rr.job.priority, rr.job.delay, rr.job.auto_ack) == (
            "id-1", "App\\Job", b'{"a":1}', 4, 2, True)
        assert (foreign.job.name, foreign.job.payload, foreign.job.priority, foreign.queue) == (
            "deduced_by_rr", b"plain text body", 10, conf["tube"])
        await rr.ack()
        await foreign.ack()
