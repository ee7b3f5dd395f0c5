"""One PHP worker: spawn and pid handshake, the worker protocol (exec, stop, kill), its state.

The process and its pipes are :mod:`rrgrpc.pool.process`'s. Frames to the worker go to its stdin
(pipes relay) or to its socket connection; frames from it are parsed by a
:class:`~rrgrpc.goridge.relay.Channel` as they arrive. A request the worker provably never read
(the write failed, or the whole frame was still in its stdin pipe when it exited) raises
:class:`NotDelivered`, so the pool runs it elsewhere. Worker stderr is logged line by line with
the worker's pid (and the trace id of the request it is executing, when there is one). The
worker's state changes only through :meth:`Worker.become`, checked against the lifecycle table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from rrgrpc.errors import BootError, ProtocolError, WorkerError, WorkerLost
from rrgrpc.goridge.frame import Flag, Frame, Stream, encode, encode_data
from rrgrpc.goridge.relay import BadFrame, Channel, SocketRelayListener, handshake
from rrgrpc.pool.payload import Payload
from rrgrpc.pool.process import Process, exit_text
from rrgrpc.pool.state import WorkerState, check_transition

STOP_REQUEST: Final = b'{"stop":true}'
_STOP_CONTROL: Final = encode(STOP_REQUEST, Flag.CONTROL | Flag.CODEC_JSON)
_PONG: Final = encode(b"", 0, (), Stream.PONG)
_STREAM_STOP: Final = encode(b"", 0, (), Stream.STOP)
STOP_GRACE: Final = 10.0  # seconds a worker gets to exit after the stop control, then SIGKILL
_PHP_FATAL: Final = "Fatal error"
_ERROR: Final = int(Flag.ERROR)  # a plain int: IntFlag arithmetic costs a microsecond per request


class StopRequested(Exception):
    """The worker answered with {"stop":true}: it wants to be replaced; the request goes elsewhere."""


class NotDelivered(WorkerLost):
    """The worker (``pid``) is gone and provably never read the request: it goes to another worker."""

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


class Worker:
    """A live PHP process speaking the worker protocol."""

    __slots__ = (
        "pid", "plugin", "_state", "num_execs", "created", "last_used", "job_limit", "channel",
        "proc", "exec_info", "exec_started", "trace_id", "ttl_expired", "sent", "reason", "left", "_log", "_stderr_tail",
    )

    def __init__(self, plugin: str, log: logging.Logger) -> None:
        self.pid = 0
        self.plugin = plugin
        self._state = WorkerState.INACTIVE
        self.num_execs = 0
        self.created = time.time_ns()
        self.last_used = time.monotonic()
        self.job_limit = 0
        self.channel: Channel | None = None
        self.proc: Process | None = None
        self.exec_info = ""
        self.exec_started = 0.0
        self.trace_id = ""
        self.ttl_expired = False
        self.sent = 0  # size of the last request frame written
        self.reason = ""  # why it leaves the pool, once it is marked or retired (max_jobs_reached, reset, ...)
        self.left = False  # its departure from the pool is recorded (the first one counts)
        self._log = log
        self._stderr_tail: list[str] = []

    # -- state ------------------------------------------------------------------------------
    @property
    def state(self) -> WorkerState:
        return self._state

    def become(self, state: WorkerState) -> None:
        """Move to ``state``; raises InvalidTransition when the lifecycle has no such move."""
        if state is not self._state:
            check_transition(self.pid, self._state, state)
            self._state = state

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
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
        ours, theirs = (in_w, out_r, err_r), (in_r, out_w, err_w)
        try:
            # real pipes (see Process); no other descriptor of rr leaks in (close_fds); a session
            # of its own (so its own process group, as RoadRunner's Setpgid): terminal signals
            # meant for rr never reach the workers, and killpg takes the whole tree
            popen = subprocess.Popen(  # noqa: ASYNC220 -- fork+exec, as the loop's subprocess_exec does inline
                argv, stdin=theirs[0], stdout=theirs[1], stderr=theirs[2], env=dict(env),
                close_fds=True, start_new_session=True, **run_as(user),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in ours:
                os.close(fd)
            raise BootError(f"cannot start worker command {' '.join(argv)!r}: {exc}") from exc
        finally:
            for fd in theirs:
                os.close(fd)
        w.pid = popen.pid
        w.proc = proc = Process(w, popen, listener is None)
        try:
            await proc.connect(*ours, max_frame)
        except OSError as exc:  # out of descriptors, say: never leave it running
            popen.kill()
            proc.close()
            raise BootError(f"cannot attach to worker {w.pid}: {exc}") from exc
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
                        raise ProtocolError(f"worker {w.pid} {exit_text(proc.exited.result())} before connecting to the relay")
                    w.channel = claim.result()
                    pid = w.pid
        except (ProtocolError, TimeoutError) as exc:
            await w.kill()
            raise BootError(w._boot_failure(exc, argv, timeout)) from exc
        except asyncio.CancelledError:  # the spawner gave up (reset_timeout, shutdown)
            w.kill_now()
            proc.close()
            raise
        if pid != w.pid:
            log.debug("worker reported pid %d for process %d (wrapper command?)", pid, w.pid)
        w.become(WorkerState.READY)
        return w

    def _boot_failure(self, exc: BaseException, argv: Sequence[str], timeout: float) -> str:
        cmd = " ".join(argv)
        if isinstance(exc, TimeoutError):
            reason = f"no pid handshake within allocate_timeout ({timeout:g}s)"
        else:
            reason = str(exc)
        code = self.proc.exited.result() if self.proc and self.proc.exited.done() else None
        tail = f"; stderr: {' | '.join(self._stderr_summary())}" if self._stderr_tail else ""
        exited = f"; the worker {exit_text(code)}" if code is not None and exit_text(code) not in reason else ""
        return f"worker {cmd!r} failed to start: {reason}{exited}{tail}"

    def _stderr_summary(self) -> list[str]:
        """The last stderr lines of a failed boot, led by PHP's fatal line when it scrolled off."""
        lines = [line if len(line) <= 300 else line[:300] + "..." for line in self._stderr_tail]
        fatal = next((line for line in lines if _PHP_FATAL in line or "Parse error" in line), None)
        tail = lines[-3:]
        return tail if fatal is None or fatal in tail else [fatal, *tail[-2:]]

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
        """Write a request frame; NotDelivered when the relay is closed (the worker never saw it)."""
        assert self.channel is not None
        frame = encode_data(payload.context, payload.body, payload.codec)
        try:
            self.channel.send(frame)
        except ProtocolError as exc:
            raise NotDelivered(f"worker {self.pid} is gone; the request was not written ({exc})", self.pid) from exc
        self.sent = len(frame)
        self.num_execs += 1

    async def receive(self) -> Payload:
        """Read one reply frame and classify it; raises WorkerError, StopRequested or WorkerLost."""
        assert self.channel is not None
        try:
            frame = await self.channel.recv()
        except BadFrame as exc:  # no exit to wait for: the worker is killed and replaced at once
            raise WorkerLost(self._bad_frame(exc)) from exc
        except ProtocolError as exc:
            proc = self.proc
            if proc is not None and not self.ttl_expired:
                try:  # stdout may close a moment before the exit is seen: wait for it, briefly
                    async with asyncio.timeout(0.5):
                        await asyncio.shield(proc.exited)
                except TimeoutError:
                    pass
                if self.sent and proc.exited.done() and proc.unread_at_exit >= self.sent:
                    raise NotDelivered(f"worker {self.pid} {exit_text(proc.exited.result())} before reading the request", self.pid) from exc
            raise WorkerLost(self._lost_reason(exc)) from exc
        self.sent = 0
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
            return f"worker {self.pid} {exit_text(code)} mid-request"
        return f"worker {self.pid} relay broke mid-request: {exc}"

    def _bad_frame(self, exc: BadFrame) -> str:
        text = exc.carried[:100].decode("utf-8", "replace")
        if self.proc is not None and self.proc.pipes_relay:
            return f"worker {self.pid} wrote text to stdout instead of a reply frame: {text!r} (stdout is the relay; log to stderr)"
        return f"worker {self.pid} sent bytes that are not a frame: {text!r}"

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
        return await asyncio.shield(self.proc.exited)  # a caller giving up must not cancel the exit itself

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Ask the worker to stop (stop control frame); SIGKILL it after ``grace`` seconds."""
        if not self.alive:
            return
        self.become(WorkerState.STOPPING)
        if self.channel is not None and self.channel.broken is None:
            try:
                self.channel.send(_STOP_CONTROL)
            except ProtocolError:
                pass
        try:
            async with asyncio.timeout(grace):
                await self.wait()
        except TimeoutError:
            self._log.warning("worker %d did not stop within %gs, killing it", self.pid, grace, extra={"pid": self.pid})
            await self.kill()
        self.become(WorkerState.STOPPED)

    def kill_now(self) -> None:
        """SIGKILL the worker's process group (it runs in its own) without waiting."""
        if self.alive:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:  # the process dropped to server.user and left rr's group
                assert self.proc is not None
                self.proc.popen.kill()

    async def kill(self) -> None:
        """SIGKILL the whole process group and reap the process."""
        self.kill_now()
        if self.proc is not None:
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(self.proc.exited)
            except TimeoutError:
                self._log.error("worker did not exit after SIGKILL", extra={"pid": self.pid})
        if self.proc is not None:
            self.proc.close()
        if self.channel is not None:
            self.channel.feed_eof("closed: worker killed")

    def close_transport(self) -> None:
        if self.proc is not None and self.proc.exited.done():
            self.proc.close()


def run_as(user: str) -> dict[str, Any]:
    """Popen arguments that make the child ``user`` (uid, primary gid, no extra groups), when rr is root."""
    if not user or os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise BootError(f"server.user: no such user {user!r}") from None
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
