"""Helpers shared by plugins that never import each other: serving a small aiohttp application on a
``host:port`` from the config (metrics, status; port 0 allowed, the bound port is read back), and
``Throttle``, rate-limited warnings for what clients can repeat at will (the HTTP and RPC edges)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from rrgrpc.errors import ConfigError
from rrgrpc.gocompat import parse_address


def parse_host_port(address: str, where: str) -> tuple[str, int]:
    """``host:port`` (``:port`` = all interfaces) -> (host, port); ConfigError naming ``where``."""
    addr = parse_address(address, where, bare=True)
    if addr.scheme != "tcp":
        raise ConfigError(f"{where}: expected host:port, got {address!r}")
    return addr.host or "0.0.0.0", addr.port


@asynccontextmanager
async def serve_app(
    app: web.Application, address: str, where: str, log: logging.Logger
) -> AsyncIterator[int]:
    """Serve ``app`` on ``address`` until the block ends; yields the bound port."""
    host, port = parse_host_port(address, where)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"{where}: cannot listen on {address}: {exc}") from exc
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info("listening on %s:%s", host, bound)
    try:
        yield bound
    finally:
        await runner.cleanup()



class Throttle:
    """At most one line per ``interval`` seconds for an event that a client can repeat at will
    (refused connections, bad requests): the first is logged, the rest are counted, and the next line
    logged says how many were left out, so a flood cannot flood the logs."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, interval: float = 10.0) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._next = 0.0
        self._skipped = 0

    def __call__(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        self._next = now + self.interval
        if self._skipped:
            msg += f" (and {self._skipped} more like it in the last {self.interval:g}s)"
            self._skipped = 0
        self.logger.log(self.level, msg, *args)


__all__ = ["Throttle", "parse_host_port", "serve_app"]
