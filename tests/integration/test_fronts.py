"""``server.num_fronts``: real ``rr serve`` processes whose fronts share the gRPC and HTTP ports.

Each test runs the real command line, with real PHP workers, several grpcio channels and HTTP
connections (the kernel spreads connections, not calls, over the fronts), and the real RPC endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import grpc
import psutil
import pytest

from rrgrpc.goridge.rpc import RpcClient, RpcError
from tests.helpers import ROOT, eventually, free_port, kill_tree, no_leftover_workers_fixture, php_cmd
from tests.integration.test_grpc import Echo, PingRequest, SleepRequest

pytestmark = [pytest.mark.php, pytest.mark.slow]
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"


@dataclass
class Rr:
    proc: asyncio.subprocess.Process
    rpc: str
    grpc: str
    http: str
    lines: list[str] = field(default_factory=list)

    def fronts(self) -> list[psutil.Process]:
        return [p for p in psutil.Process(self.proc.pid).children() if "--front" in p.cmdline()]

    def workers_of(self, front: psutil.Process) -> set[int]:
        return {p.pid for p in front.children() if "php" in p.name()}

    def output(self) -> str:
        return "".join(self.lines)


def rr_yaml(
    tmp_path: Path, fronts: object, *, grpc_workers: int = 4, http_workers: int = 2, script: str = "grpc_echo.php",
    http_script: str = "http_echo.php", extra: str = "", php_flags: tuple[str, ...] = (), grpc_pool: str = "",
) -> tuple[str, int, int, int]:
    """A config with 2 fronts' worth of everything; ``php_flags`` go between ``php`` and the script;
    ``grpc_pool``: more entries of the grpc pool's flow mapping (", key: value")."""
    rpc, grpc_port, http_port = free_port(), free_port(), free_port()
    php, *rest = php_cmd(script)
    text = f"""
        version: "3"
        server:
          command: "{' '.join([php, *php_flags, *rest])}"
          num_fronts: {fronts}
        rpc:
          listen: tcp://127.0.0.1:{rpc}
        grpc:
          listen: tcp://127.0.0.1:{grpc_port}
          proto: [{ECHO_PROTO}]
          pool: {{num_workers: {grpc_workers}{grpc_pool}}}
        http:
          address: 127.0.0.1:{http_port}
          pool:
            num_workers: {http_workers}
            command: "{' '.join([php_cmd(http_script)[0], *php_flags, *php_cmd(http_script)[1:]])}"
    """
    (tmp_path / ".rr.yaml").write_text(textwrap.dedent(text) + textwrap.dedent(extra))
    return str(tmp_path / ".rr.yaml"), rpc, grpc_port, http_port


async def _pump(proc: asyncio.subprocess.Process, into: list[str]) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        into.append(line.decode())


@contextlib.asynccontextmanager
async def rr_serve(
    tmp_path: Path, fronts: object = 2, env: dict[str, str] | None = None, args: tuple[str, ...] = (), **kw: Any,
) -> AsyncIterator[Rr]:
    """``rr serve`` on a fresh config (``env`` added to its environment, so its workers'; ``args``
    after ``serve``); yields once it printed that it serves; SIGTERM at the end unless the test ended it."""
    path, rpc, grpc_port, http_port = rr_yaml(tmp_path, fronts, **kw)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", path, "serve", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )
    rr = Rr(proc, f"tcp://127.0.0.1:{rpc}", f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}")
    pump = asyncio.create_task(_pump(proc, rr.lines))
    try:
        await eventually(lambda: "rrgrpc server started" in rr.output() or proc.returncode is not None, timeout=30)
        assert proc.returncode is None, rr.output()
        yield rr
        if proc.returncode is None:  # the test did not stop it itself: a graceful stop, exit code 0
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, rr.output()
    finally:
        await kill_tree(proc)
        await asyncio.wait_for(pump, 10)


#: Connections that the tests asserting "both fronts answered" open: the kernel picks a front per
#: connection by a hash, so all of them land on one front in 1 run of 2**(n-1) (12: 1 in 2048).
SPREAD: Final = 24


async def grpc_pids(target: str, channels: int = SPREAD) -> set[int]:
    """The worker pids that answer one Ping on each of ``channels`` separate connections."""
    pids: set[int] = set()
    for i in range(channels):
        # a distinct channel argument: grpcio would otherwise share one connection between channels
        async with grpc.aio.insecure_channel(target, options=(("rrgrpc.test.channel", i),)) as channel:
            reply = await Echo(channel).Ping(PingRequest(msg="hi"), timeout=10)
            pids.add(int(reply.pid))
    return pids


