"""Shared test helpers (import as ``from tests.helpers import ...``): paths, eventually(), ports, a Host."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import psutil
import pytest

from rrgrpc.config.schema import PoolConfig, SupervisorConfig

ROOT = Path(__file__).resolve().parent.parent
PHP_DIR = ROOT / "php"
TEST_PHP = ROOT / "tests" / "php"
VECTORS = ROOT / "tests" / "vectors"  # the captured frames (tests/vectors/README.md)
PHP = shutil.which("php")
T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)


class StaticPeers:
    """The host's side of rrgrpc.plugin.Peers over a fixed set of plugins, for a plugin tested alone;
    ``stopping`` is the Host's event that starts its shutdown."""

    def __init__(self, *plugins: object) -> None:
        self.plugins = list(plugins)
        self.stopping = asyncio.Event()

    def having(self, capability: type[T]) -> list[T]:
        return [p for p in self.plugins if isinstance(p, capability)]


def section(tp: type[S], **values: object) -> S:
    """A typed config section from plain values (floats for durations, lists for argv, str for text),
    converted and validated as the loader does, so tests need not spell Duration(...) or Argv(...)."""
    return msgspec.convert(values, tp, strict=False, dec_hook=lambda kind, value: kind(value))


def php_cmd(script: str | Path, *args: str) -> list[str]:
    """argv running a PHP script from tests/php (or an absolute path) with the interpreter."""
    path = Path(script)
    if not path.is_absolute():
        path = TEST_PHP / path
    return [PHP or "php", str(path), *args]


_handed_out: collections.deque[int] = collections.deque(maxlen=64)


def free_port() -> int:
    """A loopback port nothing listens on, and none of the last 64 this process handed out: the
    kernel may give the port bind(0) just released to the next bind(0) (22 of 20000 sets of 5 calls
    had a duplicate), so the http and grpc ports of one config could be the same."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.append(port)
            return port


async def wait_http_ok(session: Any, url: str, timeout: float = 30) -> None:
    """Poll ``GET url`` with an aiohttp session until it answers 200 (a server started in a subprocess)."""
    import aiohttp

    async def up() -> bool:
        try:
            async with session.get(url) as resp:
                return bool(resp.status == 200)
        except aiohttp.ClientConnectionError:
            return False

    await eventually(up, timeout=timeout, interval=0.1)


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")
        await asyncio.sleep(interval)


def self_signed_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 and its key, made with the openssl CLI (None when it cannot)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, check=False,
    )
    return (cert, key) if made.returncode == 0 else None


@pytest.fixture(params=["asyncio", "uvloop"], scope="module", name="event_loop_policy")
def stock_and_uvloop(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Import into a test module to run each of its tests on the stock loop and on uvloop (what
    ``rr serve`` uses)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.EventLoopPolicy()  # type: ignore[no-any-return]
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture(autouse=True, name="no_leftover_workers")
def no_leftover_workers_fixture() -> Iterator[None]:
    """Import into a test module to fail each of its tests that leaves a PHP process of this test
    run alive (a SIGSTOPped worker nobody killed, say)."""
    yield
    deadline = time.monotonic() + 10
    while left := [p for p in psutil.Process().children(recursive=True) if _is_live_php(p)]:
        if time.monotonic() > deadline:
            for p in left:
                p.kill()
            raise AssertionError(f"PHP processes left running: {[(p.pid, p.status()) for p in left]}")
        time.sleep(0.05)


def _is_live_php(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE and "php" in p.name()
    except psutil.NoSuchProcess:
        return False


@asynccontextmanager
async def running_host(raw: dict[str, Any], workdir: Path | None = None) -> AsyncIterator[Any]:
    """Load a config dict (as if read from .rr.yaml), build the roster, run the Host until exit."""
    from rrgrpc.config import config_from_dict
    from rrgrpc.host import Host
    from rrgrpc.roster import default_roster

    cfg = config_from_dict(raw, source=str(workdir / ".rr.yaml") if workdir else "<test>")
    host = Host(default_roster(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop.wait()))
    ready = asyncio.create_task(host.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED, timeout=60)
    if task in done:
        ready.cancel()
        task.result()  # raises the startup error
    assert ready in done, "host did not become ready within 60s"
    try:
        yield host
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def kill_tree(proc: asyncio.subprocess.Process) -> None:
    """Kill a process a test started and every process under it (its PHP workers), then reap it."""
    import psutil

    if proc.returncode is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        proc.kill()
        await proc.wait()


def _take_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) its controlling terminal."""
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def run_in_terminal(argv: list[str], cwd: Path, *, until: bytes, keys: bytes) -> int:
    """Run ``argv`` on a pseudo-terminal (its controlling terminal), wait until its screen shows
    ``until``, type ``keys``, return its exit code (killed if it does not exit within 30 s)."""
    import os
    import pty

    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm"},
        start_new_session=True, preexec_fn=_take_terminal,  # so that Ctrl-C is a SIGINT, as in a terminal
    )
    os.close(slave)
    screen = b""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(60):
            while until not in screen:
                screen += await loop.run_in_executor(None, os.read, master, 65536)
        os.write(master, keys)
        return await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(OSError):
            os.close(master)


def pool_cfg(n: int = 1, **kw: Any) -> PoolConfig:
    """A ``PoolConfig`` of ``n`` workers for pool tests: a 50 ms watch tick, 10 s to allocate, ``kw`` on top
    (``supervisor={...}`` goes into the supervisor section)."""
    sup: dict[str, object] = kw.pop("supervisor", {})
    kw.setdefault("allocate_timeout", 10.0)
    return section(PoolConfig, num_workers=n, supervisor=section(SupervisorConfig, watch_tick=0.05, **sup), **kw)


__all__ = [
    "ROOT", "PHP_DIR", "TEST_PHP", "VECTORS", "php_cmd", "free_port", "eventually", "running_host", "kill_tree",
    "run_in_terminal", "self_signed_certificate", "stock_and_uvloop", "no_leftover_workers_fixture", "pool_cfg", "sys",
]
