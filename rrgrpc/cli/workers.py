"""``rr workers [plugin ...] [-i] [--json]``: the workers of a running server, over its RPC endpoint.

A pure RPC client (never imports the pool or the plugins): it reads ``rpc.listen`` from the config
and calls ``informer.List`` / ``informer.Workers`` (plus the ``informer.Activity`` extension in the
live view). Output: one table per plugin (PID | STATUS | EXECS | MEMORY | CPU% | CREATED, sorted by
PID), ``--json`` for scripts, or ``-i``: a full-screen live view refreshed every second with, per busy
worker, the method/URI it executes and for how long, queue depth, totals, and keys to reset a plugin
and add/remove workers. Under the jobs plugin both views add its pipelines (``informer.Jobs``). Also owns the helpers ``rr reset`` shares (endpoint address, connecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import click
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from rrgrpc.cli import CliContext, rr
from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import RpcClient, RpcError

#: Budget for one RPC call from the CLI (reset gets the server's reset_timeout, see RESET_BUDGET).
CALL_BUDGET: Final = 10.0
#: Budget for one plugin's reset: RoadRunner's default reset_timeout (60 s) plus slack.
RESET_BUDGET: Final = 90.0
REFRESH: Final = 1.0

_STATUS_STYLE: Final = {"ready": "green", "working": "bold yellow", "inactive": "dim"}


# ---------------------------------------------------------------------------------------------
# shared with `rr reset`


def rpc_address(obj: CliContext) -> str:
    """``rpc.listen`` of the configuration (``-c``, ``-o``, ``--dotenv`` applied)."""
    try:
        cfg = obj.load()
    except (RRError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if cfg.rpc is None:
        raise click.ClickException(
            f"{cfg.source}: no rpc section: the server exposes no RPC endpoint to talk to"
        )
    return cfg.rpc.listen


@contextlib.asynccontextmanager
async def connected(address: str) -> AsyncIterator[RpcClient]:
    """An RPC client for ``address``; a connection failure is one readable CLI error."""
    try:
        client = await RpcClient.connect(address)
    except (OSError, TimeoutError, RRError) as exc:
        raise click.ClickException(
            f"cannot reach the RPC endpoint {address}: {reason(exc)} (is `rr serve` running?)"
        ) from None
    async with client:
        yield client


def reason(exc: BaseException) -> str:
    """An exception as a short phrase ("Connection refused" rather than asyncio's "Connect call failed");
    never empty."""
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, RpcError) and not str(exc):
        return f"{exc.method} failed without a message"
    if isinstance(exc, ConnectionError) and not str(exc):
        return "the server closed the connection"
    return re.sub(r"^\[Errno \d+\] ", "", str(exc)) or type(exc).__name__


async def call(client: RpcClient, method: str, arg: Any, budget: float = CALL_BUDGET) -> Any:
    try:
        async with asyncio.timeout(budget):
            return await client.call(method, arg)
    except TimeoutError:
        raise TimeoutError(f"{method}: no answer within {budget:g}s") from None


def check_known(names: Sequence[str], known: Sequence[str], what: str) -> None:
    """``rr workers`` and ``rr reset`` refuse an unknown plugin alike: one line, exit code 1."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise click.ClickException(
            f"no such plugin: {', '.join(unknown)} ({what}: {', '.join(known) or 'none'})"
        )


# ---------------------------------------------------------------------------------------------
# data


async def fetch_workers(client: RpcClient, plugins: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Workers per plugin (``informer.List`` when none is named), each list sorted by PID."""
    names = list(plugins) or list(await call(client, "informer.List", True) or [])
    replies = await asyncio.gather(*(call(client, "informer.Workers", name) for name in names))
    return {
        name: sorted((r or {}).get("workers") or [], key=lambda w: w["pid"])
        for name, r in zip(names, replies, strict=True)
    }


async def fetch_activity(client: RpcClient, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``informer.Activity`` per plugin; empty when the server does not have it (a RoadRunner server)."""

    async def one(name: str) -> dict[str, Any]:
        try:
            return dict(await call(client, "informer.Activity", name))
        except RpcError:
            return {}

    return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))


# ---------------------------------------------------------------------------------------------
# rendering


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt_duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _status(worker: dict[str, Any]) -> Text:
    name = str(worker.get("statusStr", "undefined"))
    return Text(name, style=_STATUS_STYLE.get(name, "red"))


