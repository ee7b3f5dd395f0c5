"""The differential harness: start a server from one ``.rr.yaml`` under a given ``rr`` binary,
collect its normalized answers (HTTP, gRPC, RPC, ``/metrics``, ``/health``), diff two collections.

The binary is an argv prefix: :data:`OURS` (``python -m rrgrpc``) or the reference RoadRunner
(:func:`reference_binary`: ``$RR_REFERENCE_BIN``, else what ``scripts/install-roadrunner.sh``
installed). Both run the same config (:data:`CONFIG`) and the same PHP worker
(``tests/php/differential.php``). Answers are normalized (pids, ports, dates, counters removed) so
that only behaviour is compared; :func:`diff` returns one readable line per difference.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import textwrap
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from grpc_status import rpc_status

from rrgrpc.goridge.rpc import RpcClient
from tests.helpers import ROOT, free_port, kill_tree, php_cmd, sys

REFERENCE_VERSION = "v2025.1.15"
REFERENCE_CACHE = ROOT / ".cache" / "roadrunner" / REFERENCE_VERSION / "rr"
OURS: tuple[str, ...] = (sys.executable, "-m", "rrgrpc")
NO_REFERENCE = (
    f"no reference RoadRunner binary: set RR_REFERENCE_BIN or run `bash scripts/install-roadrunner.sh` "
    f"(installs {REFERENCE_VERSION} into {REFERENCE_CACHE.relative_to(ROOT)})"
)


def reference_binary() -> tuple[str, ...] | None:
    """The reference ``rr`` as an argv prefix, or None when it is not installed."""
    path = os.environ.get("RR_REFERENCE_BIN") or str(REFERENCE_CACHE)
    return (path,) if os.access(path, os.X_OK) else None


#: One config for both binaries: HTTP and gRPC pools of the same PHP script, RPC, metrics, status.
CONFIG = textwrap.dedent("""\
    version: "3"
    server:
      command: "{command}"
    http:
      address: 127.0.0.1:{http}
      max_request_size: 1
      middleware: [http_metrics]
      pool:
        num_workers: 1
    grpc:
      listen: tcp://127.0.0.1:{grpc}
      proto: ["{proto}"]
      pool:
        num_workers: 1
    rpc:
      listen: tcp://127.0.0.1:{rpc}
    metrics:
      address: 127.0.0.1:{metrics}
    status:
      address: 127.0.0.1:{status}
    logs:
      level: error
    """)


@dataclass
class Server:
    """A running ``rr serve``: its ports and process."""

    binary: tuple[str, ...]
    ports: dict[str, int]
    proc: asyncio.subprocess.Process
    log: Path


def write_config(workdir: Path) -> tuple[Path, dict[str, int]]:
    ports = {name: free_port() for name in ("http", "grpc", "rpc", "metrics", "status")}
    text = CONFIG.format(
        command=" ".join(php_cmd("differential.php")), proto=ROOT / "proto" / "echo" / "v1" / "echo.proto", **ports
    )
    path = workdir / ".rr.yaml"
    path.write_text(text)
    return path, ports


@asynccontextmanager
async def serve(binary: Sequence[str], workdir: Path, *overrides: str) -> AsyncIterator[Server]:
    """``binary serve -c .rr.yaml [-o OVERRIDE ...]`` in ``workdir`` until every pool has a worker;
    stopped (or killed) at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg, ports = write_config(workdir)
    log = workdir / "rr.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *binary, "serve", "-c", str(cfg), *(a for o in overrides for a in ("-o", o)), cwd=workdir, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    server = Server(tuple(binary), ports, proc, log)
    try:
        await _until_ready(server)
        yield server
    finally:
        await stop(server)


async def _until_ready(server: Server, budget: float = 60.0) -> None:
    async with asyncio.timeout(budget):
        while True:
            if server.proc.returncode is not None:
                raise AssertionError(f"{server.binary[-1]} serve exited {server.proc.returncode}: {server.log.read_text()}")
            with suppress(OSError, RuntimeError, asyncio.TimeoutError):
                async with rpc(server) as client:
                    counts = [len((await client.call("informer.Workers", p) or {}).get("workers") or []) for p in ("http", "grpc")]
                    if all(counts):
                        return
            await asyncio.sleep(0.1)


