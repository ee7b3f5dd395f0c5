"""Benchmark: rrgrpc + PHP echo workers against a bare grpc.aio echo server, in one run.

Both targets serve ``/echo.v1.Echo/Ping`` and are loaded by the same h2load command (nghttp2's
HTTP/2 load generator speaks gRPC when given the headers and a length-prefixed message; a Python
client could not saturate either server). Both servers run for the whole benchmark; after a
warm-up each, measured rounds alternate between them (bare, rr, bare, rr, ...) so that load from
neighbours on shared CPUs hits both alike, and the best round of each target is compared. The
script prints requests per second, p50 and p99 latency (from h2load's per-request log, completed
requests only; "cut" counts the ones still running when a round ended), and CPU time per request
of the server process, of its event-loop (main) thread, of its PHP children and of h2load
(robust when other load shares the CPUs), and from those the request rate the costs allow: the
lower of "all CPUs busy" (CPUs / total CPU per request) and "event-loop thread busy" (1 / loop
CPU per request). The ratio of the two bounds is the ratio this implementation can reach on this
machine; the measured ratio is printed next to it.

    python bench/grpc_echo.py [--duration 5] [--rounds 3] [--clients 16] [--streams 8] [--workers 2]

The bare server is a Python process with a generic raw-bytes handler that returns the request
bytes (a valid PingReply), using uvloop when installed and grpc-core's fork support off, as
``rr serve`` does, with the same max_concurrent_streams and overload protection. h2load sees HTTP
statuses only, so each target is first checked with one real gRPC call and the load is run only
if that call succeeds; after the load, a last call confirms the server is still answering.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
PHP_WORKER = ROOT / "tests" / "php" / "grpc_echo.php"
METHOD = "/echo.v1.Echo/Ping"
REQUEST = b"\x0a\x05hello"  # echo.v1.PingRequest{msg: "hello"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ bare server


async def bare_server(port: int, max_streams: int) -> None:
    async def ping(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    options = [
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", max_streams),
        ("grpc.http.overload_protection", 0),  # as rrgrpc sets it
    ]
    server = grpc.aio.server(options=options)
    handler = grpc.unary_unary_rpc_method_handler(ping)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("echo.v1.Echo", {"Ping": handler}),))
    server.add_registered_method_handlers("echo.v1.Echo", {"Ping": handler})
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await server.stop(1)


def run_bare_server(port: int, max_streams: int) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(bare_server(port, max_streams))
    else:
        uvloop.run(bare_server(port, max_streams))


# ------------------------------------------------------------------------------ targets


@contextmanager
def process(argv: list[str], cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(port: int, proc: subprocess.Popen[bytes], health: bool, budget: float = 30.0) -> None:
    deadline = time.monotonic() + budget
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                sys.exit(f"server exited with {proc.returncode}:\n{err[-2000:]}")
            try:
                if health:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                else:
                    channel.unary_unary(METHOD)(REQUEST, timeout=1)
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"server on port {port} not ready within {budget:g}s")
            time.sleep(0.1)


def one_call(port: int) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply: bytes = channel.unary_unary(METHOD)(REQUEST, timeout=10)
    if not reply.startswith(REQUEST):
        sys.exit(f"port {port}: unexpected reply {reply!r}")
    return reply


# ------------------------------------------------------------------------------ load


def h2load(port: int, args: argparse.Namespace, data: Path, log: Path | None, duration: float) -> str:
    argv = [
        "h2load",
        f"http://127.0.0.1:{port}{METHOD}",
        "-c", str(args.clients),
        "-m", str(args.streams),
        "-t", "1",
        "-H", "content-type: application/grpc",
        "-H", "te: trailers",
        "-d", str(data),
        "-D", f"{duration:g}",
        "--warm-up-time", "1",
    ]
    if log is not None:
        argv.append(f"--log-file={log}")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        sys.exit(f"h2load failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


@dataclass
class Cpu:
    """CPU seconds (user + system) spent so far."""

    host: float  # the server process, all threads
    loop: float  # its main thread: the event loop, where every request's Python runs
    php: float  # its child processes (the PHP workers)
    load: float  # waited-for children of this script: the h2load runs

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.host - other.host, self.loop - other.loop, self.php - other.php, self.load - other.load)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.host + other.host, self.loop + other.loop, self.php + other.php, self.load + other.load)


def cpu_now(pid: int) -> Cpu:
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    loop = next((th.user_time + th.system_time for th in proc.threads() if th.id == pid), 0.0)
    children = 0.0
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        children += c.user + c.system
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Cpu(t.user + t.system, loop, children, ru.ru_utime + ru.ru_stime)


@dataclass
class Result:
    """The measured rounds of one target."""

    rps: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)  # ms, completed requests
    failed: int = 0
    cut: int = 0
    cpu: Cpu = field(default_factory=lambda: Cpu(0.0, 0.0, 0.0, 0.0))

    @property
    def total(self) -> int:
        return len(self.durations) + self.failed + self.cut

    def per_request(self, seconds: float) -> float:
        return seconds / self.total * 1e6


def measure(name: str, pid: int, port: int, args: argparse.Namespace, data: Path, tmp: Path, result: Result) -> None:
    """One measured round of h2load against a target; adds to ``result``."""
    log = tmp / f"{name}.log"
    before = cpu_now(pid)
    text = h2load(port, args, data, log, args.duration)
    result.cpu = result.cpu + (cpu_now(pid) - before)
    one_call(port)
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        if parts[1] == "-1":  # still running when the duration ended
            result.cut += 1
        elif parts[1] != "200":
            result.failed += 1
        else:
            result.durations.append(int(parts[2]) / 1000.0)
    if not result.durations:
        sys.exit(f"{name}: h2load logged no request\n{text}")
    result.rps.append(
        next(float(line.split(",")[1].split()[0]) for line in text.splitlines() if line.startswith("finished in"))
    )


def bound(r: Result, cpus: int) -> float:
    """The request rate the measured CPU costs allow: all CPUs busy, or the event loop thread busy."""
    total = r.per_request(r.cpu.host + r.cpu.php + r.cpu.load)
    loop = r.per_request(r.cpu.loop)
    return min(cpus / total, 1 / loop) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of measured load per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (bare, rr, bare, rr, ...)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--max-streams",
        type=int,
        default=10,
        help="max_concurrent_streams of both servers (RoadRunner's default: 10)",
    )
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server, args.max_streams)
        return
    if not shutil.which("h2load"):
        sys.exit("h2load not found (Debian: apt-get install nghttp2-client)")
    rr = shutil.which("rr", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not rr:
        sys.exit("rr not found: pip install -e . first")
    # the same grpc-core settings on both sides: rr serve turns fork support off for itself
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    cpus = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        data = tmp / "ping.bin"
        data.write_bytes(b"\x00" + len(REQUEST).to_bytes(4, "big") + REQUEST)

        bare_port = free_port()
        bare = stack.enter_context(
            process([sys.executable, __file__, "--bare-server", str(bare_port), "--max-streams", str(args.max_streams)])
        )
        wait_ready(bare_port, bare, health=False)

        rr_port = free_port()
        cfg = tmp / ".rr.yaml"
        cfg.write_text(
            "version: '3'\n"
            f"server: {{command: 'php {PHP_WORKER}'}}\n"
            "grpc:\n"
            f"  listen: tcp://127.0.0.1:{rr_port}\n"
            f"  proto: ['{ECHO_PROTO}']\n"
            f"  max_concurrent_streams: {args.max_streams}\n"
            f"  pool: {{num_workers: {args.workers}}}\n"
            "logs: {level: warn}\n"
        )
        ours = stack.enter_context(process([rr, "-c", str(cfg), "serve"], cwd=tmp))
        wait_ready(rr_port, ours, health=True)

        rr_name = f"rr + {args.workers} PHP workers"
        targets = {"bare grpc.aio": (bare, bare_port), rr_name: (ours, rr_port)}
        results = {name: Result() for name in targets}
        for _proc, port in targets.values():
            one_call(port)
            h2load(port, args, data, None, 2)  # warm-up: connections, worker caches, branch predictors
        # Rounds alternate between the targets so that a neighbour's load on the shared CPUs hits
        # both alike; the best round of each is compared (interference only ever slows a round).
        for _ in range(args.rounds):
            for name, (proc, port) in targets.items():
                measure(name.split()[0], proc.pid, port, args, data, tmp, results[name])

    print(
        f"\nh2load -c {args.clients} -m {args.streams}, {args.rounds} x {args.duration:g} s per target, "
        f"{METHOD}, {cpus} CPUs"
    )
    print(
        f"{'target':<24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ok':>7} {'failed':>6} {'cut':>4}"
        f" {'host':>6} {'loop':>6} {'PHP':>6} {'h2load':>6}  {'bound':>6}"
    )
    for name, r in results.items():
        q = statistics.quantiles(r.durations, n=100)
        print(
            f"{name:<24} {max(r.rps):>8.0f} {q[49]:>7.2f} {q[98]:>7.2f} {len(r.durations):>7} "
            f"{r.failed:>6} {r.cut:>4} {r.per_request(r.cpu.host):>6.0f} {r.per_request(r.cpu.loop):>6.0f} "
            f"{r.per_request(r.cpu.php):>6.0f} {r.per_request(r.cpu.load):>6.0f}  {bound(r, cpus):>6.0f}"
        )
    print(
        "(req/s: best round; host/loop/PHP/h2load: CPU µs per request of the server process, its event-loop\n"
        f" thread, its PHP children, the load generator; bound: req/s those costs allow on {cpus} CPUs, the\n"
        " lower of all-CPUs-busy and event-loop-thread-busy)"
    )
    b, o = results["bare grpc.aio"], results[rr_name]
    print(f"ratio rr / bare: {max(o.rps) / max(b.rps):.2f} (target >= 0.90)")
    print(f"ratio the measured CPU costs allow: {bound(o, cpus) / bound(b, cpus):.2f}")


if __name__ == "__main__":
    main()
