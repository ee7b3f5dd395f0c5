"""Every benchmark in one run: rr against the real RoadRunner, nginx + php-fpm and bare Python floors.

    .venv/bin/python bench/run_all.py [--duration 5] [--rounds 3] [--workers 2] [--fronts 2] [--only grpc,http,symfony,startup]
    .venv/bin/python bench/run_all.py --only startup --rounds 10 [--startup-baseline DIR]

Scenarios (each target of a scenario runs the same PHP script with the same number of workers; rr
and RoadRunner read the same .rr.yaml, only the port differs):

- gRPC echo (h2load, ``/echo.v1.Echo/Ping``, tests/php/grpc_echo.php): rr, RoadRunner, a bare
  grpc.aio echo (the Python floor); messages of 5 B, 1 KB, 64 KB and 1 MB, and latency at c1.
- HTTP hello (wrk, bench/http_hello.py's scripts): rr, RoadRunner, nginx + php-fpm, a bare aiohttp
  hello (the Python floor); bodies of 13 B, 1 KB, 64 KB and 1 MB, and latency at c1.
- Symfony-weight app (wrk, a FrameworkBundle + TwigBundle kernel): rr, RoadRunner, nginx + php-fpm
  (skipped without the Debian packages; see http_hello.py).
- Startup to SERVING with 4 workers and the host's RSS, rr and RoadRunner (and, with
  ``--startup-baseline DIR``, the rrgrpc of another checkout run by the same Python: an A/B in one run),
  with rr's phase split read from its debug log.

rr runs twice where it serves traffic: with one front (``rr``, the default on a 2-CPU machine)
and with ``server.num_fronts: --fronts`` (``rr 2 fronts``); its "front" CPU is then the
supervisor's and every front's, "loop" their event-loop threads summed.

All targets of a scenario run side by side; after a warm-up, measured rounds alternate between
them so that neighbours' load hits all alike, and the best round of each counts. CPU time per
request is summed over all rounds, for every process: the front (rr, RoadRunner, nginx or the
bare server; for Python fronts also its event-loop thread, and user/system apart), the PHP
workers (FPM children for nginx), and the load generator. Ratios are to RoadRunner ("×RR") and to
the scenario's other baseline. The figures go to stdout and to ``bench/results/<date>-<host>.md``
with the machine report of bench/machine.py. Timing is never asserted anywhere: this prints.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc

# the script's own folder is on sys.path
from common import (
    FAST_RECONNECT,
    ROOT,
    Cpu,
    Group,
    Load,
    announced,
    cpu_now,
    family,
    free_port,
    h2load,
    mapped,
    reference_rr,
    rr_command,
    rss_mib,
    run_loop,
    running,
    wait_grpc,
    wait_http,
    wrk,
)
from grpc_echo import METHOD
from grpc_echo import rr_yaml as grpc_yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from http_hello import FPM_HELLO, FPM_SYMFONY, RR_HELLO, RR_SYMFONY, SYMFONY, fpm_server, render, rr_yaml
from machine import Stat, describe

NOT_INSTALLED = "not installed"
SIZES = {"5 B": 0, "1 KB": 1024, "64 KB": 65536, "1 MB": 1 << 20}


@dataclass
class Target:
    """A running server: its port and the process groups whose CPU is counted."""

    name: str
    port: int = 0
    groups: dict[str, Group] = field(default_factory=dict)
    missing: str = ""  # why it does not run ("not installed")
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    load: str
    target: Target
    best: Load | None = None
    cpu: Cpu = field(default_factory=Cpu)
    requests: int = 0
    errors: int = 0

    def us(self, name: str, part: str = "total") -> float | None:
        if not self.requests or name not in self.cpu.user:
            return None
        secs = {"user": self.cpu.user[name], "system": self.cpu.system[name]}.get(part, self.cpu.total(name))
        return secs / self.requests * 1e6


# ------------------------------------------------------------------------------ messages


def ping(size: int) -> bytes:
    """echo.v1.PingRequest{msg: "hello"} or {msg: size bytes}."""
    msg = b"x" * size if size else b"hello"
    n, varint = len(msg), bytearray()
    while True:
        varint.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not varint[-1] & 0x80:
            break
    return b"\x0a" + bytes(varint) + msg


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def check_grpc(target: Target, message: bytes) -> None:
    """One real call whose reply echoes the message (h2load only sees HTTP statuses)."""
    with grpc.insecure_channel(f"127.0.0.1:{target.port}", options=[("grpc.max_receive_message_length", 8 << 20)]) as ch:
        reply: bytes = ch.unary_unary(METHOD)(message, timeout=30)
    if not reply.startswith(message):
        raise SystemExit(f"{target.name}: the echo reply does not start with the request ({len(reply)} bytes)")


def check_http(target: Target, size: int) -> None:
    with socket.create_connection(("127.0.0.1", target.port), timeout=30) as s:
        s.sendall(f"GET /?size={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or (size and len(body) < size):
        raise SystemExit(f"{target.name}: GET /?size={size} answered {head[:40]!r} with {len(body)} body bytes")


# ------------------------------------------------------------------------------ targets


def python_front(name: str, port: int, pid: int) -> Target:
    """A Python server's target; rr's fronts and supervisor count together, its PHP workers apart."""
    t = Target(name, port, {"front": Group(pid, "python"), "loop": Group(pid, "loops"), "php": Group(pid, "php")})
    loop = "uvloop" if mapped(pid, "uvloop") else "asyncio"
    t.notes.append(f"{name} (pid {pid}) runs on {loop}" + (
        "; aiohttp's C HTTP parser loaded" if mapped(pid, "_http_parser") else ""))
    return t


@contextlib.contextmanager
def rr_target(name: str, argv: list[str] | None, tmp: Path, yaml: Callable[[int], str], ready: Callable[..., None]) -> Iterator[Target]:
    """rr or RoadRunner serving ``yaml(port)`` from ``tmp`` (``argv`` None: not installed)."""
    if argv is None:
        yield Target(name, missing=NOT_INSTALLED)
        return
    port = free_port()
    cfg = tmp / f"{name}.rr.yaml"
    cfg.write_text(yaml(port))
    log = tmp / f"{name}.log"
    with running([*argv, "-c", str(cfg), "serve"], tmp, log) as proc:
        ready(port, proc, log=log)
        if name.startswith("rr"):
            yield python_front(name, port, proc.pid)
        else:
            yield Target(name, port, {"front": Group(proc.pid), "php": Group(proc.pid, "children")})


@contextlib.contextmanager
def floor_target(name: str, ready: Callable[..., None]) -> Iterator[Target]:
    """A bare Python server: grpc_echo.py's grpc.aio echo, or this script's aiohttp hello."""
    port = free_port()
    script = ["grpc_echo.py", "--bare-server"] if "grpc" in name else ["run_all.py", "--http-floor"]
    with running([sys.executable, str(Path(__file__).parent / script[0]), script[1], str(port)]) as proc:
        ready(port, proc)
        yield python_front(name, port, proc.pid)


def fronts_targets(
    stack: contextlib.ExitStack, args: argparse.Namespace, tmp: Path, yaml: Callable[[int], str], ready: Callable[..., None]
) -> list[Target]:
    """rr with ``server.num_fronts: --fronts`` (given as the ``-o`` override), when asked for."""
    if args.fronts <= 1:
        return []
    name = f"rr {args.fronts} fronts"
    argv = [*rr_command(), "-o", f"server.num_fronts={args.fronts}"]
    return [stack.enter_context(rr_target(name, argv, tmp, yaml, ready))]


def reference_argv() -> list[str] | None:
    ref = reference_rr()
    return [str(ref)] if ref else None


# ------------------------------------------------------------------------------ floors


async def http_floor(port: int, reuse_port: bool = False) -> None:
    """aiohttp's low-level server answering the hello (``reuse_port``: share the port, bench/fronts.py)."""
    from aiohttp import web

    async def hello(request: web.BaseRequest) -> web.Response:
        size = int(request.query.get("size", 0))
        return web.Response(body=b"x" * size if size else b"Hello, World!", content_type="text/plain")

    server = web.Server(hello, access_log=None)
    srv = await asyncio.get_running_loop().create_server(server, "127.0.0.1", port, backlog=1024, reuse_port=reuse_port)
    await _until_signal()
    srv.close()