async def stop(server: Server) -> None:
    if server.proc.returncode is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.proc.wait(), 30)
        except TimeoutError:
            await kill_tree(server.proc)


@asynccontextmanager
async def rpc(server: Server) -> AsyncIterator[RpcClient]:
    async with await RpcClient.connect(f"tcp://127.0.0.1:{server.ports['rpc']}") as client:
        yield client


# ---------------------------------------------------------------------------------------------
# normalization

_VOLATILE_KEYS = frozenset({
    "pid", "counter", "created", "memoryUsage", "CPUPercent", "numExecs", "tmp_base", "Date", "date",
    "Traceparent", "Uber-Trace-Id", "grpc-timeout", "timeoutMs",
})


def scrub(value: Any, ports: dict[str, int]) -> Any:
    """Drop what differs between two runs of the same behaviour: pids, counters, times, our ports."""
    if isinstance(value, dict):
        return {k: scrub(v, ports) for k, v in sorted(value.items()) if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [scrub(v, ports) for v in value]
    if isinstance(value, str):
        for name, port in ports.items():
            value = value.replace(str(port), f"<{name}>")
        value = re.sub(r"boundary=[\w-]+", "boundary=<b>", value)
        return re.sub(r"127\.0\.0\.1:\d{4,5}\b", "127.0.0.1:<peer>", value)
    return value


# ---------------------------------------------------------------------------------------------
# collectors: each returns {case name: normalized answer}

#: (name, method, path, headers, body) — query, forms, multipart, cookies, repeated headers, streaming, errors, 413
HTTP_CASES: list[tuple[str, str, str, list[tuple[str, str]], Any]] = [
    ("hello", "GET", "/", [], None),
    ("query", "GET", "/echo?a=1&b[]=2&b[]=3&c[x]=y", [], None),
    ("form", "POST", "/echo", [], {"name": "ann", "tags[]": "x"}),
    ("json body", "POST", "/echo", [("Content-Type", "application/json")], b'{"k": [1, 2]}'),
    ("multipart", "POST", "/echo", [], "multipart"),
    ("cookies", "GET", "/echo", [("Cookie", "a=1; b=two")], None),
    ("repeated request headers", "GET", "/echo", [("X-Many", "1"), ("X-Many", "2")], None),
    ("repeated response headers", "GET", "/headers", [], None),
    ("status 201", "GET", "/status/201", [], None),
    ("streamed", "GET", "/stream?n=3&delay=1", [], None),
    ("worker error", "GET", "/error", [], None),
    ("not found", "GET", "/nosuch", [], None),
    ("413", "POST", "/echo", [("Content-Type", "application/octet-stream")], b"x" * (2 * 1024 * 1024)),
]
_HTTP_HEADERS = ("Content-Type", "Set-Cookie", "X-Multi", "No-Workers", "Content-Encoding")


async def http_answers(server: Server) -> dict[str, Any]:
    base = f"http://127.0.0.1:{server.ports['http']}"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for name, method, path, headers, body in HTTP_CASES:
            data: Any = body
            if body == "multipart":
                data = aiohttp.FormData()
                data.add_field("field", "value")
                data.add_field("file", b"file content", filename="a.txt", content_type="text/plain")
            async with session.request(method, base + path, headers=headers, data=data) as resp:
                text = await resp.text()
                try:
                    content: Any = json.loads(text)
                except ValueError:
                    content = text
                out[f"http {name}"] = scrub(
                    {
                        "status": resp.status,
                        "headers": {h: resp.headers.getall(h) for h in _HTTP_HEADERS if h in resp.headers},
                        "body": content,
                    },
                    server.ports,
                )
    return out


#: (name, method, request fields) of echo.v1.Echo
GRPC_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("ping", "Ping", {"msg": "hi"}),
    ("headers and trailers", "Meta", {"msg": "m", "mode": "split"}),
    ("fail with details", "Fail", {"code": 9, "message": "precondition", "with_details": True}),
    ("runtime error", "Fail", {"kind": "runtime", "message": "boom"}),
    ("unknown method", "Nosuch", {}),
]


