"""Self-check of the differential harness, in the normal suite: our ``rr`` on both sides.

Proves the machinery the differential tests rely on (start a server under a binary, collect
normalized answers, diff them) works without the reference binary: two independent runs of the
same config agree on every case, and a real behaviour change (``http.internal_error_code``) is
reported as exactly the cases it changes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.differential.harness import GRPC_CASES, HTTP_CASES, OURS, RPC_CASES, collect, diff, serve
from tests.helpers import ROOT

pytestmark = [pytest.mark.php, pytest.mark.timeout(120)]


async def test_two_runs_of_our_rr_agree_and_a_change_is_reported(tmp_path: Path) -> None:
    async with serve(OURS, tmp_path / "a") as a:
        first = await collect(a)
    async with serve(OURS, tmp_path / "b") as b:
        second = await collect(b)
    assert len(first) == len(HTTP_CASES) + len(GRPC_CASES) + len(RPC_CASES) + 5
    assert diff(first, second) == []
    # the answers carry the behaviour: statuses, bodies, codes, metric names
    assert first["http 413"]["status"] == 413 and first["http worker error"]["status"] == 500
    assert first["grpc fail with details"]["code"] == "FAILED_PRECONDITION"
    assert "rr_http_request_total" in first["metrics"]

    async with serve(OURS, tmp_path / "c", "http.internal_error_code=502") as c:
        changed = await collect(c)
    lines = diff(first, changed)
    assert len(lines) == 1, lines
    assert lines[0].startswith("http worker error: ours {") and '"status": 502' in lines[0]


async def test_install_script_says_why_in_one_line_without_go(tmp_path: Path) -> None:
    # sent: the install script with no `go` on PATH; fails: exit 1, one line, nothing installed
    env = {**os.environ, "PATH": "/usr/bin:/bin", "RR_VERSION": "v0.0.0-test"}
    proc = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "scripts" / "install-roadrunner.sh"), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out, err.decode()) == (1, b"", "install-roadrunner: go is not installed (https://go.dev/dl): no reference rr\n")
    assert not (ROOT / ".cache" / "roadrunner" / "v0.0.0-test" / "rr").exists()