async def http_pids(base: str, connections: int = SPREAD) -> set[int]:
    pids: set[int] = set()
    for _ in range(connections):
        async with aiohttp.ClientSession() as session, session.get(f"{base}/slow?ms=0") as resp:
            assert resp.status == 200
            pids.add(int(await resp.text()))
    return pids


async def test_two_fronts_share_the_grpc_and_http_ports_and_stop_cleanly(tmp_path: Path) -> None:
    async with rr_serve(tmp_path) as rr:
        fronts = rr.fronts()
        assert len(fronts) == 2
        owned = [rr.workers_of(f) for f in fronts]
        assert all(len(w) == 3 for w in owned)  # 2 of 4 gRPC workers + 1 of 2 HTTP workers each
        for answered in (await grpc_pids(rr.grpc), await http_pids(rr.http)):
            # every answer came from a worker of a front, and both fronts answered
            assert answered <= owned[0] | owned[1]
            assert answered & owned[0] and answered & owned[1]
    assert "exited with" not in rr.output()


async def test_one_front_runs_in_one_process(tmp_path: Path) -> None:
    async with rr_serve(tmp_path, fronts=1) as rr:
        assert rr.fronts() == []
        children = psutil.Process(rr.proc.pid).children()
        assert len(children) == 6 and all("php" in c.name() for c in children)
        assert len(await grpc_pids(rr.grpc, 2)) >= 1


async def test_a_data_port_in_use_is_one_line(tmp_path: Path) -> None:
    # sent: a config whose grpc.listen port another socket listens on; failed: the start, exit 1,
    # with the one line naming key, address and file; no front was spawned
    path, _, grpc_port, _ = rr_yaml(tmp_path, 2)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even a socket that shares
        taken.bind(("127.0.0.1", grpc_port))
        taken.listen()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rrgrpc", "-c", path, "serve",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    errors = [line for line in out.decode().splitlines() if "\tINFO\t" not in line and "\tDEBUG\t" not in line]
    assert errors == [f"rr: error: {path}: grpc.listen: tcp://127.0.0.1:{grpc_port} is already in use"]


@pytest.mark.parametrize("value", ["0", "many", "-2"])
async def test_a_bad_num_fronts_is_one_line(tmp_path: Path, value: str) -> None:
    path, *_ = rr_yaml(tmp_path, value)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", path, "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = out.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rr: error: {path}: ") and "server.num_fronts" in lines[0], lines


async def test_second_signal_kills_every_process_below_rr(tmp_path: Path) -> None:
    async with rr_serve(tmp_path) as rr, grpc.aio.insecure_channel(rr.grpc) as channel:
        below = psutil.Process(rr.proc.pid).children(recursive=True)
        assert len(below) == 8  # 2 fronts, 6 PHP workers
        slow = asyncio.ensure_future(Echo(channel).Sleep(SleepRequest(ms=20_000), timeout=30))
        await eventually(lambda: busy(rr), timeout=10)  # the graceful stop now has a call to drain
        rr.proc.send_signal(signal.SIGINT)
        await eventually(lambda: "stopping gracefully" in rr.output())  # two pending SIGINTs would be one
        rr.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(rr.proc.wait(), 30) == 1
        await eventually(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in below), 10)
        with pytest.raises(grpc.aio.AioRpcError):
            await slow  # its front was killed under it
    assert "exit forced" in rr.output()


async def test_a_front_never_outlives_its_supervisor(tmp_path: Path) -> None:
    # sent: SIGKILL to the supervisor (it can clean nothing up); then every front sees EOF on its
    # control pair, stops gracefully and takes its PHP workers with it
    async with rr_serve(tmp_path) as rr:
        below = psutil.Process(rr.proc.pid).children(recursive=True)
        rr.proc.kill()
        await rr.proc.wait()
        await eventually(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in below), 30)


async def busy(rr: Rr, plugin: str = "grpc") -> int:
    """How many of ``plugin``'s workers execute a request now (``informer.Activity``)."""
    async with await RpcClient.connect(rr.rpc) as client:
        return len((await client.call("informer.Activity", plugin))["busy"])


