"""What the benches share: free ports, the servers they start, readiness waits, the load generators
(wrk, h2load) and their parsing, CPU accounting per process group, and where the reference
RoadRunner binary is.

A figure from these benches is always printed next to a baseline measured in the same run; CPU
time is read from /proc through psutil (user and system apart), so it stays meaningful when
neighbours share the CPUs and only the wall-clock figures suffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PHP = os.environ.get("PHP", "php")
REFERENCE_VERSION = "v2025.1.15"
REFERENCE_DEFAULT = ROOT / ".cache" / "roadrunner" / REFERENCE_VERSION / "rr"


#: channel options of readiness polls: grpc-core waits 1 s (+-20 %) after a refused connection before
#: the next attempt by default, which would be measured as the server's startup time
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 10),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reference_rr() -> Path | None:
    """The real RoadRunner binary: ``RR_REFERENCE_BIN``, else where scripts/install-roadrunner.sh puts it."""
    named = os.environ.get("RR_REFERENCE_BIN")
    path = Path(named) if named else REFERENCE_DEFAULT
    return path if path.is_file() and os.access(path, os.X_OK) else None


def rr_command() -> list[str]:
    """This project's ``rr`` run by the Python that runs the bench (the venv's, with its uvloop or not)."""
    return [sys.executable, "-m", "rrgrpc"]


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a bare server's coroutine on uvloop when it is installed, as ``rr serve`` does."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


# ------------------------------------------------------------------------------ processes


@contextlib.contextmanager
def running(
    argv: list[str], cwd: Path | None = None, log: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for the duration of the block (own session; SIGTERM, then SIGKILL after 30 s)."""
    out = log.open("wb") if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
            start_new_session=True, env=env,
        )  # fmt: skip
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exit_message(proc: subprocess.Popen[bytes], log: Path | None = None) -> str:
    """What a server that exited early said (its log file's tail, or its stderr)."""
    if log is not None and log.exists():
        text = log.read_text(errors="replace")
    else:
        text = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return f"exited with {proc.returncode}: {text.strip()[-1500:]}"


