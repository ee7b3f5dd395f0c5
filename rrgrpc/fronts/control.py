"""The front's side of the control channel: the ``front`` RPC service its supervisor calls.

A front (``rr serve --front I``) serves it on a private unix socket through the ordinary RPC plugin;
the supervisor is its only client and nothing on the request path uses it. Methods:

* ``front.State`` (argument: whether to include metrics): pid, per data plugin its workers,
  activity, health and readiness, and (asked for by a scrape of the supervisor's ``/metrics``) a
  snapshot of the front's request metrics;
* ``front.Reset`` (plugin name, or empty for all), ``front.AddWorker`` / ``front.RemoveWorker``
  (plugin name): today's pool operations on this front's share of the workers;
* ``front.Stop``: start the graceful stop (the front ignores SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import arg_str
from rrgrpc.plugin import (
    HasStatus,
    HasWorkers,
    ManagesWorkers,
    PeerService,
    ProvidesMetrics,
    Resettable,
    RpcMethod,
)

#: Turns the front's metric collectors into a JSON-able snapshot (``rrgrpc.metrics.merge.families``).
Snapshot = Callable[[list[Any]], list[dict[str, Any]]]


class FrontControl(PeerService):
    """The ``front`` RPC service of one front; ``stop`` starts the front's graceful stop; ``snapshot``
    (None: no metrics section) takes the metrics ``front.State`` reports."""

    name = "front"
    rpc_service = "front"

    def __init__(self, index: int, stop: Callable[[], None], snapshot: Snapshot | None = None) -> None:
        super().__init__()
        self.index = index
        self._stop = stop
        self._snapshot = snapshot

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return {
            "State": self._state,
            "Reset": self._reset,
            "AddWorker": self._add_worker,
            "RemoveWorker": self._remove_worker,
            "Stop": self._stop_front,
        }

    def _named(self, capability: type[Any], name: str) -> Any:
        plugin = next((p for p in self.having(capability) if p.name == name), None)
        if plugin is None:
            raise RRError(f"front {self.index}: no such plugin: {name}")
        return plugin

    async def _state(self, metrics: Any) -> dict[str, Any]:
        """The front's pid and plugins' workers and status; with ``metrics`` true, its metric snapshot too."""
        status = {p.name: p for p in self.having(HasStatus)}
        plugins: dict[str, Any] = {}
        for p in self.having(HasWorkers):
            act = p.activity()
            plugins[p.name] = {
                "workers": p.workers(),
                "queue": act.queue,
                "dropped": act.dropped,
                "busy": [[pid, info, started] for pid, (info, started) in act.busy.items()],
                "health": status[p.name].health() if p.name in status else 200,
                "readiness": status[p.name].readiness() if p.name in status else 200,
            }
        state: dict[str, Any] = {"pid": os.getpid(), "plugins": plugins}
        if metrics and self._snapshot is not None:
            state["metrics"] = self._snapshot([c for p in self.having(ProvidesMetrics) for c in p.collectors()])
        return state

    async def _reset(self, arg: Any) -> bool:
        name = arg_str(arg)
        plugins = [self._named(Resettable, name)] if name else self.having(Resettable)
        await asyncio.gather(*(p.reset() for p in plugins))
        return True

    async def _add_worker(self, arg: Any) -> bool:
        await self._named(ManagesWorkers, arg_str(arg)).add_worker()
        return True

    async def _remove_worker(self, arg: Any) -> bool:
        await self._named(ManagesWorkers, arg_str(arg)).remove_worker()
        return True

    async def _stop_front(self, _arg: Any) -> bool:
        self._stop()
        return True
