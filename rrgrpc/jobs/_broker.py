"""What the broker drivers (amqp, beanstalk, nats) share: settle-once deliveries, the unsettled count,
RoadRunner's metadata keys and JSON envelope, and broker addresses safe to print.

A ``BrokerDelivery`` settles once; after its driver stopped a settle is a no-op (closing the broker
connection already gave the job back). Broker client errors become one-line ``DriverError``s, which the
plugin logs without a traceback.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from rrgrpc.jobs.driver import Delivery, DeliveryQueue, Driver, DriverError, Headers, Job, Pipeline, Stat

log = logging.getLogger("rr.jobs")

#: job name RoadRunner gives a message that carries no job metadata (pushed by a foreign producer)
AUTO_JOB: Final = "deduced_by_rr"
# RoadRunner's metadata keys (AMQP headers): roadrunner-server/api jobs constants
RR_ID: Final = "rr_id"
RR_JOB: Final = "rr_job"
RR_HEADERS: Final = "rr_headers"
RR_PIPELINE: Final = "rr_pipeline"
RR_DELAY: Final = "rr_delay"
RR_PRIORITY: Final = "rr_priority"
RR_AUTO_ACK: Final = "rr_auto_ack"
RR_KEYS: Final = frozenset({RR_ID, RR_JOB, RR_HEADERS, RR_PIPELINE, RR_DELAY, RR_PRIORITY, RR_AUTO_ACK})


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for error messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """(host, port) of ``tcp://host:port``, ``host:port`` or ``nats://host:port``."""
    parts = urlsplit(url if "//" in url else f"tcp://{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


class Tracker:
    """A driver's shared state as its deliveries see it: how many are unsettled, and whether it stopped."""

    __slots__ = ("pipeline", "settled", "stopped", "unsettled")

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.unsettled = 0
        self.stopped = False
        #: set whenever a delivery settles (a consuming loop waiting for prefetch room wakes up)
        self.settled = asyncio.Event()

    def stat(self, driver: str, queue: str, *, active: int, delayed: int, ready: bool) -> Stat:
        """The pipeline's ``Stat`` row: broker counters plus the deliveries not settled yet."""
        return Stat(pipeline=self.pipeline.name, driver=driver, queue=queue, active=active, delayed=delayed,
                    reserved=self.unsettled, ready=ready and not self.stopped, priority=self.pipeline.priority)


class BrokerDelivery(Delivery):
    """A delivery that settles once and reports broker failures as ``DriverError``."""

    __slots__ = ("_settled", "_tracker")

    def __init__(self, job: Job, *, driver: str, queue: str, tracker: Tracker) -> None:
        super().__init__(job, driver=driver, queue=queue)
        self._tracker = tracker
        self._settled = False
        tracker.unsettled += 1

    def _take(self) -> bool:
        """Mark settled; False when already settled or when the driver stopped (nothing to do then)."""
        if self._settled:
            return False
        self._settled = True
        if self._tracker.stopped:
            self._release()
            return False
        return True

    def _release(self) -> None:
        """No longer unsettled: counted once the broker has been told (so a stat showing nothing
        reserved means every answer reached the broker)."""
        self._tracker.unsettled -= 1
        self._tracker.settled.set()

    async def _do(self, what: str, action: Awaitable[None]) -> None:
        try:
            await action
        except DriverError:
            raise
        except Exception as exc:  # each broker client has its own error tree; none of it may escape raw
            if self._tracker.stopped:
                return
            raise DriverError(
                f"pipeline {self._tracker.pipeline.name!r} ({self.driver}): {what} of job {self.job.id} "
                f"failed: {describe(exc)}"
            ) from exc
        finally:
            self._release()

    async def ack(self) -> None:
        if self._take():
            await self._do("ack", self._ack())

    async def nack(self, *, requeue: bool, delay: int = 0) -> None:
        if self._take():
            await self._do("nack", self._nack(requeue, delay))

    async def requeue(self, *, delay: int = 0, headers: Headers | None = None) -> None:
        if self._take():
            merged = {**self.job.headers, **(headers or {})}
            await self._do("requeue", self._requeue(self.job.with_(headers=merged, delay=delay)))

    @abc.abstractmethod
    async def _ack(self) -> None: ...

    @abc.abstractmethod
    async def _nack(self, requeue: bool, delay: int) -> None: ...

    @abc.abstractmethod
    async def _requeue(self, job: Job) -> None:
        """Publish ``job`` (new headers and delay) anew, then remove this delivery from the broker."""


class LoopDriver(Driver):
    """A driver whose consuming is one task (``_consume``) taking jobs from the broker while running."""

    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        self.tracker = Tracker(pipeline)
        self._running = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def _consume(self) -> None: ...

    async def _room(self, prefetch: int) -> int:
        """Wait until consuming with fewer than ``prefetch`` deliveries unsettled (or stopped): how many
        more may be handed over (0 once stopped)."""
        while True:
            await self._running.wait()
            if self.tracker.stopped:
                return 0
            room = prefetch - self.tracker.unsettled
            if room > 0:
                return room
            self.tracker.settled.clear()
            await self.tracker.settled.wait()

    def _handing_over(self) -> bool:
        """False when a job just taken must go back: paused or stopped meanwhile."""
        return self._running.is_set() and not self.tracker.stopped

    async def run(self) -> None:
        self._running.set()
        if self._loop is None:
            self._loop = asyncio.create_task(self._consume(), name=f"jobs {self.pipeline.driver} {self.pipeline.name}")

    async def pause(self) -> None:
        self._running.clear()

    async def resume(self) -> None:
        await self.run()

    async def _end_loop(self, grace: float) -> None:
        """Mark stopped and end the consuming task: let it finish its broker call for up to ``grace``
        seconds (it returns once it sees ``stopped``), then cancel it."""
        self.tracker.stopped = True
        if self._loop is not None:
            self._running.set()  # wake it, to see ``stopped``
            self.tracker.settled.set()
            if grace > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._loop), grace)
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        self._running.clear()


