"""The ``nats`` driver: jobs in a NATS JetStream stream.

Broker section ``nats: {addr}`` (default ``nats://127.0.0.1:4222``). Pipeline keys, with RoadRunner's
defaults: ``stream`` (``default-stream``), ``subject`` (``default``), ``prefetch`` (100: at most that many
jobs delivered and not settled), ``priority`` (10), ``deliver_new`` (a new consumer starts with the
messages published after it, instead of all in the stream), ``delete_after_ack`` (acknowledged messages
are deleted from the stream), ``delete_stream_on_stop``, ``ack_wait`` (30 s: an unacknowledged job is
delivered again after it); ``rate_limit`` is accepted and, as in RoadRunner, has no effect.

A message body is RoadRunner's JSON job envelope (its ``[]byte`` payload in base64) plus the headers,
which also travel as NATS headers (first value each) as RoadRunner sends them; a received job gets the
header ``x-nats-subject``. NATS has no delayed delivery: a push with a delay is refused, as in
RoadRunner; a nack with a delay is JetStream's own delayed NAK, and a requeue publishes at once.

Unlike RoadRunner (a new ephemeral consumer with MaxDeliver 1 each run), the pipeline reads through a
durable pull consumer named after the stream and pipeline, with unlimited redelivery: what was
acknowledged stays acknowledged across restarts, a job whose consumer died comes again after
``ack_wait``, and ``stop()`` gives the unsettled ones back at once (NAK). The client redials for ever,
buffering what is published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rrgrpc.jobs._broker import (
    BrokerDelivery,
    LoopDriver,
    broker_error,
    describe,
    hand_over,
    pack_envelope,
    unpack_envelope,
)
from rrgrpc.jobs.driver import DeliveryQueue, DriverError, Job, Pipeline, Stat

log = logging.getLogger("rr.jobs")

DEFAULT_ADDR = "nats://127.0.0.1:4222"
SUBJECT_HEADER = "x-nats-subject"
ERRORS = (nats.errors.Error, OSError, TimeoutError)
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_-]")


class NatsDelivery(BrokerDelivery):
    __slots__ = ("_msg", "_owner")

    def __init__(self, job: Job, msg: Msg, owner: NatsDriver) -> None:
        super().__init__(job, driver="nats", queue=owner.stream, tracker=owner.tracker)
        self._msg = msg
        self._owner = owner
        owner.inflight.add(self)

    def _take(self) -> bool:
        self._owner.inflight.discard(self)
        return super()._take()

    async def _ack(self) -> None:
        # confirmed by the server: an ack that returned is never undone, one that raised leaves the job
        # to come again (a plain ack written while the connection dies is lost silently)
        await self._msg.ack_sync(timeout=5)
        await self._owner.deleted(self._msg)

    async def _nack(self, requeue: bool, delay: int) -> None:
        if requeue:
            await self._msg.nak(delay=delay if delay > 0 else None)
        else:
            await self._msg.term()
            await self._owner.deleted(self._msg)

    async def _requeue(self, job: Job) -> None:
        try:
            await self._owner.publish(job.with_(delay=0))  # no delayed delivery in NATS: at once, as RoadRunner
        except BaseException:
            await self._msg.nak()
            raise
        await self._msg.ack_sync(timeout=5)
        await self._owner.deleted(self._msg, always=True)  # the old copy is replaced by the new one

    async def give_back(self) -> None:
        """At stop: NAK so that JetStream delivers it again without waiting for ``ack_wait``."""
        with contextlib.suppress(*ERRORS):
            await self._msg.nak()


class NatsDriver(LoopDriver):
    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        p = pipeline
        self.addr = str(broker.get("addr") or DEFAULT_ADDR)
        self.stream = p.get_str("stream", "default-stream")
        self.subject = p.get_str("subject", "default")
        self.prefetch = max(1, p.get_int("prefetch", 100))
        self.deliver_new = p.get_bool("deliver_new")
        self.delete_after_ack = p.get_bool("delete_after_ack")
        self.delete_stream_on_stop = p.get_bool("delete_stream_on_stop")
        self.ack_wait = max(1, p.get_int("ack_wait", 30))
        self.durable = _NOT_A_NAME.sub("_", f"rr-{self.stream}-{p.name}")
        self.inflight: set[NatsDelivery] = set()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._last_error: Exception | None = None

    def _error(self, what: str, exc: BaseException) -> DriverError:
        return broker_error(self.pipeline, "nats", what, self.addr, exc)

    async def open(self) -> None:
        try:  # the client retries the first dial for ever too: bound it, report the last refusal
            self._nc = await asyncio.wait_for(nats.connect(
                self.addr, connect_timeout=5, allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=1, no_echo=True, error_cb=self._on_error,
                disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected,
            ), 5)
        except (*ERRORS, ValueError) as exc:
            raise self._error("cannot connect", self._last_error or exc) from None
        self._js = self._nc.jetstream()
        try:
            try:
                await self._js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                await self._js.add_stream(name=self.stream, subjects=[self.subject])
            try:
                await self._js.consumer_info(self.stream, self.durable)
            except nats.js.errors.NotFoundError:
                await self._js.add_consumer(self.stream, ConsumerConfig(
                    durable_name=self.durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.NEW if self.deliver_new else DeliverPolicy.ALL,
                    filter_subject=self.subject,
                    max_ack_pending=self.prefetch,
                    max_deliver=-1,
                    ack_wait=self.ack_wait,
                ))
        except ERRORS as exc:
            await self._nc.close()
            raise self._error(f"cannot declare stream {self.stream!r} / consumer {self.durable!r}", exc) from None

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        log.debug("nats client error", extra={"pipeline": self.pipeline.name, "error": describe(exc)})

    async def _on_disconnected(self) -> None:
        if not self.tracker.stopped:
            log.warning("nats connection lost, redialing", extra={"pipeline": self.pipeline.name})

    async def _on_reconnected(self) -> None:
        log.info("nats connection restored", extra={"pipeline": self.pipeline.name})

    async def publish(self, job: Job) -> None:
        assert self._js is not None, "open() first"
        headers = {key: values[0] for key, values in job.headers.items() if values}
        await self._js.publish(self.subject, pack_envelope(job, self.stream),
                               stream=self.stream, headers=headers or None)

    async def push(self, job: Job) -> None:
        if job.delay > 0:
            raise DriverError(
                f"pipeline {self.pipeline.name!r} (nats): job {job.id} has a delay of {job.delay} s, "
                "and NATS has no delayed delivery (as in RoadRunner)"
            )
        try:
            await self.publish(job)
        except ERRORS as exc:
            raise self._error(f"push of job {job.id}", exc) from None

    async def deleted(self, msg: Msg, *, always: bool = False) -> None:
        if (always or self.delete_after_ack) and self._js is not None:
            with contextlib.suppress(*ERRORS):  # gone already is as good
                await self._js.delete_msg(self.stream, msg.metadata.sequence.stream)

    async def _consume(self) -> None:
        assert self._js is not None
        sub = self._sub = await self._js.pull_subscribe_bind(self.durable, self.stream)
        while (room := await self._room(self.prefetch)) > 0:
            try:
                msgs = await sub.fetch(min(room, 256), timeout=1)
            except nats.errors.TimeoutError:
                continue
            except ERRORS as exc:  # disconnected: the client redials by itself
                log.debug("nats fetch failed", extra={"pipeline": self.pipeline.name, "error": describe(exc)})
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                if not self._handing_over():  # paused or stopped meanwhile: give it back at once
                    with contextlib.suppress(*ERRORS):
                        await msg.nak()
                    continue
                await hand_over(self.queue, NatsDelivery(self._unpack(msg), msg, self))

    def _unpack(self, msg: Msg) -> Job:
        headers = {key: [value] for key, value in (msg.headers or {}).items()}
        job = unpack_envelope(msg.data, self.pipeline, headers)
        return job.with_(headers={**job.headers, SUBJECT_HEADER: [msg.subject]})

    async def stop(self) -> None:
        # let the last fetch end rather than cancel it: a pull request cancelled here stays open at the
        # server until it expires, and a job given back meanwhile would be delivered into it (and then
        # wait ack_wait)
        await self._end_loop(grace=5)
        if self._nc is None:
            return
        try:
            if self._sub is not None:
                # the server may hold the last fetch's pull request a little longer than the client
                # waited for it (its expiry counts from when the request arrived); a job given back
                # would go into that orphan request and wait ack_wait. The server skips a pull request
                # whose reply subject lost its interest: unsubscribe, and flush so it knows first.
                with contextlib.suppress(*ERRORS):
                    await self._sub.unsubscribe()
                    await self._nc.flush(timeout=5)
                self._sub = None
            for delivery in list(self.inflight):
                await delivery.give_back()
            self.inflight.clear()
            if self.delete_stream_on_stop and self._js is not None:
                with contextlib.suppress(*ERRORS):
                    await self._js.delete_stream(self.stream)
        finally:
            with contextlib.suppress(*ERRORS):  # the NAKs above are out before the connection goes
                await self._nc.flush(timeout=5)
            with contextlib.suppress(*ERRORS):
                await asyncio.wait_for(self._nc.close(), 10)
            self._nc = None

    async def stat(self) -> Stat:
        active = 0
        if self._js is not None:
            try:
                info = await self._js.consumer_info(self.stream, self.durable, timeout=5)
                active = int(info.num_pending or 0)
            except ERRORS as exc:
                log.debug("nats stat failed", extra={"pipeline": self.pipeline.name, "error": describe(exc)})
        return self.tracker.stat("nats", self.subject, active=active, delayed=0, ready=self._running.is_set())
