"""A worker's OS process: real pipes on stdin/stdout/stderr, what it writes, and its exit.

The process gets real pipes, no other descriptor of rr, and a session of its own; its exit is
watched through a pidfd (a waiting thread where there is none). stdout feeds the worker's relay
channel (pipes relay) or the log, stderr the log, line by line.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import signal
import struct
import subprocess
import termios
import threading
from typing import TYPE_CHECKING

from rrgrpc.goridge.relay import Channel, transport_writer

if TYPE_CHECKING:
    from rrgrpc.pool.worker import Worker


class _Reader(asyncio.Protocol):
    """Hands the bytes of one of the child's output pipes (1: stdout, 2: stderr) to its Process."""

    def __init__(self, proc: Process, fd: int) -> None:
        self.proc = proc
        self.fd = fd

    def data_received(self, data: bytes) -> None:
        self.proc.pipe_data_received(self.fd, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proc.pipe_connection_lost(self.fd)


class _RelayReader(_Reader):
    """The stdout of a pipes-relay worker: its bytes go straight to the worker's channel."""

    def __init__(self, proc: Process, channel: Channel) -> None:
        super().__init__(proc, 1)
        self.feed = channel.feed

    def data_received(self, data: bytes) -> None:
        self.feed(data)


class Process:
    """The child process: real pipes on its stdin/stdout/stderr, and its exit (watched by pidfd).

    Real pipes, not socketpairs: PHP applies ``default_socket_timeout`` (60 s) to reads from a
    socket, so an idle worker blocked on a socket stdin gives up after a minute. stdout feeds the
    relay channel (pipes relay) or the log; stderr feeds the log line by line.

    The transports close their descriptors on their own (the stdin writer as soon as the worker is
    gone), so rr keeps dups of its ends until :meth:`close`: ``FIONREAD`` on the stdin dup tells how
    many bytes the worker has not read (taken as ``unread_at_exit`` when it exits), and the output
    dups let the exit handler read what the worker wrote last, with no descriptor number reused.
    """

    def __init__(self, worker: Worker, popen: subprocess.Popen[bytes], pipes_relay: bool) -> None:
        self.worker = worker
        self.popen = popen
        self.pipes_relay = pipes_relay
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.stdin: asyncio.WriteTransport | None = None
        self.unread_at_exit = -1
        self._dups = {0: -1, 1: -1, 2: -1}
        self._readers: list[asyncio.BaseTransport] = []
        self._err = bytearray()
        self._out = bytearray()
        self._pidfd = -1

    async def connect(self, stdin: int, stdout: int, stderr: int, max_frame: int) -> None:
        """Attach the parent's pipe ends to the loop and start watching the exit."""
        loop = asyncio.get_running_loop()
        self._dups = {0: os.dup(stdin), 1: os.dup(stdout), 2: os.dup(stderr)}
        self.stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(stdin, "wb", 0))
        if self.pipes_relay:
            name = f"worker {self.popen.pid}"
            self.worker.channel = Channel(transport_writer(self.stdin, name), max_frame, name=name)
        channel = self.worker.channel
        for fd, end in ((1, stdout), (2, stderr)):
            reader = (
                functools.partial(_RelayReader, self, channel)
                if fd == 1 and channel is not None
                else functools.partial(_Reader, self, fd)
            )
            transport, _ = await loop.connect_read_pipe(reader, os.fdopen(end, "rb", 0))
            self._readers.append(transport)
        try:
            self._pidfd = os.pidfd_open(self.popen.pid)
        except (AttributeError, OSError):  # no pidfd (macOS, Linux < 5.3): a waiting thread, as
            # asyncio's ThreadedChildWatcher does
            threading.Thread(target=self._wait, args=(loop,), name=f"wait {self.popen.pid}", daemon=True).start()
        else:
            loop.add_reader(self._pidfd, self._reap)

    def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        self.popen.wait()
        loop.call_soon_threadsafe(self._reap)

    def unread(self) -> int:
        """Bytes written to the worker's stdin that it has not read (-1 when unknown)."""
        if self._dups[0] < 0:
            return -1
        n = struct.unpack("i", fcntl.ioctl(self._dups[0], termios.FIONREAD, b"\0\0\0\0"))[0]
        return int(n) + (self.stdin.get_write_buffer_size() if self.stdin is not None else 0)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1 and self.pipes_relay:
            assert self.worker.channel is not None
            self.worker.channel.feed(data)
            return
        buf = self._err if fd == 2 else self._out
        buf += data
        while (nl := buf.find(b"\n")) >= 0:
            self.worker.log_line(bytes(buf[:nl]))
            del buf[: nl + 1]
        if len(buf) > 65536:
            self.worker.log_line(bytes(buf))
            buf.clear()

    def pipe_connection_lost(self, fd: int) -> None:
        if fd == 1 and self.pipes_relay and self.worker.channel is not None:
            self.worker.channel.feed_eof("closed: the worker closed its stdout")
        buf = self._err if fd == 2 else self._out
        if buf:
            self.worker.log_line(bytes(buf))
            buf.clear()

    def _reap(self) -> None:
        code = self.popen.poll()
        if code is None:
            return
        if self._pidfd >= 0:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self.unread_at_exit = self.unread()
        # what the process wrote before it exited is read now, before the exit is told: a reply
        # frame (or a PHP fatal line) must never lose the race against the exit notice
        for fd in (1, 2):
            self._drain(fd)
        if not self.exited.done():
            self.exited.set_result(code)
        if self.worker.channel is not None:
            self.worker.channel.feed_eof(f"closed: the worker process {exit_text(code)}")

    def _drain(self, fd: int) -> None:
        while self._dups[fd] >= 0:
            try:
                data = os.read(self._dups[fd], 65536)
            except OSError:  # BlockingIOError: nothing more for now
                return
            if not data:
                return
            self.pipe_data_received(fd, data)

    def close(self) -> None:
        """Close the parent's pipe ends (once the process is reaped or killed)."""
        for t in (self.stdin, *self._readers):
            if t is not None:
                t.close()
        for fd in self._dups.values():
            if fd >= 0:
                os.close(fd)
        self._dups = {0: -1, 1: -1, 2: -1}


def exit_text(code: int) -> str:
    """How a process ended: "exited with code 3" or "was killed by SIGKILL"."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