def _front_column(rows: list[dict[str, Any]]) -> set[int]:
    return {int(r["front"]) for r in rows}


async def test_informer_lists_every_front_s_workers(tmp_path: Path) -> None:
    async with rr_serve(tmp_path) as rr, await RpcClient.connect(rr.rpc) as client:
        grpc_rows = (await client.call("informer.Workers", "grpc"))["workers"]
        http_rows = (await client.call("informer.Workers", "http"))["workers"]
        fronts = rr.fronts()
        assert len(grpc_rows) == 4 and len(http_rows) == 2
        assert {r["pid"] for r in grpc_rows + http_rows} == rr.workers_of(fronts[0]) | rr.workers_of(fronts[1])
        assert _front_column(grpc_rows) == _front_column(http_rows) == {0, 1}


async def test_rr_workers_shows_the_front_of_each_worker(tmp_path: Path) -> None:
    async with rr_serve(tmp_path) as rr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rrgrpc", "-c", str(tmp_path / ".rr.yaml"), "workers", "grpc",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        )
        out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        assert proc.returncode == 0, out
        assert "FRONT" in out
        fronts = rr.fronts()
        for index, front in enumerate(fronts):
            for pid in rr.workers_of(front):
                row = next((line for line in out.splitlines() if f" {pid} " in line), "")
                if "ready" in row:  # a gRPC worker (the front's HTTP worker is not in this table)
                    assert row.split("│")[2].strip() == str(index), row


async def _load(rr: Rr, stop: asyncio.Event, counts: dict[str, int], failures: list[str]) -> None:
    """Calls from 6 gRPC channels and 4 HTTP connections at once until ``stop``."""

    async def grpc_client(i: int) -> None:
        async with grpc.aio.insecure_channel(rr.grpc, options=(("rrgrpc.test.channel", i),)) as channel:
            echo = Echo(channel)
            while not stop.is_set():
                try:
                    await echo.Ping(PingRequest(msg="x"), timeout=20)
                    counts["grpc"] += 1
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"grpc {exc.code().name}: {exc.details()}")

    async def http_client() -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    async with session.get(f"{rr.http}/slow?ms=2") as resp:
                        await resp.read()
                        if resp.status == 200:
                            counts["http"] += 1
                        else:
                            failures.append(f"http {resp.status}")
                except aiohttp.ClientError as exc:
                    failures.append(f"http {exc!r}")

    await asyncio.gather(*(grpc_client(i) for i in range(6)), *(http_client() for _ in range(4)))


async def _worker_pids(client: RpcClient, plugin: str) -> set[int]:
    return {int(r["pid"]) for r in (await client.call("informer.Workers", plugin))["workers"]}


async def test_reset_and_sigusr2_across_fronts_fail_no_call(tmp_path: Path) -> None:
    # sent: Pings on 6 channels and GETs on 4 connections, while every front's workers are replaced
    # twice (rr reset over RPC for grpc and http, then SIGUSR2); failed: nothing
    async with rr_serve(tmp_path) as rr, await RpcClient.connect(rr.rpc) as client:
        stop = asyncio.Event()
        counts = {"grpc": 0, "http": 0}
        failures: list[str] = []
        load = asyncio.create_task(_load(rr, stop, counts, failures))
        await eventually(lambda: counts["grpc"] > 20 and counts["http"] > 20, timeout=20)
        before = {p: await _worker_pids(client, p) for p in ("grpc", "http")}
        assert list(await asyncio.gather(client.call("resetter.Reset", "grpc"), client.call("resetter.Reset", "http"))) == [True, True]
        after_rpc = {p: await _worker_pids(client, p) for p in ("grpc", "http")}
        rr.proc.send_signal(signal.SIGUSR2)

        async def replaced_again() -> bool:  # both plugins, on both fronts (http logs no "workers replaced")
            now = {p: await _worker_pids(client, p) for p in ("grpc", "http")}
            return all(not now[p] & after_rpc[p] for p in now)

        await eventually(replaced_again, timeout=30)
        seen = dict(counts)
        await eventually(lambda: counts["grpc"] > seen["grpc"] + 20 and counts["http"] > seen["http"] + 20, timeout=20)
        stop.set()
        await asyncio.wait_for(load, 30)
        after_usr2 = {p: await _worker_pids(client, p) for p in ("grpc", "http")}
    assert failures == []
    for plugin in ("grpc", "http"):
        assert len(after_rpc[plugin]) == len(before[plugin]) and not after_rpc[plugin] & before[plugin]
        assert not after_usr2[plugin] & after_rpc[plugin]


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_add_and_remove_worker_balance_the_fronts(tmp_path: Path) -> None:
    async with rr_serve(tmp_path, grpc_workers=3) as rr, await RpcClient.connect(rr.rpc) as client:

        async def per_front() -> list[int]:
            rows = (await client.call("informer.Workers", "grpc"))["workers"]
            return [sum(1 for r in rows if r["front"] == i) for i in (0, 1)]

        assert await per_front() == [2, 1]
        assert await client.call("informer.AddWorker", "grpc") is False
        assert await per_front() == [2, 2]  # to the front with the fewest
        assert await client.call("informer.AddWorker", "grpc") is False
        assert sorted(await per_front()) == [2, 3]
        assert await client.call("informer.RemoveWorker", "grpc") is False
        # from the front with the most (a removed worker may finish its stop after the reply)
        await eventually(lambda: _is(per_front(), [2, 2]), timeout=10)


