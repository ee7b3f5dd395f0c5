"""Relays: moving Goridge frames over pipes and sockets without ever losing a frame boundary.

A :class:`Channel` is fed bytes by an asyncio protocol (a worker's stdout pipe, or an accepted
tcp/unix connection) and parses them into frames as they arrive, with the one frame parser
(:func:`~rrgrpc.goridge.frame.parse`), independently of anybody waiting. Waiting for a frame
(:meth:`Channel.recv`) is therefore cancel-safe: a caller that gives up never leaves half a frame
consumed, and the next reader sees the stream exactly where it was.

Socket relays (``tcp://host:port``, ``unix://path``) are served by :class:`SocketRelayListener`:
the server listens, each worker connects back, the pid handshake runs on the fresh connection and
the channel is parked under the pid the worker reported until the spawner claims it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import stat
from collections import deque
from collections.abc import Callable
from typing import cast

from rrgrpc.errors import ConfigError, ProtocolError
from rrgrpc.gocompat import Address, parse_address
from rrgrpc.goridge.frame import DEFAULT_MAX_FRAME, Flag, Frame, encode, parse

log = logging.getLogger("rr.server")


class RelayClosed(ProtocolError):
    """The other side closed the relay (process exit or connection loss)."""


class BadFrame(ProtocolError):
    """The relay carried bytes that are not a frame; ``carried`` holds their start."""

    def __init__(self, message: str, carried: bytes) -> None:
        super().__init__(message)
        self.carried = carried


def transport_writer(transport: asyncio.WriteTransport, name: str) -> Callable[[bytes], None]:
    """A write function for a Channel that raises RelayClosed, never a transport repr or a silent drop.

    A closed transport drops writes silently (asyncio) or raises RuntimeError naming itself (uvloop);
    a write that hits EPIPE closes the transport on the spot and drops the bytes.
    """

    def write(data: bytes) -> None:
        if transport.is_closing():
            raise RelayClosed(f"{name}: relay closed")
        try:
            transport.write(data)
        except (RuntimeError, OSError) as exc:
            raise RelayClosed(f"{name}: relay closed: the write failed ({type(exc).__name__})") from None
        if transport.is_closing():
            raise RelayClosed(f"{name}: relay closed by the other side")

    return write


class Channel:
    """Frames in, bytes out, over one relay. Fed by a protocol; read with :meth:`recv`."""

    __slots__ = ("_buf", "_frames", "_waiter", "_error", "_write", "_loop", "max_frame", "name")

    def __init__(self, write: Callable[[bytes], None], max_frame: int = DEFAULT_MAX_FRAME, name: str = "") -> None:
        self._buf = bytearray()
        self._frames: deque[Frame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: ProtocolError | None = None
        self._write = write
        self._loop: asyncio.AbstractEventLoop | None = None  # cached: get_running_loop() is a getpid() call on 3.11
        self.max_frame = max_frame
        self.name = name

    # -- fed by the transport -------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self._error is not None:
            return
        buf = self._buf
        if not buf:
            # the common case: a read that holds exactly one whole frame is parsed where it is
            try:
                parsed = parse(data, self.max_frame)
            except ProtocolError as exc:
                self._bad(exc, data)
                return
            if parsed is not None and parsed[1] == len(data):
                self._frames.append(parsed[0])
                self._wake()
                return
        buf += data
        frames = self._frames
        max_frame = self.max_frame
        while buf:
            try:
                parsed = parse(buf, max_frame)
            except ProtocolError as exc:
                self._bad(exc, buf)
                return
            if parsed is None:
                break
            frames.append(parsed[0])
            del buf[: parsed[1]]
        self._wake()

    def _bad(self, exc: ProtocolError, buf: bytes | bytearray) -> None:
        carried = bytes(buf[:300])
        tail = carried.decode("utf-8", "replace")
        self._fail(BadFrame(f"{self.name}: {exc}; the relay carried: {tail!r}", carried))

    def feed_eof(self, reason: str = "closed") -> None:
        if self._error is None:
            left = f" ({len(self._buf)} bytes of an unfinished frame)" if self._buf else ""
            self._fail(RelayClosed(f"{self.name}: relay {reason}{left}"))

    def _fail(self, exc: ProtocolError) -> None:
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- used by the server ---------------------------------------------------------------
    @property
    def broken(self) -> ProtocolError | None:
        return self._error

    def send(self, data: bytes) -> None:
        self._write(data)

    def send_frame(self, payload: bytes = b"", flags: int = 0, options: tuple[int, ...] = (), byte10: int = 0) -> None:
        self._write(encode(payload, flags, options, byte10))

    async def recv(self) -> Frame:
        """The next frame. Raises the relay's ProtocolError (RelayClosed on EOF) once frames run out."""
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._error is not None:
                raise self._error
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class _ChannelProtocol(asyncio.Protocol):
    """Feeds an accepted socket connection into a Channel."""

    def __init__(self, listener: SocketRelayListener) -> None:
        self.listener = listener
        self.channel: Channel | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are no subclasses
        name = f"relay {self.listener.address}"
        self.channel = Channel(transport_writer(self.transport, name), self.listener.max_frame, name=name)
        self.listener._accepted(self)

    def data_received(self, data: bytes) -> None:
        assert self.channel is not None
        self.channel.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.channel is not None:
            self.channel.feed_eof("connection lost" if exc else "closed")


