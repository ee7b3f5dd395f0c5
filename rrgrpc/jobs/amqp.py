"""The ``amqp`` driver: jobs in a RabbitMQ (AMQP 0-9-1) queue, as RoadRunner's amqp driver keeps them.

Broker section ``amqp: {addr}`` (default ``amqp://guest:guest@127.0.0.1:5672/``). Pipeline keys, with
RoadRunner's defaults: ``queue`` (needed to consume), ``exchange`` (``amqp.default``), ``exchange_type``
(``direct``), ``exchange_durable``, ``exchange_auto_delete``, ``routing_key``, ``durable``,
``exclusive``, ``queue_auto_delete``, ``queue_headers`` (queue arguments), ``delete_queue_on_stop``,
``prefetch`` (10, the channel's QoS), ``priority`` (10), ``multiple_ack``, ``consumer_id``
(``roadrunner-<uuid>``), ``redial_timeout`` (60 s); ``requeue_on_fail`` is the jobs plugin's.

On the wire a job is its payload as the message body, with its metadata in the message headers
(``rr_id``, ``rr_job``, ``rr_pipeline``, ``rr_headers`` as JSON bytes, ``rr_delay``, ``rr_priority``,
``rr_auto_ack``), persistent, published with publisher confirms; a header ``x-routing-key`` overrides
the routing key. A delayed job waits in ``delayed-<ms>.<exchange>.<queue>``, a queue whose messages
expire after the delay into the pipeline's exchange (dead-lettering) — the same queue RoadRunner
declares, so both can share a broker. The connection is aio-pika's robust one: when the broker goes
away it redials every second, declares again and consumes again; what was delivered and not
acknowledged then comes back from the broker (at-least-once). A push meanwhile waits, up to
``redial_timeout`` seconds, until every channel is restored, not only the connection (aio-pika hands
out a reopened channel before it has declared the exchange and bound the queue again, and the broker
drops a message that no binding routes, yet confirms it), then fails in one line. aio-pika restores
the channels one at a time, in no set order, each redeclaring what was declared on it; a broker
restart drops an exchange that is not durable (the default), so the consuming channel declares the
exchange its queue binds to, as the publishing one does: restored first, its bind would fail with
not_found, which closes the channel and leaves the consumer to aio-pika's retry (which lost it once,
on a loaded box).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from rrgrpc.errors import ConfigError
from rrgrpc.jobs._broker import (
    AUTO_JOB,
    RR_AUTO_ACK,
    RR_DELAY,
    RR_HEADERS,
    RR_ID,
    RR_JOB,
    RR_KEYS,
    RR_PIPELINE,
    RR_PRIORITY,
    BrokerDelivery,
    Tracker,
    broker_error,
    hand_over,
    redact,
)
from rrgrpc.jobs.driver import DeliveryQueue, Driver, DriverError, Headers, Job, Pipeline, Stat

log = logging.getLogger("rr.jobs")

DEFAULT_ADDR = "amqp://guest:guest@127.0.0.1:5672/"
X_ROUTING_KEY = "x-routing-key"


class AmqpDelivery(BrokerDelivery):
    __slots__ = ("_message", "_owner")

    def __init__(self, job: Job, message: AbstractIncomingMessage, owner: AmqpDriver) -> None:
        super().__init__(job, driver="amqp", queue=owner.queue_name, tracker=owner.tracker)
        self._message = message
        self._owner = owner

    async def _ack(self) -> None:
        self._owner.delay_done(self.job)
        await self._message.ack(multiple=self._owner.multiple_ack)

    async def _nack(self, requeue: bool, delay: int) -> None:
        if requeue and delay > 0:  # a native nack cannot wait: publish it again through the delay queue
            await self._requeue(self.job.with_(delay=delay))
            return
        self._owner.delay_done(self.job)
        await self._message.nack(requeue=requeue)

    async def _requeue(self, job: Job) -> None:
        self._owner.delay_done(self.job)
        try:
            await self._owner.publish(job)
        except BaseException:
            await self._message.nack(requeue=True)  # never lose it: the broker keeps the original
            raise
        await self._message.ack()


class AmqpDriver(Driver):
    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        p = pipeline
        self.addr = str(broker.get("addr") or DEFAULT_ADDR)
        self.queue_name = p.get_str("queue")
        self.exchange_name = p.get_str("exchange", "amqp.default")
        self.exchange_type = p.get_str("exchange_type", "direct")
        self.routing_key = p.get_str("routing_key")
        self.prefetch = max(1, p.get_int("prefetch", 10))
        self.multiple_ack = p.get_bool("multiple_ack")
        self.consumer_id = p.get_str("consumer_id") or f"roadrunner-{uuid.uuid4()}"
        self.redial_timeout = p.get_int("redial_timeout", 60)
        self.delete_on_stop = p.get_bool("delete_queue_on_stop")
        self.tracker = Tracker(pipeline)
        self._queue_args = _queue_headers(p)
        self._conn: AbstractRobustConnection | None = None
        self._publish_ch: AbstractRobustChannel | None = None
        self._consume_ch: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._consuming = False
        self._delayed = 0
        self._lost_at: float | None = None
        self._up = asyncio.Event()
        self._up.set()

    # -- connection ---------------------------------------------------------------------------
    def _error(self, what: str, exc: BaseException) -> DriverError:
        return broker_error(self.pipeline, "amqp", what, self.addr, exc)

    async def open(self) -> None:
        try:
            self._conn = await aio_pika.connect_robust(self.addr, timeout=10, reconnect_interval=1)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError, ValueError) as exc:
            raise self._error("cannot connect", exc) from None
        self._conn.close_callbacks.add(self._on_lost)
        self._conn.reconnect_callbacks.add(self._on_back)
        try:
            self._publish_ch = await self._conn.channel(publisher_confirms=True)
            self._exchange = await self._declare_exchange(self._publish_ch)
            if self.queue_name:
                await self._declare_queue(self._publish_ch)
        except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as exc:
            await self._conn.close()
            raise self._error(f"cannot declare exchange {self.exchange_name!r} / queue {self.queue_name!r}", exc) from None

    async def _declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self.exchange_name,
            self.exchange_type,
            durable=self.pipeline.get_bool("exchange_durable"),
            auto_delete=self.pipeline.get_bool("exchange_auto_delete"),
        )

    async def _declare_queue(self, channel: AbstractChannel) -> AbstractQueue:
        queue = await channel.declare_queue(
            self.queue_name,
            durable=self.pipeline.get_bool("durable"),
            exclusive=self.pipeline.get_bool("exclusive"),
            auto_delete=self.pipeline.get_bool("queue_auto_delete"),
            arguments=self._queue_args or None,
        )
        await queue.bind(self.exchange_name, routing_key=self.routing_key or self.queue_name)
        return queue

    def _on_lost(self, _conn: Any, exc: BaseException | None) -> None:
        if self.tracker.stopped or exc is None:
            return
        self._lost_at = time.monotonic()
        self._up.clear()
        log.warning("amqp connection lost, redialing", extra={"pipeline": self.pipeline.name, "error": str(exc)})

    def _on_back(self, _conn: Any) -> None:
        down = time.monotonic() - self._lost_at if self._lost_at is not None else 0.0
        self._lost_at = None
        self._up.set()
        log.info("amqp connection restored", extra={"pipeline": self.pipeline.name, "down_s": round(down, 3)})

    # -- push ---------------------------------------------------------------------------------
    async def push(self, job: Job) -> None:
        """Publish; while the connection is being redialled, wait until its channels are restored
        (up to ``redial_timeout``; the module docstring says why not only the connection)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.redial_timeout
        while True:
            if not self._up.is_set():  # set by _on_back, once the channels are restored
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._up.wait(), max(0.0, deadline - loop.time()))
            try:
                await self.publish(job)
                return
            except (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError) as exc:
                if self.tracker.stopped or loop.time() >= deadline:
                    raise self._error(f"push of job {job.id}", exc) from None
            await asyncio.sleep(0.1)

    async def publish(self, job: Job) -> None:
        if self._publish_ch is None or self._exchange is None:
            raise DriverError(f"pipeline {self.pipeline.name!r} (amqp): not connected")
        if self._lost_at is not None and time.monotonic() - self._lost_at > self.redial_timeout:
            raise DriverError(
                f"pipeline {self.pipeline.name!r} (amqp at {redact(self.addr)}): broker unreachable "
                f"for more than redial_timeout ({self.redial_timeout} s)"
            )
        headers = dict(job.headers)
        routing_key = self.routing_key or self.queue_name
        override = headers.pop(X_ROUTING_KEY, None)
        if override and len(override) == 1 and override[0]:
            routing_key = override[0]
        message = aio_pika.Message(
            job.payload,
            headers=_pack(job, headers),
            content_type="application/octet-stream",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=datetime.now(UTC),
        )
        if job.delay > 0:
            ms = job.delay * 1000
            name = f"delayed-{ms}.{self.exchange_name}.{self.queue_name or self.routing_key}"
            delayed = await self._publish_ch.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-dead-letter-exchange": self.exchange_name,
                    "x-dead-letter-routing-key": routing_key,
                    "x-message-ttl": ms,
                    "x-expires": ms * 2,
                },
                robust=False,  # it expires when idle: never re-declared after a redial
            )
            await delayed.bind(self.exchange_name, routing_key=name)
            routing_key = name
            self._delayed += 1
        await self._exchange.publish(message, routing_key=routing_key)

    def delay_done(self, job: Job) -> None:
        if job.delay > 0 and self._delayed > 0:
            self._delayed -= 1

    # -- consume ------------------------------------------------------------------------------
    async def run(self) -> None:
        if not self.queue_name:
            raise DriverError(
                f"{self.pipeline.source}: jobs.pipelines.{self.pipeline.name}.config.queue: empty queue name, "
                "an amqp pipeline needs one to consume"
            )
        if self._consuming or self._conn is None:
            return
        try:
            if self._consume_ch is None:
                self._consume_ch = await self._conn.channel()
                await self._consume_ch.set_qos(prefetch_count=self.prefetch)
                await self._declare_exchange(self._consume_ch)  # the queue's binding needs it: see the docstring
                self._queue = await self._declare_queue(self._consume_ch)
            assert self._queue is not None
            await self._queue.consume(self._on_message, consumer_tag=self.consumer_id)
        except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as exc:
            raise self._error(f"cannot consume from queue {self.queue_name!r}", exc) from None
        self._consuming = True

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self.tracker.stopped:
            return  # the channel closes with it unacknowledged: the broker keeps it
        await hand_over(self.queue, AmqpDelivery(self._unpack(message), message, self))

    def _unpack(self, message: AbstractIncomingMessage) -> Job:
        raw = dict(message.headers or {})
        headers: Headers = {}
        packed = raw.get(RR_HEADERS)
        if isinstance(packed, bytes | bytearray | str):
            # packed by RoadRunner or by us: its headers are all there; the other AMQP headers are the
            # broker's bookkeeping (x-death from the delay queue) and stay out of the job
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                extra = json.loads(packed)
                if isinstance(extra, dict):
                    headers.update({str(k): [str(x) for x in v] for k, v in extra.items() if isinstance(v, list)})
        else:  # a foreign producer: its AMQP headers become the job's, as RoadRunner converts them
            for key, value in raw.items():
                if key not in RR_KEYS:
                    _header_values(headers, key, value)
        job_id = raw.get(RR_ID)
        name = raw.get(RR_JOB)
        priority = raw.get(RR_PRIORITY)
        delay = raw.get(RR_DELAY)
        return Job(
            id=job_id if isinstance(job_id, str) and job_id else str(uuid.uuid4()),
            name=name if isinstance(name, str) and name else AUTO_JOB,
            payload=message.body,
            pipeline=self.pipeline.name,
            headers=headers,
            priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else self.pipeline.priority,
            delay=delay if isinstance(delay, int) and not isinstance(delay, bool) else 0,
            auto_ack=raw.get(RR_AUTO_ACK) is True,
        )

    async def pause(self) -> None:
        if not self._consuming or self._queue is None:
            return
        self._consuming = False
        with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError):
            await self._queue.cancel(self.consumer_id)

    async def resume(self) -> None:
        await self.run()

    async def stop(self) -> None:
        self.tracker.stopped = True
        self._consuming = False
        if self._conn is None:
            return
        try:
            if self.delete_on_stop and self.queue_name and self._publish_ch is not None:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError, TimeoutError):
                    await self._publish_ch.queue_delete(self.queue_name)
        finally:
            # closing the channels hands every unacknowledged delivery back to the broker
            with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError):
                await asyncio.wait_for(self._conn.close(), 10)
            self._conn = None

    async def stat(self) -> Stat:
        active = 0
        if self.queue_name and self._conn is not None and not self._conn.is_closed:
            try:
                async with self._conn.channel() as channel:
                    declared = await channel.declare_queue(self.queue_name, passive=True, timeout=5)
                    active = declared.declaration_result.message_count or 0
            except (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError) as exc:
                log.debug("amqp stat failed", extra={"pipeline": self.pipeline.name, "error": str(exc)})
        return self.tracker.stat("amqp", self.queue_name, active=active, delayed=self._delayed, ready=self._consuming)


