"""What a multi-front data plane rests on: N bare servers sharing one port, pinned to 1 then 2 cores.

    .venv/bin/python bench/fronts.py [--duration 3] [--rounds 2] [--cores 16] [--skip-rr | --skip-floors]

For each floor the issue names (a bare aiohttp hello driven by wrk, a bare grpc.aio echo driven by
h2load) it starts front processes that all bind the same 127.0.0.1 port with SO_REUSEPORT (aiohttp:
``reuse_port=True``; grpc.aio: ``grpc.so_reuseport=1``), so the kernel spreads the load generator's
connections over them. Layouts, each pinned with ``taskset``:

- ``1 front / 1 core``: one front on CPU 0, the load generator on the other CPU(s);
- ``2 fronts / 1 core``: two fronts sharing CPU 0 (what an extra front costs when no core is
  added), the load generator apart as above;
- ``2 fronts / 2 cores``: one front per CPU; on a 2-CPU machine the load generator cannot be
  pinned apart and shares both CPUs (said in the output);
- ``1 front / 2 cores``: one front allowed both CPUs, the load generator placed as in the previous
  layout: the same-CPUs baseline for it (the issue's "8,352 vs 8,632" comparison).

Pinning is the per-front CPU ceiling (one front can use at most the CPUs it is pinned to); the
"% of a CPU" figure tells whether a front reached it.

Each layout prints req/s, p99, errors, and per front process its CPU µs per request (user +
system, from /proc through psutil, robust on a shared machine) and how busy it kept its CPU; the
load generator's CPU µs per request; and the scaling factor of ``2 fronts / 2 cores`` over
``1 front / 1 core`` and over ``1 front / 2 cores``. Then the same three layouts for ``rr serve`` itself (``server.num_fronts``
1 or 2, the whole process tree pinned, the PHP workers split over the fronts), HTTP hello and
gRPC echo: req/s, p99, CPU µs per request of the whole tree, of each front and of the PHP
workers, how busy each front's event-loop thread was, and rr's scaling factor. One front's costs
(front, event-loop thread, PHP) give its ceiling (1 / loop µs). Last, the projection to
``--cores`` cores from those per-request costs, with its assumptions printed.

bench/machine.py's report, calibration and the load average before and after are printed first
and last: figures from a loaded machine are not figures from a quiet one. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# the script's own folder is on sys.path: the helpers all benches share
import common
import psutil
from common import Cpu, Group, Load, cpu_now, free_port, h2load, run_loop, running
from grpc_echo import METHOD, REQUEST, bare_server
from grpc_echo import rr_yaml as grpc_yaml
from http_hello import RR_HELLO, render
from http_hello import rr_yaml as http_yaml
from machine import Stat, describe
from run_all import http_floor

WRK_CONNECTIONS = 32
H2_CLIENTS, H2_STREAMS = 16, 8


# ------------------------------------------------------------------------------ layouts


@dataclass(frozen=True)
class Layout:
    """Front processes pinned to CPU sets; the load generator pinned to ``load`` (None: unpinned)."""

    name: str
    fronts: tuple[frozenset[int], ...]
    load: frozenset[int] | None


@dataclass
class Run:
    """The measured rounds of one (floor, layout)."""

    best: Load | None = None
    requests: int = 0
    seconds: float = 0.0
    cpu: Cpu = field(default_factory=Cpu)
    busy: list[str] = field(default_factory=list)

    def us(self, name: str) -> float:
        return self.cpu.total(name) / max(self.requests, 1) * 1e6

    def share(self, name: str) -> float:
        """How busy the process kept one CPU over the measured rounds, %."""
        return self.cpu.total(name) / max(self.seconds, 1e-9) * 100


def layouts(cpus: list[int]) -> list[Layout]:
    first, rest = cpus[0], frozenset(cpus[1:])
    two = frozenset(cpus[:2])
    apart = frozenset(cpus[2:]) or None  # fronts on two CPUs: the load generator apart only with >2 CPUs
    return [
        Layout("1 front / 1 core", (frozenset({first}),), rest),
        Layout("2 fronts / 1 core", (frozenset({first}), frozenset({first})), rest),
        Layout("2 fronts / 2 cores", tuple(frozenset({c}) for c in sorted(two)), apart),
        Layout("1 front / 2 cores", (two,), apart),
    ]


def taskset(cpus: frozenset[int]) -> list[str]:
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))]


@contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """This process (and so the load generator it runs) on ``cpus`` for the block."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def fronts(kind: str, layout: Layout) -> Iterator[tuple[int, list[int]]]:
    """The layout's fronts of ``kind`` ("http" or "grpc") on one shared port; yields (port, pids)."""
    port = free_port()
    with ExitStack() as stack:
        pids = []
        for cpus in layout.fronts:
            proc = stack.enter_context(running([*taskset(cpus), sys.executable, __file__, f"--{kind}-front", str(port)]))
            listening(proc, port)
            pids.append(proc.pid)
        if kind == "http":
            common.wait_http(port, proc)
        else:
            common.wait_grpc(port, proc, (METHOD, REQUEST))
        yield port, pids


