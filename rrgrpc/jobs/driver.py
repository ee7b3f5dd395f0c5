"""The contract between the jobs plugin and its queue drivers (memory, boltdb, amqp, beanstalk, nats).

Owns the ``Job`` record, the ``Pipeline`` a driver is built from, the ``Delivery`` a driver hands over,
the ``Driver`` base class, the ``Stat`` row and the registry that maps a pipeline's ``driver:`` name to
the module that implements it. It imports nothing of the plugin, so a driver module only needs this one.

How the pieces meet::

    RPC jobs.Push ──► plugin ──► driver.push(job) ──► broker / memory / sqlite
                                                         │ (consuming pipelines, at most ``prefetch``
                                                         ▼  unsettled deliveries per pipeline)
    worker ◄── plugin poller ◄── DeliveryQueue.put(delivery)   (one priority queue shared by all pipelines)
       └── reply ──► delivery.ack() / nack(requeue, delay) / requeue(delay, headers)

Lifecycle, driven by the plugin (each call at most once, in this order, except pause/resume which
alternate while running)::

    factory(pipeline, broker, queue) → await open() → [await run() → pause()/resume() ...] → await stop()

Pipelines are declared from the config file (``jobs.pipelines``) or at run time (``jobs.Declare``, whose
values all arrive as strings: use the ``Pipeline`` accessors, which coerce). ``jobs.Destroy`` is ``stop()``
followed by forgetting the driver.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from rrgrpc.errors import ConfigError, RRError

#: RoadRunner's default job and pipeline priority (lower value = served first).
DEFAULT_PRIORITY: Final = 10
#: RoadRunner's default prefetch: how many deliveries a pipeline may have handed over and not settled.
DEFAULT_PREFETCH: Final = 100_000

Headers = dict[str, list[str]]


class DriverError(RRError):
    """A driver cannot do what was asked: broker unreachable, queue missing, pipeline not consuming.

    The message is one line that names the pipeline and the cause (never a broker password).
    """


@dataclass(frozen=True, slots=True)
class Job:
    """One job, as pushed by a producer (``jobs.v1.Job`` + its ``Options``) and as handed to a worker."""

    id: str
    #: the job name (``Job.job`` on the wire; usually a PHP class name)
    name: str
    payload: bytes
    pipeline: str
    headers: Headers = field(default_factory=dict)
    #: lower is served first; 0 on the wire means "the pipeline's priority"
    priority: int = DEFAULT_PRIORITY
    #: seconds to wait before the job may be delivered (0 = at once)
    delay: int = 0
    #: acknowledge when taken, before the worker runs it (at-most-once)
    auto_ack: bool = False
    # Kafka-only options of jobs.v1.Options; carried through untouched for drivers that use them.
    topic: str = ""
    metadata: str = ""
    offset: int = 0
    partition: int = 0

    def with_(self, **changes: Any) -> Job:
        """A copy with some fields replaced (requeue with new headers or a new delay)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A pipeline's declaration: its name, its driver and the driver's keys (``pipelines.<name>.config``).

    ``source`` is where it was declared (the config file, or ``"jobs.Declare"``) for error messages.
    Values may be strings (``jobs.Declare`` sends a ``map<string,string>``): the accessors convert.
    """

    name: str
    driver: str
    config: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<config>"

    def has(self, key: str) -> bool:
        return key in self.config

    def get_str(self, key: str, default: str = "") -> str:
        value = self.config.get(key)
        return default if value is None else str(value)

    def get_int(self, key: str, default: int = 0) -> int:
        value = self.config.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.source}: jobs.pipelines.{self.name}.config.{key}: expected an integer, got {value!r}"
            ) from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.config.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(
            f"{self.source}: jobs.pipelines.{self.name}.config.{key}: expected true or false, got {value!r}"
        )

    @property
    def priority(self) -> int:
        """The pipeline's default job priority (``priority``, RoadRunner default 10)."""
        return self.get_int("priority", DEFAULT_PRIORITY)

    @property
    def prefetch(self) -> int:
        """How many deliveries may be handed over and not yet settled (``prefetch``)."""
        return max(1, self.get_int("prefetch", DEFAULT_PREFETCH))


class Delivery(abc.ABC):
    """A job taken from a broker, waiting in (or taken from) the plugin's priority queue.

    Exactly one of ``ack`` / ``nack`` / ``requeue`` is called per delivery, once; after it the
    delivery no longer counts against the pipeline's prefetch. Each must be safe to call after the
    driver stopped (then it is a no-op: the broker already took the job back).
    """

    __slots__ = ("driver", "job", "queue")

    def __init__(self, job: Job, *, driver: str, queue: str) -> None:
        self.job = job
        #: the driver name reported to the worker (``"memory"``, ``"amqp"``, ...)
        self.driver = driver
        #: the broker-side queue name (AMQP queue, beanstalk tube, NATS subject, boltdb bucket)
        self.queue = queue

    @abc.abstractmethod
    async def ack(self) -> None:
        """The job is done: remove it from the broker for good."""

    @abc.abstractmethod
    async def nack(self, *, requeue: bool, delay: int = 0) -> None:
        """Negative acknowledgement: redeliver (after ``delay`` seconds where supported) or drop."""

    @abc.abstractmethod
    async def requeue(self, *, delay: int = 0, headers: Headers | None = None) -> None:
        """Put the job back at the tail of its queue, with ``headers`` merged in and after ``delay`` seconds."""