async def hand_over(queue: DeliveryQueue, delivery: Delivery) -> None:
    """Put a delivery in the plugin's queue; a queue that is closing gives it straight back (nack), and
    a broker that fails that nack is logged: the broker keeps the job anyway."""
    try:
        await queue.put(delivery)
    except DriverError as exc:
        log.warning("job given back during shutdown failed", extra={"id": delivery.job.id, "error": str(exc)})


def describe(exc: BaseException) -> str:
    """One line for a broker client error: its message, or its class name when it has none."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def broker_error(pipeline: Pipeline, driver: str, what: str, addr: str, exc: BaseException) -> DriverError:
    """The one-line error for a failed broker call of a pipeline (the address without its password)."""
    return DriverError(f"pipeline {pipeline.name!r} ({driver} at {redact(addr)}): {what}: {describe(exc)}")


# -- RoadRunner's JSON envelope (NATS message bodies) ----------------------------------------------
def pack_envelope(job: Job, queue: str) -> bytes:
    """The job as RoadRunner's ``Item`` marshals to JSON (payload base64, as Go encodes ``[]byte``),
    plus ``headers``, which RoadRunner's decoder ignores."""
    item: dict[str, Any] = {
        "job": job.name,
        "id": job.id,
        "payload": base64.b64encode(job.payload).decode("ascii"),
        "options": {
            "priority": job.priority,
            "pipeline": job.pipeline,
            "delay": job.delay,
            "auto_ack": job.auto_ack,
            "Queue": queue,
        },
        "headers": job.headers,
    }
    return json.dumps(item, separators=(",", ":")).encode()


def deduced(data: bytes, pipeline: Pipeline, headers: Headers | None = None) -> Job:
    """A body without job metadata (a foreign producer): the payload of a job named ``deduced_by_rr``
    with a fresh id and the pipeline's priority, as RoadRunner makes it."""
    return Job(id=str(uuid.uuid4()), name=AUTO_JOB, payload=data, pipeline=pipeline.name,
               headers=dict(headers or {}), priority=pipeline.priority)


def unpack_envelope(data: bytes, pipeline: Pipeline, headers: Headers | None = None) -> Job:
    """A job from a message body: RoadRunner's JSON envelope, or else ``deduced``."""
    try:
        item = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        item = None
    if not isinstance(item, dict) or not isinstance(item.get("job"), str) or "id" not in item:
        return deduced(data, pipeline, headers)
    options = item.get("options") if isinstance(item.get("options"), Mapping) else {}
    assert isinstance(options, Mapping)
    merged: Headers = dict(headers or {})
    if isinstance(item.get("headers"), Mapping):
        merged.update({str(k): [str(x) for x in v] for k, v in item["headers"].items() if isinstance(v, list)})
    return Job(
        id=str(item["id"]),
        name=item["job"],
        payload=_payload(item.get("payload")),
        pipeline=pipeline.name,
        headers=merged,
        priority=int(options.get("priority") or pipeline.priority),
        delay=int(options.get("delay") or 0),
        auto_ack=bool(options.get("auto_ack", False)),
    )


def _payload(value: Any) -> bytes:
    """Go marshals ``[]byte`` as base64 (RoadRunner ≥ 2023); older releases sent a plain string."""
    if not isinstance(value, str):
        return b"" if value is None else json.dumps(value).encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()
