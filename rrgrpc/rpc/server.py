"""RpcPlugin: the ``rpc.listen`` endpoint, routing ``Service.Method`` to every RPC provider.

The plugin listens on ``tcp://host:port`` or ``unix://path`` (socket file mode 0600; a stale socket
is removed, a live one or a non-socket file is an error). Each connection is served by
:func:`rrgrpc.goridge.rpc.serve_connection`. Services are looked up at call time among
``peers.having(RpcProvider)`` (informer, resetter, metrics, status, ...), so roster order does not
matter; the plugin itself provides ``rpc.Version`` and ``rpc.Config`` (the effective configuration
as JSON bytes, secrets redacted).
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
from typing import TYPE_CHECKING, Any, Final

import msgspec

from rrgrpc import RR_COMPAT_VERSION
from rrgrpc.errors import ConfigError, RRError
from rrgrpc.goridge.relay import Address, parse_address
from rrgrpc.goridge.rpc import serve_connection
from rrgrpc.plugin import Peers, RpcMethod, RpcProvider

if TYPE_CHECKING:
    from rrgrpc.config import RRConfig

log = logging.getLogger("rr.rpc")

REDACTED: Final = "<redacted>"
#: A key whose name contains one of these words has its whole value replaced in ``rpc.Config``.
_SECRET_KEY = re.compile(r"password|passwd|secret|token|key|auth|credential", re.IGNORECASE)
#: ``scheme://user:password@host`` inside any string value: the password is replaced.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")


class RpcLookupError(RRError):
    """Unknown service or method; the text is Go ``net/rpc``'s."""


def redact(value: Any) -> Any:
    """A copy of a config tree with secrets replaced by ``"<redacted>"``.

    Values under keys containing password/passwd/secret/token/key/auth/credential (case-insensitive;
    this covers TLS ``key`` paths, ``root_ca`` stays) are replaced whole, and passwords embedded in
    URLs (``scheme://user:pass@host``) are replaced in every string.
    """
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", value)
    return value


class RpcPlugin:
    """The Goridge RPC endpoint (RoadRunner's ``rpc`` plugin); also the ``rpc`` service itself."""

    name = "rpc"
    rpc_service = "rpc"

    def __init__(self, cfg: RRConfig) -> None:
        if cfg.rpc is None:
            raise ConfigError(f"{cfg.source}: rpc: the section is missing")
        self.listen: str = cfg.rpc.listen
        self._source = cfg.source
        self._raw: Mapping[str, Any] = cfg.raw
        self._peers: Peers | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        #: The address actually bound (``tcp://127.0.0.1:<port>`` when the config said port 0).
        self.address: str = self.listen

    # -- RpcProvider ------------------------------------------------------------------------
    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        return {"Version": self._version, "Config": self._config}

    async def _version(self, _arg: Any) -> str:
        return RR_COMPAT_VERSION

    async def _config(self, _arg: Any) -> bytes:
        return msgspec.json.encode(redact(self._raw))

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
        self.address = str(addr)
        log.info("rpc listening on %s", self.address)
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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve_connection(reader, writer, self.dispatch)
        except asyncio.CancelledError:
            # Shutdown closed this connection. The task ends normally: asyncio's stream callback
            # would otherwise log the cancellation of a connection handler as an error.
            pass
        finally:
            self._connections.discard(task)


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
