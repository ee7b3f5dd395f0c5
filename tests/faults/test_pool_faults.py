"""Fault injection against the pool under load: real PHP workers behind real gRPC and HTTP servers.

Each scenario runs ``rr``'s gRPC and HTTP plugins with tests/php/fault.php workers, drives
concurrent client load over a real grpcio channel and real aiohttp client, injects one fault, and
then asserts what was sent, what failed (with which code), that nothing else failed, nothing was
lost (every request got an answer), and that the pool is back to its size with ready workers.
Every scenario prints one row of the fault table (run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from tests.helpers import eventually, free_port, no_leftover_workers_fixture, php_cmd, running_host
from tests.integration.test_grpc import ECHO_PROTO, Echo, PingRequest, grpc_target

pytestmark = pytest.mark.php
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running

CLIENT_BOUND = 20.0  # seconds a single request may take before the client counts it lost


@dataclass
class Rig:
    host: Any
    grpc: Any
    http: Any
    echo: Echo
    url: str
    session: aiohttp.ClientSession

    def plugin(self, name: str) -> Any:
        return self.grpc if name == "grpc" else self.http

    def pids(self, name: str) -> set[int]:
        return {w.pid for w in self.plugin(name).workers()}

    async def recovered(self, size: int, timeout: float = 15.0) -> bool:
        """Both pools are back to ``size`` live workers, all ready."""

        def check() -> bool:
            return all(
                len(ws := self.plugin(n).workers()) == size and all(w.status_str == "ready" for w in ws)
                for n in ("grpc", "http")
            )

        try:
            await eventually(check, timeout)
        except AssertionError:
            states = {n: [(w.pid, w.status_str) for w in self.plugin(n).workers()] for n in ("grpc", "http")}
            raise AssertionError(f"pools not back to {size} ready workers within {timeout}s: {states}") from None
        return True


@asynccontextmanager
async def rig(
    workers: int = 4, *, env: dict[str, str] | None = None, metrics: str = "", debug_log: Path | None = None, **pool: Any
) -> AsyncIterator[Rig]:
    """rr with gRPC and HTTP plugins over fault.php workers, a grpcio channel and an aiohttp session
    (and the metrics plugin on ``metrics``, host:port, when given; JSON logs at debug level in
    ``debug_log``, when given)."""
    port = free_port()
    pool_section = {"num_workers": workers, "allocate_timeout": "10s", "destroy_timeout": "5s", **pool}
    raw = {
        "version": "3",
        "server": {"command": php_cmd("fault.php"), "env": env or {}},
        "grpc": {"listen": "tcp://127.0.0.1:0", "proto": [str(ECHO_PROTO)], "pool": dict(pool_section)},
        "http": {"address": f"127.0.0.1:{port}", "pool": dict(pool_section)},
    }
    if metrics:
        raw["metrics"] = {"address": metrics}
    if debug_log is not None:
        raw["logs"] = {"level": "debug", "encoding": "json", "output": str(debug_log)}
    async with running_host(raw) as host:
        plugins = {p.name: p for p in host.plugins}
        async with grpc.aio.insecure_channel(grpc_target(plugins["grpc"].address)) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
            async with aiohttp.ClientSession() as session:
                yield Rig(host, plugins["grpc"], plugins["http"], Echo(channel), f"http://127.0.0.1:{port}", session)


@dataclass
class Tally:
    """What a scenario sent and what came back, per code (gRPC status name or HTTP status)."""

    scenario: str
    sent: int = 0
    ok: int = 0
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    lost: int = 0
    texts: list[str] = field(default_factory=list)

    def row(self, recovered: bool) -> str:
        codes = ", ".join(f"{k}×{v}" for k, v in sorted(self.failed.items())) or "-"
        return f"| {self.scenario} | {self.sent} | {self.ok} | {sum(self.failed.values())} ({codes}) | {self.lost} | {'yes' if recovered else 'NO'} |"


async def grpc_call(r: Rig, t: Tally, msg: str, timeout: float = CLIENT_BOUND) -> None:
    t.sent += 1
    try:
        reply = await r.echo.Ping(PingRequest(msg=msg), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED and timeout >= CLIENT_BOUND and "exec_ttl" not in (exc.details() or ""):
            t.lost += 1
        else:
            t.failed[f"grpc {exc.code().name}"] += 1
            t.texts.append(exc.details() or "")
        return
    assert reply.msg == msg
    t.ok += 1


async def http_call(r: Rig, t: Tally, path: str) -> None:
    t.sent += 1
    try:
        async with asyncio.timeout(CLIENT_BOUND):
            async with r.session.get(f"{r.url}/{path}") as resp:
                text = await resp.text()
    except TimeoutError:
        t.lost += 1
        return
    if resp.status == 200 and text.startswith("ok "):
        t.ok += 1
    else:
        t.failed[f"http {resp.status}"] += 1
        t.texts.append(text)


async def load(r: Rig, t: Tally, n: int, concurrency: int = 8, path: Callable[[int], str] = lambda i: f"req-{i}") -> None:
    """``n`` gRPC calls and ``n`` HTTP requests, ``concurrency`` of each in flight at a time."""
    sem = asyncio.Semaphore(2 * concurrency)

    async def one(call: Awaitable[None]) -> None:
        async with sem:
            await call

    calls = [one(grpc_call(r, t, path(i))) for i in range(n)] + [one(http_call(r, t, path(i))) for i in range(n)]
    await asyncio.gather(*calls)


def report(t: Tally, recovered: bool) -> None:
    print("\n" + t.row(recovered))


# -------------------------------------------------------------------------------- the scenarios


async def test_exit_after_n_loses_no_request() -> None:
    """A worker that exit(0)s after 50 answers (a PHP memory guard) costs no request."""
    t = Tally("exit(0) after 50 requests, 4 workers, 400 gRPC + 400 HTTP")
    async with rig(4, env={"FAULT_EXIT_AFTER": "50"}) as r:
        await load(r, t, 400)
        recovered = await r.recovered(4)
    report(t, recovered)
    assert (t.sent, t.ok, dict(t.failed), t.lost) == (800, 800, {}, 0), t.texts[:3]


def logged(path: Path) -> list[str]:
    """The request markers the PHP workers logged, in the order they received them."""
    return [line.split()[1] for line in path.read_text().splitlines()] if path.exists() else []


async def abandoned_http(r: Rig, marker: str, after: float) -> None:
    """Send a GET over a raw socket and close the connection ``after`` seconds later, unanswered."""
    port = int(r.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /{marker} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(after)
    writer.close()
    await writer.wait_closed()


async def test_requests_abandoned_while_queued_never_run(tmp_path: Path) -> None:
    """Behind one busy worker per pool: gRPC calls whose deadline passes, gRPC calls the client cancels
    and HTTP requests whose client disconnects, all while queued, never reach PHP; fresh requests
    sent afterwards run right after the slow ones."""
    log = tmp_path / "requests.log"
    t = Tally("client gone while queued: 4 deadlines + 4 cancels (gRPC), 8 disconnects (HTTP)")
    metrics = f"127.0.0.1:{free_port()}"
    async with rig(1, env={"FAULT_LOG": str(log)}, metrics=metrics) as r:
        slow = [
            asyncio.create_task(grpc_call(r, t, "req-slow sleep:3000")),
            asyncio.create_task(http_call(r, t, "req-slow/sleep:3000")),
        ]
        await eventually(lambda: logged(log).count("req-slow") == 2)
        deadlines = [grpc_call(r, t, f"req-deadline-{i}", timeout=0.3) for i in range(4)]
        cancels = [r.echo.Ping(PingRequest(msg=f"req-cancel-{i}"), timeout=10) for i in range(4)]
        await asyncio.gather(*deadlines, *(abandoned_http(r, f"req-gone-{i}", 0.3) for i in range(8)), asyncio.sleep(0.3))
        for call in cancels:
            call.cancel()
        t.sent += len(cancels)
        t.failed["grpc CANCELLED (by the client)"] += len(cancels)
        t.sent += 8
        t.failed["http - (client disconnected)"] += 8
        await asyncio.gather(grpc_call(r, t, "req-fresh"), http_call(r, t, "req-fresh"), *slow)
        recovered = await r.recovered(1)
        async with r.session.get(f"http://{metrics}/metrics") as resp:
            exposition = await resp.text()
        dropped = [line for line in exposition.splitlines() if "_requests_dropped_total" in line and line[0] != "#"]
    report(t, recovered)
    expected = {"grpc DEADLINE_EXCEEDED": 4, "grpc CANCELLED (by the client)": 4, "http - (client disconnected)": 8}
    assert (t.sent, t.ok, dict(t.failed), t.lost) == (20, 4, expected, 0), t.texts[:3]
    assert sorted(logged(log)) == ["req-fresh", "req-fresh", "req-slow", "req-slow"]
    assert sorted(dropped) == ["rr_grpc_requests_dropped_total 8.0", "rr_http_requests_dropped_total 8.0"]


# -------------------------------------------------------------- one victim request per pool, under load

Inject = Callable[[Rig, dict[str, int]], Awaitable[None]]


async def under_load(r: Rig, t: Tally, log: Path, victim: str, inject: Inject, n: int = 200) -> None:
    """Load both pools; send one victim request per pool (``victim`` holds its commands for
    fault.php); once PHP has logged both, ``inject`` the fault given {"grpc": pid, "http": pid} of
    the workers running them; wait for every request to be answered."""
    loader = asyncio.create_task(load(r, t, n, path=lambda i: f"req-{i}/sleep:2"))
    victims = [
        asyncio.create_task(grpc_call(r, t, f"req-victim-grpc {victim}")),
        asyncio.create_task(http_call(r, t, f"req-victim-http/{victim}")),
    ]

    def pids() -> dict[str, int]:
        lines = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
        found = {marker.rsplit("-", 1)[1]: int(pid) for pid, marker in lines if marker.startswith("req-victim-")}
        return found if len(found) == 2 else {}

    await inject(r, await eventually(pids, 10))
    await asyncio.gather(loader, *victims)


def kill(sig: signal.Signals) -> Inject:
    async def inject(r: Rig, pids: dict[str, int]) -> None:
        for pid in pids.values():
            os.kill(pid, sig)

    return inject


def pause(seconds: float) -> Inject:
    async def inject(r: Rig, pids: dict[str, int]) -> None:
        for pid in pids.values():
            os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(seconds)
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)

    return inject


async def nothing(r: Rig, pids: dict[str, int]) -> None:
    pass


async def reset_both(r: Rig, pids: dict[str, int]) -> None:
    await asyncio.gather(r.grpc.reset(), r.http.reset())


async def hang_then_reset(r: Rig, pids: dict[str, int]) -> None:
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    await reset_both(r, pids)


ONE_EACH = 1  # one victim request per pool
# A victim that a fault stops must still be running when it lands, after the log poll of a loop that
# also serves the load: its sleep is long (it costs nothing, the fault ends it), but shorter than the
# exec_ttl or reset_timeout that would end it without the fault.


@pytest.mark.parametrize(
    ("scenario", "victim", "inject", "pool", "failed", "text", "reasons"),
    [
        ("kill -9 of a busy worker", "sleep:3000", kill(signal.SIGKILL), {},
         {"grpc INTERNAL": ONE_EACH, "http 500": ONE_EACH}, "was killed by SIGKILL mid-request", {"errored": 2}),
        ("SIGSTOP 1 s of a busy worker, no exec_ttl", "sleep:100", pause(1.0), {}, {}, "", {}),
        ("SIGSTOP of a busy worker, exec_ttl 2s", "sleep:1500", kill(signal.SIGSTOP), {"supervisor": {"exec_ttl": "2s"}},
         {"grpc DEADLINE_EXCEEDED": ONE_EACH, "http 500": ONE_EACH}, "did not answer within exec_ttl (2s)", {"exec_ttl_reached": 2}),
        ("exit(5) mid-request", "exit-now", nothing, {},
         {"grpc INTERNAL": ONE_EACH, "http 500": ONE_EACH}, "exited with code 5 mid-request", {"errored": 2}),
        ("text on stdout mid-request", "print-now", nothing, {},
         {"grpc INTERNAL": ONE_EACH, "http 500": ONE_EACH}, "wrote text to stdout instead of a reply frame: 'debug output from PHP",
         {"errored": 2}),
        ("rr reset under load", "sleep:100", reset_both, {}, {}, "", {"reset": 8}),
        ("rr reset with a worker SIGSTOPped mid-request", "sleep:2000", hang_then_reset,
         {"reset_timeout": "3s", "destroy_timeout": "1s"},
         {"grpc INTERNAL": ONE_EACH, "http 500": ONE_EACH}, "was killed by SIGKILL mid-request", {"reset": 8}),
    ],
    ids=["kill9", "sigstop", "sigstop-exec-ttl", "exit-mid-request", "stdout-garbage", "reset", "reset-hung"],
)
async def test_fault_under_load(
    tmp_path: Path, scenario: str, victim: str, inject: Inject,
    pool: dict[str, Any], failed: dict[str, int], text: str, reasons: dict[str, int],
) -> None:
    """200 gRPC + 200 HTTP requests on 4 workers per pool, plus one victim request per pool hit by
    the fault: only the victims fail (with the codes given), nothing is lost, the pools recover,
    and the workers replaced were replaced for the reason given (the pool's debug line)."""
    log = tmp_path / "requests.log"
    t = Tally(f"{scenario}, 4 workers, 200 gRPC + 200 HTTP + 1 victim each")
    async with rig(4, env={"FAULT_LOG": str(log)}, debug_log=tmp_path / "rr.log", **pool) as r:
        before = r.pids("grpc") | r.pids("http")
        await under_load(r, t, log, victim, inject)
        recovered = await r.recovered(4)
        after = r.pids("grpc") | r.pids("http")
    report(t, recovered)
    assert (t.sent, t.ok + sum(failed.values()), dict(t.failed), t.lost) == (402, 402, failed, 0), t.texts
    grpc_texts = [x for x in t.texts if x]
    assert all(text in x for x in grpc_texts) and len(grpc_texts) == failed.get("grpc INTERNAL", 0) + failed.get(
        "grpc DEADLINE_EXCEEDED", 0
    ), grpc_texts
    lines = [json.loads(line) for line in (tmp_path / "rr.log").read_text().splitlines() if line.startswith("{")]
    assert collections.Counter(x["reason"] for x in lines if "leaves the pool" in x.get("msg", "")) == reasons
    if inject is reset_both or inject is hang_then_reset:
        assert not before & after, "every worker was replaced"
