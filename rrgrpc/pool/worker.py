"""One PHP worker process: spawn, pid handshake, exec, stop, kill, reaping and the stderr pump.

Frames to the worker go to its stdin (pipes relay) or to its socket connection; frames from it are
parsed by a :class:`~rrgrpc.goridge.relay.Channel` as they arrive. Worker stderr is logged line by
line with the worker's pid (and the trace id of the request it is executing, when there is one).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import pwd
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from rrgrpc.errors import BootError, ProtocolError, WorkerError, WorkerLost
from rrgrpc.goridge.frame import Flag, Frame, Stream, encode, encode_data
from rrgrpc.goridge.relay import Channel, SocketRelayListener, handshake
from rrgrpc.pool.payload import Payload
from rrgrpc.pool.state import WorkerState

STOP_REQUEST: Final = b'{"stop":true}'
_STOP_CONTROL: Final = encode(STOP_REQUEST, Flag.CONTROL | Flag.CODEC_JSON)
_PONG: Final = encode(b"", 0, (), Stream.PONG)
_STREAM_STOP: Final = encode(b"", 0, (), Stream.STOP)
STOP_GRACE: Final = 10.0  # seconds a worker gets to exit after the stop control, then SIGKILL
_ERROR: Final = int(Flag.ERROR)  # a plain int: IntFlag arithmetic costs a microsecond per request


class StopRequested(Exception):
    """The worker answered with {"stop":true}: it wants to be replaced; the request goes elsewhere."""


class _Process(asyncio.SubprocessProtocol):
    """Routes the child's stdout into the relay channel (pipes) and stderr into the log, line by line."""

    def __init__(self, worker: Worker, pipes_relay: bool, max_frame: int) -> None:
        self.worker = worker
        self.pipes_relay = pipes_relay
        self.max_frame = max_frame
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._err = bytearray()
        self._out = bytearray()
        self._early = bytearray()  # stdout that arrived before the channel existed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the channel exists before the first stdout byte is handled: bytes a worker prints before
        # the handshake (garbage, "Could not open input file") must reach the frame parser
        if self.pipes_relay:
            proc = cast(asyncio.SubprocessTransport, transport)
            stdin = cast(asyncio.WriteTransport, proc.get_pipe_transport(0))  # uvloop's is no subclass
            channel = self.worker.channel = Channel(stdin.write, self.max_frame, name=f"worker {proc.get_pid()}")
            if self._early:
                channel.feed(bytes(self._early))
                self._early.clear()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1 and self.pipes_relay:
            if self.worker.channel is None:
                self._early += data
            else:
                self.worker.channel.feed(data)
        else:
            buf = self._err if fd == 2 else self._out
            buf += data
            while (nl := buf.find(b"\n")) >= 0:
                self.worker.log_line(bytes(buf[:nl]))
                del buf[: nl + 1]
            if len(buf) > 65536:
                self.worker.log_line(bytes(buf))
                buf.clear()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1 and self.pipes_relay and self.worker.channel is not None:
            self.worker.channel.feed_eof("closed: the worker closed its stdout")
        buf = self._err if fd == 2 else self._out
        if buf and fd in (1, 2):
            self.worker.log_line(bytes(buf))
            buf.clear()

    def process_exited(self) -> None:
        if not self.exited.done():
            code = self.worker.transport.get_returncode() if self.worker.transport else -1
            self.exited.set_result(code if code is not None else -1)
        if self.worker.channel is not None:
            self.worker.channel.feed_eof(f"closed: the worker process exited with {self.exited.result()}")


