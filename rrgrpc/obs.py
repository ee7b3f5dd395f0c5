"""Helpers shared by the observability plugins (logs, otel, metrics, status), which never import each
other: telling the config keys a user wrote from the schema's defaults, and serving a small aiohttp
application on a ``host:port`` from the config (port 0 allowed; the bound port is read back)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from aiohttp import web

from rrgrpc.errors import ConfigError
from rrgrpc.gocompat import parse_address


def section_fields(section: Any) -> dict[str, Any]:
    """A config section (msgspec Struct, mapping or plain object) as a dict of its fields."""
    if section is None:
        return {}
    if isinstance(section, Mapping):
        return dict(section)
    if isinstance(section, msgspec.Struct):
        return msgspec.structs.asdict(section)
    return dict(vars(section))


def written_fields(section: Any, raw_section: Any = None) -> dict[str, Any]:
    """The fields of ``section`` whose keys appear in the raw (expanded) YAML mapping ``raw_section``.

    The schema fills RoadRunner's defaults in; some plugins must know what was really written (a
    default must not hide an ``OTEL_*`` variable or another mode's preset). Without a raw mapping
    every field counts.
    """
    fields = section_fields(section)
    if not isinstance(raw_section, Mapping):
        return fields
    return {k: v for k, v in fields.items() if k in raw_section}


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


__all__ = ["parse_host_port", "section_fields", "serve_app", "written_fields"]
