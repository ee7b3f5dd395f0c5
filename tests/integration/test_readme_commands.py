"""Every command in README.md's ``bash`` blocks, run exactly as printed.

The commands are extracted at collection time, so a command added to the README is run by this
test without touching it. Each runs with ``bash -c`` in a sandbox directory that looks like the
checkout (symlinks to ``.venv``, ``scripts``, ``tests``, … of the repository) plus a ``.rr.yaml``
on free ports and a ``.env``: ``serve`` commands are started, awaited and stopped with SIGTERM;
commands that talk to a server (``workers``, ``reset``, ``stop``) get one (``rr serve -p``);
``-i`` runs in a pseudo-terminal and is quit with ``q``. The few commands that cannot run inside
the suite are listed in :data:`NOT_RUN` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
import shlex
import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, kill_tree, php_cmd, run_in_terminal

pytestmark = [pytest.mark.php, pytest.mark.timeout(240)]

#: Printed commands this test does not run (glob patterns), each with the reason.
NOT_RUN: dict[str, str] = {
    # it runs this very suite (recursion); CI runs it
    "bash .ci/run": "runs the whole test suite, this test included",
    # its setup re-installs the .venv it finds: tests/integration/test_main_example.py runs it as
    # printed in a copy of the checkout instead
    "bash examples/greeter/run.sh": "run by test_main_example.py, in a copy of the checkout",
    # minutes each, and they need wrk/h2load/nginx (the README says so)
    ".venv/bin/python bench/*": "benchmarks: minutes long, extra Debian packages",
}


def readme_commands() -> list[str]:
    """The lines of README.md's ```bash blocks, comments removed."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def skipped(command: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if fnmatch.fnmatchcase(command, pattern)), None)


def test_the_readme_has_commands_and_the_allow_list_is_current() -> None:
    commands = readme_commands()
    assert ".venv/bin/rr --version" in commands
    stale = [p for p in NOT_RUN if not any(fnmatch.fnmatchcase(c, p) for c in commands)]
    assert stale == []  # an entry whose command left the README must leave the list too


# ---------------------------------------------------------------------------------------------


def sandbox(tmp_path: Path) -> Path:
    """A directory that looks like the checkout, with a .rr.yaml on free ports and a .env."""
    box = tmp_path / "checkout"
    box.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".rr.yaml", ".env", ".pid", ".git"):
            (box / entry.name).symlink_to(entry)
    (box / ".rr.yaml").write_text(textwrap.dedent(f"""\
        version: "3"
        server:
          command: "{' '.join(php_cmd('differential.php'))}"
        grpc:
          listen: tcp://127.0.0.1:{free_port()}
          proto: ["{ROOT / 'proto' / 'echo' / 'v1' / 'echo.proto'}"]
          pool:
            num_workers: 1
        http:
          address: 127.0.0.1:${{README_HTTP_PORT:-{free_port()}}}
          pool:
            num_workers: 1
        rpc:
          listen: tcp://127.0.0.1:{free_port()}
        """))
    (box / ".env").write_text(f"README_HTTP_PORT={free_port()}\n")
    return box


async def read_until_started(proc: asyncio.subprocess.Process, seen: list[str]) -> None:
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"the server exited: {''.join(seen)}"
            seen.append(line)
            if "rrgrpc server started" in line or "\tserving\t" in line:
                return


@contextlib.asynccontextmanager
async def started(command: str, cwd: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``bash -c command`` until the server it starts serves; every process of it killed at exit."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", f"exec {command}", cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    seen: list[str] = []
    try:
        await read_until_started(proc, seen)
        yield proc
    finally:
        await kill_tree(proc)


async def stop_cleanly(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    proc.send_signal(signal.SIGTERM)
    out = await asyncio.wait_for(proc.stdout.read(), 60)
    assert await asyncio.wait_for(proc.wait(), 60) == 0, out.decode()


async def run(command: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 200)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.parametrize("command", readme_commands())
async def test_readme_command_runs_as_printed(command: str, tmp_path: Path) -> None:
    why = skipped(command)
    if why:
        pytest.skip(f"not run in the suite: {why}")
    box = sandbox(tmp_path)
    argv = shlex.split(command)
    if "serve" in argv:  # long-running: it must start serving and stop cleanly
        async with started(command, box) as proc:
            await stop_cleanly(proc)
        return
    if any(sub in argv for sub in ("workers", "reset", "stop")):  # needs a running server
        async with started(".venv/bin/rr serve -c .rr.yaml -p", box) as server:
            if "-i" in argv or "--interactive" in argv:
                assert await run_in_terminal(["bash", "-c", command], box, until=b"q quit", keys=b"q") == 0
            else:
                code, out = await run(command, box)
                assert code == 0, out
            if "stop" in argv:
                assert await asyncio.wait_for(server.wait(), 60) == 0
            else:
                await stop_cleanly(server)
        return
    code, out = await run(command, box)
    if command.startswith("bash scripts/install-roadrunner.sh") and code != 0:
        # no reference binary here: one line saying why, nothing else ran
        assert len(out.strip().splitlines()) == 1 and out.startswith("install-roadrunner: "), out
        return
    assert code == 0, out

