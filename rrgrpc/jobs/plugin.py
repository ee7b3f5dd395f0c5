"""JobsPlugin: RoadRunner's ``jobs`` plugin — pipelines, their drivers, the consumers and the ``jobs`` RPC.

Owns the ``jobs:`` section at run time: one pool of ``RR_MODE=jobs`` workers, one driver per pipeline
(``jobs.pipelines`` at start, ``jobs.Declare`` later; those named in ``consume`` consume at once, the
others on ``jobs.Resume``), the priority queue they feed, ``num_pollers`` pollers that run each delivery
on a worker and settle it from the worker's answer (``protocol.py``), the ``jobs`` RPC service (``rpc.py``),
RoadRunner's ``rr_jobs_*`` metrics, and the push/consume spans: the push continues the
trace found in the job's headers and writes its own context back into them, the consume span continues
that, so an HTTP request that pushes a job and the worker that runs it share one trace.

Nothing is lost on the way down: stop takes no new work, lets running tasks finish (``pool.destroy_timeout``),
returns what waits in the queue to its broker (nack with requeue), then stops the drivers, which hand back
whatever is still unacknowledged. A task whose worker dies (or times out) is requeued; one the worker
answers with an ERROR frame is negatively acknowledged, requeued only with the pipeline's
``requeue_on_fail``, as RoadRunner does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rrgrpc.errors import ConfigError, PoolError, RRError, WorkerError
from rrgrpc.jobs.driver import Delivery, Driver, Job, Pipeline, Stat, driver_factory
from rrgrpc.jobs.protocol import Reply, ReplyType, parse_reply, task_context
from rrgrpc.jobs.queue import PriorityQueue
from rrgrpc.jobs.rpc import JobsError, rpc_methods
from rrgrpc.plugin import HasPipelines, PoolBacked, ProvidesMetrics, RpcProvider
from rrgrpc.pool import Payload, Pool, open_pool
from rrgrpc.tracing import PROPAGATOR

if TYPE_CHECKING:
    from rrgrpc.config.schema import JobsConfig, RRConfig
    from rrgrpc.plugin import Peers, RpcMethod

log = logging.getLogger("rr.jobs")


@dataclass(slots=True)
class _Pipe:
    pipeline: Pipeline
    driver: Driver
    started: bool = False  # run() was called once; later starts are resume()


class _Counters(Collector):
    """``rr_jobs_jobs_ok|jobs_err|push_ok|push_err`` (gauges in RoadRunner, kept so)."""

    def __init__(self) -> None:
        self.values = {"jobs_ok": 0, "jobs_err": 0, "push_ok": 0, "push_err": 0}

    def collect(self) -> Sequence[GaugeMetricFamily]:
        helps = {
            "jobs_ok": "Number of successfully processed jobs",
            "jobs_err": "Number of jobs error while processing in the worker",
            "push_ok": "Number of job push",
            "push_err": "Number of jobs push which was failed",
        }
        return [GaugeMetricFamily(f"rr_jobs_{k}", helps[k], value=v) for k, v in self.values.items()]


class JobsPlugin(PoolBacked):
    """RoadRunner's jobs plugin (HasWorkers, Resettable, RpcProvider, ProvidesMetrics, HasStatus)."""

    capabilities = (*PoolBacked.capabilities, RpcProvider, ProvidesMetrics, HasPipelines)
    name = "jobs"
    rpc_service = "jobs"

    def __init__(self, cfg: RRConfig) -> None:
        if cfg.jobs is None:
            raise ConfigError(f"{cfg.source}: jobs: section missing")
        self.cfg = cfg
        self.jobs: JobsConfig = cfg.jobs
        self.pool: Pool | None = None
        self._consume = set(self.jobs.consume)
        self._configured = [
            Pipeline(name, p.driver, dict(p.config), cfg.source) for name, p in self.jobs.pipelines.items()
        ]
        for pipeline in self._configured:
            driver_factory(pipeline)  # an unknown driver fails the start, naming the pipeline and the file
        self._pipes: dict[str, _Pipe] = {}
        self._started = asyncio.Event()  # the configured pipelines are declared
        self._queue: PriorityQueue | None = None
        self._counters = _Counters()
        self._requests = Counter(
            "rr_jobs_requests", "The total number of requests sent to the JOBS plugin",
            ["job", "driver", "source"], registry=None,
        )  # fmt: skip
        self._latency = Histogram(
            "rr_jobs_push_latency", "Histogram represents latency for pushed operation",
            ["job", "driver", "source"], registry=None,
        )  # fmt: skip
        self._tracer = trace.get_tracer("rrgrpc.jobs")

    # -- capabilities (the pool-backed ones come from PoolBacked) -------------------------------
    def collectors(self) -> list[Any]:
        return [self._counters, self._requests, self._latency]

    def pipeline_names(self) -> list[str]:
        return sorted(self._pipes)

    async def pipelines_state(self) -> list[dict[str, Any]]:
        """One row per pipeline (informer.Jobs, status ``/jobs``, ``rr workers``), sorted by name."""
        rows = []
        for name in sorted(self._pipes):
            pipe = self._pipes[name]
            try:
                async with asyncio.timeout(self.jobs.timeout):
                    st = await pipe.driver.stat()
                error = ""
            except (RRError, OSError, TimeoutError) as exc:
                st = Stat(pipeline=name, driver=pipe.pipeline.driver, queue="", priority=pipe.pipeline.priority)
                error = str(exc) or type(exc).__name__
            rows.append({**dataclasses.asdict(st), "error_message": error})
        return rows

    # -- operations (RPC and tests) -----------------------------------------------------------
    async def push(self, job: Job, source: str = "single") -> None:
        pipe = await self._find(job.pipeline)
        driver_name = pipe.pipeline.driver
        self._requests.labels(job.pipeline, driver_name, source).inc()
        start = time.perf_counter()
        if job.priority == 0:
            job = job.with_(priority=pipe.pipeline.priority)
        parent = PROPAGATOR.extract(_carrier(job.headers))
        attributes = _span_attributes(job, driver_name, "publish")
        with self._tracer.start_as_current_span(
            f"jobs push {job.pipeline}", parent, trace.SpanKind.PRODUCER, attributes
        ) as span:
            carrier: dict[str, str] = {}
            PROPAGATOR.inject(carrier)
            if carrier:
                job = job.with_(headers={**job.headers, **{k: [v] for k, v in carrier.items()}})
            try:
                async with asyncio.timeout(self.jobs.timeout):
                    await pipe.driver.push(job)
            except (RRError, OSError, TimeoutError) as exc:
                self._counters.values["push_err"] += 1
                reason = str(exc) or f"no answer within jobs.timeout ({self.jobs.timeout:g}s)"
                span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
                log.error("job push error", extra={"id": job.id, "pipeline": job.pipeline, "error": reason})
                raise JobsError(f"push to pipeline {job.pipeline} ({driver_name}): {reason}") from None
        self._counters.values["push_ok"] += 1
        self._latency.labels(job.pipeline, driver_name, source).observe(time.perf_counter() - start)

    async def declare(self, pipeline: Pipeline) -> None:
        if pipeline.name in self._pipes:
            raise JobsError(f"pipeline already exists, name: {pipeline.name}, driver: {pipeline.driver}")
        if self._queue is None:
            raise JobsError("the jobs plugin is not running")
        factory = driver_factory(pipeline)
        _ = pipeline.priority, pipeline.prefetch  # a bad number fails here, naming the key
        driver = factory(pipeline, self.cfg.brokers.get(pipeline.driver, {}), self._queue)
        pipe = _Pipe(pipeline, driver)
        try:
            async with self._bounded(f"pipeline {pipeline.name} ({pipeline.driver})"):
                await driver.open()
                if pipeline.name in self._consume:
                    await driver.run()
                    pipe.started = True
        except BaseException:
            with contextlib.suppress(Exception):  # release what the driver holds; the cause is raised
                await driver.stop()
            raise
        self._pipes[pipeline.name] = pipe
        log.debug("pipeline declared", extra={"pipeline": pipeline.name, "driver": pipeline.driver})

    async def pause(self, name: str) -> None:
        pipe = await self._find(name)
        async with self._bounded(f"pause pipeline {name}"):
            await pipe.driver.pause()

    async def resume(self, name: str) -> None:
        pipe = await self._find(name)
        async with self._bounded(f"resume pipeline {name}"):
            if pipe.started:
                await pipe.driver.resume()
            else:
                await pipe.driver.run()
                pipe.started = True

    async def destroy(self, name: str) -> None:
        pipe = await self._find(name)
        del self._pipes[name]
        await self._stop_pipe(pipe)

    def _requeue_on_fail(self, name: str) -> bool:
        pipe = self._pipes.get(name)
        return pipe is not None and pipe.pipeline.get_bool("requeue_on_fail")

    @asynccontextmanager
    async def _bounded(self, what: str) -> AsyncIterator[None]:
        """``jobs.timeout`` around a driver call; running out of it is one JobsError naming ``what``."""
        try:
            async with asyncio.timeout(self.jobs.timeout):
                yield
        except TimeoutError:
            raise JobsError(f"{what}: no answer within jobs.timeout ({self.jobs.timeout:g}s)") from None

    async def _find(self, name: str) -> _Pipe:
        """The pipeline ``name``; a call that arrives while the configured pipelines are still being
        declared (the RPC endpoint starts first) waits for them, within ``jobs.timeout``."""
        if name not in self._pipes and not self._started.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.jobs.timeout):
                    await self._started.wait()
        pipe = self._pipes.get(name)
        if pipe is None:
            raise JobsError(f"no such pipeline, requested: {name}")
        return pipe

    async def _stop_pipe(self, pipe: _Pipe) -> None:
        """Stop feeding, hand back what waits in the queue, then stop the driver (bounded by timeout)."""
        name = pipe.pipeline.name
        try:
            async with asyncio.timeout(self.jobs.timeout):
                await pipe.driver.pause()
                if self._queue is not None:
                    for delivery in await self._queue.drain(name):
                        await delivery.nack(requeue=True)
                await pipe.driver.stop()
        except (RRError, OSError, TimeoutError) as exc:
            log.error("pipeline stop error", extra={"pipeline": name, "error": str(exc) or type(exc).__name__})

    # -- consuming ----------------------------------------------------------------------------
    async def _poll(self, queue: PriorityQueue) -> None:
        while (delivery := await queue.get()) is not None:
            try:
                await self._process(delivery)
            except (RRError, OSError, TimeoutError) as exc:  # a broker failing an ack: the job may come back
                log.error("job settle error", extra={"id": delivery.job.id, "error": str(exc)})

    async def _process(self, delivery: Delivery) -> None:
        job = delivery.job
        assert self.pool is not None
        parent = PROPAGATOR.extract(_carrier(job.headers))
        attributes = _span_attributes(job, delivery.driver, "process")
        span = self._tracer.start_span(f"jobs consume {job.pipeline}", parent, trace.SpanKind.CONSUMER, attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            carrier: dict[str, str] = {}
            PROPAGATOR.inject(carrier)
            headers = {**job.headers, **{k: [v] for k, v in carrier.items()}}
            if job.auto_ack:
                await delivery.ack()
            payload = Payload(context=task_context(delivery, headers), body=job.payload)
            try:
                answer = await self.pool.exec(payload, info=f"{job.pipeline}: {job.name}")
            except PoolError as exc:
                # the worker reported an error itself: negatively acknowledged, requeued only with the
                # pipeline's requeue_on_fail (RoadRunner's key); it died, timed out or never got the
                # task: requeued, nothing is lost
                requeue = not isinstance(exc, WorkerError) or self._requeue_on_fail(job.pipeline)
                self._counters.values["jobs_err"] += 1
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                log.error(
                    "job processed with errors, " + ("requeued" if requeue else "negatively acknowledged"),
                    extra={"id": job.id, "pipeline": job.pipeline, "error": str(exc)},
                )
                if not job.auto_ack:
                    await delivery.nack(requeue=requeue)
                return
            if job.auto_ack:
                self._counters.values["jobs_ok"] += 1
                return
            try:
                reply = parse_reply(answer.body)
            except ValueError as exc:  # malformed: acknowledged, as RoadRunner does, to avoid an endless loop
                self._counters.values["jobs_err"] += 1
                log.error("job acknowledged, but the answer is malformed", extra={"id": job.id, "error": str(exc)})
                await delivery.ack()
                return
            await self._settle(delivery, reply, span)
        finally:
            otel_context.detach(token)
            span.end()

    async def _settle(self, delivery: Delivery, reply: Reply, span: trace.Span) -> None:
        job = delivery.job
        kind = reply.type
        if kind == ReplyType.ERROR:
            self._counters.values["jobs_err"] += 1
            span.set_status(trace.Status(trace.StatusCode.ERROR, reply.message))
            log.error(
                "job failed",
                extra={"id": job.id, "pipeline": job.pipeline, "error": reply.message, "requeue": reply.requeue},
            )
            if reply.requeue:
                await delivery.requeue(delay=reply.delay, headers=reply.headers)
            else:
                await delivery.ack()
            return
        self._counters.values["jobs_ok"] += 1
        if kind == ReplyType.NACK:
            await delivery.nack(requeue=reply.requeue, delay=reply.delay)
        elif kind == ReplyType.REQUEUE:
            await delivery.requeue(delay=reply.delay, headers=reply.headers)
        else:
            if kind not in (ReplyType.NO_ERROR, ReplyType.ACK):
                log.warning("unknown response type, job acknowledged", extra={"id": job.id, "type": kind})
            await delivery.ack()

    # -- lifespan -----------------------------------------------------------------------------
    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        rpc = self.cfg.rpc.listen if self.cfg.rpc is not None else None
        async with open_pool("jobs", self.jobs.pool, self.cfg.server, mode="jobs", rpc_listen=rpc) as pool:
            self.pool = pool
            queue = self._queue = PriorityQueue(self.jobs.pipeline_size)
            count = self.jobs.num_pollers or pool.size + 2
            pollers = [asyncio.create_task(self._poll(queue), name=f"jobs poller {i}") for i in range(count)]
            try:
                for pipeline in self._configured:
                    await self.declare(pipeline)
                self._started.set()
                self._warn_about_config()
                log.info("jobs plugin started", extra={"pipelines": sorted(self._pipes), "pollers": count})
                yield
            finally:
                self._started.set()  # from now on a missing pipeline is refused at once
                await self._shutdown(queue, pollers)
                self.pool = None
                self._queue = None

    def _warn_about_config(self) -> None:
        if self.cfg.rpc is None:
            log.warning("%s: no rpc section: PHP producers cannot push (jobs.Push is an RPC method)", self.cfg.source)
        for name in sorted(self._consume - set(self._pipes)):
            log.info("jobs.consume names %r, which jobs.pipelines does not declare: consumed once jobs.Declare creates it", name)

    async def _shutdown(self, queue: PriorityQueue, pollers: list[asyncio.Task[None]]) -> None:
        for pipe in self._pipes.values():  # stop feeding first
            with contextlib.suppress(RRError, OSError, TimeoutError):
                async with asyncio.timeout(self.jobs.timeout):
                    await pipe.driver.pause()
        await queue.close()  # idle pollers return now, busy ones after their task
        _, late = await asyncio.wait(pollers, timeout=self.jobs.pool.destroy_timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        left = await queue.drain()
        for delivery in left:
            with contextlib.suppress(RRError, OSError):
                await delivery.nack(requeue=True)
        pipes = list(self._pipes.values())
        self._pipes.clear()
        for pipe in pipes:
            await self._stop_pipe(pipe)
        log.info("jobs plugin stopped", extra={"returned": len(left), "cancelled": len(late)})

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._lifespan()

    # -- RPC ----------------------------------------------------------------------------------
    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return rpc_methods(self)


def _span_attributes(job: Job, driver: str, operation: str) -> dict[str, str]:
    return {
        "messaging.system": "rr.jobs",
        "messaging.operation": operation,
        "messaging.destination.name": job.pipeline,
        "messaging.message.id": job.id,
        "rr.jobs.driver": driver,
    }


def _carrier(headers: Mapping[str, list[str]]) -> dict[str, str]:
    """Job headers as a propagation carrier: lower-case names, first value."""
    return {k.lower(): v[0] for k, v in headers.items() if v}
