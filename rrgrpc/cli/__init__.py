"""The ``rr`` command line: global options (-c, -w, -o, --dotenv) and the subcommands' registry.

``rr serve`` runs the server; ``rr workers`` and ``rr reset`` are pure RPC clients of a running
one. Subcommands live in their own modules and register themselves on :data:`rr`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from rrgrpc import RR_COMPAT_VERSION, __version__

if TYPE_CHECKING:
    from rrgrpc.config.schema import RRConfig


@dataclass
class CliContext:
    """The global options, shared by every subcommand through ``ctx.obj``."""

    config_path: str = ".rr.yaml"
    workdir: str | None = None
    overrides: list[str] = field(default_factory=list)
    dotenv: str | None = None

    def load(self) -> RRConfig:
        from rrgrpc.config import load_config

        return load_config(self.config_path, self.overrides, self.dotenv)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", default=".rr.yaml", show_default=True, help="Path to the .rr.yaml file.")
@click.option("-w", "--workdir", default=None, help="Working directory (workers inherit it).")
@click.option("-o", "--override", "overrides", multiple=True, help="Override a config value: section.key=value (repeatable).")
@click.option("--dotenv", default=None, help="Load KEY=VALUE lines from this file into the environment used for ${VAR} expansion.")
@click.version_option(
    __version__, "-v", "--version", prog_name="rr",
    message=f"%(prog)s version %(version)s (rrgrpc, RoadRunner {RR_COMPAT_VERSION} compatible, python {sys.version.split()[0]})",
)
@click.pass_context
def rr(ctx: click.Context, config_path: str, workdir: str | None, overrides: tuple[str, ...], dotenv: str | None) -> None:
    """rrgrpc: a RoadRunner-compatible application server for PHP workers (gRPC, HTTP, RPC)."""
    if workdir:
        try:
            os.chdir(workdir)
        except OSError as exc:
            raise click.UsageError(f"--workdir {workdir}: {exc.strerror}") from exc
    ctx.obj = CliContext(config_path, workdir, list(overrides), dotenv)


def main() -> None:
    rr(prog_name="rr")


from rrgrpc.cli import reset, serve, workers  # noqa: E402,F401  (subcommands register themselves)
