"""What a benchmark figure depends on besides the code: the machine, the toolchain, and a calibration.

``report()`` lists versions (Python and its build, aiohttp and whether its C parser is there,
grpcio, uvloop, PHP and opcache, nginx, wrk, h2load, the reference RoadRunner), the CPU (model,
family/model/stepping, MHz, cores, frequency governor when readable), the kernel, the
virtualisation and the mitigations that make system calls dearer. ``calibrate()`` measures three
costs that explain most of a Python server's speed on a machine: a pure-Python loop (interpreter
and CPU speed), a system call, and a wake-up round trip between two processes over pipes (what
every request pays twice: front -> worker and back). ``Stat`` reads /proc/stat around a run for
the share of CPU time stolen by the hypervisor and the load average before and after.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from common import PHP, reference_rr

CALIBRATION = textwrap.dedent("""\
    import os, sys, time
    def loop():
        t = time.perf_counter(); s = 0
        for i in range(300_000):
            s += i * i % 7
        return (time.perf_counter() - t) / 300_000 * 1e9
    def syscall():
        fd = os.open(os.devnull, os.O_WRONLY); t = time.perf_counter()
        for _ in range(50_000):
            os.write(fd, b"x")
        d = time.perf_counter() - t; os.close(fd); return d / 50_000 * 1e6
    def pingpong():
        r1, w1 = os.pipe(); r2, w2 = os.pipe(); n = 5_000
        pid = os.fork()
        if pid == 0:
            for _ in range(n + 200):
                os.read(r1, 1); os.write(w2, b"y")
            os._exit(0)
        for _ in range(200):
            os.write(w1, b"x"); os.read(r2, 1)
        t = time.perf_counter()
        for _ in range(n):
            os.write(w1, b"x"); os.read(r2, 1)
        d = time.perf_counter() - t; os.waitpid(pid, 0); return d / n * 1e6
    print(min(loop() for _ in range(5)), min(syscall() for _ in range(5)), min(pingpong() for _ in range(5)))