async def _until_signal() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


# ------------------------------------------------------------------------------ measuring


def measure(label: str, targets: list[Target], run: Callable[[Target, float, Path], Load], args: argparse.Namespace, tmp: Path) -> list[Row]:
    """Warm-up, then ``args.rounds`` rounds alternating between the running targets; best round counts."""
    rows = [Row(label, t) for t in targets]
    live = [r for r in rows if not r.target.missing]
    for r in live:
        run(r.target, 1, tmp / "warmup.log")
    for _ in range(args.rounds):
        for r in live:
            before = cpu_now(r.target.groups)
            got = run(r.target, args.duration, tmp / "h2load.log")
            r.cpu = r.cpu + (cpu_now(r.target.groups) - before)
            r.requests += got.ok + got.errors + got.cut
            r.errors += got.errors
            if r.best is None or got.rps > r.best.rps:
                r.best = got
    show(label, rows)
    return rows


def grpc_load(clients: int, streams: int, size: int, tmp: Path) -> Callable[[Target, float, Path], Load]:
    data = tmp / f"ping-{size}.bin"
    message = ping(size)
    data.write_bytes(grpc_frame(message))

    def run(t: Target, duration: float, log: Path) -> Load:
        check_grpc(t, message)
        got = h2load(f"http://127.0.0.1:{t.port}{METHOD}", data, clients, streams, duration, log)
        check_grpc(t, message)  # still answering after the load
        return got

    return run