def workers_table(
    name: str,
    workers: list[dict[str, Any]],
    *,
    now: float,
    activity: dict[str, Any] | None = None,
    selected: bool = False,
) -> Table:
    """One plugin's workers; with ``activity`` (live view) also what each busy worker executes."""
    busy = {b["pid"]: b for b in (activity or {}).get("busy", [])}
    server_now = float((activity or {}).get("now", now))
    title = Text(name, style="bold reverse" if selected else "bold")
    if activity is not None:
        title.append(f"  workers {len(workers)}  busy {len(busy)}  queue {activity.get('queue', 0)}")
    table = Table(
        title=title,
        title_justify="left",
        border_style="cyan" if selected else "dim",
        expand=activity is not None,
    )
    for column in ("PID", "STATUS", "EXECS", "MEMORY", "CPU%", "CREATED"):
        table.add_column(column, justify="right" if column not in ("STATUS",) else "left", no_wrap=True)
    if activity is not None:
        table.add_column("EXECUTING", overflow="ellipsis", no_wrap=True, ratio=1)
        table.add_column("FOR", justify="right", no_wrap=True)
    for w in sorted(workers, key=lambda w: w["pid"]):
        row: list[RenderableType] = [
            str(w["pid"]),
            _status(w),
            str(w.get("numExecs", 0)),
            fmt_bytes(int(w.get("memoryUsage", 0))),
            f"{float(w.get('CPUPercent', 0.0)):.1f}",
            fmt_duration(now - int(w.get("created", 0)) / 1e9) + " ago",
        ]
        if activity is not None:
            b = busy.get(w["pid"])
            row += [b["info"], fmt_duration(server_now - float(b["started"]))] if b else ["", ""]
        table.add_row(*row)
    return table


# ---------------------------------------------------------------------------------------------
# the command


@rr.command()
@click.argument("plugins", nargs=-1)
@click.option("-i", "--interactive", is_flag=True, help="Full-screen live view with reset/scale keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the informer data as JSON.")
@click.pass_obj
def workers(obj: CliContext, plugins: tuple[str, ...], interactive: bool, as_json: bool) -> None:
    """Show the workers of PLUGINS (all plugins with workers when none is named)."""
    address = rpc_address(obj)
    if interactive:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise click.ClickException("-i needs a terminal (use --json for scripts)")
        asyncio.run(Dashboard(address, plugins).run())
        return
    data = asyncio.run(_fetch_once(address, plugins))
    if as_json:
        out: dict[str, dict[str, Any]] = {name: {"workers": ws} for name, ws in data.items()}
        if "jobs" in out:
            from rrgrpc.cli.jobs import fetch_pipelines_once

            out["jobs"]["pipelines"] = asyncio.run(fetch_pipelines_once(address))
        click.echo(json.dumps(out, indent=2))
        return
    console = Console()
    now = time.time()
    for name, ws in data.items():
        console.print(workers_table(name, ws, now=now))
        if name == "jobs":
            from rrgrpc.cli.jobs import fetch_pipelines_once, pipelines_table

            console.print(pipelines_table(asyncio.run(fetch_pipelines_once(address))))
    if not data:
        console.print("no plugin has workers")