""")


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc.__class__.__name__})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else f"unavailable (exit {out.returncode})"


def _read(path: str) -> str | None:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip()
    return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    info = _read("/proc/cpuinfo") or ""

    def field(key: str) -> str:
        m = re.search(rf"^{key}\s*:\s*(.*)$", info, re.M)
        return m.group(1) if m else "?"

    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "not readable"
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    return (f"{field('model name')} (family {field('cpu family')} model {field('model')} stepping "
            f"{field('stepping')}), {field('cpu MHz')} MHz, {cores} CPUs ({usable} usable), governor {governor}")  # fmt: skip


def _virtualisation() -> str:
    vendor = _read("/sys/class/dmi/id/sys_vendor") or _read("/sys/hypervisor/type") or "?"
    hyper = "hypervisor" in (_read("/proc/cpuinfo") or "")
    cmdline = _read("/proc/cmdline") or ""
    hints = [w for w in cmdline.split() if w.split("=")[0] in ("nested_pvm", "haltpoll.guest_halt_poll_ns", "mitigations")]
    return f"{'guest' if hyper else 'bare metal'}, vendor {vendor}" + (f", kernel args {' '.join(hints)}" if hints else "")


def _mitigations() -> str:
    found = []
    for name in ("spec_rstack_overflow", "spectre_v2", "retbleed", "meltdown"):
        text = _read(f"/sys/devices/system/cpu/vulnerabilities/{name}")
        if text and text != "Not affected":
            found.append(f"{name}: {text.split(';')[0]}")
    return "; ".join(found) or "none reported"


def _python() -> str:
    args = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    flags = [f for f in ("--enable-optimizations", "--with-lto", "--enable-shared") if f in args]
    debug = " DEBUG BUILD" if hasattr(sys, "gettotalrefcount") else ""
    return (f"{platform.python_version()} at {sys.executable}, which runs rr and the bare floors "
            f"(configure: {' '.join(flags) or 'no PGO/LTO flags'}){debug}")  # fmt: skip


def _aiohttp() -> str:
    try:
        from aiohttp import http_parser
    except ImportError:
        return "not installed"
    c = http_parser.HttpRequestParser.__module__.endswith("_http_parser")
    off = " (AIOHTTP_NO_EXTENSIONS set)" if os.environ.get("AIOHTTP_NO_EXTENSIONS") else ""
    return f"{_version('aiohttp')}, C parser {'yes' if c else 'NO: pure Python' + off}"


def _protobuf_backend() -> str:
    try:
        from google.protobuf.internal import api_implementation
    except ImportError:
        return "?"
    return str(api_implementation.Type())


def _php() -> str:
    version = _first_line([PHP, "-v"])
    opcache = _first_line([PHP, "-d", "opcache.enable_cli=1", "-r",
                           "echo function_exists('opcache_get_status') ? 'opcache loaded' : 'NO opcache';"])  # fmt: skip
    return f"{version}; {opcache}"


def report() -> list[tuple[str, str]]:
    """(what, value) lines describing this machine and toolchain."""
    ref = reference_rr()
    fpm = next((p for p in ("php-fpm8.2", "php-fpm") if _first_line(["which", p]).startswith("/")), "php-fpm")
    return [
        ("host", f"{socket.gethostname()}, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"),
        ("kernel", f"{platform.release()}; {_virtualisation()}"),
        ("mitigations", _mitigations()),
        ("CPU", _cpu()),
        ("python", _python()),
        ("packages", f"aiohttp {_aiohttp()}; grpcio {_version('grpcio')}; uvloop {_version('uvloop')}; "
                     f"protobuf {_version('protobuf')} ({_protobuf_backend()}); msgspec {_version('msgspec')}"),  # fmt: skip
        ("php", _php()),
        ("php-fpm", _first_line([fpm, "-v"])),
        ("nginx", _first_line(["nginx", "-v"])),
        ("wrk", _first_line(["wrk", "-v"])),
        ("h2load", _first_line(["h2load", "--version"])),
        ("RoadRunner", _first_line([str(ref), "--version"]) + f" ({ref})" if ref else "not installed"),
    ]


def describe() -> list[tuple[str, str]]:
    """The report and the calibration, printed; returned for a Markdown file."""
    lines = report() + [("calibration", calibrate())]
    for what, value in lines:
        print(f"{what:<12} {value}")
    return lines


def calibrate() -> str:
    """The three calibration costs, measured in a fresh interpreter (best of 5 each)."""
    out = subprocess.run([sys.executable, "-c", CALIBRATION], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return f"calibration failed: {out.stderr.strip()[-300:]}"
    loop_ns, sys_us, pp_us = (float(x) for x in out.stdout.split())
    return (f"python loop {loop_ns:.0f} ns/iteration, write(2) {sys_us:.2f} µs, "
            f"pipe wake-up round trip between two processes {pp_us:.1f} µs")  # fmt: skip


@dataclass
class Stat:
    """/proc/stat and the load average at one moment."""

    ticks: list[int]
    load: tuple[float, float, float]

    @classmethod
    def now(cls) -> Stat:
        first = (_read("/proc/stat") or "cpu 0").splitlines()[0].split()[1:]
        return cls([int(x) for x in first], os.getloadavg())

    def since(self, before: Stat) -> str:
        d = [a - b for a, b in zip(self.ticks, before.ticks, strict=False)]
        total = sum(d) or 1
        steal = d[7] / total * 100 if len(d) > 7 else 0.0
        busy = (total - d[3] - (d[4] if len(d) > 4 else 0)) / total * 100
        return (f"load average {before.load[0]:.2f} before, {self.load[0]:.2f} after; "
                f"CPUs {busy:.0f} % busy, {steal:.1f} % stolen by the hypervisor")  # fmt: skip
