"""``rr serve``: load the config, build the roster, run the host until SIGINT/SIGTERM.

The first signal starts a graceful stop (plugins in reverse order, each within its own budget);
a second signal, or ``endure.grace_period`` (30s) running out, forces it: workers are killed. A startup error
is one readable line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import click

from rrgrpc.cli import CliContext, rr
from rrgrpc.errors import RRError
from rrgrpc.logs import ConsoleFormatter

if TYPE_CHECKING:
    from rrgrpc.config.schema import RRConfig

log = logging.getLogger("rr")


@rr.command()
@click.option(
    "--strict", is_flag=True,
    help="Refuse to start on anything RoadRunner would ignore: unknown keys and sections, unsupported ones.",
)
@click.pass_obj
def serve(obj: CliContext, strict: bool) -> None:
    """Serve the configured plugins (gRPC, HTTP, RPC, metrics, status)."""
    # before grpc is imported: we spawn workers, never fork a process that uses gRPC, and without
    # this grpc-core warns on every worker spawn that other threads are calling into it
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    early = logging.StreamHandler()  # until the logs plugin installs its own: rr's development format
    early.setFormatter(ConsoleFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[early])
    try:
        cfg = obj.load(strict=strict)
        _run(cfg)
    except* KeyboardInterrupt:
        pass
    except* (RRError, OSError) as group:
        for exc in _leaves(group):
            click.echo(f"rr: error: {exc}", err=True)
        sys.exit(1)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out[:1]


def _run(cfg: RRConfig) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(cfg))
    else:
        uvloop.run(_serve(cfg))


async def _serve(cfg: RRConfig) -> None:
    from rrgrpc.host import Host
    from rrgrpc.roster import default_roster

    host = Host(default_roster(cfg))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None

    def on_signal(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: stopping gracefully (send it again to force)", name)
            stop.set()
            loop.call_later(cfg.endure.grace_period, force, "grace period over")
        else:
            force(f"second {name}")

    def force(why: str) -> None:
        if not main.done():
            log.warning("forced stop (%s): killing workers", why)
            main.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig.name)
    stopped = stop.wait()
    try:
        await host.run(stopped)
    except asyncio.CancelledError:
        if stop.is_set():
            return
        raise
    finally:
        stopped.close()  # never awaited when the start failed: no "never awaited" warning then
        for sig in signals:
            loop.remove_signal_handler(sig)