class DeliveryQueue(Protocol):
    """The plugin's priority queue, shared by every consuming pipeline (lower ``job.priority`` first)."""

    async def put(self, delivery: Delivery) -> None:
        """Hand a delivery over; waits while the queue holds ``jobs.pipeline_size`` deliveries."""
        ...


@dataclass(frozen=True, slots=True)
class Stat:
    """One row of ``jobs.Stat`` / ``rr jobs --list`` / ``rr workers`` (``jobs.v1.Stat``)."""

    pipeline: str
    driver: str
    queue: str
    #: jobs waiting in the broker, ready to be delivered
    active: int = 0
    #: jobs waiting for their delay to pass
    delayed: int = 0
    #: deliveries handed over and not settled yet (in the priority queue or at a worker)
    reserved: int = 0
    #: consuming (not paused, not stopped)
    ready: bool = False
    priority: int = DEFAULT_PRIORITY


class Driver(abc.ABC):
    """One pipeline's connection to its broker.

    Subclasses keep the constructor signature of ``DriverFactory``; the constructor does no I/O.
    A driver owns the tasks it starts and ends them in ``stop()``.
    """

    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        self.pipeline = pipeline
        #: the top-level section named after the driver (``amqp: {addr: ...}``), ``{}`` when absent
        self.broker = broker
        self.queue = queue

    async def open(self) -> None:  # noqa: B027 - optional hook, most drivers need it
        """Connect and declare the broker-side queue. Raises ``DriverError`` (one line) when it cannot."""

    @abc.abstractmethod
    async def push(self, job: Job) -> None:
        """Store a job (honouring ``job.delay``); it is delivered once the pipeline consumes.

        Works whether or not the pipeline is consuming or paused. Raises ``DriverError``.
        """

    @abc.abstractmethod
    async def run(self) -> None:
        """Start consuming: hand deliveries to ``self.queue`` in priority order, never more than
        ``pipeline.prefetch`` unsettled at a time. Returns once consuming has started."""

    @abc.abstractmethod
    async def pause(self) -> None:
        """Stop handing over new deliveries (pushing still works; in-flight deliveries settle normally)."""

    @abc.abstractmethod
    async def resume(self) -> None:
        """Hand over deliveries again after ``pause()``."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop consuming and close the broker connection. Every delivery not acknowledged by now goes
        back to the broker (explicitly, or because the broker does so when the consumer goes away):
        nothing is lost, except what an in-memory driver holds by nature."""

    @abc.abstractmethod
    async def stat(self) -> Stat:
        """The pipeline's counters; must answer quickly (it backs ``rr workers`` and ``/metrics``)."""


DriverFactory = Callable[[Pipeline, Mapping[str, Any], DeliveryQueue], Driver]

#: driver name → "module:attribute" of its ``Driver`` subclass, imported on first use.
DRIVERS: Final[Mapping[str, str]] = {
    "memory": "rrgrpc.jobs.memory:MemoryDriver",
    "boltdb": "rrgrpc.jobs.boltdb:BoltDriver",
    "amqp": "rrgrpc.jobs.amqp:AmqpDriver",
    "beanstalk": "rrgrpc.jobs.beanstalk:BeanstalkDriver",
    "nats": "rrgrpc.jobs.nats:NatsDriver",
}
#: RoadRunner drivers rrgrpc does not implement (named in the error so it is not taken for a typo).
NOT_SUPPORTED: Final = ("sqs", "kafka", "googlepubsub", "gcp")


def driver_factory(pipeline: Pipeline) -> DriverFactory:
    """The factory for ``pipeline.driver``; ``ConfigError`` naming the pipeline and the file otherwise."""
    target = DRIVERS.get(pipeline.driver)
    where = f"{pipeline.source}: jobs.pipelines.{pipeline.name}.driver"
    if target is None:
        known = ", ".join(DRIVERS)
        why = " (a RoadRunner driver rrgrpc does not implement)" if pipeline.driver in NOT_SUPPORTED else ""
        raise ConfigError(f"{where}: driver {pipeline.driver!r} is not supported{why}; supported: {known}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ConfigError(f"{where}: driver {pipeline.driver!r} is not supported by this build") from None
        raise ConfigError(
            f"{where}: driver {pipeline.driver!r} needs the Python package {exc.name!r}, which is not installed"
        ) from None
    factory: DriverFactory = getattr(module, attr)
    return factory
