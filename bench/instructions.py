"""Instructions per HTTP hello request (callgrind) for git revisions of rr, next to a bare aiohttp hello.

    .venv/bin/python bench/instructions.py [--requests 3000] [--workers 2] [REV ...]

A CPU-time A/B on a shared machine moves by tens of percent with the neighbours' load (see
README, "Reading a figure"); a count of the instructions the rr process executes per request
does not: two runs of the same revision agree within about 1 %. Each target runs under valgrind's
callgrind with instrumentation off (startup is not counted), gets a warm-up of 300 requests, then
``--requests`` requests from ``h2load --h1 -c32`` (Host and User-Agent headers) with
instrumentation on; the figure is the instructions counted (user space only: the kernel's share,
system calls and wake-ups, is not in it) divided by the requests.

REV is a git revision (exported with ``git archive`` and run from there), ``worktree`` (the files
as they are) or ``bare`` (bench/run_all.py's bare aiohttp hello, the floor). Default: ``bare HEAD
worktree``. rr runs bench/http_hello.py's PHP hello with ``--workers`` PHP workers (not counted:
they are other processes). It takes about 30 s per target; valgrind and h2load must be installed.
"""

from __future__ import annotations

import argparse
import glob
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# the script's own folder is on sys.path: the helpers all benches share
from common import ROOT, free_port, running, wait_http
from http_hello import RR_HELLO, render, rr_yaml

# rr from a source tree, not the venv's editable install (whose import hook would win over sys.path)
RUN_TREE = (
    "import runpy, sys; tree = sys.argv.pop(1); "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; sys.path.insert(0, tree); "
    "runpy.run_module('rrgrpc', run_name='__main__', alter_sys=True)"
)
BARE = "import sys; sys.path.insert(0, {bench!r}); from common import run_loop; from run_all import http_floor; run_loop(http_floor({port}))"


def h2load(port: int, requests: int) -> int:
    """``requests`` HTTP/1.1 GETs over 32 connections; returns how many succeeded."""
    out = subprocess.run(["h2load", "--h1", "-n", str(requests), "-c", "32", "-t", "1", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=1800)  # fmt: skip
    found = re.search(r"(\d+) succeeded", out.stdout)
    if found is None:
        raise SystemExit(f"h2load failed:\n{out.stdout}\n{out.stderr}")
    return int(found.group(1))


def count(argv: list[str], port: int, tmp: Path, requests: int) -> tuple[float, int]:
    """(instructions per request, requests that succeeded) of the process ``argv`` starts."""
    out = tmp / f"callgrind.{port}"
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with running(vg + argv, tmp, tmp / f"{port}.log") as proc:
        wait_http(port, proc, budget=300, log=tmp / f"{port}.log")
        h2load(port, 300)  # warm-up, not counted
        subprocess.run(
            ["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, timeout=300, check=True
        )
        ok = h2load(port, requests)
        subprocess.run(
            ["callgrind_control", "-d", str(proc.pid)], capture_output=True, timeout=300, check=True
        )
    dumped = [
        int(m.group(1))
        for f in glob.glob(f"{out}.*")
        for m in re.finditer(r"^summary: (\d+)$", Path(f).read_text(), re.M)
    ]
    if not dumped:
        raise SystemExit(f"no callgrind dump for port {port} (see {tmp / f'{port}.log'})")
    return dumped[0] / requests, ok


def tree_of(rev: str, tmp: Path) -> Path:
    if rev == "worktree":
        return ROOT
    dest = tmp / f"rev-{re.sub(r'[^A-Za-z0-9._-]', '_', rev)}"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "rrgrpc"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", default=["bare", "HEAD", "worktree"])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    missing = [t for t in ("valgrind", "callgrind_control", "h2load") if not shutil.which(t)]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (Debian: valgrind, nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="rr-instr-") as name:
        tmp = Path(name)
        (tmp / "rr_worker.php").write_text(render(RR_HELLO, tmp / "app"))
        floor = None
        for rev in args.revs:
            port = free_port()
            if rev == "bare":
                argv = [sys.executable, "-c", BARE.format(bench=str(ROOT / "bench"), port=port)]
            else:
                (tmp / f"rr{port}.yaml").write_text(rr_yaml(port, args.workers))
                argv = [
                    sys.executable,
                    "-c",
                    RUN_TREE,
                    str(tree_of(rev, tmp)),
                    "-c",
                    str(tmp / f"rr{port}.yaml"),
                    "serve",
                ]
            per, ok = count(argv, port, tmp, args.requests)
            floor = per if rev == "bare" else floor
            ratio = f"  ({per / floor:.2f}x bare)" if floor and rev != "bare" else ""
            print(
                f"{rev:<12} {per / 1000:8.1f}k instructions/request  ({ok}/{args.requests} succeeded){ratio}",
                flush=True,
            )


if __name__ == "__main__":
    main()
