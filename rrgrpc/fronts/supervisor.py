"""The supervisor's side of the fronts: spawn, watch, respawn and stop them; stand in for their plugins.

:class:`Fronts` (a plugin) owns the front processes. Before spawning it binds each data address
once without ``SO_REUSEPORT`` and closes it, so an address in use (another rr included) is still
one line. Each front is ``python -m rrgrpc serve --front I --control DIR`` whose stdin is one end of
a socket pair: the supervisor writes the resolved config there (fronts never read the files), the
front answers one JSON line (ready, or its startup error), and EOF on it tells a front that its
supervisor is gone. The control calls go over the front's private unix socket in DIR (mode 0700).

A front that dies is logged in one line (pid, exit code or signal), its PHP workers are killed, and
it is respawned with backoff; :data:`MAX_BOOT_FAILURES` failed boots in a row stop rr with the cause.
Until it serves again, and while a live front does not answer ``front.State``, the stand-ins are
``Degraded``: ``/health``, ``/ready`` and ``rr workers`` name the front and why.

:class:`FrontsPlugin` takes the place of one data plugin (``grpc``, ``http``) for the informer,
resetter and status plugins: workers, activity, health and readiness come from a snapshot of every
front's ``front.State``, taken every :data:`POLL` seconds and after every reset, add and remove.
A scrape of the supervisor's ``/metrics`` awaits one more round (``Refreshable``), the only one
that asks the fronts for their request metrics; they go to a :class:`MetricsSink`
(``rrgrpc.metrics.merge.FrontMetrics``), so a scrape sees every front's counts as of the scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import msgspec

from rrgrpc.config.schema import RRConfig
from rrgrpc.errors import ConfigError, RRError
from rrgrpc.fronts.count import data_addresses
from rrgrpc.gocompat import parse_address
from rrgrpc.goridge.rpc import RpcClient
from rrgrpc.plugin import (
    Degraded,
    HasStatus,
    HasWorkers,
    ManagesWorkers,
    Peers,
    ProvidesMetrics,
    Refreshable,
    Resettable,
)
from rrgrpc.pool.process import exit_text
from rrgrpc.pool.spawn import MAX_BOOT_FAILURES  # a front gets as many tries as a worker
from rrgrpc.pool.state import Activity, ProcessState
from rrgrpc.worker_metrics import HTTP_HELPS, WorkersCollector

log = logging.getLogger("rr.fronts")

#: Seconds between two ``front.State`` rounds; and the budget of one (a front that does not answer
#: in time keeps its last state, and counts as down in ``rr_fronts_up``).
POLL: Final = 0.5
STATE_TIMEOUT: Final = 1.0
#: Seconds a front gets beyond its pool's ``reset_timeout`` to answer ``front.Reset`` (its pool kills
#: what is still stuck at ``reset_timeout`` and succeeds, so only a stopped or hung front is later).
RESET_MARGIN: Final = 5.0
#: Seconds to wait before respawning a front, by failed boots so far.
BACKOFF: Final = (0.1, 1.0, 2.0)


class MetricsSink(Protocol):
    """Where the fronts' metric snapshots go: a Prometheus collector that merges them."""

    def update(self, front: int, families: list[dict[str, Any]] | None) -> None: ...


class FrontError(RRError):
    """A front failed: its startup error, or its exit while starting."""


@dataclass(slots=True)
class Handoff:
    """What a front receives on its stdin: the validated config and how many fronts there are."""

    cfg: RRConfig
    fronts: int


def send_handoff(sock: socket.socket, handoff: Handoff) -> None:
    data = pickle.dumps(handoff)
    sock.sendall(len(data).to_bytes(4, "big") + data)


def read_handoff(sock: socket.socket) -> Handoff:
    """The front's side: read the supervisor's :class:`Handoff` (trusted: our own parent wrote it)."""
    head = _recv_exactly(sock, 4)
    handoff = pickle.loads(_recv_exactly(sock, int.from_bytes(head, "big")))  # noqa: S301
    assert isinstance(handoff, Handoff)
    return handoff


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the supervisor closed the control pair")
        buf += chunk
    return bytes(buf)


def control_socket(directory: str, index: int) -> str:
    return os.path.join(directory, f"front-{index}.sock")