def listening(proc: subprocess.Popen[bytes], port: int, budget: float = 30.0) -> None:
    """Until ``proc`` itself listens on ``port`` (with SO_REUSEPORT, an answer may come from another front)."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"front on port {port} {common.exit_message(proc)}")
        with contextlib.suppress(psutil.Error):
            conns = psutil.Process(proc.pid).net_connections(kind="tcp")
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
                return
        time.sleep(0.02)
    raise SystemExit(f"front pid {proc.pid} not listening on port {port} within {budget:g}s")


def loader(kind: str, tmp: Path) -> Callable[[int, float], Load]:
    data = tmp / "ping.bin"
    data.write_bytes(b"\x00" + len(REQUEST).to_bytes(4, "big") + REQUEST)

    def run(port: int, duration: float) -> Load:
        if kind == "http":
            return common.wrk(f"http://127.0.0.1:{port}/", 2, WRK_CONNECTIONS, duration)
        return h2load(f"http://127.0.0.1:{port}{METHOD}", data, H2_CLIENTS, H2_STREAMS, duration, tmp / "h2load.log")

    return run


def measure(run: Callable[[int, float], Load], port: int, groups: dict[str, Group], duration: float, into: Run) -> None:
    run(port, 1)  # warm-up, outside the CPU window
    stat, before = Stat.now(), cpu_now(groups)
    got = run(port, duration)
    into.cpu = into.cpu + (cpu_now(groups) - before)
    into.busy.append(Stat.now().since(stat))
    into.requests += got.ok + got.errors + got.cut
    into.seconds += duration
    if into.best is None or got.rps > into.best.rps:
        into.best = got


def floors(args: argparse.Namespace, tmp: Path, cpus: list[int]) -> dict[str, dict[str, Run]]:
    results: dict[str, dict[str, Run]] = {}
    plan = layouts(cpus)
    for kind in ("http", "grpc"):
        tool = f"wrk -t2 -c{WRK_CONNECTIONS}" if kind == "http" else f"h2load -c{H2_CLIENTS} -m{H2_STREAMS}"
        print(f"\n== bare {'aiohttp hello' if kind == 'http' else 'grpc.aio echo'}, {tool}, {args.rounds} x {args.duration:g} s")
        runs = results.setdefault(kind, {})
        run = loader(kind, tmp)
        for _ in range(args.rounds):
            for layout in plan:
                with fronts(kind, layout) as (port, pids), pinned(layout.load):
                    groups = {f"front{i}": Group(pid) for i, pid in enumerate(pids)}
                    measure(run, port, groups, args.duration, runs.setdefault(layout.name, Run()))
        for layout in plan:
            show(layout, runs[layout.name])
        one, two, shared = (runs[layout.name].best for layout in (plan[0], plan[2], plan[3]))
        if one and two and shared:
            print(f"   scaling factor, 2 fronts / 2 cores over 1 front / 1 core: {two.rps / one.rps:.2f}; "
                  f"over 1 front / 2 cores (same CPUs, load generator alike): {two.rps / shared.rps:.2f}")  # fmt: skip
    return results


def show(layout: Layout, r: Run) -> None:
    assert r.best is not None
    per_front = ", ".join(f"{r.us(n):.0f} µs ({r.share(n):.0f} % of a CPU)" for n in sorted(r.cpu.user) if n != "load")
    where = "load generator pinned apart" if layout.load else "load generator shares the fronts' CPUs"
    print(f"   {layout.name:<20} {r.best.rps:>8.0f} req/s  p99 {r.best.p99:6.2f} ms  errors {r.best.errors}  ({where})")
    print(f"      per front: {per_front}; load generator {r.us('load'):.0f} µs/request")
    print(f"      machine: {r.busy[-1]}")


# ------------------------------------------------------------------------------ rr's own fronts


@dataclass
class RrCost:
    """rr's CPU µs per request with one front: front process, its event-loop thread, its PHP workers."""

    front: float
    loop: float
    php: float
    rps: float


