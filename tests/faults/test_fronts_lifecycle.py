"""The multi-front data plane as users live it: real ``rr serve`` with ``server.num_fronts: 2``,
several gRPC channels and HTTP connections, real PHP workers, the real CLI (``rr workers``,
``rr reset``, ``rr stop``) and the status and metrics ports, under faults: workers that exit or are
killed, idle workers, a front killed, signals during a respawn, a boot that cannot succeed, resets
under load. Every test is bounded and leaves no PHP process and no front behind.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psutil
import pytest

from rrgrpc.goridge.rpc import RpcClient
from tests.helpers import eventually, free_port, kill_tree, no_leftover_workers_fixture
from tests.integration.test_fronts import Rr, _load, grpc_pids, http_pids, observed, rr_serve, rr_yaml
from tests.integration.test_grpc import Echo, PingRequest, SleepRequest

pytestmark = [pytest.mark.php, pytest.mark.slow]
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running


async def rr_cli(tmp_path: Path, *argv: str, timeout: float = 30) -> tuple[int, str, str]:
    """``rr -c .rr.yaml ARGV`` in ``tmp_path``: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(tmp_path / ".rr.yaml"), *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def workers_json(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """``rr workers --json``: the rows per plugin."""
    code, out, err = await rr_cli(tmp_path, "workers", "--json")
    assert code == 0, err
    return {name: v["workers"] for name, v in json.loads(out).items()}


def by_front(rows: list[dict[str, Any]]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for row in rows:
        out.setdefault(int(row["front"]), set()).add(int(row["pid"]))
    return out


def everything_below(rr: Rr) -> list[psutil.Process]:
    return psutil.Process(rr.proc.pid).children(recursive=True)


def fronts_of(rr_pid: int) -> list[psutil.Process]:
    """Every front of the rr with that pid, wherever it is now (its control directory names the pid)."""
    return [p for p in psutil.process_iter(["cmdline"]) if f"/rr-{rr_pid}-" in " ".join(p.info["cmdline"] or [])]


async def all_gone(procs: list[psutil.Process], rr_pid: int) -> None:
    """None of ``procs`` (the pids seen below rr) runs, and no front of rr does."""

    def gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs) and not fronts_of(rr_pid)

    await eventually(gone, timeout=15)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


async def test_workers_that_exit_on_their_own_lose_no_call(tmp_path: Path) -> None:
    # sent: 120 Pings on 8 channels and 60 GETs on 4 connections to workers that exit(0) after every
    # 3rd answer (a PHP memory guard), one gRPC worker per front; failed: nothing (a request that drew
    # the exiting worker used to draw the next one too, 10 times: INTERNAL); no front restarted
    async with rr_serve(tmp_path, env={"FAULT_EXIT_AFTER": "3"}, script="fault.php", http_script="fault.php",
                        grpc_workers=2, http_workers=2) as rr:
        fronts = {f.pid for f in rr.fronts()}
        answered: set[str] = set()

        async def channel(i: int) -> list[str]:
            async with grpc.aio.insecure_channel(rr.grpc, options=(("rrgrpc.test.channel", i),)) as ch:
                echo = Echo(ch)
                return [(await echo.Ping(PingRequest(msg=f"req-{i}-{n}"), timeout=20)).msg for n in range(15)]

        async def connection() -> list[int]:
            async with aiohttp.ClientSession() as session:
                out = []
                for _ in range(15):
                    async with session.get(f"{rr.http}/x", timeout=aiohttp.ClientTimeout(total=20)) as resp:
                        answered.add((await resp.text()).split()[1])
                        out.append(resp.status)
                return out

        replies = await asyncio.gather(*(channel(i) for i in range(8)), *(connection() for _ in range(4)))
        assert replies[:8] == [[f"req-{i}-{n}" for n in range(15)] for i in range(8)]
        assert replies[8:] == [[200] * 15] * 4
        assert len(answered) >= 10  # 60 answers, 3 per worker: the workers were replaced many times
        assert {f.pid for f in rr.fronts()} == fronts
    assert "; restarting" not in rr.output()  # no front exited


async def test_a_worker_killed_in_one_front_is_replaced_there_only(tmp_path: Path) -> None:
    # sent: Pings on 6 channels and GETs on 4 connections, and SIGKILL to a gRPC worker of front 0,
    # its pid taken from `rr workers`; failed: at most the one call that worker executed (INTERNAL,
    # "the PHP worker crashed during the call: worker N was killed by SIGKILL mid-request", as with one front); `rr workers` shows a new pid in front 0,
    # front 1's workers and both fronts are unchanged, and 12 channels' Pings all succeed
    async with rr_serve(tmp_path) as rr:
        fronts = {f.pid for f in rr.fronts()}
        stop = asyncio.Event()
        counts = {"grpc": 0, "http": 0}
        failures: list[str] = []
        load = asyncio.create_task(_load(rr, stop, counts, failures))
        await eventually(lambda: counts["grpc"] > 20 and counts["http"] > 20, timeout=20)
        before = by_front((await workers_json(tmp_path))["grpc"])
        victim = min(before[0])
        psutil.Process(victim).kill()

        async def replaced() -> dict[int, set[int]] | None:
            now = by_front((await workers_json(tmp_path))["grpc"])
            return now if len(now.get(0, ())) == 2 and victim not in now[0] else None

        after = await eventually(replaced, timeout=15, interval=0.2)
        stop.set()
        await asyncio.wait_for(load, 30)
        crashed = f"grpc INTERNAL: the PHP worker crashed during the call: worker {victim} was killed by SIGKILL mid-request"
        assert len(failures) <= 1 and all(f == crashed for f in failures), failures
        assert after[1] == before[1] and after[0] & before[0] == before[0] - {victim}
        assert {f.pid for f in rr.fronts()} == fronts
        assert len(await grpc_pids(rr.grpc, 12)) >= 2
    assert "; restarting" not in rr.output()  # no front exited


async def test_idle_workers_with_a_short_socket_timeout_keep_serving(tmp_path: Path) -> None:
    # sent: nothing for 3 s to workers started with -d default_socket_timeout=1, then Pings on 24
    # channels and GETs on 24 connections; failed: nothing, and every worker kept its pid
    async with rr_serve(tmp_path, php_flags=("-d", "default_socket_timeout=1")) as rr:
        owned = [rr.workers_of(f) for f in rr.fronts()]
        assert all(len(w) == 3 for w in owned)
        await asyncio.sleep(3)
        for answered in (await grpc_pids(rr.grpc), await http_pids(rr.http)):
            assert answered <= owned[0] | owned[1] and answered & owned[0] and answered & owned[1]
        assert [rr.workers_of(f) for f in rr.fronts()] == owned


@asynccontextmanager
async def observed_rr(tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[Rr, str, str]]:
    """rr with fault.php workers (boot delay file ``slow-boot``), metrics and status ports."""
    metrics, status = free_port(), free_port()
    env = {"FAULT_BOOT_DELAY": str(tmp_path / "slow-boot")}
    async with rr_serve(tmp_path, env=env, script="fault.php", http_script="fault.php",
                        extra=observed(metrics, status), **kw) as rr:
        yield rr, f"http://127.0.0.1:{metrics}", f"http://127.0.0.1:{status}"


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, await resp.text()


async def test_while_a_front_is_down_every_control_answers_and_names_it(tmp_path: Path) -> None:
    # sent: SIGKILL to front 0 (its new workers take 4 s to boot), then at once `rr reset`,
    # `rr workers`, /health, /ready and /metrics; failed: nothing: the reset replaces front 1's
    # workers (front 0 boots fresh ones), /ready is 503; everything names front 0 as restarting,
    # /metrics has rr_fronts_up 0 for it; once it is back, all answer normally
    async with observed_rr(tmp_path) as (rr, metrics, status), aiohttp.ClientSession() as session:
        victim = rr.fronts()[0]
        (tmp_path / "slow-boot").write_text("4000")
        victim.kill()
        await eventually(lambda: f"front 0 (pid {victim.pid}) was killed by SIGKILL" in rr.output(), timeout=10)
        reset, workers, health, ready, scrape = await asyncio.gather(
            rr_cli(tmp_path, "reset"), rr_cli(tmp_path, "workers"),
            fetch(session, f"{status}/health"), fetch(session, f"{status}/ready"), fetch(session, f"{metrics}/metrics"),
        )
        assert "front 0 restarted" not in rr.output()  # all of that was answered while it was down
        code, out, err = reset
        assert code == 0 and sorted(line.split()[:2] for line in out.splitlines()) == [["grpc", "reset"], ["http", "reset"]], (out, err)
        code, out, err = workers
        restarting = f"front 0 is restarting (pid {victim.pid} was killed by SIGKILL)"
        assert code == 0 and f"grpc: {restarting}" in out and f"http: {restarting}" in out, (out, err)
        assert health == (200, json.dumps([{"plugin_name": p, "error_message": restarting, "status_code": 200}
                                           for p in ("grpc", "http")], separators=(",", ":"))), health
        assert ready[0] == 503 and ready[1].count(restarting) == 2, ready
        assert scrape[0] == 200 and 'rr_fronts_up{front="0"} 0.0' in scrape[1] and 'rr_fronts_up{front="1"} 1.0' in scrape[1]
        (tmp_path / "slow-boot").unlink()
        await eventually(lambda: "front 0 restarted" in rr.output(), timeout=30)
        await eventually(lambda: _ok(session, f"{status}/ready"), timeout=5)
        code, out, err = await rr_cli(tmp_path, "reset")
        assert code == 0, (out, err)
        code, out, err = await rr_cli(tmp_path, "workers")
        assert code == 0 and "restarting" not in out, out
        assert await fetch(session, f"{status}/health") == (200, '[{"plugin_name":"grpc","error_message":"","status_code":200},'
                                                                 '{"plugin_name":"http","error_message":"","status_code":200}]')
        text = (await fetch(session, f"{metrics}/metrics"))[1]
        assert 'rr_fronts_up{front="0"} 1.0' in text and 'rr_fronts_up{front="1"} 1.0' in text
    no_traceback(rr.output())


async def test_a_front_that_does_not_answer_is_named_and_nothing_hangs(tmp_path: Path) -> None:
    # sent: SIGSTOP to front 1, then /health, /metrics, `rr workers` and `rr reset grpc`; failed:
    # nothing hangs: /health stays 200 naming front 1 as not answering, /metrics answers with
    # rr_fronts_up 0 for it, `rr workers` prints the note, and the reset fails once its bound
    # (reset_timeout 1s + 5s) is over, naming front 1, its pid and why; after SIGCONT every answer
    # is clean again
    async with observed_rr(tmp_path, grpc_pool=", reset_timeout: 1s") as (rr, metrics, status), \
            aiohttp.ClientSession() as session:
        stuck = rr.fronts()[1]
        silent = f"front 1 (pid {stuck.pid}) does not answer"
        stuck.suspend()
        try:
            health = await eventually(lambda: _naming(session, f"{status}/health", silent), timeout=10, interval=0.2)
            assert health[0] == 200, health
            code, text = await fetch(session, f"{metrics}/metrics")
            assert code == 200 and 'rr_fronts_up{front="1"} 0.0' in text and 'rr_fronts_up{front="0"} 1.0' in text
            code, out, err = await rr_cli(tmp_path, "workers")
            assert code == 0 and f"grpc: {silent}" in out, (out, err)
            code, out, err = await rr_cli(tmp_path, "reset", "grpc")
            hung = f"front 1 (pid {stuck.pid}): no answer to front.Reset within 6s (pool.reset_timeout plus 5s)"
            assert code == 1 and hung in out, (out, err)
        finally:
            stuck.resume()
        await eventually(lambda: _naming(session, f"{status}/health", '"error_message":"",'), timeout=10, interval=0.2)
        text = (await fetch(session, f"{metrics}/metrics"))[1]
        assert 'rr_fronts_up{front="1"} 1.0' in text
    assert "; restarting" not in rr.output()


async def _naming(session: aiohttp.ClientSession, url: str, text: str) -> tuple[int, str] | None:
    answer = await fetch(session, url)
    return answer if text in answer[1] else None


async def _ok(session: aiohttp.ClientSession, url: str) -> bool:
    return (await fetch(session, url))[0] == 200


async def test_sigterm_while_a_front_respawns_stops_everything(tmp_path: Path) -> None:
    # sent: SIGKILL to front 0 (its new workers take 2 s to boot), then SIGTERM to rr while it
    # respawns; failed: nothing: rr exits 0, no front and no PHP process is left, no traceback
    async with observed_rr(tmp_path) as (rr, _, _):
        seen = everything_below(rr)
        (tmp_path / "slow-boot").write_text("2000")
        rr.fronts()[0].kill()
        await eventually(lambda: "was killed by SIGKILL" in rr.output(), timeout=10)
        await eventually(lambda: len(rr.fronts()) == 2, timeout=10)  # the new front 0 is booting
        seen += everything_below(rr)
        rr.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(rr.proc.wait(), 30) == 0, rr.output()
    await all_gone(seen, rr.proc.pid)
    no_traceback(rr.output())


async def test_a_second_sigterm_with_calls_in_both_fronts_forces_the_stop(tmp_path: Path) -> None:
    # sent: Sleep(20 s) calls, each on its own channel, 8 and then more until both fronts are busy,
    # SIGTERM, then SIGTERM again; failed: those calls (their fronts were killed); rr exits 1 with
    # `exit forced`, leaves no front and no PHP process, and prints no traceback
    async with rr_serve(tmp_path) as rr:
        seen = everything_below(rr)
        channels: list[grpc.aio.Channel] = []
        calls: list[asyncio.Future[Any]] = []

        def sleep_on_a_new_channel() -> None:
            ch = grpc.aio.insecure_channel(rr.grpc, options=(("rrgrpc.test.channel", len(channels)),))
            channels.append(ch)
            calls.append(asyncio.ensure_future(Echo(ch).Sleep(SleepRequest(ms=20_000), timeout=30)))

        for _ in range(8):
            sleep_on_a_new_channel()
        async with await RpcClient.connect(rr.rpc) as client:

            async def both_busy() -> bool:
                rows = (await client.call("informer.Workers", "grpc"))["workers"]
                busy = {int(b["pid"]) for b in (await client.call("informer.Activity", "grpc"))["busy"]}
                fronts = [int(r["front"]) for r in rows if int(r["pid"]) in busy]
                # the kernel picks a front per connection by a hash: 1 run in 128, all 8 land on one
                # front, whose 2 workers are then busy while the other's idle; one more channel each
                # time that is seen gives the idle front its share
                if len(fronts) == 2 and len(set(fronts)) == 1 and len(channels) < 40:
                    sleep_on_a_new_channel()
                return set(fronts) == {0, 1}

            await eventually(both_busy, timeout=15, interval=0.1)
        rr.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: "stopping gracefully" in rr.output(), timeout=10)
        rr.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(rr.proc.wait(), 30) == 1
        results = await asyncio.gather(*calls, return_exceptions=True)
        for ch in channels:
            await ch.close()
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results), results
    assert "exit forced" in rr.output()
    await all_gone(seen, rr.proc.pid)
    no_traceback(rr.output())


