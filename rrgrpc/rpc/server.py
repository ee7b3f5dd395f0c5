"""RpcPlugin: the ``rpc.listen`` endpoint, routing ``Service.Method`` to every RPC provider.

The plugin listens on ``tcp://host:port`` or ``unix://path`` (socket file mode 0600; a stale socket
is removed, a live one or a non-socket file is an error) and serves at most ``rpc.max_connections``
at once (a new client takes the place of the oldest one that never sent a request, else it is
refused), each by :func:`rrgrpc.goridge.rpc.serve_connection`, all sharing one
:class:`~rrgrpc.goridge.rpc.ByteBudget` of ``rpc.max_buffer_size`` MB. Services are looked up at call time among
``peers.having(RpcProvider)`` (informer, resetter, metrics, status, ...), so roster order does not
matter; the plugin itself provides ``rpc.Version`` and ``rpc.Config`` (the effective configuration
as JSON bytes, secrets redacted by position: :func:`redact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import socket
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from rrgrpc import RR_COMPAT_VERSION
from rrgrpc.config.loader import KeyPath
from rrgrpc.config.schema import LOADER_KEYS, SECTIONS
from rrgrpc.errors import ConfigError, RRError
from rrgrpc.gocompat import Address, parse_address
from rrgrpc.goridge.relay import exposed_address
from rrgrpc.goridge.rpc import ByteBudget, peer_name, serve_connection
from rrgrpc.obs import Throttle
from rrgrpc.plugin import Peers, RpcMethod, RpcProvider

if TYPE_CHECKING:
    from rrgrpc.config import RRConfig

log = logging.getLogger("rr.rpc")

MB: Final = 1024 * 1024

REDACTED: Final = "<redacted>"
#: ``scheme://userinfo@host`` inside any string value: the userinfo (user:password, a DSN key) goes.
_URL_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
#: Sections whose meaning rrgrpc knows; the values of any other section are all redacted.
_KNOWN_SECTIONS: Final = frozenset((*SECTIONS, *LOADER_KEYS))


class RpcLookupError(RRError):
    """Unknown service or method; the text is Go ``net/rpc``'s."""


def redact(raw: Mapping[str, Any], interpolated: Mapping[KeyPath, str] | None = None) -> dict[str, Any]:
    """A copy of a config tree safe to hand to any RPC client, redacted by position, not by name.

    * every value of every ``env`` map (any section), every ``otel.headers`` value, and the ``key``
      of every ``tls``/``ssl`` block become ``"<redacted>"``;
    * a value that came from ``${VAR}``/``$VAR`` interpolation is shown as written in the file
      (``--db-password=${DB_PASS}``), never expanded;
    * URL userinfo in any string (``redis://user:pass@host``, a Sentry DSN's key) becomes
      ``<redacted>``;
    * sections rrgrpc does not implement (``kv``, ``jobs``...) keep their shape, every string redacted.
    """
    written = interpolated or {}

    def walk(node: Any, at: KeyPath) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, (*at, k)) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v, (*at, i)) for i, v in enumerate(node)]
        if _secret_position(at):
            return REDACTED
        if at in written:
            node = written[at]
        if isinstance(node, str):
            return _URL_USERINFO.sub(rf"\g<head>{REDACTED}@", node)
        return node

    return {k: walk(v, (k,)) for k, v in raw.items()}


def _secret_position(at: KeyPath) -> bool:
    """Whether a scalar at path ``at`` is a secret by where it sits (see :func:`redact`)."""
    if at[0] not in _KNOWN_SECTIONS:
        return True
    parent = at[-2] if len(at) >= 2 else None
    if parent == "env" or at[:2] == ("otel", "headers"):
        return True
    return at[-1] == "key" and parent in ("tls", "ssl")