async def test_a_front_killed_under_load_fails_only_its_own_calls_and_comes_back(tmp_path: Path) -> None:
    # sent: Pings on 8 gRPC channels and GETs on 4 HTTP connections; then SIGKILL to front 0.
    # failed: only calls on connections that front 0 served (gRPC UNAVAILABLE, HTTP a broken
    # connection); every other call succeeds; front 0 comes back, serves, its PHP workers are gone
    async with rr_serve(tmp_path) as rr:
        fronts = rr.fronts()
        owner = {pid: i for i, f in enumerate(fronts) for pid in rr.workers_of(f)}
        victim, victim_workers = fronts[0], rr.workers_of(fronts[0])
        stop = asyncio.Event()
        ok = {0: 0, 1: 0, -1: 0}  # answers by the front whose worker gave them (-1: the new front 0)
        failures: list[tuple[int, str]] = []  # (front the connection was on, what failed)

        def served_by(pid: int) -> int:
            return owner.get(pid, -1)

        on: dict[str, int] = {}  # client -> the front that served its last answer

        async def grpc_client(i: int) -> None:
            me = f"grpc {i}"
            async with grpc.aio.insecure_channel(rr.grpc, options=(("rrgrpc.test.channel", i),)) as channel:
                echo = Echo(channel)
                while not stop.is_set():
                    try:
                        on[me] = served_by(int((await echo.Ping(PingRequest(msg="x"), timeout=20)).pid))
                        ok[on[me]] += 1
                    except grpc.aio.AioRpcError as exc:
                        # until a call succeeds again, the channel is still the one whose connection died
                        failures.append((on.get(me, -2), f"grpc {exc.code().name}"))
                        await asyncio.sleep(0.05)

        async def http_client(i: int) -> None:
            me = f"http {i}"
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    try:
                        async with session.get(f"{rr.http}/slow?ms=2") as resp:
                            assert resp.status == 200
                            on[me] = served_by(int(await resp.text()))
                            ok[on[me]] += 1
                    except aiohttp.ClientError as exc:
                        failures.append((on.get(me, -2), f"http {type(exc).__name__}"))

        load = asyncio.gather(*(grpc_client(i) for i in range(8)), *(http_client(i) for i in range(4)))
        await eventually(lambda: len(on) == 12 and ok[0] > 20 and ok[1] > 20, timeout=20)
        victim.kill()
        await eventually(lambda: "restarted" in rr.output(), timeout=30)
        seen = dict(ok)
        await eventually(lambda: ok[1] > seen[1] + 50, timeout=20)
        stop.set()
        await asyncio.wait_for(load, 30)
        assert f"front 0 (pid {victim.pid}) was killed by SIGKILL; restarting" in rr.output()
        assert all(on == 0 for on, _ in failures), failures  # no connection of front 1 saw a failure
        assert {what for _, what in failures} <= {
            "grpc UNAVAILABLE", "http ServerDisconnectedError", "http ClientOSError",
            "http ClientConnectorError",  # its reconnect raced the dead listener (docs/data-plane.md §6)
        }, failures
        new = [f for f in rr.fronts() if f.pid != victim.pid and f.pid != fronts[1].pid]
        assert len(new) == 1 and len(rr.workers_of(new[0])) == 3
        owner.update({pid: -1 for pid in rr.workers_of(new[0])})
        await eventually(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                         for p in victim_workers), timeout=10)
        assert -1 in {served_by(p) for p in await grpc_pids(rr.grpc, 16)}  # the new front serves