async def test_rr_stop_and_rr_reset_over_the_rpc_socket(tmp_path: Path) -> None:
    # sent: `rr reset` (every plugin) and `rr reset grpc` over rpc.listen, then `rr stop` with the
    # pid file `rr serve -p` wrote; failed: nothing: the resets print RoadRunner's lines and replace
    # every front's workers, rr stops gracefully (exit 0) and removes its pid file
    async with rr_serve(tmp_path, args=("-p",)) as rr:
        assert (tmp_path / ".pid").read_text() == str(rr.proc.pid)
        seen = everything_below(rr)
        before = {n: {int(r["pid"]) for r in rows} for n, rows in (await workers_json(tmp_path)).items()}
        code, out, err = await rr_cli(tmp_path, "reset")
        assert code == 0 and err == "", err
        assert sorted(line.split()[:3] for line in out.splitlines()) == [["grpc", "reset", "in"], ["http", "reset", "in"]], out
        after = {n: {int(r["pid"]) for r in rows} for n, rows in (await workers_json(tmp_path)).items()}
        assert {n: len(p) for n, p in after.items()} == {"grpc": 4, "http": 2} and not after["grpc"] & before["grpc"]
        code, out, err = await rr_cli(tmp_path, "reset", "grpc")
        assert code == 0 and out.startswith("grpc  reset in ") and out.count("\n") == 1, (out, err)
        code, out, err = await rr_cli(tmp_path, "stop")
        assert code == 0 and out == f"stopping process with PID: {rr.proc.pid}\n", (out, err)
        assert await asyncio.wait_for(rr.proc.wait(), 30) == 0
    assert not (tmp_path / ".pid").exists()
    await all_gone(seen, rr.proc.pid)
    no_traceback(rr.output())