class RpcPlugin:
    """The Goridge RPC endpoint (RoadRunner's ``rpc`` plugin); also the ``rpc`` service itself."""

    name = "rpc"
    rpc_service = "rpc"

    def __init__(self, cfg: RRConfig, *, role: str = "rpc") -> None:
        """``role`` names the endpoint in its log line (a front's private control socket is not rpc.listen)."""
        if cfg.rpc is None:
            raise ConfigError(f"{cfg.source}: rpc: the section is missing")
        self._role = role
        self.listen: str = cfg.rpc.listen
        self._max_connections = cfg.rpc.max_connections
        self._frame_timeout = float(cfg.rpc.frame_timeout)
        #: Request payloads held by all connections at once (frames being read, queued or executing).
        self.budget = ByteBudget(cfg.rpc.max_buffer_size * MB)
        self._refuse_log = Throttle(log)
        self._evict_log = Throttle(log)
        self._bad_client_log = Throttle(log)
        self._source = cfg.source
        self._raw: Mapping[str, Any] = cfg.raw
        self._interpolated: Mapping[KeyPath, str] = cfg.interpolated
        self._peers: Peers | None = None
        #: Open connections, oldest first.
        self._connections: dict[asyncio.Task[Any], _Connection] = {}
        #: The address actually bound (``tcp://127.0.0.1:<port>`` when the config said port 0).
        self.address: str = self.listen

    # -- RpcProvider ------------------------------------------------------------------------
    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return {"Version": self._version, "Config": self._config}

    async def _version(self, _arg: Any) -> str:
        return RR_COMPAT_VERSION

    async def _config(self, _arg: Any) -> bytes:
        return msgspec.json.encode(redact(self._raw, self._interpolated))

    # -- routing ----------------------------------------------------------------------------
    def services(self) -> dict[str, Mapping[str, RpcMethod]]:
        """Service name → methods, from this plugin and every RPC provider among the peers."""
        services: dict[str, Mapping[str, RpcMethod]] = {self.rpc_service: self.rpc_methods()}
        providers = self._peers.having(RpcProvider) if self._peers else []
        for provider in providers:
            if provider.rpc_service not in services:  # the first provider of a name wins
                services[provider.rpc_service] = provider.rpc_methods()
        return services

    async def dispatch(self, method: str, arg: Any) -> Any:
        """Call ``Service.Method`` with its decoded argument (texts of Go's net/rpc when unknown)."""
        service, dot, name = method.rpartition(".")
        if not dot or not service:
            raise RpcLookupError(f"rpc: service/method request ill-formed: {method}")
        methods = self.services().get(service)
        if methods is None:
            raise RpcLookupError(f"rpc: can't find service {method}")
        fn = methods.get(name)
        if fn is None:
            raise RpcLookupError(f"rpc: can't find method {method}")
        return await fn(arg)

    # -- lifecycle --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, peers: Peers) -> AsyncIterator[None]:
        self._peers = peers
        addr = parse_address(self.listen, f"{self._source}: rpc.listen")
        if addr.scheme == "unix":
            server = await asyncio.start_unix_server(self._serve, sock=_bind_unix(addr.path, self._source))
        else:
            try:
                server = await asyncio.start_server(self._serve, addr.host or "0.0.0.0", addr.port)
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be listened on: {exc.strerror or exc}"
                raise ConfigError(f"{self._source}: rpc.listen: {self.listen} {why}") from None
            addr = Address("tcp", addr.host or "0.0.0.0", server.sockets[0].getsockname()[1])
            if exposed := exposed_address(server):
                log.warning(
                    "rpc.listen listens on %s, reachable from other machines: anyone who connects can "
                    "reset, add and remove workers; use 127.0.0.1 or unix:// unless that is intended",
                    exposed,
                )
        self.address = str(addr)
        log.info("%s listening on %s", self._role, self.address)
        try:
            yield
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()
            if addr.scheme == "unix":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(addr.path)
            self._peers = None

    def _make_room(self, peer: str) -> bool:
        """At ``rpc.max_connections``: close the oldest connection that never completed a request
        (a client that only holds a socket); ``False`` when every open connection is in use."""
        victim = next((task for task, conn in self._connections.items() if not conn.used), None)
        if victim is None:
            return False
        conn = self._connections.pop(victim)
        self._evict_log(
            "rpc client %s closed to make room for %s: %d connections are open (rpc.max_connections) "
            "and it has sent no request since it connected",
            conn.peer,
            peer,
            len(self._connections) + 1,
        )
        victim.cancel()
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_name(writer)
        if len(self._connections) >= self._max_connections and not self._make_room(peer):
            self._refuse_log(
                "rpc client %s refused: %d connections are open (rpc.max_connections), all of them used",
                peer,
                len(self._connections),
            )
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        conn = self._connections[task] = _Connection(peer)

        async def dispatch(method: str, arg: Any) -> Any:
            conn.used = True
            return await self.dispatch(method, arg)

        try:
            await serve_connection(
                reader,
                writer,
                dispatch,
                frame_timeout=self._frame_timeout,
                budget=self.budget,
                warn=self._bad_client_log,
            )
        except asyncio.CancelledError:
            # Shutdown (or _make_room) closed this connection. The task ends normally: asyncio's
            # stream callback would otherwise log the cancellation of a connection handler as an error.
            pass
        finally:
            self._connections.pop(task, None)


@dataclass(slots=True)
class _Connection:
    """One client of the endpoint: who, and whether it has sent a complete request yet."""

    peer: str
    used: bool = False


def _bind_unix(path: str, source: str) -> socket.socket:
    """Bind a unix socket at ``path`` with mode 0600, replacing a stale socket file.

    Raises:
        ConfigError: ``path`` is a regular file (or anything but a socket), or a live server
            already listens there.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(
                f"{source}: rpc.listen: {path} exists and is not a socket; refusing to replace it"
            )
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale: nobody listens any more
            else:
                raise ConfigError(f"{source}: rpc.listen: another server is listening on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{source}: rpc.listen: {path} is already in use") from None
        raise
    return sock
