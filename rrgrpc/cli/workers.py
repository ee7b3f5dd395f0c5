"""``rr workers [plugin ...] [-i] [--json]``: the workers of a running server, over its RPC endpoint.

A pure RPC client (never imports the pool or the plugins): it reads ``rpc.listen`` from the config
and calls ``informer.List`` / ``informer.Workers`` (plus the ``informer.Activity`` extension in the
live view). Output: one table per plugin (PID | STATUS | EXECS | MEMORY | CPU% | CREATED, sorted by
PID; a FRONT column after PID when rr runs several fronts, ``server.num_fronts``), ``--json`` for scripts, or ``-i``: a full-screen live view refreshed every second with, per busy
worker, the method/URI it executes and for how long, queue depth, totals, and keys to reset a plugin
and add/remove workers. Under a table, a yellow line says what of the plugin is down (``note``: a
front being restarted). Under the jobs plugin both views add its pipelines (``informer.Jobs``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console

from rrgrpc.cli import CliContext, rr
from rrgrpc.cli.client import call, check_known, connected, fetch_workers, reason, rpc_address
from rrgrpc.cli.dashboard import Dashboard
from rrgrpc.cli.tables import workers_table
from rrgrpc.goridge.rpc import RpcError


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
    notes: dict[str, str] = {}
    data = asyncio.run(_fetch_once(address, plugins, notes))
    if as_json:
        out: dict[str, dict[str, Any]] = {
            name: {"workers": ws, **({"note": notes[name]} if name in notes else {})} for name, ws in data.items()
        }
        if "jobs" in out:
            from rrgrpc.cli.jobs import fetch_pipelines_once

            out["jobs"]["pipelines"] = asyncio.run(fetch_pipelines_once(address))
        click.echo(json.dumps(out, indent=2))
        return
    console = Console()
    now = time.time()
    for name, ws in data.items():
        console.print(workers_table(name, ws, now=now))
        if name in notes:
            console.print(f"{name}: {notes[name]}", style="bold yellow", markup=False, highlight=False)
        if name == "jobs":
            from rrgrpc.cli.jobs import fetch_pipelines_once, pipelines_table

            console.print(pipelines_table(asyncio.run(fetch_pipelines_once(address))))
    if not data:
        console.print("no plugin has workers")


async def _fetch_once(address: str, plugins: Sequence[str], notes: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    async with connected(address) as client:
        try:
            if plugins:
                check_known(plugins, list(await call(client, "informer.List", True) or []), "plugins with workers")
            return await fetch_workers(client, plugins, notes)
        except (RpcError, ConnectionError, TimeoutError) as exc:
            raise click.ClickException(f"{address}: {reason(exc)}") from None