@dataclass(frozen=True)
class RrLayout:
    """``rr serve`` with ``server.num_fronts: fronts``, pinned (whole tree) to ``cpus``; load generator on ``load``."""

    name: str
    fronts: int
    cpus: frozenset[int]
    load: frozenset[int] | None


def rr_layouts(cpus: list[int]) -> list[RrLayout]:
    first, two = frozenset(cpus[:1]), frozenset(cpus[:2])
    apart = frozenset(cpus[2:]) or None
    return [
        RrLayout("1 front / 1 core", 1, first, frozenset(cpus[1:])),
        RrLayout("2 fronts / 2 cores", 2, two, apart),
        RrLayout("1 front / 2 cores", 1, two, apart),
    ]


def front_pids(rr_pid: int, fronts: int) -> list[int]:
    """The front processes: rr itself with one front, else its Python children (PHP workers are theirs)."""
    if fronts == 1:
        return [rr_pid]
    kids = [p for p in psutil.Process(rr_pid).children() if "php" not in os.path.basename(p.cmdline()[0])]
    return sorted(p.pid for p in kids)


def rr_fronts(args: argparse.Namespace, tmp: Path, cpus: list[int]) -> dict[str, RrCost]:
    """rr serve itself over the layouts: its scaling with fronts, and one front's per-request costs."""
    plan = rr_layouts(cpus)
    print(f"\n== rr serve, {args.workers} PHP workers split over the fronts, whole process tree pinned; "
          f"{args.rounds} x {args.duration:g} s")  # fmt: skip
    (tmp / "rr_worker.php").write_text(render(RR_HELLO, tmp / "app"))
    costs: dict[str, RrCost] = {}
    for kind in ("http", "grpc"):
        runs: dict[str, Run] = {}
        for _ in range(args.rounds):
            for layout in plan:
                port = free_port()
                yaml = http_yaml(port, args.workers) if kind == "http" else grpc_yaml(port, args.workers)
                cfg, log = tmp / f"{kind}.rr.yaml", tmp / f"{kind}-{layout.fronts}.log"
                cfg.write_text(yaml)
                # an rrgrpc key (RoadRunner ignores it), given as RoadRunner's command-line override
                argv = [*taskset(layout.cpus), *common.rr_command(), "-c", str(cfg), "-o", f"server.num_fronts={layout.fronts}", "serve"]
                with running(argv, tmp, log) as proc, pinned(layout.load):
                    common.announced(proc, log)
                    pids = front_pids(proc.pid, layout.fronts)
                    if len(pids) != layout.fronts:
                        raise SystemExit(f"rr pid {proc.pid} runs {len(pids)} fronts, asked for {layout.fronts}")
                    groups = {"rr": Group(proc.pid, "tree")}
                    for i, pid in enumerate(pids):
                        groups |= {f"front{i}": Group(pid), f"loop{i}": Group(pid, "thread"), f"php{i}": Group(pid, "children")}
                    measure(loader(kind, tmp), port, groups, args.duration, runs.setdefault(layout.name, Run()))
        print(f"   rr {'HTTP hello' if kind == 'http' else 'gRPC echo'}")
        for layout in plan:
            r = runs[layout.name]
            assert r.best is not None
            n = layout.fronts
            fronts_us = " + ".join(f"{r.us(f'front{i}'):.0f}" for i in range(n))
            loops = ", ".join(f"{r.share(f'loop{i}'):.0f} %" for i in range(n))
            php = sum(r.us(f"php{i}") for i in range(n))
            where = "load generator pinned apart" if layout.load else "load generator shares rr's CPUs"
            print(f"   {layout.name:<20} {r.best.rps:>8.0f} req/s  p99 {r.best.p99:6.2f} ms  errors {r.best.errors}  ({where})")
            print(f"      CPU µs/request: whole rr tree {r.us('rr'):.0f}; fronts {fronts_us}; PHP {php:.0f}; "
                  f"event-loop threads busy {loops} of a CPU; load generator {r.us('load'):.0f}")  # fmt: skip
            print(f"      machine: {r.busy[-1]}")
        one, two, shared = (runs[layout.name].best for layout in plan)
        if one and two and shared:
            print(f"   rr scaling factor, 2 fronts / 2 cores over 1 front / 1 core: {two.rps / one.rps:.2f}; "
                  f"over 1 front / 2 cores: {two.rps / shared.rps:.2f}")  # fmt: skip
        single = runs[plan[2].name]
        assert single.best is not None
        costs[kind] = RrCost(single.us("front0"), single.us("loop0"), single.us("php0"), single.best.rps)
    return costs


