"""Resetter: the ``resetter`` RPC service (``List`` and ``Reset`` over every Resettable plugin).

``Reset`` awaits the plugin's own ``reset()``; the pool replaces workers one at a time (a new worker
first, then an old one retires), so a reset under load fails no request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import arg_str
from rrgrpc.plugin import Peers, Resettable, RpcMethod

if TYPE_CHECKING:
    from rrgrpc.config import RRConfig

log = logging.getLogger("rr.resetter")


class ResetterError(RRError):
    """A reset request the resetter refuses (unknown plugin)."""


class Resetter:
    """RoadRunner's resetter plugin: finds the Resettable peers at call time."""

    name = "resetter"
    rpc_service = "resetter"

    def __init__(self, cfg: RRConfig | None = None) -> None:
        self._peers: Peers | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, peers: Peers) -> AsyncIterator[None]:
        self._peers = peers
        try:
            yield
        finally:
            self._peers = None

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return {"List": self.list_plugins, "Reset": self.reset}

    def _plugins(self) -> list[Resettable]:
        # mypy rejects Protocol classes as type[T] arguments (type-abstract); they are runtime-checkable
        return self._peers.having(Resettable) if self._peers else []  # type: ignore[type-abstract]

    async def list_plugins(self, _arg: Any) -> list[str]:
        """Names of the plugins that can be reset, sorted."""
        return sorted({p.name for p in self._plugins()})

    async def reset(self, arg: Any) -> bool:
        """Reset one plugin's workers; ``true`` when done, ``no such plugin: <name>`` if unknown."""
        name = arg_str(arg)
        for plugin in self._plugins():
            if plugin.name == name:
                log.info("resetting %s", name)
                await plugin.reset()
                log.info("%s reset", name)
                return True
        raise ResetterError(f"no such plugin: {name}")