async def test_a_front_that_cannot_come_back_stops_rr_with_the_cause(tmp_path: Path) -> None:
    # sent: SIGKILL to a front after its gRPC worker script was deleted; failed: its three boots,
    # then rr itself: exit code 1 and one error line naming the front and the cause
    script = tmp_path / "worker.php"
    script.write_text((ROOT / "tests" / "php" / "grpc_echo.php").read_text().replace("__DIR__ . '/../../php", f"'{ROOT}/php"))
    async with rr_serve(tmp_path, script=str(script)) as rr:
        script.unlink()
        rr.fronts()[1].kill()
        assert await asyncio.wait_for(rr.proc.wait(), 60) == 1
    errors = [line for line in rr.lines if line.startswith("rr: error:")]
    assert len(errors) == 1 and errors[0].startswith("rr: error: front 1 failed to start 3 times in a row: "), rr.output()


def _sample(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (any labels) in a Prometheus exposition."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{name}{{") or line.startswith(f"{name} "))


def observed(metrics_port: int, status_port: int) -> str:
    """The ``metrics`` and ``status`` sections on those ports (``rr_yaml(extra=...)``)."""
    return f"""
        metrics:
          address: 127.0.0.1:{metrics_port}
        status:
          address: 127.0.0.1:{status_port}
    """


async def test_metrics_and_status_span_every_front(tmp_path: Path) -> None:
    metrics_port, status_port = free_port(), free_port()
    async with rr_serve(tmp_path, extra=observed(metrics_port, status_port)) as rr, aiohttp.ClientSession() as session:
        answered = await grpc_pids(rr.grpc)  # one Ping on each of SPREAD connections
        fronts = rr.fronts()
        assert answered & rr.workers_of(fronts[0]) and answered & rr.workers_of(fronts[1])

        async def scrape() -> str:
            async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                return await resp.text()

        text = await scrape()  # the scrape pulls every front's counts first: the sum over both fronts
        assert f'rr_grpc_request_total{{grpc_method="/echo.v1.Echo/Ping",status_code="OK"}} {SPREAD}.0' in text, text
        assert 'rr_fronts_up{front="0"} 1.0' in text and 'rr_fronts_up{front="1"} 1.0' in text
        assert _sample(text, "rr_grpc_total_workers") == 4 and _sample(text, "rr_http_total_workers") == 2
        for path in ("/health?plugin=grpc", "/ready?plugin=grpc", "/health?plugin=http", "/ready?plugin=http"):
            async with session.get(f"http://127.0.0.1:{status_port}{path}") as resp:
                assert resp.status == 200, (path, await resp.text())



async def test_a_reset_that_fails_on_one_front_names_it_and_the_others_finish(tmp_path: Path) -> None:
    # sent: resetter.Reset grpc, and SIGKILL to front 0 while it replaces its workers; failed: the
    # reset, with an error naming front 0, its pid and how it ended; front 1's reset finished
    slow_boot = tmp_path / "slow-boot"  # while it exists, a new fault.php worker sleeps its ms first
    async with rr_serve(tmp_path, env={"FAULT_BOOT_DELAY": str(slow_boot)}, script="fault.php") as rr, \
            await RpcClient.connect(rr.rpc) as client:
        victim = rr.fronts()[0]
        slow_boot.write_text("1500")  # the reset is still booting front 0's new workers when the kill lands
        reset = asyncio.ensure_future(client.call("resetter.Reset", "grpc"))
        await eventually(lambda: '"front": 0' in "".join(x for x in rr.lines if "reset requested" in x), timeout=10)
        victim.kill()
        slow_boot.unlink()
        with pytest.raises(RpcError) as err:
            await asyncio.wait_for(reset, 30)
        assert f"reset of grpc failed on front 0 (pid {victim.pid}): the front was killed by SIGKILL; it is restarting" \
            in str(err.value), err.value
        assert "front 1" not in str(err.value)
        await eventually(lambda: "workers replaced" in "".join(x for x in rr.lines if '"front": 1' in x), timeout=10)
        await eventually(lambda: "front 0 restarted" in rr.output(), timeout=30)
