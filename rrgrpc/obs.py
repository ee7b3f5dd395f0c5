"""Helpers shared by the observability plugins (metrics, status), which never import each other:
serving a small aiohttp application on a ``host:port`` from the config (port 0 allowed; the bound
port is read back)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from rrgrpc.errors import ConfigError


def parse_host_port(address: str, where: str) -> tuple[str, int]:
    """``host:port`` (``:port`` = all interfaces) -> (host, port); ConfigError naming ``where``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{where}: expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


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


__all__ = ["parse_host_port", "serve_app"]