def http_load(threads: int, connections: int, size: int) -> Callable[[Target, float, Path], Load]:
    def run(t: Target, duration: float, log: Path) -> Load:
        check_http(t, size)
        return wrk(f"http://127.0.0.1:{t.port}/" + (f"?size={size}" if size else ""), threads, connections, duration)

    return run


# ------------------------------------------------------------------------------ output

COLUMNS = ("load", "target", "req/s", "p50 ms", "p99 ms", "errors", "front µs", "user/sys", "loop µs",
           "PHP µs", "loadgen µs", "req/s ×RR", "p99 ×RR", "req/s ×fpm", "req/s ×floor")  # fmt: skip
FLOORS = ("bare grpc.aio", "bare aiohttp")
LINES: list[str] = []  # the Markdown report, built as the run goes


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else ""


def cells(row: Row, rows: list[Row]) -> list[str]:
    t, best = row.target, row.best
    if t.missing or best is None:
        return [row.load, t.name, t.missing or "failed"] + [""] * (len(COLUMNS) - 3)
    def best_of(*names: str) -> Load | None:
        return next((r.best for r in rows if r.target.name in names and r.best and r.best is not best), None)

    ref, fpm, floor = best_of("RoadRunner"), best_of("nginx + php-fpm"), best_of(*FLOORS)

    def us(name: str, part: str = "total") -> str:
        v = row.us(name, part)
        return "" if v is None else f"{v:.0f}"

    return [
        row.load, t.name, f"{best.rps:.0f}", f"{best.p50:.2f}", f"{best.p99:.2f}", str(row.errors),
        us("front"), f"{us('front', 'user')}/{us('front', 'system')}", us("loop"), us("php"), us("load"),
        ratio(best.rps, ref.rps if ref else None), ratio(best.p99, ref.p99 if ref else None),
        ratio(best.rps, fpm.rps if fpm else None), ratio(best.rps, floor.rps if floor else None),
    ]  # fmt: skip


def show(label: str, rows: list[Row]) -> None:
    table = [cells(r, rows) for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(COLUMNS)]
    print()
    for line in (COLUMNS, *table):
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    LINES.extend("| " + " | ".join(line) + " |" for line in table)