# ------------------------------------------------------------------------------ projection


def project(results: dict[str, dict[str, Run]], costs: dict[str, RrCost], cores: int) -> None:
    print(f"\n== projection to {cores} cores (load generator on other machines)")
    print("   assumptions: per-request CPU stays what it was here (checked below: 1 front vs 2 fronts on 2 cores);"
          "\n   SO_REUSEPORT spreads connections evenly (many client connections); no shared lock or memory-bandwidth"
          "\n   limit between fronts; a front is bounded by its event-loop thread (1 / loop µs) and the machine by"
          "\n   cores / (front µs + PHP µs); the machine is loaded, so these costs are upper bounds.")  # fmt: skip
    for kind, runs in results.items():
        one, two = runs["1 front / 1 core"], runs["2 fronts / 2 cores"]
        per_one = one.us("front0")
        per_two = sum(two.us(n) for n in two.cpu.user if n != "load")
        print(f"   bare {kind}: {per_one:.0f} µs/request with 1 front, {per_two:.0f} µs with 2 (x{per_two / per_one:.2f}); "
              f"{cores} fronts on {cores} cores: {cores * 1e6 / per_two:,.0f} req/s")  # fmt: skip
    for kind, c in costs.items():
        total = c.front + c.php
        needed = math.ceil(cores * c.loop / total)
        print(f"   rr {kind}: per request front {c.front:.0f} µs (loop {c.loop:.0f}) + PHP {c.php:.0f} µs = {total:.0f} µs; "
              f"one front: {1e6 / c.loop:,.0f} req/s; {cores} cores: {cores * 1e6 / total:,.0f} req/s, reached with "
              f"{needed} fronts (cores x loop / total) and PHP workers for {cores * c.php / total:.1f} cores")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of measured load per layout and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all layouts; the best counts, CPU sums")
    parser.add_argument("--workers", type=int, default=2, help="PHP workers of rr's run")
    parser.add_argument("--cores", type=int, default=16, help="cores of the projection")
    parser.add_argument("--skip-rr", action="store_true", help="only the bare floors")
    parser.add_argument("--skip-floors", action="store_true", help="only rr's layouts")
    parser.add_argument("--http-front", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--grpc-front", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.http_front:
        run_loop(http_floor(args.http_front, reuse_port=True))
        return
    if args.grpc_front:
        run_loop(bare_server(args.grpc_front, 10, reuse_port=True))
        return
    missing = [t for t in ("wrk", "h2load", "taskset") if not shutil.which(t)]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (Debian: wrk, nghttp2-client, util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit(f"needs at least 2 usable CPUs, this process may use {len(cpus)}")
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # as rr serve sets it for itself
    start = Stat.now()
    describe()
    with tempfile.TemporaryDirectory(prefix="rr-fronts-") as tmpdir:
        tmp = Path(tmpdir)
        results = {} if args.skip_floors else floors(args, tmp, cpus)
        costs = {} if args.skip_rr else rr_fronts(args, tmp, cpus)
    project(results, costs, args.cores)
    print(f"\n{Stat.now().since(start)}")


if __name__ == "__main__":
    main()
