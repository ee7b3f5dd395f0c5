"""The RPC client side every CLI command shares: the endpoint from the config, connecting, bounded
calls, short error phrases and the unknown-plugin check (``rr workers``, ``rr reset``, ``rr jobs``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import click

from rrgrpc.cli import CliContext
from rrgrpc.errors import RRError
from rrgrpc.goridge.rpc import RpcClient, RpcError

#: Budget for one RPC call from the CLI (reset gets the server's reset_timeout, see RESET_BUDGET).
CALL_BUDGET: Final = 10.0
#: Budget for one plugin's reset: RoadRunner's default reset_timeout (60 s) plus slack.
RESET_BUDGET: Final = 90.0

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


async def fetch_workers(
    client: RpcClient, plugins: Sequence[str], notes: dict[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Workers per plugin (``informer.List`` when none is named), each list sorted by PID; ``notes``
    receives each plugin's ``note``, what of it is down (a front being restarted), when it has one."""
    names = list(plugins) or list(await call(client, "informer.List", True) or [])
    replies = await asyncio.gather(*(call(client, "informer.Workers", name) for name in names))
    if notes is not None:
        notes.update({name: str(r["note"]) for name, r in zip(names, replies, strict=True) if (r or {}).get("note")})
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
