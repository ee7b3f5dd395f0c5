"""``rr workers -i``: the full-screen live view (refreshed every second) with keys to reset a plugin and
add or remove workers; what each busy worker executes and for how long comes from ``informer.Activity``,
and a yellow line under a plugin's table what of it is down (``note``: a front being restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.text import Text

from rrgrpc.cli.client import CALL_BUDGET, RESET_BUDGET, call, fetch_activity, fetch_workers, reason
from rrgrpc.cli.keys import KeyReader, cbreak
from rrgrpc.cli.tables import fmt_bytes, fmt_duration, workers_table
from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import RpcClient, RpcError

REFRESH: Final = 1.0


@dataclass
class Dashboard:
    """State and loop of ``rr workers -i``: one renderable per tick, keys from stdin in cbreak mode."""

    address: str
    plugins: Sequence[str]
    names: list[str] = field(default_factory=list)
    selected: int = 0
    workers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # what of a plugin is down (a front restarting)
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
                keys = KeyReader(sys.stdin.fileno(), self._on_key, stop)
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
            notes: dict[str, str] = {}
            self.workers = await fetch_workers(self.client, self.plugins, notes)
            self.notes = notes
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
            if name in self.notes:
                parts.append(Text(f"{name}: {self.notes[name]}", style="bold yellow"))
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
