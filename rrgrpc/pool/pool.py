"""The worker pool: hands requests to idle PHP workers, supervises them, replaces the ones that fail.

Request path: ``exec`` takes an idle worker (FIFO; waiting at most ``allocate_timeout``), writes the
request frame (a queued request's is written by the worker given back to it, ``queue.Job``), awaits
the reply and releases the worker by its state: back to the idle queue, or retired and replaced
(max_jobs, TTL, memory, a stop request), or killed and replaced (a crash, a broken relay,
exec_ttl). The reply wait is cancel-safe: when the caller goes away mid-exec, the
exchange is finished in the background and the worker returns to the pool, never stranded.

No request is lost and none runs for nobody: a request the worker provably never read (it died
first) runs on another worker; a request whose caller went away while it waited (its task was
cancelled, or its ``alive`` check fails when a worker is taken) is dropped and counted, never run.

Capacity is kept by :meth:`Pool._ensure_capacity`: whenever a worker leaves, a new one is spawned
until the pool is back at its size. A boot that fails ``spawn.MAX_BOOT_FAILURES`` times in a row fails
the pool with the cause instead of respawning forever.

This module is the part that needs the pool's worker table: taking and releasing workers, their
comings and goings, reset/add/remove and the supervision steps. Each of those is a few lines over
helpers that own one idea each: ``queue`` (idle workers and waiters), ``exchange`` (one request's
exchange, streams), ``execttl``, ``spawn`` (command, env, boot failures), ``allocator`` (dynamic
allocator), ``sampling`` (psutil), ``supervisor`` (the limit verdicts), ``tracing`` (spans),
``state`` (the lifecycle table). It stays above 400 lines because splitting the table's users
further would make two objects reach into each other's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace

from rrgrpc.errors import (
    BootError,
    PoolClosed,
    PoolError,
    RequestDropped,
    WorkerError,
)
from rrgrpc.goridge.frame import DEFAULT_MAX_FRAME
from rrgrpc.pool.allocator import DynamicAllocator
from rrgrpc.pool.exchange import STREAM, Exchanger, Handback, StreamFrames
from rrgrpc.pool.execttl import ExecTTL
from rrgrpc.pool.payload import Payload
from rrgrpc.pool.process import exit_text
from rrgrpc.pool.queue import Queue
from rrgrpc.pool.sampling import Sampler
from rrgrpc.pool.spawn import Spawner, pool_size, worker_env
from rrgrpc.pool.state import Activity, ProcessState, WorkerState
from rrgrpc.pool.supervisor import Limits, Verdict, Vitals, judge
from rrgrpc.pool.tracing import traced_exec, traced_wait
from rrgrpc.pool.worker import NotDelivered, StopRequested, Worker
from rrgrpc.tracing import tracer

if TYPE_CHECKING:
    from rrgrpc.config.schema import PoolConfig, ServerConfig

Alive = Callable[[], bool]  # does anybody still wait for this request's answer?

MAX_DISPATCHES: Final = 10  # a request re-dispatched this often ({"stop":true}, or unread by a dead worker) fails
MAX_POOL_SIZE: Final = 2048  # bound on the size informer.AddWorker can grow a pool to (num_workers is bounded by config)
#: an exchange is under way (a busy worker, maybe marked or timed out): the request path decides its end
_EXCHANGING: Final = frozenset({WorkerState.WORKING, WorkerState.INVALID, WorkerState.EXEC_TTL_REACHED})


@asynccontextmanager
async def open_pool(
    name: str,
    pool: PoolConfig,
    server: ServerConfig,
    *,
    mode: str,
    env: Mapping[str, str] | None = None,
    rpc_listen: str | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> AsyncIterator[Pool]:
    """Start a pool of ``pool.num_workers`` workers; destroy it (within destroy_timeout) on exit."""
    p = Pool(name, pool, server, mode=mode, env=env or {}, rpc_listen=rpc_listen, max_frame=max_frame)
    owner = asyncio.current_task()
    await p.start()
    supervisor = asyncio.create_task(p.supervise(), name=f"{name} pool supervisor")
    # a pool that can no longer start workers ends its owner's block with the cause, as a
    # TaskGroup would, but without wrapping the owner's own exceptions in an ExceptionGroup
    supervisor.add_done_callback(
        lambda t: owner.cancel() if owner and not p._closing and not t.cancelled() and t.exception() else None
    )
    try:
        yield p
    except asyncio.CancelledError:
        if p._failed is not None and owner is not None and owner.uncancel() == 0:
            raise p._failed from None
        raise
    finally:
        supervisor.cancel()
        # a forced stop cancelled the owner while something before us was stopping (the HTTP
        # server draining a request to a hung worker): that cancel is spent, so kill here rather
        # than wait destroy_timeout for the busy workers
        await p.destroy(force=owner is not None and owner.cancelling() > 0)


class _Streamed:
    """``Pool.stream()``'s context: takes a worker and reads the first frame on entry, closes the
    frames on exit. A plain class, not ``@asynccontextmanager``: no async generator per request."""

    __slots__ = ("_pool", "_payload", "_timeout", "_info", "_alive", "_frames")

    def __init__(self, pool: Pool, payload: Payload, timeout: float | None, info: str, alive: Alive | None) -> None:
        self._pool = pool
        self._payload = payload
        self._timeout = timeout
        self._info = info
        self._alive = alive
        self._frames: StreamFrames | None = None

    async def __aenter__(self) -> StreamFrames:
        pool = self._pool
        w, first = await pool._first_reply(self._payload, self._info, self._alive, self._timeout)
        self._frames = frames = StreamFrames(w, first, pool._exchanger)
        return frames

    async def __aexit__(self, *exc: object) -> None:
        if self._frames is not None:
            self._frames.close()


def _begin(w: Worker, info: str) -> None:
    """Record the request ``w`` starts (what ``rr workers`` shows of a busy worker)."""
    w.exec_info = info
    w.exec_started = time.time()


class _Job:
    """A request waiting in the queue; the worker given back to it starts it (see queue.Job)."""

    __slots__ = ("_pool", "_payload", "_info", "_alive")

    def __init__(self, pool: Pool, payload: Payload, info: str, alive: Alive | None) -> None:
        self._pool = pool
        self._payload = payload
        self._info = info
        self._alive = alive

    def start(self, w: Worker) -> BaseException | None:
        if self._alive is not None and not self._alive():
            return self._pool._drop()  # w stays WORKING: the queue hands it to the next waiter
        _begin(w, self._info)
        try:
            self._pool._exchanger.deliver(w, self._payload)
        except NotDelivered as exc:  # w is settled (lost): the request goes to another worker
            return exc
        return None

    def abandon(self, w: Worker) -> None:
        self._pool._exchanger.abandon(w)


class Pool:
    """A supervised set of PHP workers for one plugin."""

    def __init__(
        self,
        name: str,
        cfg: PoolConfig,
        server: ServerConfig,
        *,
        mode: str,
        env: Mapping[str, str],
        rpc_listen: str | None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self._spawner = Spawner(name, cfg, server, worker_env(server, mode, env, rpc_listen), max_frame, self._on_exit)
        self.debug = cfg.debug
        self._target = 0 if cfg.debug else pool_size(cfg)
        self._limits = Limits(cfg.supervisor.ttl, cfg.supervisor.idle_ttl, cfg.supervisor.max_worker_memory)
        self._log = logging.getLogger(f"rr.{name}")
        self._stderr_log = logging.getLogger("rr.server")
        self._workers: dict[int, Worker] = {}  # live workers counted toward the pool size
        self._procs: dict[int, Worker] = {}  # every process not yet reaped (incl. retiring ones)
        self._queue = Queue(name, cfg.allocate_timeout, cfg.max_queue_size, self._no_free_workers)
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawning = 0
        self._failed: BootError | None = None
        self._closing = False
        self._changed = asyncio.Event()  # set whenever a worker leaves WORKING or the pool fails
        self._alarm = asyncio.Event()  # wakes the supervisor: the pool failed or is closing
        self._sampler = Sampler()
        self._reset_lock = asyncio.Lock()
        self._allocator = DynamicAllocator(cfg.dynamic_allocator)
        self._exchanger = Exchanger(
            ExecTTL(cfg.supervisor.exec_ttl, self._exec_ttl_reached),
            Handback(self._release, self._lost, self._stop_requested, self._spawn_task),
            cfg.stream_timeout or 60,
            self._log,
        )
        self._tracer: trace.Tracer | None = None
        self._dropped = 0  # requests whose caller went away before a worker was taken for them

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn the initial workers concurrently; any failure fails the start with its cause."""
        self._tracer = tracer("rrgrpc.pool")
        await self._spawner.open()
        results = await asyncio.gather(*(self._spawner.spawn() for _ in range(self._target)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in results:
            if isinstance(r, Worker):
                self._add(r)
        if errors:
            await self._stop_all(grace=1.0)
            await self._spawner.close()
            raise errors[0]
        self._log.info("pool started", extra={"plugin": self.name, "workers": len(self._workers)})

    async def supervise(self) -> None:
        """The watch_tick loop: apply supervisor verdicts; raise the pool's boot failure, if any."""
        tick = self.cfg.supervisor.watch_tick or 5.0
        while not self._closing:
            try:
                async with asyncio.timeout(tick):
                    await self._alarm.wait()
            except TimeoutError:
                self._watch_tick()
            if self._failed is not None:
                raise self._failed

    async def destroy(self, *, force: bool = False) -> None:
        """Stop taking requests, let busy workers finish within destroy_timeout, then stop them all.

        If the destroy itself is cancelled, or ``force`` says a forced stop is already under way,
        every worker is killed on the spot.
        """
        if self._closing:
            return
        try:
            if force:
                for w in list(self._procs.values()):
                    w.kill_now()
            await self._destroy()
        except asyncio.CancelledError:
            for w in list(self._procs.values()):
                w.kill_now()
            raise

    async def _destroy(self) -> None:
        self._closing = True
        self._alarm.set()
        self._queue.fail(PoolClosed(f"{self.name} pool is stopping"))
        try:
            async with asyncio.timeout(self.cfg.destroy_timeout or 60):
                while any(w.state is WorkerState.WORKING for w in self._procs.values()):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            self._log.warning("destroy_timeout reached with busy workers; killing them")
        await self._stop_all(grace=10.0)
        if self._tasks:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._spawner.close()

    async def _stop_all(self, grace: float) -> None:
        workers = list(self._procs.values())
        for w in workers:
            if w.state is not WorkerState.WORKING:
                w.become(WorkerState.DESTROYED)
        await asyncio.gather(*(w.stop(grace) if w.state is not WorkerState.WORKING else w.kill() for w in workers))
        self._workers.clear()
        self._procs.clear()
        self._queue.idle.clear()

    # -- public API -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._target

    @property
    def env(self) -> Mapping[str, str]:
        """The environment the workers start with."""
        return self._spawner.env

    @property
    def ready(self) -> bool:
        return not self._closing and self._failed is None and (self.debug or bool(self._workers))

    async def exec(
        self, payload: Payload, *, timeout: float | None = None, info: str = "", alive: Alive | None = None
    ) -> Payload:
        """Run one request on a worker and return its reply (see the module docstring).

        ``alive`` tells whether anybody still waits for the answer; a request found dead when a
        worker is taken for it is dropped (RequestDropped), never executed.
        """
        if timeout is None:
            return await self._exec(payload, info, alive)
        async with asyncio.timeout(timeout):
            return await self._exec(payload, info, alive)

    async def _exec(self, payload: Payload, info: str, alive: Alive | None) -> Payload:
        w, reply = await self._first_reply(payload, info, alive)
        if reply.stream & STREAM:
            self._exchanger.drain_in_background(w)
            raise WorkerError("streaming is not supported")
        self._release(w)
        return reply

    def stream(
        self, payload: Payload, *, timeout: float | None = None, info: str = "", alive: Alive | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[Payload]]:
        """Run a request whose reply may be streamed: ``async with`` gives an iterator over the reply frames."""
        return _Streamed(self, payload, timeout, info, alive)

    async def _first_reply(
        self, payload: Payload, info: str, alive: Alive | None, timeout: float | None = None
    ) -> tuple[Worker, Payload]:
        """Take a worker and read its first reply frame. A worker asking to be stopped is replaced,
        and so is one that died without reading the request; the request then runs on another
        worker. ``timeout`` bounds the wait for a worker."""
        w: Worker | None = None
        for dispatch in range(MAX_DISPATCHES):
            # the common cases (no tracing, no timeout: an idle worker, or the queue) take one without coroutines of their own
            plain = self._tracer is None and not self.debug
            again = dispatch > 0  # a worker could not run it: it waits again at the head of the line
            try:
                w = self._take_idle() if plain else None
                if w is None and plain and timeout is None:
                    # queued: the worker given back starts the request (_Job.start); we wake for the reply
                    w = await self._queue.wait(first=again, job=_Job(self, payload, info, alive))
                    return w, await self._exchanger.roundtrip(w, None)
                if w is None:
                    w = await self._take_traced(timeout, again)
                if alive is not None and not alive():
                    self._release(w)
                    raise self._drop()
                return w, await self._exchange(w, payload, info)
            except StopRequested:
                assert w is not None  # only a reply says so
                self._stop_requested(w)
            except NotDelivered as exc:  # already killed and replaced by the exchange
                self._log.info("re-dispatching a request: %s", exc, extra={"pid": exc.pid})
        raise WorkerError(f"{MAX_DISPATCHES} workers in a row asked to be stopped or died instead of answering")

    def _drop(self) -> RequestDropped:
        """Count a request whose client went away before a worker was taken for it; its error."""
        self._dropped += 1
        return RequestDropped(f"{self.name} pool: the client went away while the request waited for a worker")

    async def reset(self) -> None:
        """Replace every worker, one at a time: start the new one, then retire an old one.

        Capacity never drops, so a reset under load fails no request (RoadRunner stops all workers
        first). Old workers that are busy finish their request; an idle one that does not stop
        within destroy_timeout is killed. When reset_timeout ends the wait, the old workers still
        there (hung) are killed, by pid, and the reset completes.

        Raises:
            PoolError: reset_timeout passed before the new workers were started.
        """
        async with self._reset_lock:
            old = list(self._workers.values())
            limit = self.cfg.reset_timeout or 60
            self._log.info("resetting workers", extra={"plugin": self.name, "workers": len(old)})
            started = 0
            try:
                async with asyncio.timeout(limit):
                    for w in old:
                        if self._closing:
                            return
                        await self._grow()
                        started += 1
                        self._workers.pop(w.pid, None)
                        w.reason = "reset"
                        if w.state is WorkerState.WORKING:
                            w.become(WorkerState.INVALID)  # retired when it answers
                        elif w.state is WorkerState.READY:
                            self._retire(w, WorkerState.STOPPING, self.cfg.destroy_timeout or 60)
                    while any(w.pid in self._procs for w in old):
                        self._changed.clear()
                        await self._changed.wait()
            except TimeoutError:
                if started < len(old):
                    raise PoolError(
                        f"{self.name} pool: reset_timeout ({limit:g}s) passed with {started} of {len(old)} new workers started"
                    ) from None
                for w in old:
                    if w.pid in self._procs:
                        self._log.warning(
                            "reset: worker %d (%s) did not stop within reset_timeout (%gs); killing it",
                            w.pid, w.state.wire_name, limit, extra={"pid": w.pid},
                        )
                        self._lost(w)

    async def add_worker(self) -> None:
        if self.debug:
            return
        if self._target >= MAX_POOL_SIZE:
            raise BootError(f"maximum of {MAX_POOL_SIZE} workers reached")
        self._target += 1
        await self._grow()

    async def remove_worker(self) -> None:
        """Remove one worker (an idle one if any); the last worker is never removed."""
        if self.debug or self._target <= 1 or not self._workers:
            return
        self._target -= 1
        idle = [w for w in self._workers.values() if w.state is WorkerState.READY]
        w = idle[0] if idle else next(iter(self._workers.values()))
        self._workers.pop(w.pid, None)
        w.reason = "removed"
        if w.state is WorkerState.READY:
            self._retire(w, WorkerState.DESTROYED)
        else:
            w.become(WorkerState.INVALID)

    def workers(self) -> list[ProcessState]:
        now = time.time()
        out = []
        for pid, w in sorted(self._procs.items()):
            rss, cpu = self._sampler.usage(pid, now)
            out.append(ProcessState(
                pid=pid, status=int(w.state), num_execs=w.num_execs, created=w.created,
                memory_usage=rss, cpu_percent=cpu, command="", status_str=w.state.wire_name,
            ))
        return out

    def activity(self) -> Activity:
        busy = {w.pid: (w.exec_info, w.exec_started) for w in self._procs.values() if w.state is WorkerState.WORKING}
        return Activity(queue=self._queue.waiting, busy=busy, dropped=self._dropped + self._queue.dropped)

    # -- taking and releasing -----------------------------------------------------------------
    async def _take_traced(self, timeout: float | None = None, again: bool = False) -> Worker:
        """A worker within ``timeout``; ``again``: for a request a worker could not run (head of the line)."""
        if self._tracer is not None:
            return await traced_wait(self._tracer, self.name, lambda: self._take(again), timeout)
        if timeout is None:
            return await self._take(again)
        async with asyncio.timeout(timeout):
            return await self._take(again)

    def _take_idle(self) -> Worker | None:
        """An idle worker, now (marked WORKING), or None; raises when the pool cannot serve."""
        if self._failed is not None:
            raise self._failed
        if self._closing:
            raise PoolClosed(f"{self.name} pool is stopping")
        while (w := self._queue.pop_ready()) is not None:
            if w.channel is not None and w.channel.broken is not None:
                self._lost(w)  # exited (or wrote garbage) while idle: replaced, no request spent
                continue
            w.become(WorkerState.WORKING)
            return w
        return None

    async def _take(self, again: bool = False) -> Worker:
        if self.debug:
            if self._failed is not None:
                raise self._failed
            if self._closing:
                raise PoolClosed(f"{self.name} pool is stopping")
            w = await self._spawner.spawn()
            self._procs[w.pid] = w
            w.become(WorkerState.WORKING)
            return w
        if (idle := self._take_idle()) is not None:
            return idle
        return await self._queue.wait(first=again)

    def _release(self, w: Worker) -> None:
        w.last_used = time.monotonic()
        w.trace_id = ""
        self._changed.set()
        if self.debug:
            self._retire(w, WorkerState.STOPPING)
        elif w.state is not WorkerState.WORKING:
            self._retire(w, w.state)  # marked invalid (supervisor, reset, remove) while busy
        elif self.cfg.max_jobs and w.num_execs >= w.job_limit:
            self._retire(w, WorkerState.MAX_JOBS_REACHED)
        elif self._closing:
            self._retire(w, WorkerState.DESTROYED)
        else:
            self._queue.give(w)

    # -- the exchange -------------------------------------------------------------------------
    def _exchange(self, w: Worker, payload: Payload, info: str) -> Awaitable[Payload]:
        """The exchange's coroutine itself (traced when tracing is on): no coroutine of its own."""
        _begin(w, info)
        if self._tracer is None:
            return self._exchanger.roundtrip(w, payload)
        return traced_exec(self._tracer, self.name, w, info, self._exchanger.roundtrip(w, payload))

    def _stop_requested(self, w: Worker) -> None:
        w.reason = "stop_requested"
        self._retire(w, WorkerState.INVALID)

    def _exec_ttl_reached(self, w: Worker) -> None:
        w.ttl_expired = True
        w.become(WorkerState.EXEC_TTL_REACHED)
        self._log.warning("exec_ttl reached, killing worker", extra={"pid": w.pid, "exec": w.exec_info})
        self._spawn_task(w.kill())

    # -- worker comings and goings ------------------------------------------------------------
    async def _grow(self) -> None:
        """Spawn one worker into the pool, counted in ``_spawning`` until it is added."""
        self._spawning += 1
        try:
            w = await self._spawner.spawn_with_retries(self._fail)
        finally:
            self._spawning -= 1
        self._add(w)

    def _add(self, w: Worker) -> None:
        if self._closing:
            self._spawn_task(w.stop())
            return
        self._workers[w.pid] = w
        self._procs[w.pid] = w
        self._sampler.forget(w.pid)
        self._queue.give(w)
        self._changed.set()

    def _ensure_capacity(self) -> None:
        missing = self._target - len(self._workers) - self._spawning
        for _ in range(max(0, missing)):
            if self._closing or self._failed is not None:
                return
            self._spawning += 1  # now, not when the task starts: a second call must see it
            self._spawn_task(self._replace())

    async def _replace(self) -> None:
        try:
            w = await self._spawner.spawn_with_retries(self._fail)
        except BootError:
            return  # _fail() already recorded it and woke the supervisor
        finally:
            self._spawning -= 1
        self._add(w)

    def _fail(self, exc: BootError) -> None:
        self._failed = BootError(f"{self.name} pool failed: {exc}")
        self._queue.fail(self._failed)
        self._changed.set()
        self._alarm.set()

    def _retire(self, w: Worker, state: WorkerState, grace: float | None = None) -> None:
        """Stop a worker gracefully in the background and keep the pool at its size."""
        self._leave(w, state)
        self._spawn_task(w.stop() if grace is None else w.stop(grace))
        self._ensure_capacity()

    def _lost(self, w: Worker) -> None:
        """Kill a broken worker and keep the pool at its size."""
        self._leave(w, w.state if w.state is WorkerState.EXEC_TTL_REACHED else WorkerState.ERRORED)
        self._spawn_task(w.kill())
        self._changed.set()
        self._ensure_capacity()

    def _leave(self, w: Worker, reason: WorkerState) -> None:
        """Stop counting a worker and record why it leaves: its state, its reason, a debug line."""
        self._workers.pop(w.pid, None)
        if w.left or w.state is WorkerState.STOPPED:
            return  # its end was recorded first (a reset killed it, then its request failed, say)
        w.left = True
        w.become(reason)
        w.reason = w.reason or reason.name.lower()
        self._log.debug("worker %d leaves the pool: %s", w.pid, w.reason, extra={"pid": w.pid, "reason": w.reason})

    def _on_exit(self, w: Worker, _exited: asyncio.Future[int]) -> None:
        """Reaping: an idle worker that died on its own is replaced (a busy one is handled by exec)."""
        self._procs.pop(w.pid, None)
        self._sampler.forget(w.pid)
        if w.state in (WorkerState.READY, WorkerState.INACTIVE) and w.pid in self._workers:
            code = w.proc.exited.result() if w.proc else -1
            # exit(0) between requests is a PHP memory guard doing its job, not a fault
            self._log.log(
                logging.INFO if code == 0 else logging.WARNING,
                "worker %d %s while idle; replacing it", w.pid, exit_text(code), extra={"pid": w.pid},
            )
            self._leave(w, WorkerState.ERRORED)
            self._ensure_capacity()
        elif w.state not in _EXCHANGING and w.state is not WorkerState.DESTROYED:
            w.become(WorkerState.STOPPED)
        w.close_transport()
        self._changed.set()

    def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- supervision ----------------------------------------------------------------------------
    def _watch_tick(self) -> None:
        """One supervision pass (every watch_tick): give back what a burst added, then enforce limits."""
        self._shrink_after_burst()
        self._retire_over_limits()

    def _retire_over_limits(self) -> None:
        """ttl, idle_ttl, max_worker_memory: stop an idle worker over a limit, mark a busy one."""
        limits = self._limits
        if not (limits.ttl or limits.idle_ttl or limits.max_worker_memory):
            return
        now_m, now = time.monotonic(), time.time()
        for w in list(self._workers.values()):
            rss = self._sampler.rss(w.pid, now) if limits.max_worker_memory else 0
            verdict, state = judge(Vitals(w.state, now - w.created / 1e9, now_m - w.last_used, rss), limits)
            if verdict is Verdict.STOP and state is not None:
                self._log.info("worker over a supervisor limit: %s", state.wire_name, extra={"pid": w.pid})
                self._retire(w, state)
            elif verdict is Verdict.MARK_INVALID and state is not None:
                self._log.info("busy worker over a supervisor limit; replacing it after this request", extra={"pid": w.pid})
                w.reason = state.name.lower()
                w.become(WorkerState.INVALID)

    def _no_free_workers(self) -> None:
        """A request found no free worker: the dynamic allocator may add workers."""
        now = time.monotonic()
        n = self._allocator.grow(now) if not self._closing else 0
        if n:
            self._target += n
            self._log.info("dynamic allocator: adding %d workers", n)
            self._ensure_capacity()

    def _shrink_after_burst(self) -> None:
        """The dynamic allocator's idle_timeout passed: retire the workers it added, a few a tick."""
        n = self._allocator.shrink(time.monotonic())
        if not n:
            return
        retired = 0
        for _ in range(n):
            idle = [w for w in self._workers.values() if w.state is WorkerState.READY]
            if not idle:
                break
            retired += 1
            self._target -= 1
            self._retire(idle[0], WorkerState.DESTROYED)
        self._allocator.took_back(retired, time.monotonic())
