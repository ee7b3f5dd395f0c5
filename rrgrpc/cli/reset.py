"""``rr reset [plugin ...]``: reset the workers of a running server's plugins over its RPC endpoint.

A pure RPC client: ``resetter.List`` when no plugin is named, then ``resetter.Reset`` for every
plugin concurrently on one connection, printing one line per plugin as each finishes. The server
replaces workers one at a time (new worker first), so a reset under load fails no request. Exit code
1 if any reset failed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

import click

from rrgrpc.cli import CliContext, rr
from rrgrpc.cli.client import RESET_BUDGET, call, check_known, connected, reason, rpc_address
from rrgrpc.cli.tables import fmt_duration
from rrgrpc.errors import RRError


@rr.command()
@click.argument("plugins", nargs=-1)
@click.pass_obj
def reset(obj: CliContext, plugins: tuple[str, ...]) -> None:
    """Reset the workers of PLUGINS (every resettable plugin when none is named; -s: print nothing)."""
    failed = asyncio.run(_reset(rpc_address(obj), plugins, obj.silent))
    if failed:
        sys.exit(1)


async def _reset(address: str, plugins: Sequence[str], silent: bool) -> int:
    async with connected(address) as client:
        try:
            known = list(await call(client, "resetter.List", True) or [])
        except (RRError, OSError, TimeoutError) as exc:
            raise click.ClickException(f"{address}: resetter.List: {reason(exc)}") from None
        check_known(plugins, known, "resettable plugins")
        names = list(plugins) or known
        if not names and not silent:
            click.echo("no plugin can be reset")
        width = max((len(n) for n in names), default=0)

        async def one(name: str) -> bool:
            started = time.monotonic()
            try:
                await call(client, "resetter.Reset", name, RESET_BUDGET)
            except (RRError, OSError, TimeoutError) as exc:
                if not silent:
                    click.echo(f"{name:<{width}}  failed: {reason(exc)}")
                return False
            if not silent:
                click.echo(f"{name:<{width}}  reset in {fmt_duration(time.monotonic() - started)}")
            return True

        results = await asyncio.gather(*(one(n) for n in names))
    return results.count(False)
