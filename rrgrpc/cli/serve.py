"""``rr serve``: load the config, build the roster, run the host until SIGINT/SIGTERM.

The first SIGINT/SIGTERM starts a graceful stop (plugins in reverse order, each within its own
budget); a second one, or the grace period running out, forces it: ``exit forced``, workers
killed, exit code 1 (RoadRunner's behaviour). SIGUSR2 resets every resettable plugin, as
``rr reset`` does. With ``NOTIFY_SOCKET`` set (systemd ``Type=notify``) it sends ``READY=1`` once
every plugin serves and ``STOPPING=1`` when the stop begins. ``-p`` writes the pid file
``rr stop`` reads. A startup error is one readable line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Final

import click

from rrgrpc import RR_COMPAT_VERSION, __version__
from rrgrpc.cli import PID_FILE, CliContext, rr
from rrgrpc.errors import RRError

GRACE_PERIOD: Final = 30.0  # seconds for the whole graceful stop before it is forced
FORCE_BUDGET: Final = 10.0  # seconds for a forced stop to kill the workers before rr exits anyway
log = logging.getLogger("rr")


class _Forced(Exception):
    """The stop was forced (second signal or grace period over): exit code 1."""


@rr.command()
@click.pass_obj
def serve(obj: CliContext) -> None:
    """Serve the configured plugins (gRPC, HTTP, RPC, metrics, status)."""
    # before grpc is imported: we spawn workers, never fork a process that uses gRPC, and without
    # this grpc-core warns on every worker spawn that other threads are calling into it
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s\t%(levelname)s\t%(name)s\t%(message)s")
    try:
        cfg = obj.load()
        with _pid_file(obj.pid_file):
            _run(cfg, obj.silent)
    except* KeyboardInterrupt:
        pass
    except* _Forced:
        sys.exit(1)
    except* (RRError, OSError) as group:
        for exc in _leaves(group):
            click.echo(f"rr: error: {exc}", err=True)
        sys.exit(1)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out[:1]


@contextlib.contextmanager
def _pid_file(wanted: bool) -> Iterator[None]:
    """Write our pid to ``.pid`` in the working directory; remove it at exit if it is still ours."""
    if not wanted:
        yield
        return
    path = os.path.abspath(PID_FILE)
    with open(path, "w", encoding="ascii") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding="ascii") as f:
                ours = f.read().strip() == str(os.getpid())
            if ours:
                os.unlink(path)


def sd_notify(state: str) -> bool:
    """Send ``state`` to systemd's ``NOTIFY_SOCKET`` (a unix datagram socket; ``@`` = abstract).

    Returns whether it was sent; an unreachable socket is logged, never fatal.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("NOTIFY_SOCKET %s: %s not sent: %s", os.environ["NOTIFY_SOCKET"], state, exc.strerror or exc)
        return False
    return True


def _kill_children() -> None:
    """SIGKILL every child's process group (each worker leads its own) at once, as a forced stop must."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            child.kill()  # a child that leads no group of its own


def _run(cfg: object, silent: bool) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(cfg, silent))
    else:
        uvloop.run(_serve(cfg, silent))


async def _serve(cfg: object, silent: bool) -> None:
    from rrgrpc.host import Host
    from rrgrpc.plugin import Resettable
    from rrgrpc.roster import default_roster

    host = Host(default_roster(cfg))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    forced: list[str] = []
    main = asyncio.current_task()
    assert main is not None
    resets: set[asyncio.Task[None]] = set()

    def on_signal(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: stopping gracefully (send it again to force)", name)
            sd_notify("STOPPING=1")
            stop.set()
            loop.call_later(GRACE_PERIOD, force, "grace period over")
        else:
            force(f"second {name}")

    def force(why: str) -> None:
        if main.done() or forced:
            return
        forced.append(why)
        click.echo("exit forced")
        log.warning("forced stop (%s): killing workers", why)
        _kill_children()
        main.cancel()
        loop.call_later(FORCE_BUDGET, os._exit, 1)  # a teardown that hangs must not keep rr alive

    async def reset_all() -> None:
        plugins = host.having(Resettable)
        log.info("SIGUSR2 received: resetting %s", ", ".join(p.name for p in plugins) or "nothing")
        results = await asyncio.gather(*(p.reset() for p in plugins), return_exceptions=True)
        for plugin, result in zip(plugins, results, strict=True):
            if isinstance(result, BaseException):
                log.error("SIGUSR2: reset of %s failed: %s", plugin.name, result)

    def on_usr2() -> None:
        if host.ready.is_set() and not stop.is_set():
            task = loop.create_task(reset_all())
            resets.add(task)
            task.add_done_callback(resets.discard)

    async def announce() -> None:
        await host.ready.wait()
        sd_notify("READY=1")
        if not silent:
            click.echo(f"[INFO] rrgrpc server started; version: {__version__} (RoadRunner {RR_COMPAT_VERSION} compatible)")

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig.name)
    loop.add_signal_handler(signal.SIGUSR2, on_usr2)
    announcer = loop.create_task(announce())
    try:
        await host.run(stop.wait())
    except asyncio.CancelledError:
        if forced:
            raise _Forced(forced[0]) from None
        if stop.is_set():
            return
        raise
    finally:
        announcer.cancel()
        for task in resets:
            task.cancel()
        for sig in (*signals, signal.SIGUSR2):
            loop.remove_signal_handler(sig)
