"""The plugin contract and the capability protocols plugins meet through.

A plugin is a named object with a ``lifespan``: an async context manager that returns once the
plugin is ready (pool spawned, port bound) and tears it down on exit. The host enters the roster in
order and leaves it in reverse. Plugins never import each other: a control plugin (informer,
resetter, metrics, status) asks ``peers.having(Capability)`` at call time and gets every plugin
that provides it, as RoadRunner's endure ``Collects()`` does.

A plugin provides a capability only by declaring it: its class lists the protocols in
``capabilities``. Matching method names alone never make a provider (an RPC service with a public
``reset`` is not Resettable), and a declared capability the class does not implement fails the host
at construction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from rrgrpc.pool import Pool
    from rrgrpc.pool.state import Activity, ProcessState

T = TypeVar("T")

#: An RPC method: takes the decoded argument (JSON value, or bytes for RAW/PROTO bodies) and
#: returns a JSON-encodable result. Any exception becomes an ERROR reply carrying ``str(exc)``.
RpcMethod = Callable[[Any], Awaitable[Any]]


def declared_capabilities(plugin: object) -> tuple[type, ...]:
    """The capability protocols ``plugin``'s class declares in ``capabilities`` (none if it has none)."""
    declared: tuple[type, ...] = getattr(type(plugin), "capabilities", ())
    return declared


class Peers(Protocol):
    """What a plugin may ask of the host: the plugins that implement a capability."""

    def having(self, capability: type[T]) -> list[T]: ...


@runtime_checkable
class Plugin(Protocol):
    name: str

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]: ...


@runtime_checkable
class HasWorkers(Protocol):
    """A plugin that owns a worker pool (informer.List / informer.Workers)."""

    name: str

    def workers(self) -> list[ProcessState]: ...

    def activity(self) -> Activity: ...


@runtime_checkable
class ManagesWorkers(Protocol):
    """A plugin whose pool can grow and shrink on demand (informer.AddWorker / RemoveWorker)."""

    name: str

    async def add_worker(self) -> None: ...

    async def remove_worker(self) -> None: ...


@runtime_checkable
class Resettable(Protocol):
    """A plugin whose workers can be replaced without a restart (resetter.Reset)."""

    name: str

    async def reset(self) -> None: ...


@runtime_checkable
class RpcProvider(Protocol):
    """A plugin that contributes methods to the RPC endpoint under ``rpc_service`` ("informer", ...)."""

    rpc_service: str

    def rpc_methods(self) -> Mapping[str, RpcMethod]: ...


class PeerService:
    """The base of the RPC services that hold no state of their own (informer, resetter, a front's
    ``front`` service): the lifespan only remembers the peers, looked up at call time (:meth:`having`)."""

    capabilities: ClassVar[tuple[type, ...]] = (RpcProvider,)
    name = ""
    rpc_service = ""

    def __init__(self) -> None:
        self.peers: Peers | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, peers: Peers) -> AsyncIterator[None]:
        self.peers = peers
        try:
            yield
        finally:
            self.peers = None

    def having(self, capability: type[T]) -> list[T]:
        """The peers with ``capability`` (none outside the lifespan)."""
        return self.peers.having(capability) if self.peers is not None else []


@runtime_checkable
class ProvidesMetrics(Protocol):
    """A plugin with Prometheus collectors for the metrics plugin to register (RoadRunner's StatProvider)."""

    def collectors(self) -> Sequence[Any]: ...


@runtime_checkable
class Refreshable(Protocol):
    """A plugin whose answers to the other capabilities come from a snapshot of other processes (the
    fronts' supervisor): ``refresh()`` brings the snapshot up to date; a reader that must be exact
    (a ``/metrics`` scrape) awaits it first."""

    async def refresh(self) -> None: ...


@runtime_checkable
class HasStatus(Protocol):
    """A plugin that reports health and readiness as HTTP-like codes (200 ok, 503 not ready)."""

    name: str

    def health(self) -> int: ...

    def readiness(self) -> int: ...


@runtime_checkable
class Degraded(Protocol):
    """A plugin that can serve while a part of it is down (a front of the supervisor being restarted):
    ``degraded()`` names that part and why, '' when it is whole. The status report carries it as the
    plugin's ``error_message``, and ``informer.Workers`` as ``note`` (``rr workers`` prints it)."""

    def degraded(self) -> str: ...


def degraded_note(plugin: object) -> str:
    """What of ``plugin`` is down ('' when it is whole, or does not declare ``Degraded``)."""
    return plugin.degraded() if isinstance(plugin, Degraded) and Degraded in declared_capabilities(plugin) else ""


@runtime_checkable
class HasPipelines(Protocol):
    """A plugin with jobs pipelines (informer.Jobs, status ``/jobs``, ``rr workers``).

    Each row: pipeline, driver, queue, active, delayed, reserved, ready, priority, error_message.
    """

    name: str

    async def pipelines_state(self) -> list[dict[str, Any]]: ...


class PoolBacked:
    """The capabilities of a plugin that serves from one worker pool (``self.pool``, ``None`` while it
    is down): HasWorkers, ManagesWorkers, Resettable and HasStatus, all delegated to the pool."""

    capabilities: ClassVar[tuple[type, ...]] = (HasWorkers, ManagesWorkers, Resettable, HasStatus)
    name: str
    pool: Pool | None

    def workers(self) -> list[ProcessState]:
        return self.pool.workers() if self.pool is not None else []

    def activity(self) -> Activity:
        from rrgrpc.pool.state import Activity

        return self.pool.activity() if self.pool is not None else Activity()

    async def add_worker(self) -> None:
        if self.pool is not None:
            await self.pool.add_worker()

    async def remove_worker(self) -> None:
        if self.pool is not None:
            await self.pool.remove_worker()

    async def reset(self) -> None:
        if self.pool is not None:
            logging.getLogger(f"rr.{self.name}").info("reset: replacing %s workers", self.name)
            await self.pool.reset()

    def health(self) -> int:
        return 200 if self.pool is not None and self.pool.ready else 503

    def readiness(self) -> int:
        from rrgrpc.pool.state import WorkerState

        if self.pool is None or not self.pool.ready:
            return 503
        return 200 if any(w.status == WorkerState.READY for w in self.pool.workers()) else 503