@dataclass(slots=True)
class _Front:
    index: int
    proc: asyncio.subprocess.Process | None = None
    pair: asyncio.StreamWriter | None = None  # the supervisor's end of the stdin pair; closing it stops the front
    client: RpcClient | None = None
    #: the last ``front.State`` reply's plugins (``{}`` until one came)
    plugins: dict[str, Any] = field(default_factory=dict)
    live: bool = False
    #: why the front is restarted, or that it did not answer the last ``front.State`` ('' otherwise):
    #: the ``Degraded`` note of ``/health``, ``/ready`` and ``rr workers``
    down: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0


class Fronts:
    """The ``fronts`` plugin: N front processes serving the data sections of ``cfg``.

    ``on_fatal`` is called with the cause when a front cannot be brought back (rr must stop);
    ``metrics`` (a Prometheus collector, None without a metrics section) receives every front's
    metric snapshot, and the plugin provides it to the metrics plugin.
    """

    capabilities: ClassVar[tuple[type, ...]] = (ProvidesMetrics, Refreshable)
    name = "fronts"

    def __init__(
        self, cfg: RRConfig, count: int, on_fatal: Callable[[str], None], metrics: MetricsSink | None = None
    ) -> None:
        self.cfg = msgspec.structs.replace(cfg, notes=())  # the supervisor's logs plugin says them, once
        self.count = count
        self._on_fatal = on_fatal
        self._metrics = metrics
        self.fronts = [_Front(i) for i in range(count)]
        self._dir = ""
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def collectors(self) -> list[Any]:
        return [self._metrics] if self._metrics is not None else []

    # -- lifecycle ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, peers: Peers) -> AsyncIterator[None]:
        for key, address in data_addresses(self.cfg):
            _probe(self.cfg.source, key, address)
        self._dir = tempfile.mkdtemp(prefix=f"rr-{os.getpid()}-")  # 0700: only this user reaches the fronts
        try:
            booted = await asyncio.gather(*(self._boot(f) for f in self.fronts), return_exceptions=True)
            failed = next((r for r in booted if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
            await self._round()
            log.info("%d fronts serving", self.count, extra={"pids": [f.pid for f in self.fronts]})
            self._tasks = [asyncio.create_task(self._watch(f), name=f"front {f.index}") for f in self.fronts]
            self._tasks.append(asyncio.create_task(self._poll(), name="fronts state"))
            yield
        finally:
            self._stopping = True
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.gather(*(self._stop(f) for f in self.fronts))
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _boot(self, front: _Front) -> None:
        """Spawn ``front`` and return once it serves; FrontError with its cause when it cannot."""
        ours, theirs = socket.socketpair()
        try:
            with theirs:
                front.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "rrgrpc", "serve", "--front", str(front.index), "--control", self._dir,
                    stdin=theirs.fileno(),
                )
            send_handoff(ours, Handoff(self.cfg, self.count))
            reader, front.pair = await asyncio.open_connection(sock=ours)
        except BaseException:  # a stop that cancels us here too: the front must see EOF, not wait forever
            ours.close()
            raise
        line = await reader.readline()
        answer: dict[str, Any] = json.loads(line) if line.strip() else {}
        if "ready" not in answer:
            front.pair.close()
            code = await front.proc.wait()
            raise FrontError(answer.get("error") or f"front {front.index} (pid {front.pid}) {exit_text(code)} while starting")
        front.client = await RpcClient.connect(f"unix://{control_socket(self._dir, front.index)}")
        front.live = True

    async def _stop(self, front: _Front) -> None:
        """Ask ``front`` to stop gracefully and wait for it (the caller's grace period bounds the wait)."""
        front.live = False
        if front.client is not None:
            with contextlib.suppress(RRError, OSError, TimeoutError):
                async with asyncio.timeout(STATE_TIMEOUT):
                    await front.client.call("front.Stop")
        if front.pair is not None:
            front.pair.close()  # EOF: a front that missed front.Stop stops on it
        if front.proc is not None:
            await front.proc.wait()
        if front.client is not None:
            await front.client.close()
            front.client = None

    async def _watch(self, front: _Front) -> None:
        """Respawn ``front`` whenever it exits; after MAX_BOOT_FAILURES failed boots, rr stops."""
        while True:
            assert front.proc is not None
            code = await front.proc.wait()
            front.live = False
            front.down = f"front {front.index} is restarting (pid {front.pid} {exit_text(code)})"
            log.error("front %d (pid %d) %s; restarting", front.index, front.pid, exit_text(code))
            self._kill_workers(front)
            if front.client is not None:
                await front.client.close()
                front.client = None
            cause: Exception | None = None
            for failures in range(MAX_BOOT_FAILURES):
                await asyncio.sleep(BACKOFF[failures])
                try:
                    await self._boot(front)
                except (FrontError, OSError, ValueError, TimeoutError) as exc:
                    log.error("front %d failed to start: %s", front.index, exc)
                    front.down = f"front {front.index} is restarting (it failed to start: {exc})"
                    cause = exc
                else:
                    front.down = ""
                    log.info("front %d restarted (pid %d)", front.index, front.pid)
                    break
            else:
                self._on_fatal(f"front {front.index} failed to start {MAX_BOOT_FAILURES} times in a row: {cause}")
                return

    def _kill_workers(self, front: _Front) -> None:
        """SIGKILL the PHP workers a dead front left behind (each leads its own process group)."""
        for plugin in front.plugins.values():
            for worker in plugin.get("workers", []):
                with contextlib.suppress(OSError):
                    os.killpg(int(worker["pid"]), signal.SIGKILL)
        front.plugins = {}

    # -- state ----------------------------------------------------------------------------------
    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            await self._round()

    async def refresh(self) -> None:
        """Refreshable: a state round with every front's metric snapshot (a scrape is about to read them)."""
        await self._round(metrics=self._metrics is not None)

    async def _round(self, metrics: bool = False) -> None:
        """One ``front.State`` round over the live fronts (``metrics``: with their metric snapshots,
        which only a scrape needs); a front that does not answer keeps its last state."""

        async def one(front: _Front) -> None:
            reply: dict[str, Any] = {}
            if front.client is not None and front.live:
                pid = front.pid
                try:
                    async with asyncio.timeout(STATE_TIMEOUT):
                        reply = await front.client.call("front.State", metrics)
                except (RRError, OSError, TimeoutError):
                    if front.live and front.pid == pid:  # not a front that died meanwhile (_watch says that)
                        front.down = f"front {front.index} (pid {pid}) does not answer"
                else:
                    front.plugins = reply["plugins"]
                    front.down = ""
            if metrics and self._metrics is not None:
                self._metrics.update(front.index, reply.get("metrics"))

        await asyncio.gather(*(one(f) for f in self.fronts))

    def live(self) -> list[_Front]:
        return [f for f in self.fronts if f.live and f.client is not None]

    def workers(self, name: str) -> list[ProcessState]:
        out: list[ProcessState] = []
        for f in self.fronts:
            for row in f.plugins.get(name, {}).get("workers", []):
                out.append(msgspec.structs.replace(msgspec.convert(row, ProcessState), front=f.index))
        return out

    def activity(self, name: str) -> Activity:
        queue = dropped = 0
        busy: dict[int, tuple[str, float]] = {}
        for f in self.fronts:
            state = f.plugins.get(name, {})
            queue += int(state.get("queue", 0))
            dropped += int(state.get("dropped", 0))
            busy.update({int(pid): (str(info), float(started)) for pid, info, started in state.get("busy", [])})
        return Activity(queue=queue, busy=busy, dropped=dropped)

    def degraded(self) -> str:
        """The fronts being restarted or not answering, and why ('' when every front serves)."""
        return "; ".join(f.down for f in self.fronts if f.down)

    def health(self, name: str) -> int:
        """200 while at least one front serves ``name`` (the kernel routes connections to live listeners only)."""
        return 200 if any(f.plugins.get(name, {}).get("health") == 200 for f in self.live()) else 503

    def readiness(self, name: str) -> int:
        """200 when every front is up and has a ready worker of ``name``."""
        fronts = self.live()
        ok = len(fronts) == self.count and all(f.plugins.get(name, {}).get("readiness") == 200 for f in fronts)
        return 200 if ok else 503

    # -- control ----------------------------------------------------------------------------------
    async def reset(self, name: str) -> None:
        """``front.Reset`` on every live front at once; the others finish when one fails. A front
        being restarted is skipped: it boots fresh workers."""
        fronts = [(f, f.proc, f.pid) for f in self.live()]  # as they were: a dead front is replaced
        section = self.cfg.grpc if name == "grpc" else self.cfg.http
        bound = ((float(section.pool.reset_timeout) if section is not None else 0.0) or 60.0) + RESET_MARGIN

        async def one(front: _Front, proc: asyncio.subprocess.Process | None) -> str:
            try:
                async with asyncio.timeout(bound):
                    await _call(front, "front.Reset", name)
            except TimeoutError:
                return f"no answer to front.Reset within {bound:g}s (pool.reset_timeout plus {RESET_MARGIN:g}s): the front is stopped or hung"
            except OSError as exc:  # the control connection broke: say how the front ended, if it did
                return await _ended(proc) or str(exc)
            except RRError as exc:
                return str(exc)
            return ""

        results = await asyncio.gather(*(one(f, proc) for f, proc, _ in fronts))
        await self._round()
        errors = [f"front {f.index} (pid {pid}): {why}" for (f, _, pid), why in zip(fronts, results, strict=True) if why]
        if errors:
            raise FrontError(f"reset of {name} failed on {'; '.join(errors)}")

    async def add_worker(self, name: str) -> None:
        """One more worker of ``name``, on the front that has the fewest."""
        front = min(self.live(), key=lambda f: len(f.plugins.get(name, {}).get("workers", [])), default=None)
        if front is not None:
            await _call(front, "front.AddWorker", name)
            await self._round()

    async def remove_worker(self, name: str) -> None:
        """One worker of ``name`` fewer, from the front that has the most."""
        front = max(self.live(), key=lambda f: len(f.plugins.get(name, {}).get("workers", [])), default=None)
        if front is not None:
            await _call(front, "front.RemoveWorker", name)
            await self._round()


async def _ended(proc: asyncio.subprocess.Process | None) -> str:
    """How ``proc`` ended, if it exits within :data:`STATE_TIMEOUT` ('' when it does not)."""
    if proc is None:
        return ""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STATE_TIMEOUT):
            return f"the front {exit_text(await proc.wait())}; it is restarting"
    return ""