class Worker:
    """A live PHP process speaking the worker protocol."""

    __slots__ = (
        "pid", "plugin", "state", "num_execs", "created", "last_used", "job_limit", "channel",
        "transport", "proc", "exec_info", "exec_started", "trace_id", "ttl_expired", "_log", "_stderr_tail",
    )

    def __init__(self, plugin: str, log: logging.Logger) -> None:
        self.pid = 0
        self.plugin = plugin
        self.state = WorkerState.INACTIVE
        self.num_execs = 0
        self.created = time.time_ns()
        self.last_used = time.monotonic()
        self.job_limit = 0
        self.channel: Channel | None = None
        self.transport: asyncio.SubprocessTransport | None = None
        self.proc: _Process | None = None
        self.exec_info = ""
        self.exec_started = 0.0
        self.trace_id = ""
        self.ttl_expired = False
        self._log = log
        self._stderr_tail: list[str] = []

    # -- spawning ---------------------------------------------------------------------------
    @classmethod
    async def spawn(
        cls,
        plugin: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        timeout: float,
        listener: SocketRelayListener | None = None,
        user: str = "",
        max_frame: int,
        log: logging.Logger,
    ) -> Worker:
        """Start the process and complete the pid handshake within ``timeout`` (allocate_timeout)."""
        w = cls(plugin, log)
        loop = asyncio.get_running_loop()
        extra = run_as(user)
        try:
            # a session of its own (so its own process group, as RoadRunner's Setpgid): terminal
            # signals meant for rr never reach the workers, and killpg takes the whole tree
            transport, proc = await loop.subprocess_exec(
                lambda: _Process(w, listener is None, max_frame), *argv, env=dict(env), start_new_session=True, **extra
            )
        except OSError as exc:
            raise BootError(f"cannot start worker command {' '.join(argv)!r}: {exc}") from exc
        w.transport, w.proc, w.pid = transport, proc, transport.get_pid()
        try:
            async with asyncio.timeout(timeout):
                if listener is None:
                    assert w.channel is not None  # made in connection_made
                    pid = await handshake(w.channel, timeout)
                else:
                    claim: asyncio.Future[Channel] = asyncio.ensure_future(listener.claim(w.pid))
                    waits: set[asyncio.Future[Any]] = {claim, proc.exited}
                    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    if claim not in done:
                        claim.cancel()
                        raise ProtocolError(f"worker {w.pid} exited with {proc.exited.result()} before connecting to the relay")
                    w.channel = claim.result()
                    pid = w.pid
        except (ProtocolError, TimeoutError) as exc:
            await w.kill()
            raise BootError(w._boot_failure(exc, argv, timeout)) from exc
        if pid != w.pid:
            log.debug("worker reported pid %d for process %d (wrapper command?)", pid, w.pid)
        w.state = WorkerState.READY
        return w

    def _boot_failure(self, exc: BaseException, argv: Sequence[str], timeout: float) -> str:
        cmd = " ".join(argv)
        if isinstance(exc, TimeoutError):
            reason = f"no pid handshake within allocate_timeout ({timeout:g}s)"
        else:
            reason = str(exc)
        code = self.proc.exited.result() if self.proc and self.proc.exited.done() else None
        tail = f"; stderr: {' | '.join(self._stderr_tail[-3:])}" if self._stderr_tail else ""
        exited = f"; exit code {code}" if code is not None else ""
        return f"worker {cmd!r} failed to start: {reason}{exited}{tail}"

    # -- logging ----------------------------------------------------------------------------
    def log_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line:
            return
        if self.state is WorkerState.INACTIVE:
            self._stderr_tail.append(line)
        extra: dict[str, object] = {"pid": self.pid, "plugin": self.plugin}
        if self.trace_id and self.state is WorkerState.WORKING:
            extra["trace_id"] = self.trace_id
        self._log.info("%s", line, extra=extra)

    # -- the worker protocol ----------------------------------------------------------------
    def send(self, payload: Payload) -> None:
        assert self.channel is not None
        self.channel.send(encode_data(payload.context, payload.body, payload.codec))
        self.num_execs += 1

    async def receive(self) -> Payload:
        """Read one reply frame and classify it; raises WorkerError, StopRequested or WorkerLost."""
        assert self.channel is not None
        try:
            frame = await self.channel.recv()
        except ProtocolError as exc:
            if self.proc is not None and not self.ttl_expired:
                try:  # stdout closes a moment before the exit status arrives: wait for it, briefly
                    async with asyncio.timeout(0.5):
                        await asyncio.shield(self.proc.exited)
                except TimeoutError:
                    pass
            raise WorkerLost(self._lost_reason(exc)) from exc
        return self._reply(frame)

    def _reply(self, frame: Frame) -> Payload:
        if frame.flags & _ERROR:
            raise WorkerError(frame.payload.decode("utf-8", "replace"), frame.payload)
        if len(frame.options) != 1:
            raise WorkerLost(f"worker {self.pid} sent a reply with {len(frame.options)} options; exactly 1 (the context length) is required")
        n = frame.options[0]
        if n > len(frame.payload):
            raise WorkerLost(f"worker {self.pid} sent a context length {n} beyond its {len(frame.payload)}-byte payload")
        payload = frame.payload
        ctx = payload[:n]
        if ctx == STOP_REQUEST and n == len(payload):
            raise StopRequested()
        return Payload(ctx, payload[n:], frame.flags, frame.byte10)

    def _lost_reason(self, exc: ProtocolError) -> str:
        if self.ttl_expired:
            return f"worker {self.pid} killed: exec_ttl reached"
        code = self.proc.exited.result() if self.proc and self.proc.exited.done() else None
        if code is not None:
            return f"worker {self.pid} exited with code {code} mid-request"
        return f"worker {self.pid} relay broke mid-request: {exc}"

    def pong(self) -> None:
        assert self.channel is not None
        self.channel.send(_PONG)

    def stop_stream(self) -> None:
        assert self.channel is not None
        self.channel.send(_STREAM_STOP)

    # -- ending -----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and not self.proc.exited.done()

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.exited

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Ask the worker to stop (stop control frame); SIGKILL it after ``grace`` seconds."""
        if not self.alive:
            return
        self.state = WorkerState.STOPPING
        if self.channel is not None and self.channel.broken is None:
            try:
                self.channel.send(_STOP_CONTROL)
            except (RuntimeError, OSError):
                pass
        try:
            async with asyncio.timeout(grace):
                await self.wait()
        except TimeoutError:
            self._log.warning("worker did not stop within %.1fs, killing it", grace, extra={"pid": self.pid})
            await self.kill()
        self.state = WorkerState.STOPPED

    def kill_now(self) -> None:
        """SIGKILL the worker's process group (it runs in its own) without waiting."""
        if self.alive:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                assert self.transport is not None
                self.transport.kill()

    async def kill(self) -> None:
        """SIGKILL the whole process group and reap the process."""
        self.kill_now()
        if self.proc is not None:
            try:
                async with asyncio.timeout(5):
                    await self.proc.exited
            except TimeoutError:
                self._log.error("worker did not exit after SIGKILL", extra={"pid": self.pid})
        if self.transport is not None:
            self.transport.close()
        if self.channel is not None:
            self.channel.feed_eof("closed: worker killed")

    def close_transport(self) -> None:
        if self.transport is not None and self.proc is not None and self.proc.exited.done():
            self.transport.close()



def run_as(user: str) -> dict[str, Any]:
    """Subprocess arguments that make the child ``user`` (uid and primary gid), when rr is root.

    A ``preexec_fn`` rather than ``user=``/``group=``, which uvloop's subprocess does not accept.
    """
    if not user or os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise BootError(f"server.user: no such user {user!r}") from None
    return {"preexec_fn": functools.partial(_drop_privileges, pw.pw_uid, pw.pw_gid)}


def _drop_privileges(uid: int, gid: int) -> None:
    """Run in the child before exec: become ``server.user`` (its uid and primary gid)."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
