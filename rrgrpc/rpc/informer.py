"""Informer: the ``informer`` RPC service (workers of every plugin that has a pool, scaling, activity).

Methods and JSON shapes are RoadRunner's (PROTOCOL.md §6.5): ``List``, ``Workers``, ``Jobs``,
``AddWorker``, ``RemoveWorker``. ``Jobs`` answers the pipelines of the named jobs plugin as RoadRunner's
``[]jobs.State`` (Go field names: ``Pipeline``, ``Driver``, ``Queue``, ``Active``, ``Delayed``,
``Reserved``, ``Ready``, ``Priority``, ``ErrorMessage``), ``null`` for a plugin without pipelines. One deliberate difference: ``Workers`` of an unknown plugin answers
``{"workers":[]}`` where RoadRunner sends ``{"workers":null}`` (which makes PHP's ``WorkerPool`` throw a
TypeError). ``Activity`` is an extension for ``rr workers -i``: queue depth and, per busy worker, what it
executes and since when.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import arg_str
from rrgrpc.plugin import HasPipelines, HasWorkers, ManagesWorkers, PeerService, RpcMethod, degraded_note

#: pipelines_state() keys -> the field names of RoadRunner's jobs.State (encoded without JSON tags)
_GO_FIELDS = {
    "pipeline": "Pipeline",
    "driver": "Driver",
    "queue": "Queue",
    "active": "Active",
    "delayed": "Delayed",
    "reserved": "Reserved",
    "ready": "Ready",
    "priority": "Priority",
    "error_message": "ErrorMessage",
}


class InformerError(RRError):
    """A request the informer refuses (the text goes back in the error reply)."""


class Informer(PeerService):
    """RoadRunner's informer plugin: looks its peers up at call time through ``peers.having``."""

    name = "informer"
    rpc_service = "informer"

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return {
            "List": self._list_plugins,
            "Workers": self._workers,
            "Jobs": self._jobs,
            "AddWorker": self._add_worker,
            "RemoveWorker": self._remove_worker,
            "Activity": self._activity,
        }

    # mypy rejects Protocol classes as type[T] arguments (type-abstract); they are runtime-checkable
    def _pools(self) -> list[HasWorkers]:
        return self.having(HasWorkers)

    def _pool(self, name: str) -> HasWorkers | None:
        return next((p for p in self._pools() if p.name == name), None)

    async def _list_plugins(self, _arg: Any) -> list[str]:
        """Names of the plugins that have workers, sorted."""
        return sorted({p.name for p in self._pools()})

    async def _workers(self, arg: Any) -> dict[str, Any]:
        """``{"workers": [...]}`` for one plugin; an empty list for an unknown one (never null). A
        plugin with a part down (``Degraded``) adds ``"note"``, which RoadRunner's clients ignore."""
        plugin = self._pool(arg_str(arg))
        reply: dict[str, Any] = {"workers": plugin.workers() if plugin else []}
        if note := degraded_note(plugin):
            reply["note"] = note
        return reply

    async def _jobs(self, arg: Any) -> list[dict[str, Any]] | None:
        """The pipelines of the jobs plugin named ``arg`` (``null`` for any other name, as RoadRunner)."""
        name = arg_str(arg)
        plugins = self.having(HasPipelines)
        plugin = next((p for p in plugins if p.name == name), None)
        if plugin is None:
            return None
        return [{_GO_FIELDS[k]: v for k, v in row.items() if k in _GO_FIELDS} for row in await plugin.pipelines_state()]

    async def _add_worker(self, arg: Any) -> bool:
        """Grow the plugin's pool by one worker; ``false`` on success, as RoadRunner answers."""
        await self._manager(arg_str(arg)).add_worker()
        return False

    async def _remove_worker(self, arg: Any) -> bool:
        """Shrink the plugin's pool by one worker (the pool keeps at least one); ``false`` on success."""
        await self._manager(arg_str(arg)).remove_worker()
        return False

    async def _activity(self, arg: Any) -> dict[str, Any]:
        """Extension: ``{"queue": n, "busy": [{"pid", "info", "started"}], "now": t}`` for one plugin.

        ``info`` is the gRPC method or HTTP URI the worker executes, ``started`` and ``now`` are unix
        times in seconds (``now - started`` is how long it has been busy). Unknown plugin: empty.
        """
        plugin = self._pool(arg_str(arg))
        now = time.time()
        if plugin is None:
            return {"queue": 0, "busy": [], "now": now}
        act = plugin.activity()
        busy = [
            {"pid": pid, "info": info, "started": started}
            for pid, (info, started) in sorted(act.busy.items())
        ]
        return {"queue": act.queue, "busy": busy, "now": now}

    def _manager(self, name: str) -> ManagesWorkers:
        managers = self.having(ManagesWorkers)
        plugin = next((p for p in managers if p.name == name), None)
        if plugin is None:
            raise InformerError(f"plugin does not support workers management: {name}")
        return plugin
