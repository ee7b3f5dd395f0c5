"""Resetter: the ``resetter`` RPC service (``List`` and ``Reset`` over every Resettable plugin).

``Reset`` awaits the plugin's own ``reset()``; the pool replaces workers one at a time (a new worker
first, then an old one retires), so a reset under load fails no request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import arg_str
from rrgrpc.plugin import PeerService, Resettable, RpcMethod

log = logging.getLogger("rr.resetter")


class ResetterError(RRError):
    """A reset request the resetter refuses (unknown plugin)."""


class Resetter(PeerService):
    """RoadRunner's resetter plugin: finds the Resettable peers at call time."""

    name = "resetter"
    rpc_service = "resetter"

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return {"List": self._list_plugins, "Reset": self._reset}

    def _plugins(self) -> list[Resettable]:
        # mypy rejects Protocol classes as type[T] arguments (type-abstract); they are runtime-checkable
        return self.having(Resettable)

    async def _list_plugins(self, _arg: Any) -> list[str]:
        """Names of the plugins that can be reset, sorted."""
        return sorted({p.name for p in self._plugins()})

    async def _reset(self, arg: Any) -> bool:
        """Reset one plugin's workers; ``true`` when done, ``no such plugin: <name>`` if unknown."""
        name = arg_str(arg)
        for plugin in self._plugins():
            if plugin.name == name:
                log.info("resetting %s", name)
                await plugin.reset()
                log.info("%s reset", name)
                return True
        raise ResetterError(f"no such plugin: {name}")