async def test_a_worker_command_that_cannot_start_is_one_line_once(tmp_path: Path) -> None:
    # sent: a config with 2 fronts whose worker command is php /nonexistent.php; failed: the start,
    # exit 1, with one error line naming the cause, printed once; no process left
    path, *_ = rr_yaml(tmp_path, 2, script="/nonexistent.php", http_script="/nonexistent.php")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", path, "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await kill_tree(proc)
    assert proc.returncode == 1
    text = out.decode() + err.decode()
    assert '"front": 0' in text and '"front": 1' in text  # both fronts were started (and failed)
    lines = [line for line in text.splitlines() if "\tINFO\t" not in line and "\tDEBUG\t" not in line]
    assert len(lines) == 1 and lines[0].startswith("rr: error: worker '"), lines
    # the cause: the command and its worker's end (with what PHP printed when the pool read it first)
    assert "/nonexistent.php' failed to start: worker " in lines[0] and "; the worker " in lines[0], lines
    await all_gone([], proc.pid)


async def test_three_resets_back_to_back_under_load_fail_no_call(tmp_path: Path) -> None:
    # sent: Pings on 6 channels and GETs on 4 connections while `rr reset` runs 3 times back to back;
    # failed: nothing, and every reset replaced every worker of both fronts
    async with rr_serve(tmp_path) as rr:
        stop = asyncio.Event()
        counts = {"grpc": 0, "http": 0}
        failures: list[str] = []
        load = asyncio.create_task(_load(rr, stop, counts, failures))
        await eventually(lambda: counts["grpc"] > 20 and counts["http"] > 20, timeout=20)
        generations = [await workers_json(tmp_path)]
        for _ in range(3):
            code, out, err = await rr_cli(tmp_path, "reset", timeout=60)
            assert code == 0, (out, err)
            generations.append(await workers_json(tmp_path))
        seen = dict(counts)
        await eventually(lambda: counts["grpc"] > seen["grpc"] + 20 and counts["http"] > seen["http"] + 20, timeout=20)
        stop.set()
        await asyncio.wait_for(load, 30)
    assert failures == []
    for old, new in zip(generations, generations[1:], strict=False):
        for plugin in ("grpc", "http"):
            assert by_front(new[plugin]).keys() == {0, 1}
            assert not {r["pid"] for r in new[plugin]} & {r["pid"] for r in old[plugin]}