def announced(proc: subprocess.Popen[bytes], log: Path, budget: float = 60.0) -> None:
    """Until the server's log says it started (rr: once every front serves; RoadRunner prints the
    same words), or it exits, or the budget runs out."""
    deadline = time.monotonic() + budget
    while b"server started; version" not in log.read_bytes():
        if proc.poll() is not None:
            raise SystemExit(f"server {exit_message(proc, log)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"pid {proc.pid} did not say 'server started' within {budget:g}s (log: {log})")
        time.sleep(0.002)


def wait_http(port: int, proc: subprocess.Popen[bytes] | None = None, budget: float = 30.0, log: Path | None = None) -> None:
    """Until ``GET /`` on the port answers 200 (or the server exits, or the budget runs out)."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server on port {port} {exit_message(proc, log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.02)
    raise SystemExit(f"nothing answered 200 on port {port} within {budget:g}s")


def wait_grpc(
    port: int, proc: subprocess.Popen[bytes], call: tuple[str, bytes] | None = None, budget: float = 30.0,
    log: Path | None = None,
) -> None:
    """Until grpc.health.v1 answers SERVING, or, with ``call`` (method, request), until that call succeeds."""
    deadline = time.monotonic() + budget
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=FAST_RECONNECT) as channel:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server on port {port} {exit_message(proc, log)}")
            try:
                if call is None:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                else:
                    channel.unary_unary(call[0])(call[1], timeout=1)
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server on port {port} not ready within {budget:g}s")
            time.sleep(0.02)


# ------------------------------------------------------------------------------ load generators


@dataclass
class Load:
    """One load generator run: completed requests, failures, and latency percentiles (ms)."""

    rps: float
    ok: int
    errors: int  # non-2xx statuses and socket errors (wrk), failed streams (h2load)
    p50: float
    p99: float
    cut: int = 0  # h2load: requests still running when the duration ended


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise SystemExit(f"cannot read wrk latency {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, threads: int, connections: int, duration: float) -> Load:
    """``wrk --latency``; socket errors count as errors (a server closing connections is no speed-up)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise SystemExit(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    text = out.stdout
    if os.environ.get("BENCH_VERBOSE"):
        print(text)

    def find(pattern: str) -> str:
        m = re.search(pattern, text, re.M)
        if m is None:
            raise SystemExit(f"cannot read wrk output ({pattern}):\n{text}")
        return m.group(1)

    total = int(find(r"(\d+) requests in"))
    errors = int(re.search(r"Non-2xx or 3xx responses: (\d+)", text).group(1)) if "Non-2xx" in text else 0  # type: ignore[union-attr]
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return Load(float(find(r"Requests/sec:\s+([\d.]+)")), total - errors, errors,
                _ms(find(r"^\s*50%\s+(\S+)")), _ms(find(r"^\s*99%\s+(\S+)")))  # fmt: skip


def h2load(url: str, data: Path, clients: int, streams: int, duration: float, log: Path) -> Load:
    """gRPC unary calls by h2load (``data`` is the length-prefixed message); latency from its request log."""
    argv = [
        "h2load", url, "-c", str(clients), "-m", str(streams), "-t", "1",
        "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(data),
        "-D", f"{duration:g}", f"--log-file={log}",
    ]  # fmt: skip  (no --warm-up-time: its requests are not logged, but their CPU would be counted)
    log.unlink(missing_ok=True)  # h2load appends to its log: an old run's lines would count again
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if out.returncode != 0:
        raise SystemExit(f"h2load failed:\n{out.stdout}\n{out.stderr}")
    durations: list[float] = []
    failed = cut = 0
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        if parts[1] == "-1":
            cut += 1
        elif parts[1] != "200":
            failed += 1
        else:
            durations.append(int(parts[2]) / 1000.0)
    if len(durations) < 2:
        raise SystemExit(f"h2load logged {len(durations)} completed request(s):\n{out.stdout}")
    q = statistics.quantiles(durations, n=100)
    rate = next(float(x.split(",")[1].split()[0]) for x in out.stdout.splitlines() if x.startswith("finished in"))
    return Load(rate, len(durations), failed, q[49], q[98], cut)


# ------------------------------------------------------------------------------ CPU accounting


@dataclass(frozen=True)
class Group:
    """Processes whose CPU counts together: ``pid`` alone ("self"), its descendants ("children"),
    both ("tree"), or only its main thread ("thread": an event loop). For rr, whose fronts may be
    several processes: "python" (``pid`` and its non-PHP descendants: supervisor and fronts), their
    main threads ("loops"), and "php" (its PHP descendants)."""

    pid: int
    mode: str = "self"


@dataclass
class Cpu:
    """User and system CPU seconds of named groups, and of this script's waited-for children."""

    user: dict[str, float] = field(default_factory=dict)
    system: dict[str, float] = field(default_factory=dict)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu({k: v - other.user.get(k, 0.0) for k, v in self.user.items()},
                   {k: v - other.system.get(k, 0.0) for k, v in self.system.items()})  # fmt: skip

    def __add__(self, other: Cpu) -> Cpu:
        keys = self.user.keys() | other.user.keys()
        return Cpu({k: self.user.get(k, 0.0) + other.user.get(k, 0.0) for k in keys},
                   {k: self.system.get(k, 0.0) + other.system.get(k, 0.0) for k in keys})  # fmt: skip

    def total(self, name: str) -> float:
        return self.user.get(name, 0.0) + self.system.get(name, 0.0)


def _is_php(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.name().startswith("php")
    return False


def _main_thread(proc: psutil.Process) -> tuple[float, float]:
    with contextlib.suppress(psutil.NoSuchProcess):
        th = next((t for t in proc.threads() if t.id == proc.pid), None)
        if th:
            return th.user_time, th.system_time
    return 0.0, 0.0


def _times(proc: psutil.Process, mode: str) -> tuple[float, float]:
    if mode == "thread":
        return _main_thread(proc)
    procs = family(proc.pid, mode)
    if mode == "loops":
        loops = [_main_thread(p) for p in procs]
        return sum(u for u, _ in loops), sum(s for _, s in loops)
    user = system = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            user, system = user + t.user, system + t.system
    return user, system


def cpu_now(groups: dict[str, Group], load_name: str = "load") -> Cpu:
    """A snapshot; ``load_name`` gets RUSAGE_CHILDREN (the wrk/h2load runs this script waited for)."""
    cpu = Cpu()
    for name, g in groups.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            cpu.user[name], cpu.system[name] = _times(psutil.Process(g.pid), g.mode)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.user[load_name], cpu.system[load_name] = ru.ru_utime, ru.ru_stime
    return cpu


def rss_mib(pid: int, mode: str = "self") -> float:
    """Resident memory of a process, MiB; ``mode`` as in :class:`Group` ("children": its
    descendants; "python": rr's supervisor and fronts; "php": its PHP workers)."""
    total = 0
    for p in family(pid, mode):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


def family(pid: int, mode: str) -> list[psutil.Process]:
    """The processes of ``pid`` that a figure of ``mode`` counts (see :class:`Group`; "loops":
    the same processes as "python")."""
    proc = psutil.Process(pid)
    kids = proc.children(recursive=True) if mode != "self" else []
    return {
        "self": [proc], "children": kids, "tree": [proc, *kids],
        "python": [proc, *(p for p in kids if not _is_php(p))], "php": [p for p in kids if _is_php(p)],
    }["python" if mode == "loops" else mode]  # fmt: skip


def mapped(pid: int, needle: str) -> bool:
    """Whether a shared object whose path contains ``needle`` is loaded in the process."""
    with contextlib.suppress(psutil.Error):
        return any(needle in m.path for m in psutil.Process(pid).memory_maps())
    return False
