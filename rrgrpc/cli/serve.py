"""``rr serve``: load the config, build the roster, run the host until SIGINT/SIGTERM.

The first SIGINT/SIGTERM starts a graceful stop (plugins in reverse order, each within its own
budget); a second one, or ``endure.grace_period`` (30s) running out, forces it: ``exit forced``, workers
killed, exit code 1 (RoadRunner's behaviour). SIGUSR2 resets every resettable plugin, as
``rr reset`` does. With ``NOTIFY_SOCKET`` set (systemd ``Type=notify``) it sends ``READY=1`` once
every plugin serves and ``STOPPING=1`` when the stop begins. ``-p`` writes the pid file
``rr stop`` reads. A startup error is one readable line on stderr and exit code 1.

With ``server.num_fronts`` above 1 this process is the supervisor of that many front processes
(``rr serve --front I``, hidden; docs/data-plane.md): the signals, the pid file and sd_notify stay
here, a forced stop kills every process below it, and a front that cannot be brought back stops rr
with its cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Final

import click
import msgspec

from rrgrpc import RR_COMPAT_VERSION, __version__
from rrgrpc.cli import PID_FILE, CliContext, rr
from rrgrpc.errors import RRError
from rrgrpc.logs import ConsoleFormatter

if TYPE_CHECKING:
    from rrgrpc.config.schema import RRConfig

FORCE_BUDGET: Final = 10.0  # seconds for a forced stop to kill the workers before rr exits anyway
log = logging.getLogger("rr")


class _Forced(Exception):
    """The stop was forced (second signal or grace period over): exit code 1."""


@rr.command()
@click.option(
    "--strict", is_flag=True,
    help="Refuse to start on anything RoadRunner would ignore: unknown keys and sections, unsupported ones.",
)
@click.option("--front", type=int, default=None, hidden=True)  # internal: run front I of a supervisor
@click.option("--control", default="", hidden=True)  # internal: the front's private control directory
@click.pass_obj
def serve(obj: CliContext, strict: bool, front: int | None, control: str) -> None:
    """Serve the configured plugins (gRPC, HTTP, RPC, metrics, status)."""
    # before grpc is imported: we spawn workers, never fork a process that uses gRPC, and without
    # this grpc-core warns on every worker spawn that other threads are calling into it
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    early = logging.StreamHandler()  # until the logs plugin installs its own: rr's development format
    early.setFormatter(ConsoleFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[early])
    if front is not None:
        _front(front, control)
        return
    try:
        cfg = obj.load(strict=strict)
        with _pid_file(obj.pid_file):
            _run(_serve(cfg, obj.silent))
    except* KeyboardInterrupt:
        pass
    except* _Forced:
        sys.exit(1)
    except* (RRError, OSError) as group:
        for exc in _leaves(group):
            click.echo(f"rr: error: {exc}", err=True)
        sys.exit(1)


def _front(index: int, control: str) -> None:
    """Run front ``index`` of the supervisor that spawned us (stdin: our end of its control pair).

    SIGINT/SIGTERM/SIGUSR2 are the supervisor's: a terminal's Ctrl+C reaches the whole process
    group, and a front stops only on ``front.Stop`` or when the pair reaches EOF (the supervisor is
    gone). A startup error goes back to the supervisor, which prints it once.
    """
    from rrgrpc.fronts.supervisor import read_handoff

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, lambda *_: None)  # not SIG_IGN: the PHP workers must not inherit it
    records = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = records(*args, **kwargs)
        record.front = index  # every line this front logs names it (a field, as extra= gives)
        return record

    logging.setLogRecordFactory(tagged)
    pair = socket.socket(fileno=0)
    try:
        handoff = read_handoff(pair)
    except (EOFError, OSError):
        sys.exit(1)  # the supervisor is already gone
    try:
        _run(_serve_front(handoff.cfg, index, handoff.fronts, control, pair))
    except* (RRError, OSError) as group:
        with contextlib.suppress(OSError):
            pair.sendall(json.dumps({"error": str(_leaves(group)[0])}).encode() + b"\n")
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
    """SIGKILL every process below rr at once, as a forced stop must: each descendant's process group
    (each PHP worker leads its own), then the descendant itself (a front leads none)."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            child.kill()  # a child that leads no group of its own


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve_front(cfg: RRConfig, index: int, fronts: int, control: str, pair: socket.socket) -> None:
    from rrgrpc.fronts.supervisor import control_socket
    from rrgrpc.host import Host
    from rrgrpc.roster import front_roster

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    host = Host(front_roster(cfg, index, fronts, control_socket(control, index), stop.set))
    pair.setblocking(False)

    def on_pair() -> None:
        try:
            if pair.recv(4096):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        loop.remove_reader(pair.fileno())
        stop.set()  # EOF: the supervisor is gone, a front never outlives it

    async def announce() -> None:
        await host.ready.wait()
        await loop.sock_sendall(pair, b'{"ready": true}\n')

    loop.add_reader(pair.fileno(), on_pair)
    announcer = loop.create_task(announce())
    stopped = stop.wait()
    try:
        await host.run(stopped)
    finally:
        announcer.cancel()
        stopped.close()
        loop.remove_reader(pair.fileno())


async def _serve(cfg: RRConfig, silent: bool) -> None:
    from rrgrpc.fronts.count import resolve
    from rrgrpc.host import Host
    from rrgrpc.plugin import Resettable
    from rrgrpc.roster import default_roster, supervisor_roster

    fatal: list[str] = []
    count, note = resolve(cfg)
    if note is not None:
        level, why = note
        cfg = msgspec.structs.replace(cfg, notes=(*cfg.notes, (level, f"{cfg.source}: {why}")))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_fatal(cause: str) -> None:
        fatal.append(cause)
        stop.set()

    host = Host(default_roster(cfg) if count == 1 else supervisor_roster(cfg, count, on_fatal))
    forced: list[str] = []
    main = asyncio.current_task()
    assert main is not None
    resets: set[asyncio.Task[None]] = set()

    def on_signal(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: stopping gracefully (send it again to force)", name)
            sd_notify("STOPPING=1")
            stop.set()
            loop.call_later(cfg.endure.grace_period, force, "grace period over")
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
    stopped = stop.wait()
    try:
        await host.run(stopped)
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
        stopped.close()  # never awaited when the start failed: no "never awaited" warning then
        for sig in (*signals, signal.SIGUSR2):
            loop.remove_signal_handler(sig)
    if fatal:
        raise RRError(fatal[0])
