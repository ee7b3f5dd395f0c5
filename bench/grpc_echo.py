"""Benchmark: rrgrpc + PHP echo workers against a bare grpc.aio echo server, in one run.

Both targets serve ``/echo.v1.Echo/Ping`` and are loaded by the same h2load command (nghttp2's
HTTP/2 load generator speaks gRPC when given the headers and a length-prefixed message; a Python
client could not saturate either server). Each target gets a warm-up and a fixed duration; the
script prints requests per second, p50 and p99 latency (from h2load's per-request log, completed
requests only; "cut" counts the ones still running when the duration ended), the CPU time per
request of the server process and of its PHP children (robust when other load shares the CPUs),
and the ratio rr / bare.

    python bench/grpc_echo.py [--duration 10] [--clients 16] [--streams 8] [--workers 2]

The bare server is a Python process with a generic raw-bytes handler that returns the request
bytes (a valid PingReply), using uvloop when installed, as ``rr serve`` does. h2load sees HTTP
statuses only, so each target is first checked with one real gRPC call and the load is run only
if that call succeeds; after the load, a last call confirms the server is still answering.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of the server process and of its child processes (PHP workers)."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    children = 0.0
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        children += c.user + c.system
    return t.user + t.system, children


def measure(name: str, proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace, data: Path, tmp: Path) -> dict[str, float]:
    one_call(port)
    h2load(port, args, data, None, 2)  # warm-up: connections, worker caches, branch predictors
    log = tmp / f"{name}.log"
    own0, kids0 = cpu_seconds(proc.pid)
    text = h2load(port, args, data, log, args.duration)
    own1, kids1 = cpu_seconds(proc.pid)
    one_call(port)
    durations, failed, cut = [], 0, 0
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        if parts[1] == "-1":  # still running when the duration ended
            cut += 1
        elif parts[1] != "200":
            failed += 1
        else:
            durations.append(int(parts[2]) / 1000.0)
    if not durations:
        sys.exit(f"{name}: h2load logged no request\n{text}")
    rps = next(float(line.split(",")[1].split()[0]) for line in text.splitlines() if line.startswith("finished in"))
    q = statistics.quantiles(durations, n=100)
    total = len(durations) + failed + cut
    return {
        "rps": rps,
        "p50": q[49],
        "p99": q[98],
        "requests": len(durations),
        "failed": failed,
        "cut": cut,
        "cpu_us": (own1 - own0) / total * 1e6,  # server process CPU per request (the Python host)
        "php_us": (kids1 - kids0) / total * 1e6,  # its children: the PHP workers
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per target")
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

    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "ping.bin"
        data.write_bytes(b"\x00" + len(REQUEST).to_bytes(4, "big") + REQUEST)
        results: dict[str, dict[str, float]] = {}

        port = free_port()
        with process([sys.executable, __file__, "--bare-server", str(port), "--max-streams", str(args.max_streams)]) as proc:
            wait_ready(port, proc, health=False)
            results["bare grpc.aio"] = measure("bare", proc, port, args, data, tmp)

        port = free_port()
        cfg = tmp / ".rr.yaml"
        cfg.write_text(
            "version: '3'\n"
            f"server: {{command: 'php {PHP_WORKER}'}}\n"
            "grpc:\n"
            f"  listen: tcp://127.0.0.1:{port}\n"
            f"  proto: ['{ECHO_PROTO}']\n"
            f"  max_concurrent_streams: {args.max_streams}\n"
            f"  pool: {{num_workers: {args.workers}}}\n"
            "logs: {level: warn}\n"
        )
        with process([rr, "-c", str(cfg), "serve"], cwd=tmp) as proc:
            wait_ready(port, proc, health=True)
            results[f"rr + {args.workers} PHP workers"] = measure("rr", proc, port, args, data, tmp)

    print(f"\nh2load -c {args.clients} -m {args.streams}, {args.duration:g} s per target, {METHOD}, {os.cpu_count()} CPUs")
    print(
        f"{'target':<24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ok':>7} {'failed':>6} {'cut':>4}"
        f" {'host CPU us/req':>15} {'PHP CPU us/req':>14}"
    )
    for name, r in results.items():
        print(
            f"{name:<24} {r['rps']:>8.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['requests']:>7.0f} "
            f"{r['failed']:>6.0f} {r['cut']:>4.0f} {r['cpu_us']:>15.0f} {r['php_us']:>14.0f}"
        )
    bare, ours = results["bare grpc.aio"], results[f"rr + {args.workers} PHP workers"]
    print(f"ratio rr / bare: {ours['rps'] / bare['rps']:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
