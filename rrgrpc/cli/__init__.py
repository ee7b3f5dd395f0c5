"""The ``rr`` command line: global options, where they may appear, and the subcommands' registry.

As cobra's persistent flags do in RoadRunner, the global options (``-c``, ``-w``, ``-o``,
``--dotenv``, ``-s``, ``-p``, ``-d``, ``-e``, ``-f``) are accepted before or after the subcommand:
``rr serve -c .rr.yaml`` and ``rr -c .rr.yaml serve`` are the same (:func:`hoist_globals`).
``rr serve`` runs the server; ``rr stop`` signals it through its pid file; ``rr workers`` and
``rr reset`` are pure RPC clients of a running one. Subcommands live in their own modules and
register themselves on :data:`rr`; a module is imported when its command is looked up
(:data:`SUBCOMMANDS`), so ``rr serve`` loads neither rich nor the jobs protobufs, and ``rr workers``
no grpc.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import click

from rrgrpc import RR_COMPAT_VERSION, __version__

if TYPE_CHECKING:
    from rrgrpc.config.schema import RRConfig

#: The pid file ``-p`` writes and ``rr stop`` reads, in the working directory (RoadRunner's name).
PID_FILE: Final = ".pid"
#: Each subcommand's module, imported on first lookup (the module registers the command on ``rr``).
SUBCOMMANDS: Final = {name: f"rrgrpc.cli.{name}" for name in ("jobs", "reset", "serve", "stop", "workers")}
_EPILOG: Final = "The global options (rr --help: -c, -w, -o, --dotenv, -s, -p, -d, -e, -f) may also follow the subcommand."


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
    silent: bool = False
    pid_file: bool = False
    debug: bool = False
    force: bool = False

    def load(self, strict: bool = False) -> RRConfig:
        from rrgrpc.config import load_config

        overrides = [*self.overrides, "logs.level=debug"] if self.debug else self.overrides
        return load_config(self.config_path, overrides, strict=strict)


class _Root(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_globals(self, args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*SUBCOMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            importlib.import_module(SUBCOMMANDS[cmd_name])
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.epilog = _EPILOG
        return command


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", default=".rr.yaml", show_default=True, help="Path to the .rr.yaml file.")
@click.option("-w", "--workdir", default=None, help="Working directory (default: the config file's directory).")
@click.option("-o", "--override", "overrides", multiple=True, help="Override a config value: section.key=value (repeatable).")
@click.option(
    "--dotenv", default=None, envvar="DOTENV_PATH",
    help="Load KEY=VALUE lines from this file into the environment (existing variables win) [$DOTENV_PATH].",
)
@click.option("-s", "--silent", is_flag=True, help="Print no startup message (serve) and no progress (reset, stop, jobs).")
@click.option("-p", "--pid", "pid_file", is_flag=True, help=f"serve: write the process id to {PID_FILE} (read by rr stop).")
@click.option("-d", "--debug", is_flag=True, help="Log at debug level (the same as -o logs.level=debug).")
@click.option("-e", "--enable-experimental", is_flag=True, help="Accepted for RoadRunner compatibility (no experimental features).")
@click.option("-f", "--force", is_flag=True, help="stop: force the stop (a second SIGTERM one second later).")
@click.version_option(
    __version__, "-v", "--version", prog_name="rr",
    message=f"%(prog)s version %(version)s (rrgrpc, RoadRunner {RR_COMPAT_VERSION} compatible, python {sys.version.split()[0]})",
)
@click.pass_context
def rr(
    ctx: click.Context, config_path: str, workdir: str | None, overrides: tuple[str, ...], dotenv: str | None,
    silent: bool, pid_file: bool, debug: bool, enable_experimental: bool, force: bool,
) -> None:
    """rrgrpc: a RoadRunner-compatible application server for PHP workers (gRPC, HTTP, RPC).

    As RoadRunner does: the process changes into -w when given (a relative -c is then found
    there), else into the config file's directory, so relative paths in the config and the
    workers' cwd are relative to it; --dotenv is read there and exported without overriding
    variables. Global options may come before or after the subcommand.
    """
    from rrgrpc.config import read_dotenv
    from rrgrpc.errors import ConfigError

    before = os.getcwd()
    ctx.call_on_close(lambda: os.chdir(before))  # matters when invoked in-process (tests)
    # RoadRunner 2025: -w first (the config path is then relative to it), else the config's directory
    for where, option in ((workdir, "--workdir"), (None if workdir else os.path.dirname(os.path.abspath(config_path)), "--config")):
        if where:
            try:
                os.chdir(where)
            except OSError as exc:
                raise click.UsageError(f"{option} {where}: {exc.strerror}") from exc
    config_path = os.path.abspath(os.path.join(os.getcwd() if workdir else before, config_path))
    if dotenv:
        try:
            for key, value in read_dotenv(dotenv).items():
                os.environ.setdefault(key, value)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
    ctx.obj = CliContext(config_path, workdir, list(overrides), dotenv, silent, pid_file, debug, force)


def hoist_globals(group: click.Group, args: Sequence[str]) -> list[str]:
    """Move the group's own options found after the subcommand name in front of it.

    ``serve -c a.yaml -o k=v`` becomes ``-c a.yaml -o k=v serve``. An option the subcommand
    defines itself under the same name (``rr reset -s``) is hoisted too: the global one carries
    the same meaning. Everything after ``--`` is left alone.
    """
    takes_value: dict[str, bool] = {}
    for param in group.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                takes_value[name] = not (param.is_flag or param.count)
    head: list[str] = []
    rest = list(args)
    # the options before the subcommand stay where they are
    while rest and rest[0].startswith("-") and rest[0] != "--":
        token = rest.pop(0)
        head.append(token)
        if takes_value.get(token) and rest:
            head.append(rest.pop(0))
    if not rest or rest[0] == "--":
        return head + rest
    command, tail = rest[0], rest[1:]
    hoisted: list[str] = []
    kept: list[str] = []
    while tail:
        token = tail.pop(0)
        if token == "--":
            kept += [token, *tail]
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token[:2]
        if token.startswith("-") and name in takes_value:
            hoisted.append(token)
            attached = token.startswith("--") and "=" in token or not token.startswith("--") and len(token) > 2
            if takes_value[name] and not attached and tail:
                hoisted.append(tail.pop(0))
            continue
        kept.append(token)
    return [*head, *hoisted, command, *kept]


def main() -> None:
    rr(prog_name="rr")