async def _call(front: _Front, method: str, arg: Any) -> Any:
    if front.client is None:
        raise FrontError("not running")
    return await front.client.call(method, arg)


class FrontsPlugin:
    """Stands in for the data plugin ``name`` (``grpc``, ``http``) in the supervisor: its workers,
    reset, scaling and status, through the fronts; and the worker gauges the http plugin exports
    itself (with its help texts), over the fronts' workers."""

    capabilities: ClassVar[tuple[type, ...]] = (
        HasWorkers, ManagesWorkers, Resettable, HasStatus, Degraded, ProvidesMetrics,
    )

    def __init__(self, name: str, fronts: Fronts) -> None:
        self.name = name
        self._fronts = fronts

    def collectors(self) -> list[Any]:
        return [WorkersCollector(self, with_queue=False, helps=HTTP_HELPS)] if self.name == "http" else []

    @contextlib.asynccontextmanager
    async def lifespan(self, peers: Peers) -> AsyncIterator[None]:
        yield  # the fronts plugin owns the processes

    def workers(self) -> list[ProcessState]:
        return self._fronts.workers(self.name)

    def activity(self) -> Activity:
        return self._fronts.activity(self.name)

    async def add_worker(self) -> None:
        await self._fronts.add_worker(self.name)

    async def remove_worker(self) -> None:
        await self._fronts.remove_worker(self.name)

    async def reset(self) -> None:
        log.info("reset: replacing %s workers on %d fronts", self.name, self._fronts.count)
        await self._fronts.reset(self.name)

    def health(self) -> int:
        return self._fronts.health(self.name)

    def readiness(self) -> int:
        return self._fronts.readiness(self.name)

    def degraded(self) -> str:
        return self._fronts.degraded()


def _probe(source: str, key: str, address: str) -> None:
    """Bind ``address`` without SO_REUSEPORT and close it: fails when anything listens there."""
    addr = parse_address(address, f"{source}: {key}", bare=True)
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr.host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), addr.port))
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be listened on: {exc.strerror or exc}"
            raise ConfigError(f"{source}: {key}: {address} {why}") from None

