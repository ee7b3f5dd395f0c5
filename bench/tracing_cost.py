"""Benchmark: CPU seconds per request of the ``rr`` process with tracing off and on, in one run.

The same gRPC echo load (h2load, ``/echo.v1.Echo/Ping``, PHP echo workers) is sent to ``rr serve``
twice: without an ``otel`` section (the gRPC plugin still makes its server span with a local,
non-exporting tracer, as RoadRunner does, so PHP always gets a trace context), and with
``otel: {client: grpc}`` exporting every span through the batch processor to an OTLP receiver run
by this script. Only the ``rr`` process is measured (user + system CPU from psutil, workers
excluded), over a fixed number of requests after a warm-up; the receiver's span count confirms
what was exported.

    python bench/tracing_cost.py [--requests 5000] [--clients 8] [--streams 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import psutil

# the script's own folder is on sys.path: share the server/process helpers of the gRPC bench
from common import free_port, rr_command, running, wait_grpc
from grpc_echo import ECHO_PROTO, METHOD, PHP_WORKER, REQUEST, one_call
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


class CountingReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 (generated name)
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with self._lock:
            self.spans += n
        return trace_service_pb2.ExportTraceServiceResponse()


def h2load(port: int, requests: int, args: argparse.Namespace, data: Path) -> int:
    """Send ``requests`` calls; returns how many succeeded (h2load counts a reset stream as failed).
    CPU is divided by the successful calls only."""
    argv = [
        "h2load", f"http://127.0.0.1:{port}{METHOD}",
        "-n", str(requests), "-c", str(args.clients), "-m", str(args.streams), "-t", "1",
        "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(data),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("requests:")), "")
    ok = int(line.split(" succeeded")[0].rsplit(" ", 1)[-1]) if " succeeded" in line else 0
    if out.returncode != 0 or ok < requests * 0.9:
        sys.exit(f"h2load failed:\n{out.stdout}\n{out.stderr}")
    return ok


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system  # the rr process only, not its PHP workers


def measure(
    name: str, otel: dict | None, args: argparse.Namespace, tmp: Path, data: Path
) -> dict[str, float]:
    port = free_port()
    cfg = {
        "version": "3",
        "server": {"command": ["php", str(PHP_WORKER)]},
        "grpc": {
            "listen": f"tcp://127.0.0.1:{port}",
            "proto": [str(ECHO_PROTO)],
            "pool": {"num_workers": args.workers},
        },
        "logs": {"level": "warn"},
    }
    if otel is not None:
        cfg["otel"] = otel
    path = tmp / f"{name}.rr.yaml"
    path.write_text(json.dumps(cfg))
    with running([*rr_command(), "-c", str(path), "serve"], cwd=ROOT) as proc:
        wait_grpc(port, proc)
        one_call(port)
        rr = psutil.Process(proc.pid)
        h2load(port, args.warmup, args, data)
        before, started = cpu_seconds(rr), time.monotonic()
        done = h2load(port, args.requests, args, data)
        cpu, wall = cpu_seconds(rr) - before, time.monotonic() - started
    return {
        "cpu": cpu,
        "per_request_us": cpu / done * 1e6,
        "rps": done / wall,
        "failed": args.requests - done,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per mode")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("h2load"):
        sys.exit("h2load not found (Debian: apt-get install nghttp2-client)")

    receiver = CountingReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    otlp_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="rr-tracing-") as tmpdir:
            tmp = Path(tmpdir)
            data = tmp / "ping.bin"
            data.write_bytes(b"\x00" + len(REQUEST).to_bytes(4, "big") + REQUEST)
            off = measure("off", None, args, tmp, data)
            otel = {"client": "grpc", "endpoint": f"127.0.0.1:{otlp_port}", "insecure": True}
            on = measure("on", otel, args, tmp, data)
    finally:
        server.stop(None)

    total = args.warmup + args.requests + 1
    print(
        f"\n{args.requests} measured requests per mode (after {args.warmup} warm-up), h2load -c {args.clients} "
        f"-m {args.streams}, {args.workers} PHP workers, {METHOD}"
    )
    print(f"{'tracing':<30} {'rr CPU s':>9} {'CPU µs/req':>11} {'req/s':>8} {'failed':>7}")
    for label, r in (("off (no otel section)", off), ("on (otlp grpc, batch export)", on)):
        print(
            f"{label:<30} {r['cpu']:>9.2f} {r['per_request_us']:>11.0f} {r['rps']:>8.0f} {r['failed']:>7.0f}"
        )
    extra = on["per_request_us"] - off["per_request_us"]
    print(
        f"tracing costs {extra:.0f} µs of rr CPU per request ({extra / off['per_request_us']:+.0%}); "
        f"spans exported: {receiver.spans} for {total} requests ({receiver.spans / total:.1f} per request)"
    )


if __name__ == "__main__":
    main()
