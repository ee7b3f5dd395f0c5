"""``rr stop [-f]``: stop the server whose pid ``rr serve -p`` wrote to ``.pid``, as RoadRunner's does.

It reads the pid file in the working directory (the config file's directory, or ``-w``), sends
SIGTERM (a graceful stop) and, with ``-f``, a second SIGTERM one second later, which forces the
stop (workers killed, exit code 1). It does not wait for the server to exit.
"""

from __future__ import annotations

import os
import signal
import time

import click

from rrgrpc.cli import PID_FILE, CliContext, rr


@rr.command()
@click.pass_obj
def stop(obj: CliContext) -> None:
    """Stop the server started with rr serve -p (-f: force, the second signal kills the workers)."""
    path = os.path.abspath(PID_FILE)
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError as exc:
        raise click.ClickException(
            f"{path}: {exc.strerror}: start the server with `rr serve -p` to write it"
        ) from None
    if not text.isdigit():
        raise click.ClickException(f"{path}: not a process id: {text[:40]!r}")
    pid = int(text)
    if not obj.silent:
        click.echo(f"stopping process with PID: {pid}")
    try:
        os.kill(pid, signal.SIGTERM)
        if obj.force:
            time.sleep(1.0)  # as RoadRunner: a second signal sent at once could be taken as the first
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise click.ClickException(f"{path}: no process {pid} (the server is not running)") from None
    except PermissionError:
        raise click.ClickException(f"{path}: process {pid} belongs to another user") from None
