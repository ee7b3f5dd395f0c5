"""The ``beanstalk`` driver: jobs in a beanstalkd tube.

Broker section ``beanstalk: {addr, timeout}`` (defaults ``tcp://127.0.0.1:11300`` and ``30s``: the
time to connect, and each job's time-to-run, after which beanstalkd hands a reserved job to another
consumer). Pipeline keys, with RoadRunner's defaults: ``tube`` (``default``), ``tube_priority`` (0, the
beanstalkd priority of every put), ``reserve_timeout`` (``1s``: how long one reserve waits), ``priority``
(10, the job priority when a job has none) and ``prefetch`` (how many reserved jobs may be unsettled).

A job's body is the gob of RoadRunner's job ``Item`` (``gob.encode_item``), plus its headers, which
RoadRunner skips (it does not carry them); jobs go both ways between RoadRunner and rrgrpc. A body
that is not such a gob (a foreign producer) becomes a ``deduced_by_rr`` job, as RoadRunner does. Delays are
beanstalkd's own (``put``/``release`` with a delay). beanstalkd lets only the connection that reserved
a job delete or release it, so reserves and settles share one connection, in turn (while jobs are
out, reserves do not wait, so that their deletes need not wait either); pushes have their own. When
a connection breaks the driver redials with a growing pause (up to 10 s); beanstalkd has already put
the jobs that connection had reserved back in the tube, so they come again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiostalk
import greenstalk

from rrgrpc.config.types import parse_duration
from rrgrpc.jobs import gob
from rrgrpc.jobs._broker import (
    AUTO_JOB,
    BrokerDelivery,
    LoopDriver,
    broker_error,
    deduced,
    describe,
    hand_over,
    host_port,
)
from rrgrpc.jobs.driver import DeliveryQueue, DriverError, Job, Pipeline, Stat

log = logging.getLogger("rr.jobs")

DEFAULT_ADDR = "tcp://127.0.0.1:11300"
T = TypeVar("T")
#: what a broken or confused beanstalkd connection raises through aiostalk
LINK_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, greenstalk.Error, TimeoutError, AssertionError)


class _Link:
    """One beanstalkd connection; commands take turns (the protocol answers them in order)."""

    def __init__(self, address: tuple[str, int], tube: str, *, watch: bool, timeout: float) -> None:
        self.address = address
        self.tube = tube
        self.watch = watch
        self.timeout = timeout
        self.lock = asyncio.Lock()
        self.client: Any = None
        #: bumped on each (re)connect: a delivery reserved on an older connection cannot be settled here
        self.generation = 0

    async def connect(self) -> None:
        client = aiostalk.Client(self.address, encoding=None, use=self.tube,
                                 watch=self.tube if self.watch else greenstalk.DEFAULT_TUBE)
        await asyncio.wait_for(client.connect(), self.timeout)
        self.client = client
        self.generation += 1

    async def call(self, fn: Callable[[Any], Awaitable[T]], *, redial: bool = False) -> T:
        """Run one command. With ``redial``, a connection found broken (the broker restarted since its
        last use) is dialled again once and the command sent again."""
        async with self.lock:
            for attempt in (1, 2):
                if self.client is None:
                    await self.connect()
                try:
                    return await fn(self.client)
                except (OSError, EOFError, asyncio.IncompleteReadError, AssertionError):
                    await self.close()  # the next call dials again
                    if not redial or attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(*LINK_ERRORS):
                await client.close()


class BeanstalkDelivery(BrokerDelivery):
    __slots__ = ("_generation", "_jid", "_owner")

    def __init__(self, job: Job, jid: int, owner: BeanstalkDriver) -> None:
        super().__init__(job, driver="beanstalk", queue=owner.tube, tracker=owner.tracker)
        self._jid = jid
        self._owner = owner
        self._generation = owner.reserver.generation

    async def _on_reserver(self, fn: Callable[[Any], Awaitable[None]]) -> None:
        reserver = self._owner.reserver
        if reserver.generation != self._generation:
            raise DriverError(
                f"pipeline {self._tracker.pipeline.name!r} (beanstalk): the connection that reserved job "
                f"{self.job.id} broke; beanstalkd gave the job back to the tube"
            )
        await reserver.call(fn)

    async def _ack(self) -> None:
        await self._on_reserver(lambda c: c.delete(self._jid))

    async def _nack(self, requeue: bool, delay: int) -> None:
        if requeue:
            await self._on_reserver(lambda c: c.release(self._jid, self._owner.tube_priority, max(0, delay)))
        else:
            await self._on_reserver(lambda c: c.delete(self._jid))

    async def _requeue(self, job: Job) -> None:
        await self._owner.put(job)
        await self._on_reserver(lambda c: c.delete(self._jid))


class BeanstalkDriver(LoopDriver):
    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        self.addr = str(broker.get("addr") or DEFAULT_ADDR)
        try:
            self.timeout = float(parse_duration(broker.get("timeout") or "30s"))
            self.reserve_timeout = float(parse_duration(pipeline.config.get("reserve_timeout") or "1s"))
        except ValueError as exc:
            raise broker_error(pipeline, "beanstalk", "bad duration", self.addr, exc) from None
        self.tube = pipeline.get_str("tube", "default")
        self.tube_priority = pipeline.get_int("tube_priority", 0)
        self.ttr = max(1, int(self.timeout))
        address = host_port(self.addr, 11300)
        self.pusher = _Link(address, self.tube, watch=False, timeout=self.timeout)
        self.reserver = _Link(address, self.tube, watch=True, timeout=self.timeout)

    def _error(self, what: str, exc: BaseException) -> DriverError:
        return broker_error(self.pipeline, "beanstalk", what, self.addr, exc)

    async def open(self) -> None:
        try:
            await self.pusher.connect()
        except (*LINK_ERRORS, ValueError) as exc:
            raise self._error("cannot connect", exc) from None

    async def put(self, job: Job) -> None:
        body = gob.encode_item(job=job.name, ident=job.id, payload=job.payload, priority=job.priority,
                               pipeline=job.pipeline, delay=job.delay, auto_ack=job.auto_ack, queue=self.tube,
                               headers=job.headers)
        await self.pusher.call(lambda c: c.put(body, self.tube_priority, max(0, job.delay), self.ttr), redial=True)

    async def push(self, job: Job) -> None:
        try:
            await self.put(job)
        except LINK_ERRORS as exc:
            raise self._error(f"push of job {job.id}", exc) from None

    async def _consume(self) -> None:
        backoff = 0.0
        prefetch = self.pipeline.prefetch
        while await self._room(prefetch) > 0:
            # while deliveries are out, a reserve must not wait on the connection their deletes need:
            # ask without waiting, and when the tube is empty wait for a settle (or a short while)
            busy = self.tracker.unsettled > 0
            try:
                reserved = await self.reserver.call(self._reserve_now if busy else self._reserve_one)
            except LINK_ERRORS as exc:
                backoff = min(10.0, backoff * 2 or 0.1)
                log.warning("beanstalk connection lost, redialing",
                            extra={"pipeline": self.pipeline.name, "error": describe(exc), "retry_s": backoff})
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            if reserved is None:
                if busy:
                    self.tracker.settled.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.tracker.settled.wait(), min(0.1, self.reserve_timeout))
                continue
            jid, body = reserved
            if not self._handing_over():  # paused while the reserve waited: give it back at once
                with contextlib.suppress(*LINK_ERRORS):
                    await self.reserver.call(self._releaser(jid))
                continue
            await hand_over(self.queue, BeanstalkDelivery(_unpack(body, self.pipeline), jid, self))

    def _releaser(self, jid: int) -> Callable[[Any], Awaitable[None]]:
        return lambda c: c.release(jid, self.tube_priority, 0)

    async def _reserve_now(self, client: Any) -> tuple[int, bytes] | None:
        return await self._reserve_one(client, wait=0)

    async def _reserve_one(self, client: Any, wait: int | None = None) -> tuple[int, bytes] | None:
        try:
            reserved = await client.reserve(int(self.reserve_timeout) if wait is None else wait)
        except (greenstalk.TimedOutError, greenstalk.DeadlineSoonError):
            return None
        return int(reserved.id), bytes(reserved.body)

    async def stop(self) -> None:
        await self._end_loop(grace=0)  # a reserve cut short is harmless: its connection closes now
        # closing the reserving connection hands every job it reserved back to the tube
        await self.reserver.close()
        await self.pusher.close()

    async def stat(self) -> Stat:
        active = delayed = 0
        try:
            stats = await asyncio.wait_for(self.pusher.call(lambda c: c.stats_tube(self.tube)), 5)
            active = int(stats.get("current-jobs-ready", 0))
            delayed = int(stats.get("current-jobs-delayed", 0))
        except greenstalk.NotFoundError:
            pass  # the tube does not exist until a job is put
        except LINK_ERRORS as exc:
            log.debug("beanstalk stat failed", extra={"pipeline": self.pipeline.name, "error": describe(exc)})
        return self.tracker.stat("beanstalk", self.tube, active=active, delayed=delayed, ready=self._running.is_set())


def _unpack(body: bytes, pipeline: Pipeline) -> Job:
    """A job from RoadRunner's gob ``Item`` (its ``Payload`` a string in releases before 2023), or a
    ``deduced_by_rr`` job from any other body."""
    try:
        item = gob.decode(body)
    except gob.GobError:
        return deduced(body, pipeline)
    options = item.get("Options") or {}
    payload = item.get("Payload", b"")
    if not isinstance(item.get("Job", ""), str) or not isinstance(options, dict):
        return deduced(body, pipeline)
    headers = item.get("Headers") or {}
    return Job(
        id=str(item.get("Ident") or uuid.uuid4()),
        name=item.get("Job") or AUTO_JOB,
        payload=payload.encode() if isinstance(payload, str) else bytes(payload),
        pipeline=pipeline.name,
        headers={str(k): [str(x) for x in v] for k, v in headers.items() if isinstance(v, list)},
        priority=int(options.get("Priority") or pipeline.priority),
        delay=int(options.get("Delay") or 0),
        auto_ack=bool(options.get("AutoAck", False)),
    )
