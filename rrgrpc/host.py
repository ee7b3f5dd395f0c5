"""The host: runs a roster of plugins (ordered start, reverse teardown) until it is told to stop.

It is also the ``Peers`` every plugin receives: ``having(Capability)`` returns the plugins that
declare a capability (``plugin.declared_capabilities``), so control plugins find their peers
without importing them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Sequence
from contextlib import AsyncExitStack
from typing import TypeVar, final

from rrgrpc.plugin import Plugin, declared_capabilities

T = TypeVar("T")
log = logging.getLogger("rr")


@final
class Host:
    """Owns the plugins' lifespans. ``ready`` is set once every plugin has started."""

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        for plugin in plugins:
            for capability in declared_capabilities(plugin):
                if not isinstance(plugin, capability):
                    raise TypeError(f"plugin {plugin.name!r} declares {capability.__name__} but does not implement it")
        self.plugins = list(plugins)
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()

    def having(self, capability: type[T]) -> list[T]:
        """The plugins that declare ``capability``, in roster order."""
        return [p for p in self.plugins if capability in declared_capabilities(p) and isinstance(p, capability)]

    async def run(self, shutdown: Awaitable[object]) -> None:
        """Start every plugin in roster order, wait for ``shutdown``, stop them in reverse order.

        If a plugin fails to start, the ones already started are stopped (in reverse) and the
        error propagates. Each start is logged at debug level with its duration (``ms``): the
        startup's phase split (bench/run_all.py's startup scenario reads it).
        """
        async with AsyncExitStack() as stack:
            try:
                for plugin in self.plugins:
                    log.debug("starting plugin", extra={"plugin": plugin.name})
                    began = time.monotonic()
                    await stack.enter_async_context(plugin.lifespan(self))
                    log.debug("plugin started", extra={"plugin": plugin.name, "ms": round((time.monotonic() - began) * 1000)})
            except BaseException:
                if inspect.iscoroutine(shutdown):  # never awaited: close it (no "never awaited" warning)
                    shutdown.close()
                raise
            self.ready.set()
            log.info("serving", extra={"plugins": [p.name for p in self.plugins]})
            await shutdown
            self.stopping.set()
            log.info("stopping", extra={"plugins": [p.name for p in reversed(self.plugins)]})
