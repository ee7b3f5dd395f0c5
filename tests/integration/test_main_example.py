"""The README's first command, ``bash examples/greeter/run.sh``, run exactly as printed.

It sets the checkout up (``.ci/setup``: Debian packages when missing, a ``.venv`` with rrgrpc), serves
greeter.v1 with ``rr serve`` and makes one call. It runs in a copy of the checkout's tracked files,
because its setup step re-installs the venv it finds, and the suite is running from this one
(tracked files and new ones git does not ignore: what the working tree would commit).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.php, pytest.mark.slow, pytest.mark.timeout(600)]

COMMAND = "bash examples/greeter/run.sh"


def _copy_of_the_checkout(dest: Path) -> Path:
    # what a clone of the working tree would hold: tracked files and new ones git does not ignore
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_main_example_runs_as_printed(tmp_path: Path) -> None:
    # sent: the README's first command in a fresh copy of the checkout; the example binds its own
    # fixed ports (gRPC 9001, RPC 6001), which must be free
    assert _port_is_free(9001) and _port_is_free(6001), "the greeter example's ports 9001/6001 are in use"
    checkout = _copy_of_the_checkout(tmp_path / "rrgrpc")
    done = subprocess.run(COMMAND, shell=True, cwd=checkout, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert re.search(r"^Hello World  \(answered by PHP worker pid \d+\)$", done.stdout, re.M), done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert _port_is_free(9001), "rr kept serving after the example ended"
