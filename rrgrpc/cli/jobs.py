"""``rr jobs --list | --pause P1,P2 | --resume P1,P2 | --destroy P1,P2``: a running server's pipelines.

A pure RPC client, as RoadRunner's ``rr jobs``: ``jobs.Pause`` / ``jobs.Resume`` / ``jobs.Destroy`` with a
``jobs.v1.Pipelines`` over the protobuf codec, then a table of the pipelines acted on (the global
``-s`` prints nothing). ``--list`` shows every pipeline with its state (``jobs.Stat``: driver, queue, active, delayed,
reserved, ready, priority) where RoadRunner lists the names only. Also owns the pipelines table that
``rr workers`` shows under the jobs plugin's workers (from ``informer.Jobs``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rrgrpc.cli import CliContext, rr
from rrgrpc.cli.client import CALL_BUDGET, connected, reason, rpc_address
from rrgrpc.errors import RRError
from rrgrpc.goridge.frame import Flag
from rrgrpc.goridge.rpc import RpcClient
from rrgrpc.jobs import jobs_pb2 as pb

_USAGE = "command should be in form of: `rr jobs --<destroy/resume/pause> pipe1,pipe2` or `rr jobs --list`"


@rr.command()
@click.argument("pipelines", required=False, default="")
@click.option("--pause", "action", flag_value="Pause", help="Pause the pipelines (pushing still works).")
@click.option("--resume", "action", flag_value="Resume", help="Resume (or start consuming) the pipelines.")
@click.option("--destroy", "action", flag_value="Destroy", help="Stop and remove the pipelines.")
@click.option("--list", "action", flag_value="List", help="List the pipelines with their state.")
@click.pass_obj
def jobs(obj: CliContext, pipelines: str, action: str | None) -> None:
    """Pause, resume, destroy or list jobs PIPELINES (comma-separated) of a running server."""
    if action is None:
        raise click.UsageError(_USAGE)
    names = [n.strip() for n in pipelines.strip().split(",") if n.strip()]
    if action != "List" and not names:
        raise click.UsageError(f"incorrect command usage, should be: rr jobs --{action.lower()} pipe1,pipe2")
    address = rpc_address(obj)
    rows = asyncio.run(_run(address, action, names))
    if not obj.silent or action == "List":
        Console().print(_states_table(rows) if action == "List" else _names_table([r["pipeline"] for r in rows]))


async def _run(address: str, action: str, names: list[str]) -> list[dict[str, Any]]:
    async with connected(address) as client:
        try:
            if action == "List":
                stats = pb.Stats.FromString(await _call(client, "jobs.Stat", pb.Empty()))
                return [
                    {"pipeline": s.pipeline, "driver": s.driver, "queue": s.queue, "active": s.active,
                     "delayed": s.delayed, "reserved": s.reserved, "ready": s.ready, "priority": s.priority}
                    for s in stats.stats
                ]  # fmt: skip
            reply = await _call(client, f"jobs.{action}", pb.Pipelines(pipelines=names))
        except (RRError, OSError, TimeoutError) as exc:
            raise click.ClickException(f"{address}: jobs.{action}: {reason(exc)}") from None
    done = list(pb.Pipelines.FromString(reply).pipelines) if action == "Destroy" else names
    return [{"pipeline": n} for n in done]


async def _call(client: RpcClient, method: str, message: Any) -> bytes:
    async with asyncio.timeout(CALL_BUDGET):
        reply = await client.call(method, message.SerializeToString(), codec=Flag.CODEC_PROTO)
    return bytes(reply)


def _names_table(names: list[str]) -> Table:
    table = Table(title_justify="left")
    table.add_column("Pipeline(s)")
    for name in names:
        table.add_row(name)
    return table


def _states_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    """Pipelines as rr workers and rr jobs --list show them (keys of jobs.v1.Stat, lower case)."""
    table = Table(title=title, title_justify="left")
    for column in ("STATUS", "PIPELINE", "DRIVER", "QUEUE", "ACTIVE", "DELAYED", "RESERVED", "PRIORITY"):
        table.add_column(column, justify="right" if column in ("ACTIVE", "DELAYED", "RESERVED", "PRIORITY") else "left")
    for r in rows:
        status = Text("ready", style="green") if r.get("ready") else Text("paused", style="yellow")
        if r.get("error"):
            status = Text(str(r["error"]), style="red")
        table.add_row(
            status, str(r.get("pipeline", "")), str(r.get("driver", "")), str(r.get("queue", "")),
            str(r.get("active", 0)), str(r.get("delayed", 0)), str(r.get("reserved", 0)), str(r.get("priority", 0)),
        )  # fmt: skip
    return table


def pipelines_table(states: list[dict[str, Any]]) -> Table:
    """The ``informer.Jobs`` answer (Go field names) as the pipelines table of ``rr workers``."""
    rows = [
        {k.lower(): v for k, v in s.items() if k != "ErrorMessage"} | {"error": s.get("ErrorMessage", "")}
        for s in states
    ]
    return _states_table(rows, title="jobs pipelines")


async def fetch_pipelines(client: RpcClient, names: list[str]) -> list[dict[str, Any]]:
    """``informer.Jobs`` of the jobs plugin when it is among ``names`` (empty otherwise)."""
    if "jobs" not in names:
        return []
    async with asyncio.timeout(CALL_BUDGET):
        return list(await client.call("informer.Jobs", "jobs") or [])


async def fetch_pipelines_once(address: str) -> list[dict[str, Any]]:
    async with connected(address) as client:
        try:
            return await fetch_pipelines(client, ["jobs"])
        except (RRError, OSError, TimeoutError) as exc:
            raise click.ClickException(f"{address}: informer.Jobs: {reason(exc)}") from None
