"""Health and readiness from the ``status:`` section: ``/health``, ``/ready`` and the ``status`` RPC.

Owns the status endpoint. Both paths answer RoadRunner's JSON report, one entry per checked plugin::

    [{"plugin_name":"grpc","error_message":"","status_code":200}]

``?plugin=a&plugin=b`` checks those plugins (names without a check are skipped); no ``plugin``
checks every ``HasStatus`` peer. A code from 100 to 400 is reported as is; 500 and above is reported
as ``unavailable_status_code`` with "internal server error, see logs" and also becomes the response
code; anything else is reported with "unexpected status code". Once shutdown has begun ``/health``
answers 200 "service is shutting down" (so an orchestrator does not kill a draining process) and
``/ready`` answers ``unavailable_status_code`` with the same text. A plugin that serves while a part of
it is down (``Degraded``: a front being restarted) reports what is down as its ``error_message``.

``/jobs`` (RoadRunner's jobs report) answers the state of every jobs pipeline as a JSON array of
``{"pipeline","priority","ready","queue","active","delayed","reserved","driver","error_message"}``;
without a jobs plugin it answers ``unavailable_status_code`` "jobs plugin not found".

Shutdown begins when the host sets its ``stopping`` event, before any plugin is torn down. Entered
*before* the plugins it checks, the status plugin is torn down after them, so the endpoint keeps
answering while they drain (as RoadRunner's, whose Stop only raises the flag).

RPC ``status.Status`` / ``status.Ready`` take ``{"plugin": name}`` (JSON) or a ``status.v1.Request``
(PROTO codec) and answer ``{"code": N}`` / a ``status.v1.Response`` (generated from
``proto/status/v1/status.proto`` into :mod:`rrgrpc.status_pb2`); an unknown plugin is an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final

from aiohttp import web

from rrgrpc import status_pb2
from rrgrpc.obs import parse_host_port, serve_app
from rrgrpc.plugin import HasPipelines, HasStatus, Peers, RpcProvider, degraded_note

if TYPE_CHECKING:
    from rrgrpc.config.schema import StatusConfig

log = logging.getLogger("rr.status")

SHUTTING_DOWN: Final = "service is shutting down"
_JSON: Final = "application/json"


class StatusRpcError(Exception):
    """A ``status`` RPC call was refused; the text travels as the error reply."""


def report_entry(name: str, check: Callable[[], int], unavailable: int) -> tuple[dict[str, Any], bool]:
    """One report line for a plugin and whether it makes the whole answer unavailable."""
    try:
        code = int(check())
    except Exception as exc:  # a failing check is reported, not raised into the HTTP server
        log.warning("status check failed", extra={"plugin": name, "error": str(exc)})
        return {"plugin_name": name, "error_message": str(exc), "status_code": unavailable}, True
    if code >= 500:
        return (
            {
                "plugin_name": name,
                "error_message": "internal server error, see logs",
                "status_code": unavailable,
            },
            True,
        )
    if 100 <= code <= 400:
        return {"plugin_name": name, "error_message": "", "status_code": code}, False
    return {"plugin_name": name, "error_message": "unexpected status code", "status_code": code}, False


def _decode_proto_request(data: bytes) -> str:
    """The plugin a ``status.v1.Request`` names."""
    try:
        return status_pb2.Request.FromString(data).plugin
    except Exception as exc:  # DecodeError: the runtime raises its own class per backend
        raise StatusRpcError("proto: cannot parse status.v1.Request") from exc


def encode_proto_response(code: int, message: str = "") -> bytes:
    """``status.v1.Response``: ``code`` (int64) and ``message``; zero values omitted."""
    return status_pb2.Response(code=code, message=message).SerializeToString()


class StatusPlugin:
    """The ``/health`` and ``/ready`` endpoint plus the ``status`` RPC service."""

    capabilities: ClassVar[tuple[type, ...]] = (RpcProvider,)
    name = "status"
    rpc_service = "status"

    def __init__(self, section: StatusConfig) -> None:
        self.address_cfg = section.address
        self.unavailable = section.unavailable_status_code
        parse_host_port(self.address_cfg, "status.address")  # fail at construction
        self._stopped = False
        self._host_stopping: asyncio.Event | None = None
        self.port: int | None = None
        self._peers: Peers | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run(peers)

    @property
    def shutting_down(self) -> bool:
        """True once the host has begun to stop (its ``stopping`` event) or this plugin is stopping."""
        return self._stopped or (self._host_stopping is not None and self._host_stopping.is_set())

    @asynccontextmanager
    async def _run(self, peers: Peers) -> AsyncIterator[None]:
        self._peers = peers
        self._stopped = False
        stopping = getattr(peers, "stopping", None)  # the Host's event; a bare Peers has none
        self._host_stopping = stopping if isinstance(stopping, asyncio.Event) else None
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/jobs", self._jobs)
        async with serve_app(app, self.address_cfg, "status.address", log) as port:
            self.port = port
            try:
                yield
            finally:
                self._stopped = True
                self._peers = None
                self.port = None

    # -- checks ------------------------------------------------------------------------------
    def _registry(self) -> dict[str, HasStatus]:
        peers = self._peers.having(HasStatus) if self._peers else []
        return {p.name: p for p in peers}

    def report(self, plugins: list[str], ready: bool) -> tuple[int, list[dict[str, Any]]]:
        """(HTTP status, report entries) for the named plugins, or for all of them when none is named."""
        registry = self._registry()
        names = plugins or list(registry)
        status = 200
        entries = []
        for name in names:
            plugin = registry.get(name)
            if plugin is None:
                log.info(
                    "plugin does not support %s checks",
                    "readiness" if ready else "health",
                    extra={"plugin": name},
                )
                continue
            entry, down = report_entry(name, plugin.readiness if ready else plugin.health, self.unavailable)
            if note := degraded_note(plugin):
                entry["error_message"] = note  # what is down, for a code that serves or not
            entries.append(entry)
            if down:
                status = self.unavailable
        return status, entries

    async def _health(self, request: web.Request) -> web.Response:
        if self.shutting_down:
            return web.Response(status=200, text=SHUTTING_DOWN + "\n")
        status, entries = self.report(request.query.getall("plugin", []), ready=False)
        return web.Response(
            status=status, text=json.dumps(entries, separators=(",", ":")), content_type=_JSON
        )

    async def _ready(self, request: web.Request) -> web.Response:
        if self.shutting_down:
            return web.Response(status=self.unavailable, text=SHUTTING_DOWN + "\n")
        status, entries = self.report(request.query.getall("plugin", []), ready=True)
        return web.Response(
            status=status, text=json.dumps(entries, separators=(",", ":")), content_type=_JSON
        )

    async def _jobs(self, request: web.Request) -> web.Response:
        if self.shutting_down:
            return web.Response(status=503, text=SHUTTING_DOWN + "\n")
        plugins = self._peers.having(HasPipelines) if self._peers else []
        try:
            rows = await plugins[0].pipelines_state() if plugins else None
        except Exception as exc:  # reported like a missing plugin, as RoadRunner does
            log.error("jobs state", extra={"error": str(exc)})
            rows = None
        if rows is None:
            return web.Response(status=self.unavailable, text="jobs plugin not found\n")
        keys = ("pipeline", "priority", "ready", "queue", "active", "delayed", "reserved", "driver", "error_message")
        report = [{k: row.get(k) for k in keys} for row in rows]
        return web.Response(text=json.dumps(report, separators=(",", ":")), content_type="text/plain")

    # -- RPC ---------------------------------------------------------------------------------
    def rpc_methods(self) -> Mapping[str, Any]:
        return {"Status": self._rpc_status, "Ready": self._rpc_ready}

    def _rpc_check(self, arg: Any, ready: bool) -> Any:
        proto = isinstance(arg, bytes | bytearray)
        if proto:
            name = _decode_proto_request(bytes(arg))
        elif isinstance(arg, Mapping):
            name = str({str(k).lower(): v for k, v in arg.items()}.get("plugin") or "")
        else:
            name = ""
        plugin = self._registry().get(name)
        if plugin is None:
            raise StatusRpcError(f"no such plugin: {name}")
        code = int(plugin.readiness() if ready else plugin.health())
        if proto:
            return encode_proto_response(code)
        return {"code": code} if code else {}

    async def _rpc_status(self, arg: Any) -> Any:
        return self._rpc_check(arg, ready=False)

    async def _rpc_ready(self, arg: Any) -> Any:
        return self._rpc_check(arg, ready=True)


__all__ = ["StatusPlugin", "StatusRpcError", "encode_proto_response", "report_entry"]