async def grpc_answers(server: Server) -> dict[str, Any]:
    from google.protobuf import json_format, message_factory

    from rrgrpc.grpc.protos import load_protos

    pool = load_protos([str(ROOT / "proto" / "echo" / "v1" / "echo.proto")]).pool

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"echo.v1.{name}"))

    out: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.ports['grpc']}") as channel:
        for name, method, fields in GRPC_CASES:
            req_name = {"Nosuch": "Ping"}.get(method, method)
            request = cls(f"{req_name}Request")(**fields)
            call = channel.unary_unary(
                f"/echo.v1.Echo/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=cls(f"{req_name}Reply").FromString,
            )(request, timeout=20)
            answer: dict[str, Any] = {}
            try:
                answer["reply"] = json_format.MessageToDict(await call)
            except grpc.aio.AioRpcError as exc:
                status = rpc_status.from_call(exc)
                answer["code"] = exc.code().name
                answer["details"] = exc.details()
                if status is not None:
                    answer["status_details"] = [
                        {"type": d.type_url, "value": json_format.MessageToDict(cls("FailDetail").FromString(d.value))}
                        for d in status.details
                    ]
            answer["headers"] = {k: v for k, v in (await call.initial_metadata() or ()) if k.startswith("x-")}
            answer["trailers"] = {k: v for k, v in (await call.trailing_metadata() or ()) if k.startswith("x-")}
            out[f"grpc {name}"] = scrub(answer, server.ports)
    return out


RPC_CASES: list[tuple[str, Any]] = [
    ("informer.List", True),
    ("informer.Workers", "http"),
    ("informer.Workers", "nosuch"),
    ("resetter.List", True),
    ("resetter.Reset", "nosuch"),
    ("metrics.Declare", {"name": "diff_counter", "collector": {"namespace": "app", "type": "counter", "help": "h"}}),
    ("metrics.Add", {"name": "diff_counter", "value": 2}),
    ("metrics.Add", {"name": "undeclared", "value": 1}),
]


async def rpc_answers(server: Server) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with rpc(server) as client:
        for i, (method, arg) in enumerate(RPC_CASES):
            try:
                answer: Any = {"result": await client.call(method, arg)}
            except Exception as exc:  # noqa: BLE001 - the error text is the answer compared
                answer = {"error": type(exc).__name__, "message": str(exc)}
            out[f"rpc {i} {method} {json.dumps(arg)}"] = scrub(answer, server.ports)
    return out


async def observability_answers(server: Server) -> dict[str, Any]:
    """``/metrics``: the rr_* and app_* metric names with their label names; ``/health`` and ``/ready``."""
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.ports['metrics']}/metrics") as resp:
            names: dict[str, list[str]] = {}
            for line in (await resp.text()).splitlines():
                m = re.match(r"((?:rr|app)_[a-z_]+)(?:\{([^}]*)\})?\s", line)
                if m:
                    labels = sorted(re.findall(r'(\w+)="', m.group(2) or ""))
                    names[m.group(1)] = sorted(set(names.get(m.group(1), [])) | set(labels))
            out["metrics"] = names
        for path in ("/health?plugin=http", "/ready?plugin=grpc", "/health?plugin=nosuch", "/health"):
            async with session.get(f"http://127.0.0.1:{server.ports['status']}{path}") as resp:
                out[f"status {path}"] = scrub({"status": resp.status, "body": await resp.text()}, server.ports)
    return out


async def collect(server: Server) -> dict[str, Any]:
    """Every answer of ``server``, in a fixed order (RPC last: it declares a metric)."""
    answers = await http_answers(server)
    answers |= await grpc_answers(server)
    answers |= await observability_answers(server)
    answers |= await rpc_answers(server)
    return answers


def diff(ours: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """One line per case whose answers differ (or that only one side has)."""
    lines = []
    for case in sorted(set(ours) | set(reference)):
        a, b = ours.get(case, "<missing>"), reference.get(case, "<missing>")
        if a != b:
            lines.append(f"{case}: ours {json.dumps(a, sort_keys=True)[:400]} != reference {json.dumps(b, sort_keys=True)[:400]}")
    return lines
