"""Benchmark: rrgrpc + PHP echo workers against a bare grpc.aio echo server, in one run.

Both targets serve ``/echo.v1.Echo/Ping`` and are loaded by the same h2load command (nghttp2's
HTTP/2 load generator speaks gRPC when given the headers and a length-prefixed message; a Python
client could not saturate either server). Both servers run for the whole benchmark; after a
warm-up each, measured rounds alternate between them (bare, rr, bare, rr, ...) so that load from
neighbours on shared CPUs hits both alike, and the best round of each target is compared. The
script prints requests per second, p50 and p99 latency of the best round (from h2load's
per-request log, completed requests only; "cut" counts the ones still running when a round ended),
and CPU time per request
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
import shutil
import signal
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc

# the script's own folder is on sys.path: the helpers all benches share
from common import (
    PHP,
    ROOT,
    Cpu,
    Group,
    Load,
    cpu_now,
    free_port,
    h2load,
    rr_command,
    run_loop,
    running,
    wait_grpc,
)

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
PHP_WORKER = ROOT / "tests" / "php" / "grpc_echo.php"
METHOD = "/echo.v1.Echo/Ping"
REQUEST = b"\x0a\x05hello"  # echo.v1.PingRequest{msg: "hello"}


def rr_yaml(port: int, workers: int, max_streams: int = 10, level: str = "error") -> str:
    """The .rr.yaml of the gRPC benches (RoadRunner reads it as is)."""
    return (
        "version: '3'\n"
        f"server: {{command: '{PHP} {PHP_WORKER}'}}\n"
        f"grpc:\n  listen: tcp://127.0.0.1:{port}\n  proto: ['{ECHO_PROTO}']\n"
        f"  max_concurrent_streams: {max_streams}\n  pool: {{num_workers: {workers}}}\n"
        f"logs: {{level: {level}}}\n"
    )


# ------------------------------------------------------------------------------ bare server


async def bare_server(port: int, max_streams: int, reuse_port: bool = False) -> None:
    """The raw-bytes echo (``reuse_port``: share the port with other fronts, bench/fronts.py)."""

    async def ping(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    options = [
        ("grpc.so_reuseport", int(reuse_port)),
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


def one_call(port: int) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply: bytes = channel.unary_unary(METHOD)(REQUEST, timeout=10)
    if not reply.startswith(REQUEST):
        sys.exit(f"port {port}: unexpected reply {reply!r}")
    return reply


# ------------------------------------------------------------------------------ load


@dataclass
class Result:
    """The measured rounds of one target."""

    rounds: list[Load] = field(default_factory=list)
    cpu: Cpu = field(default_factory=Cpu)

    @property
    def best(self) -> Load:
        return max(self.rounds, key=lambda r: r.rps)

    def per_request(self, *names: str) -> float:
        total = sum(r.ok + r.errors + r.cut for r in self.rounds)
        return sum(self.cpu.total(n) for n in names) / total * 1e6


def measure(pid: int, port: int, args: argparse.Namespace, data: Path, log: Path, result: Result) -> None:
    """One measured round of h2load against a target; adds to ``result``."""
    groups = {"host": Group(pid), "loop": Group(pid, "thread"), "php": Group(pid, "children")}
    before = cpu_now(groups)
    url = f"http://127.0.0.1:{port}{METHOD}"
    result.rounds.append(h2load(url, data, args.clients, args.streams, args.duration, log))
    result.cpu = result.cpu + (cpu_now(groups) - before)
    one_call(port)


def bound(r: Result, cpus: int) -> float:
    """The request rate the measured CPU costs allow: all CPUs busy, or the event loop thread busy."""
    return min(cpus / r.per_request("host", "php", "load"), 1 / r.per_request("loop")) * 1e6


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
        run_loop(bare_server(args.bare_server, args.max_streams))
        return
    if not shutil.which("h2load"):
        sys.exit("h2load not found (Debian: apt-get install nghttp2-client)")
    # the same grpc-core settings on both sides: rr serve turns fork support off for itself
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    cpus = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        data = tmp / "ping.bin"
        data.write_bytes(b"\x00" + len(REQUEST).to_bytes(4, "big") + REQUEST)

        bare_port = free_port()
        argv = [sys.executable, __file__, "--bare-server", str(bare_port), "--max-streams", str(args.max_streams)]
        bare = stack.enter_context(running(argv))
        wait_grpc(bare_port, bare, (METHOD, REQUEST))

        rr_port = free_port()
        cfg = tmp / ".rr.yaml"
        cfg.write_text(rr_yaml(rr_port, args.workers, args.max_streams, "warn"))
        ours = stack.enter_context(running([*rr_command(), "-c", str(cfg), "serve"], cwd=tmp))
        wait_grpc(rr_port, ours)

        rr_name = f"rr + {args.workers} PHP workers"
        targets = {"bare grpc.aio": (bare, bare_port), rr_name: (ours, rr_port)}
        results = {name: Result() for name in targets}
        for _proc, port in targets.values():
            one_call(port)
            h2load(f"http://127.0.0.1:{port}{METHOD}", data, args.clients, args.streams, 2, tmp / "warmup.log")
        # Rounds alternate between the targets so that a neighbour's load on the shared CPUs hits
        # both alike; the best round of each is compared (interference only ever slows a round).
        for _ in range(args.rounds):
            for name, (proc, port) in targets.items():
                measure(proc.pid, port, args, data, tmp / "h2load.log", results[name])

    print(
        f"\nh2load -c {args.clients} -m {args.streams}, {args.rounds} x {args.duration:g} s per target, "
        f"{METHOD}, {cpus} CPUs"
    )
    print(
        f"{'target':<24} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ok':>7} {'failed':>6} {'cut':>4}"
        f" {'host':>6} {'loop':>6} {'PHP':>6} {'h2load':>6}  {'bound':>6}"
    )
    for name, r in results.items():
        top = r.best
        print(
            f"{name:<24} {top.rps:>8.0f} {top.p50:>7.2f} {top.p99:>7.2f} {sum(x.ok for x in r.rounds):>7} "
            f"{sum(x.errors for x in r.rounds):>6} {sum(x.cut for x in r.rounds):>4} {r.per_request('host'):>6.0f} "
            f"{r.per_request('loop'):>6.0f} {r.per_request('php'):>6.0f} {r.per_request('load'):>6.0f}  {bound(r, cpus):>6.0f}"
        )
    print(
        "(req/s, p50, p99: best round; host/loop/PHP/h2load: CPU µs per request of the server process, its event-loop\n"
        f" thread, its PHP children, the load generator; bound: req/s those costs allow on {cpus} CPUs, the\n"
        " lower of all-CPUs-busy and event-loop-thread-busy)"
    )
    b, o = results["bare grpc.aio"], results[rr_name]
    print(f"ratio rr / bare: {o.best.rps / b.best.rps:.2f} (target >= 0.90)")
    print(f"ratio the measured CPU costs allow: {bound(o, cpus) / bound(b, cpus):.2f}")


if __name__ == "__main__":
    main()