async def _fetch_once(address: str, plugins: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    async with connected(address) as client:
        try:
            if plugins:
                check_known(plugins, list(await call(client, "informer.List", True) or []), "plugins with workers")
            return await fetch_workers(client, plugins)
        except (RpcError, ConnectionError, TimeoutError) as exc:
            raise click.ClickException(f"{address}: {reason(exc)}") from None


# ---------------------------------------------------------------------------------------------
# the live view


@dataclass
class Dashboard:
    """State and loop of ``rr workers -i``: one renderable per tick, keys from stdin in cbreak mode."""

    address: str
    plugins: Sequence[str]
    names: list[str] = field(default_factory=list)
    selected: int = 0
    workers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    activity: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: list[dict[str, Any]] = field(default_factory=list)  # informer.Jobs of the jobs plugin
    message: Text = field(default_factory=Text)
    error: str = ""
    client: RpcClient | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        from rich.live import Live

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            with (
                cbreak(sys.stdin.fileno()),
                Live(screen=True, auto_refresh=False, redirect_stdout=False) as live,
            ):
                keys = _KeyReader(sys.stdin.fileno(), self._on_key, stop)
                with keys:
                    while not stop.is_set():
                        await self.refresh()
                        live.update(self.render(), refresh=True)
                        self.wake.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(REFRESH):
                                await _first(stop.wait(), self.wake.wait())
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.client is not None:
                await self.client.close()

    async def refresh(self) -> None:
        """Fetch workers and activity; on connection loss keep the last data and reconnect next tick."""
        try:
            if self.client is None:
                self.client = await RpcClient.connect(self.address)
            self.workers = await fetch_workers(self.client, self.plugins)
            self.names = list(self.workers)
            self.activity = await fetch_activity(self.client, self.names)
            from rrgrpc.cli.jobs import fetch_pipelines

            self.pipelines = await fetch_pipelines(self.client, self.names)
            self.error = ""
        except (OSError, TimeoutError, RRError) as exc:
            self.error = f"{self.address}: {reason(exc)}"
            if self.client is not None and not isinstance(exc, RpcError):
                await self.client.close()
                self.client = None
        self.selected = min(self.selected, max(len(self.names) - 1, 0))

    def render(self) -> RenderableType:
        now = time.time()
        all_workers = [w for ws in self.workers.values() for w in ws]
        busy = sum(len(a.get("busy", [])) for a in self.activity.values())
        queue = sum(int(a.get("queue", 0)) for a in self.activity.values())
        header = Text.assemble(
            ("rr workers", "bold"),
            f"  {self.address}  {time.strftime('%H:%M:%S')}   ",
            (f"{len(self.names)} plugins  {len(all_workers)} workers  {busy} busy  queue {queue}  ", "bold"),
            f"{sum(int(w.get('numExecs', 0)) for w in all_workers)} execs  ",
            fmt_bytes(sum(int(w.get("memoryUsage", 0)) for w in all_workers)),
        )
        parts: list[RenderableType] = [header]
        if self.error:
            parts.append(Text(f"disconnected: {self.error} (retrying every second)", style="bold red"))
        for i, name in enumerate(self.names):
            parts.append(
                workers_table(
                    name,
                    self.workers[name],
                    now=now,
                    activity=self.activity.get(name, {}),
                    selected=i == self.selected,
                )
            )
            if name == "jobs":
                from rrgrpc.cli.jobs import pipelines_table

                parts.append(pipelines_table(self.pipelines))
        if not self.names and not self.error:
            parts.append(Text("no plugin has workers", style="dim"))
        parts.append(Text("↑/↓/tab select   + add worker   - remove worker   r reset   q quit", style="dim"))
        parts.append(self.message)
        return Group(*parts)

    # -- keys -------------------------------------------------------------------------------
    def _on_key(self, key: str) -> None:
        if key in ("up", "shift-tab", "k"):
            self._select(-1)
        elif key in ("down", "tab", "j"):
            self._select(+1)
        elif key in ("+", "=", "-", "r") and self.names:
            name = self.names[self.selected]
            action = {"+": "informer.AddWorker", "=": "informer.AddWorker", "-": "informer.RemoveWorker"}.get(
                key, "resetter.Reset"
            )
            task = asyncio.get_running_loop().create_task(self._act(action, name))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        else:
            return
        self.wake.set()

    def _select(self, step: int) -> None:
        if self.names:
            self.selected = (self.selected + step) % len(self.names)

    async def _act(self, method: str, name: str) -> None:
        verb = {
            "informer.AddWorker": "adding a worker to",
            "informer.RemoveWorker": "removing a worker from",
        }.get(method, "resetting")
        self.message = Text(f"{verb} {name} …", style="yellow")
        self.wake.set()
        started = time.monotonic()
        try:
            if self.client is None:
                raise ConnectionError("not connected")
            await call(self.client, method, name, RESET_BUDGET if method == "resetter.Reset" else CALL_BUDGET)
        except (RRError, OSError, TimeoutError) as exc:
            self.message = Text(f"{verb} {name} failed: {reason(exc)}", style="bold red")
        else:
            self.message = Text(
                f"{verb} {name}: done in {fmt_duration(time.monotonic() - started)}", style="green"
            )
        self.wake.set()


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


@contextlib.contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one by one without echo; the terminal is restored whatever happens."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


_ESCAPES: Final = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[Z": "shift-tab", "\x1bOA": "up", "\x1bOB": "down"}


def parse_keys(data: str) -> list[str]:
    """Split terminal input into key names: arrows and shift-tab by name, tab as "tab", else the char."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        seq = next((s for s in _ESCAPES if data.startswith(s, i)), None)
        if seq is not None:
            keys.append(_ESCAPES[seq])
            i += len(seq)
            continue
        keys.append({"\t": "tab", "\x03": "ctrl-c"}.get(data[i], data[i]))
        i += 1
    return keys


class _KeyReader:
    """Reads stdin through the event loop (``add_reader``); ``q`` and Ctrl-C set ``stop``."""

    def __init__(self, fd: int, on_key: Any, stop: asyncio.Event) -> None:
        self.fd = fd
        self.on_key = on_key
        self.stop = stop

    def __enter__(self) -> _KeyReader:
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 64).decode("utf-8", "replace")
        except OSError:
            data = ""
        if not data:  # stdin closed
            self.stop.set()
            return
        for key in parse_keys(data):
            if key in ("q", "Q", "ctrl-c"):
                self.stop.set()
                return
            self.on_key(key)