def section(title: str, notes: list[str], columns: tuple[str, ...] = COLUMNS) -> None:
    print(f"\n== {title}")
    for n in notes:
        print(f"   {n}")
    LINES.extend(["", f"### {title}", "", *(f"- {n}" for n in notes), "",
                  "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)])  # fmt: skip


# ------------------------------------------------------------------------------ scenarios


def grpc_scenario(args: argparse.Namespace, tmp: Path) -> None:
    def yaml(port: int) -> str:
        return grpc_yaml(port, args.workers)

    def ready(port: int, proc: subprocess.Popen[bytes], log: Path | None = None) -> None:
        wait_grpc(port, proc, (METHOD, ping(0)), log=log)

    with contextlib.ExitStack() as stack:
        targets = [
            stack.enter_context(rr_target("rr", rr_command(), tmp, yaml, ready)),
            *fronts_targets(stack, args, tmp, yaml, ready),
            stack.enter_context(rr_target("RoadRunner", reference_argv(), tmp, yaml, ready)),
            stack.enter_context(floor_target("bare grpc.aio", ready)),
        ]
        section(f"gRPC echo: h2load -c{args.clients} -m{args.streams}, {args.workers} PHP workers, "
                f"{args.rounds} x {args.duration:g} s", [n for t in targets for n in t.notes])  # fmt: skip
        for label, size in SIZES.items():
            measure(f"{label} c{args.clients}x{args.streams}", targets, grpc_load(args.clients, args.streams, size, tmp), args, tmp)
        measure("5 B c1", targets, grpc_load(1, 1, 0, tmp), args, tmp)


def http_scenario(args: argparse.Namespace, tmp: Path, symfony: bool) -> None:
    rr_script, fpm_script = (RR_SYMFONY, FPM_SYMFONY) if symfony else (RR_HELLO, FPM_HELLO)
    (tmp / "rr_worker.php").write_text(render(rr_script, tmp / "app-rr"))

    def ready(port: int, proc: subprocess.Popen[bytes], log: Path | None = None) -> None:
        wait_http(port, proc, log=log)

    with contextlib.ExitStack() as stack:
        targets = [
            stack.enter_context(rr_target("rr", rr_command(), tmp, lambda p: rr_yaml(p, args.workers), ready)),
            *fronts_targets(stack, args, tmp, lambda p: rr_yaml(p, args.workers), ready),
            stack.enter_context(rr_target("RoadRunner", reference_argv(), tmp, lambda p: rr_yaml(p, args.workers), ready)),
        ]
        port, nginx, fpm = stack.enter_context(fpm_server(tmp, fpm_script, args.workers))
        targets.append(Target("nginx + php-fpm", port, {"front": Group(nginx, "tree"), "php": Group(fpm, "tree")}))
        if not symfony:
            targets.append(stack.enter_context(floor_target("bare aiohttp", ready)))
        what = "Symfony kernel (booted once per rr/RoadRunner worker, per request under FPM)" if symfony else "HTTP hello"
        section(f"{what}: wrk -t{args.wrk_threads} -c{args.connections}, {args.workers} PHP workers, "
                f"{args.rounds} x {args.duration:g} s; rr log level error, no access log",
                [n for t in targets for n in t.notes])  # fmt: skip
        sizes = {"page": 0} if symfony else {("13 B" if k == "5 B" else k): v for k, v in SIZES.items()}
        for label, size in sizes.items():
            measure(f"{label} c{args.connections}", targets, http_load(args.wrk_threads, args.connections, size), args, tmp)
        measure("c1", targets, http_load(1, 1, 0), args, tmp)


@dataclass
class Start:
    """One start to SERVING: wall time, the host's CPU by then, its log's phase split, and RSS."""

    ms: float
    cpu_ms: float
    phases: list[tuple[str, float]]
    rss: tuple[float, float] = (0.0, 0.0)


def startup(args: argparse.Namespace, tmp: Path) -> None:
    """Time from spawn to health SERVING (first served call where health is not served), 4 workers.

    Rounds alternate between the targets; best and median count. rr runs at log level debug so
    that its log gives the phase split of its best round (:func:`phases`)."""
    workers = 4
    targets: list[tuple[str, list[str] | None, dict[str, str] | None]] = [("rr", rr_command(), None)]
    if args.fronts > 1:
        targets.append((f"rr {args.fronts} fronts", [*rr_command(), "-o", f"server.num_fronts={args.fronts}"], None))
    sources = [ROOT / "rrgrpc"]
    if args.startup_baseline:
        base = args.startup_baseline.resolve()
        targets.append((f"rr@{base.name}", rr_command(), {**os.environ, "PYTHONPATH": str(base)}))
        sources.append(base / "rrgrpc")
    for src in sources:  # as an installed rrgrpc has them (pip compiles at install)
        compileall.compile_dir(src, quiet=1)
    targets.append(("RoadRunner", reference_argv(), None))
    columns = ("target", "best ms", "median ms", "host CPU ms", "host RSS MiB", "PHP RSS MiB")
    section(f"Startup to SERVING, {workers} PHP workers ({args.rounds} rounds, alternating); RSS after 200 calls",
            ["spawn to grpc.health.v1 SERVING, or to the first echo reply where the health service is absent; "
             "host CPU: the server process's user+system CPU time by then (median)",
             "rrgrpc's bytecode is compiled beforehand, as pip install does (with PYTHONDONTWRITEBYTECODE=1 and "
             "an editable install, every start would compile its modules again: ~130 ms CPU on this machine)",
             *(f"rr@{args.startup_baseline.name}: the same Python running {args.startup_baseline}'s rrgrpc"
               for _ in [0] if args.startup_baseline)],
            columns)  # fmt: skip
    print(f"{'target':<16} {'best ms':>8} {'median ms':>10} {'host CPU ms':>12} {'host RSS MiB':>13} {'PHP RSS MiB':>12}")
    runs: dict[str, list[Start]] = {name: [] for name, argv, _ in targets if argv is not None}
    for i in range(args.rounds):
        for name, argv, env in targets:
            if argv is not None:
                runs[name].append(start_once(argv, env, workers, tmp, f"startup-{name}-{i}"))
    splits: list[str] = []
    for name, argv, _ in targets:
        if argv is None:
            print(f"{name:<16} {NOT_INSTALLED:>8}")
            LINES.append(f"| {name} | {NOT_INSTALLED} | | | | |")
            continue
        got = runs[name]
        best = min(got, key=lambda s: s.ms)
        ms, cpu = statistics.median(s.ms for s in got), statistics.median(s.cpu_ms for s in got)
        print(f"{name:<16} {best.ms:>8.0f} {ms:>10.0f} {cpu:>12.0f} {got[-1].rss[0]:>13.1f} {got[-1].rss[1]:>12.1f}")
        LINES.append(f"| {name} | {best.ms:.0f} | {ms:.0f} | {cpu:.0f} | {got[-1].rss[0]:.1f} | {got[-1].rss[1]:.1f} |")
        if best.phases:
            splits.append(f"{name} best round, ms from spawn: " + ", ".join(f"{what} {t:.0f}" for what, t in best.phases))
    for line in splits:
        print(f"   {line}")
    LINES.extend(["", *(f"- {line}" for line in splits)])


def start_once(argv: list[str], env: dict[str, str] | None, workers: int, tmp: Path, stem: str) -> Start:
    port = free_port()
    cfg = tmp / f"{stem}.rr.yaml"
    cfg.write_text(grpc_yaml(port, workers, level="debug"))
    log = tmp / f"{stem}.log"
    spawned = time.time()
    t0 = time.monotonic()
    with running([*argv, "-c", str(cfg), "serve"], tmp, log, env) as proc:
        serving(port, proc)
        announced(proc, log)  # with several fronts, one front's SERVING is not the server's
        ms = (time.monotonic() - t0) * 1000
        cpu = sum(sum(p.cpu_times()[:2]) for p in family(proc.pid, "python")) * 1000
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(METHOD)
            for _ in range(200):
                call(ping(0), timeout=10)
        rss = (rss_mib(proc.pid, "python"), rss_mib(proc.pid, "php"))
    return Start(ms, cpu, phases(log.read_text(errors="replace"), spawned) + [("SERVING seen", ms)], rss)


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+[+-]\d{4})\t\w+\t\S+\t(.*?)(?:\t(\{.*\}))?$", re.M)


def phases(text: str, spawned: float) -> list[tuple[str, float]]:
    """rr's startup phases from its development-format debug log, in ms since the spawn.

    The first line is written once the logs plugin is up (interpreter, imports, config, roster
    done); a ``pool started`` line when a plugin's workers are ready; each ``plugin started`` line
    (rrgrpc.host) ends that plugin's start. A log in another
    format (RoadRunner's) gives no phases."""
    out: list[tuple[str, float]] = []
    for m in _LOG_LINE.finditer(text):
        at = (datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() - spawned) * 1000
        if not out:
            out.append(("first log line (imports, config)", at))
        if m.group(2) == "pool started" and m.group(3):
            out.append((f"{json.loads(m.group(3))['plugin']} pool started (workers ready)", at))
        if m.group(2) == "plugin started" and m.group(3):
            fields = json.loads(m.group(3))
            out.append((f"{fields['plugin']} started ({fields['ms']} ms)", at))
    return out


def serving(port: int, proc: subprocess.Popen[bytes], budget: float = 30.0) -> None:
    """Until grpc.health.v1 says SERVING; a server without the health service counts at its first reply."""
    deadline = time.monotonic() + budget
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=FAST_RECONNECT) as ch:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode} before SERVING")
            try:
                if health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    wait_grpc(port, proc, (METHOD, ping(0)), budget=deadline - time.monotonic())
                    return
            time.sleep(0.005)
    raise SystemExit(f"not SERVING within {budget:g}s")


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per target, load and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="PHP workers of every target")
    parser.add_argument("--clients", type=int, default=16, help="h2load connections")
    parser.add_argument("--streams", type=int, default=8, help="h2load streams per connection")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--fronts", type=int, default=min(2, len(os.sched_getaffinity(0))),
        help="also run rr with this server.num_fronts (rows 'rr N fronts'; 1: only the one-front rr)",
    )
    parser.add_argument("--only", default="grpc,http,symfony,startup", help="comma-separated scenarios")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--startup-baseline", type=Path, metavar="DIR",
        help="startup: also time the rrgrpc of this checkout (git archive of another commit), alternating with this one",
    )
    parser.add_argument("--http-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.http_floor:
        run_loop(http_floor(args.http_floor))
        return
    only = set(args.only.split(","))
    needed = {"h2load": "nghttp2-client", "wrk": "wrk", "nginx": "nginx"}
    missing = [f"{tool} (Debian: {pkg})" for tool, pkg in needed.items() if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}; see README, Benchmarks")
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # as rr serve sets it for itself

    start = Stat.now()
    env = describe()
    if reference_rr() is None:
        print("RoadRunner reference binary not installed: set RR_REFERENCE_BIN or run scripts/install-roadrunner.sh "
              "(.cache/roadrunner/v2025.1.15/rr); its columns read 'not installed', ratios to it stay blank")  # fmt: skip
    LINES.extend(["# rrgrpc benchmarks", "", *(f"- **{w}**: {v}" for w, v in env)])
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for name in ("grpc", "http", "symfony", "startup"):
            if name not in only:
                continue
            if name == "symfony" and not all(p.is_dir() for p in SYMFONY):
                print("\nSymfony scenario skipped: apt-get install php-symfony-framework-bundle php-symfony-twig-bundle")
                continue
            (tmp / name).mkdir()
            if name == "grpc":
                grpc_scenario(args, tmp / name)
            elif name == "startup":
                startup(args, tmp / name)
            else:
                http_scenario(args, tmp / name, symfony=name == "symfony")
    after = Stat.now().since(start)
    print(f"\n{after}")
    LINES.extend(["", f"- **during the run**: {after}", "",
                  "µs columns: CPU time per request (all rounds) of the front process (user/sys apart), its event-loop "
                  "thread (Python fronts), the PHP workers (FPM children for nginx) and the load generator. "
                  "×RR: ratio to RoadRunner; ×fpm: to nginx + php-fpm; ×floor: to the bare grpc.aio echo or aiohttp hello."])  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}-{socket.gethostname()}.md"
    out.write_text("\n".join(LINES) + "\n")
    print(f"written: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
