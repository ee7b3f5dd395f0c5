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
    """The global options, shared by every subcommand through ``ctx.obj``.

    ``config_path`` is absolute; the process already runs in the working directory and the
    ``--dotenv`` variables are already in the environment (see :func:`rr`).
    """

    config_path: str = ".rr.yaml"
    workdir: str | None = None
    overrides: list[str] = field(default_factory=list)
    dotenv: str | None = None

    def load(self) -> RRConfig:
        from rrgrpc.config import load_config

        return load_config(self.config_path, self.overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", default=".rr.yaml", show_default=True, help="Path to the .rr.yaml file.")
@click.option("-w", "--workdir", default=None, help="Working directory (default: the config file's directory).")
@click.option("-o", "--override", "overrides", multiple=True, help="Override a config value: section.key=value (repeatable).")
@click.option(
    "--dotenv", default=None, envvar="DOTENV_PATH",
    help="Load KEY=VALUE lines from this file into the environment (existing variables win) [$DOTENV_PATH].",
)
@click.version_option(
    __version__, "-v", "--version", prog_name="rr",
    message=f"%(prog)s version %(version)s (rrgrpc, RoadRunner {RR_COMPAT_VERSION} compatible, python {sys.version.split()[0]})",
)
@click.pass_context
def rr(ctx: click.Context, config_path: str, workdir: str | None, overrides: tuple[str, ...], dotenv: str | None) -> None:
    """rrgrpc: a RoadRunner-compatible application server for PHP workers (gRPC, HTTP, RPC).

    As RoadRunner does: the config path is made absolute, the process changes into the config
    file's directory (so relative paths in it, and the workers' cwd, are relative to it), then into
    ``-w`` when given; ``--dotenv`` is read there and exported without overriding variables.
    """
    from rrgrpc.config import read_dotenv
    from rrgrpc.errors import ConfigError

    config_path = os.path.abspath(config_path)
    before = os.getcwd()
    ctx.call_on_close(lambda: os.chdir(before))  # matters when invoked in-process (tests)
    for where, option in ((os.path.dirname(config_path), "--config"), (workdir, "--workdir")):
        if where:
            try:
                os.chdir(where)
            except OSError as exc:
                raise click.UsageError(f"{option} {where}: {exc.strerror}") from exc
    if dotenv:
        try:
            for key, value in read_dotenv(dotenv).items():
                os.environ.setdefault(key, value)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
    ctx.obj = CliContext(config_path, workdir, list(overrides), dotenv)


def main() -> None:
    rr(prog_name="rr")


from rrgrpc.cli import jobs, reset, serve, workers  # noqa: E402,F401  (subcommands register themselves)
