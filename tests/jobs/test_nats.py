"""What only the nats driver does, against a real nats-server with JetStream (RRGRPC_NATS_ADDR,
started by .ci/services); the shared contract is in test_brokers_drivers.py."""

from __future__ import annotations

import asyncio
import base64
import json

import nats
import pytest

from rrgrpc.jobs.driver import DriverError
from rrgrpc.jobs.nats import NatsDriver
from tests.jobs.broker_kit import broker_addr, job, opened, pipeline_config

pytestmark = pytest.mark.timeout(90)


async def test_delayed_push_is_refused_as_in_roadrunner_and_nack_delay_is_native() -> None:
    addr = broker_addr("nats")
    async with opened("nats", "p", pipeline_config("nats"), {"addr": addr}) as (drv, sink):
        with pytest.raises(DriverError, match=r"pipeline 'p' \(nats\): job .* has a delay of 5 s, and NATS has no delayed"):
            await drv.push(job("p", 1, delay=5))
        await drv.push(job("p", 2))
        await drv.run()
        got = await sink.take()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await got.nack(requeue=True, delay=1)
        again = await sink.take(timeout=15)
        assert loop.time() - t0 >= 0.9  # not before its delay
        assert again.job.id == got.job.id
        await again.ack()
        assert (await drv.stat()).active == 0


async def test_message_from_a_roadrunner_producer_and_from_a_foreign_one() -> None:
    """A body as RoadRunner's nats driver marshals it (base64 payload, headers as NATS headers) is
    understood; a body that is no job envelope becomes deduced_by_rr."""
    addr = broker_addr("nats")
    conf = pipeline_config("nats")
    async with opened("nats", "p", conf, {"addr": addr}) as (drv, sink):
        nc = await nats.connect(addr)
        try:
            js = nc.jetstream()
            item = {"job": "App\\Job", "id": "rr-1", "payload": base64.b64encode(b"hello").decode(),
                    "options": {"priority": 4, "pipeline": "p", "auto_ack": False, "Queue": ""}}
            await js.publish(conf["subject"], json.dumps(item).encode(), headers={"k": "v"})
            await js.publish(conf["subject"], b"raw body")
        finally:
            await nc.close()
        await drv.run()
        a, b = await sink.take_n(2)
        assert (a.job.id, a.job.name, a.job.payload, a.job.priority) == ("rr-1", "App\\Job", b"hello", 4)
        assert a.job.headers == {"k": ["v"], "x-nats-subject": [conf["subject"]]}
        assert (b.job.name, b.job.payload, b.job.priority) == ("deduced_by_rr", b"raw body", 10)
        await a.ack()
        await b.ack()


async def test_delete_after_ack_removes_the_message_from_the_stream() -> None:
    addr = broker_addr("nats")
    conf = pipeline_config("nats", delete_after_ack=True)
    async with opened("nats", "p", conf, {"addr": addr}) as (drv, sink):
        await drv.push(job("p", 1))
        await drv.run()
        await (await sink.take()).ack()
        nc = await nats.connect(addr)
        try:
            info = await nc.jetstream().stream_info(conf["stream"])
        finally:
            await nc.close()
        assert info.state.messages == 0


async def test_a_job_given_back_at_stop_skips_a_pull_request_the_server_still_holds() -> None:
    """The server counts a fetch's expiry from when the request arrived, so it may hold the last pull
    request a moment after the client stopped waiting for it. Sent: one job, taken and left unsettled,
    and a lingering pull request on the driver's subscription (as that moment, made 20 s long); then
    stop. The job given back must not go into that request (where it would wait ack_wait, 30 s): a
    new driver gets it at once."""
    addr = broker_addr("nats")
    conf = pipeline_config("nats")
    keep = {k: v for k, v in conf.items() if k != "delete_stream_on_stop"}
    async with opened("nats", "p", keep, {"addr": addr}) as (drv, sink):
        await drv.push(job("p", 1))
        await drv.run()
        held = await sink.take()
        assert isinstance(drv, NatsDriver)
        sub, nc = drv._sub, drv._nc
        assert sub is not None and nc is not None
        await nc.publish(sub._nms, json.dumps({"batch": 10, "expires": 20_000_000_000}).encode(), sub._deliver)
        await nc.flush()
    async with opened("nats", "p", conf, {"addr": addr}) as (drv, sink):
        await drv.run()
        back = await sink.take(timeout=10)
        assert back.job.id == held.job.id
        await back.ack()