def exposed_address(server: asyncio.AbstractServer) -> str | None:
    """The first address ``server`` listens on that other machines can reach, else ``None``.

    ``tcp://:6001`` binds every interface (``0.0.0.0:6001``); loopback and unix sockets stay local.
    """
    for sock in getattr(server, "sockets", ()):
        name = sock.getsockname()
        if not isinstance(name, tuple):
            continue  # a unix socket
        try:
            local = ipaddress.ip_address(name[0].split("%")[0]).is_loopback
        except ValueError:
            local = False
        if not local:
            return f"[{name[0]}]:{name[1]}" if ":" in name[0] else f"{name[0]}:{name[1]}"
    return None


async def handshake(channel: Channel, timeout: float) -> int:
    """Run the pid exchange on a fresh channel; return the pid the worker reported."""
    channel.send_frame(json.dumps({"pid": os.getpid()}).encode(), Flag.CONTROL | Flag.CODEC_JSON)
    async with asyncio.timeout(timeout):
        frame = await channel.recv()
    if not frame.flags & Flag.CONTROL:
        raise ProtocolError(f"{channel.name}: expected the pid handshake (a CONTROL frame), got flags {frame.flags:#04x}")
    try:
        pid = json.loads(frame.payload)["pid"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"{channel.name}: bad handshake payload {frame.payload[:100]!r}") from exc
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ProtocolError(f"{channel.name}: handshake pid must be a positive integer, got {pid!r}")
    return pid


class SocketRelayListener:
    """Listens on a tcp/unix relay address; parks handshaken worker connections by pid."""

    def __init__(self, address: str, handshake_timeout: float, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.address = parse_address(address, "server.relay")
        self.handshake_timeout = handshake_timeout
        self.max_frame = max_frame
        self._server: asyncio.AbstractServer | None = None
        self._parked: dict[int, Channel] = {}
        self._claims: dict[int, asyncio.Future[Channel]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._protocols: list[_ChannelProtocol] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        a = self.address
        if a.scheme == "unix":
            if os.path.exists(a.path):
                if not stat.S_ISSOCK(os.stat(a.path).st_mode):
                    raise ConfigError(f"server.relay: {a.path} exists and is not a socket")
                os.unlink(a.path)
            self._server = await loop.create_unix_server(lambda: _ChannelProtocol(self), a.path)
        else:
            self._server = await loop.create_server(lambda: _ChannelProtocol(self), a.host or "0.0.0.0", a.port)
            if a.port == 0:
                port = self._server.sockets[0].getsockname()[1]
                self.address = Address("tcp", a.host, port)
            if exposed := exposed_address(self._server):
                log.warning(
                    "server.relay listens on %s, reachable from other machines: anyone who connects can "
                    "pose as a worker and receive requests; use 127.0.0.1 unless that is intended",
                    exposed,
                )

    def _accepted(self, proto: _ChannelProtocol) -> None:
        self._protocols.append(proto)
        task = asyncio.get_running_loop().create_task(self._handshake(proto))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handshake(self, proto: _ChannelProtocol) -> None:
        assert proto.channel is not None and proto.transport is not None
        try:
            pid = await handshake(proto.channel, self.handshake_timeout)
        except (ProtocolError, TimeoutError) as exc:
            log.warning("relay connection dropped: handshake failed", extra={"error": str(exc)})
            proto.transport.close()
            return
        claim = self._claims.pop(pid, None)
        if claim is not None and not claim.done():
            claim.set_result(proto.channel)
        else:
            self._parked[pid] = proto.channel

    async def claim(self, pid: int) -> Channel:
        """Wait for the connection of the worker with this pid (the caller bounds the wait)."""
        if pid in self._parked:
            return self._parked.pop(pid)
        fut: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        self._claims[pid] = fut
        try:
            return await fut
        finally:
            self._claims.pop(pid, None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for proto in self._protocols:
                if proto.transport is not None:
                    proto.transport.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self.address.scheme == "unix" and os.path.exists(self.address.path):
            os.unlink(self.address.path)