def _pack(job: Job, headers: Headers) -> dict[str, Any]:
    return {
        RR_ID: job.id,
        RR_JOB: job.name,
        RR_PIPELINE: job.pipeline,
        RR_HEADERS: bytearray(json.dumps(headers, separators=(",", ":")).encode()),  # a byte array, as Go sends []byte
        RR_DELAY: job.delay,
        RR_PRIORITY: job.priority,
        RR_AUTO_ACK: job.auto_ack,
    }


def _header_values(out: Headers, key: str, value: Any) -> None:
    """A foreign AMQP header as job header strings (tables flatten into their own keys), as RoadRunner."""
    if isinstance(value, bool):
        out[key] = ["true" if value else "false"]
    elif isinstance(value, bytes | bytearray):
        out.setdefault(key, []).append(bytes(value).decode(errors="replace"))
    elif isinstance(value, float):
        out.setdefault(key, []).append(f"{value:.5f}")
    elif isinstance(value, datetime):
        out.setdefault(key, []).append(value.isoformat())
    elif isinstance(value, list):
        for item in value:
            _header_values(out, key, item)
    elif isinstance(value, Mapping):
        for sub, item in value.items():
            _header_values(out, str(sub), item)
    elif value is not None:
        out.setdefault(key, []).append(str(value))


def _queue_headers(pipeline: Pipeline) -> dict[str, Any]:
    raw = pipeline.config.get("queue_headers")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):  # jobs.Declare sends every value as a string: JSON there
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{pipeline.source}: jobs.pipelines.{pipeline.name}.config.queue_headers: expected a map of queue arguments"
        )
    return dict(raw)
