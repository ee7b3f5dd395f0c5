"""Fault guarantees that must hold across fronts, run with ``server.num_fronts`` 1 and 2 on real
``rr serve`` processes: calls abandoned while queued (deadline, cancel, client gone) never reach
PHP, and a graceful stop finishes every call in flight. Each test spreads its calls over many
connections, so that with 2 fronts both fronts get some of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import aiohttp
import grpc
import pytest

from rrgrpc.goridge.rpc import RpcClient
from tests.helpers import eventually, no_leftover_workers_fixture
from tests.integration.test_fronts import Rr, rr_serve
from tests.integration.test_grpc import Echo, PingRequest

pytestmark = [pytest.mark.php, pytest.mark.slow]
leftover_check = no_leftover_workers_fixture  # autouse: no test here may leave a PHP process running

FRONTS = pytest.mark.parametrize("fronts", [1, 2])


def fault_rr(tmp_path: Path, fronts: int, log: Path) -> contextlib.AbstractAsyncContextManager[Rr]:
    """rr with 2 gRPC and 2 HTTP fault.php workers logging what they receive to ``log``."""
    return rr_serve(tmp_path, fronts, env={"FAULT_LOG": str(log)}, script="fault.php", http_script="fault.php",
                    grpc_workers=2, http_workers=2)


def markers(log: Path) -> list[str]:
    """What PHP received, one marker per request (tests/php/fault.php's FAULT_LOG)."""
    return [line.split()[1] for line in log.read_text().splitlines()] if log.exists() else []


async def ping(target: str, msg: str, timeout: float, i: int) -> grpc.StatusCode:
    """One call on its own connection (a distinct channel argument: grpcio would share one)."""
    async with grpc.aio.insecure_channel(target, options=(("rrgrpc.test.channel", i),)) as channel:
        try:
            reply = await Echo(channel).Ping(PingRequest(msg=msg), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    assert reply.msg == msg
    return grpc.StatusCode.OK


async def get(url: str, timeout: float) -> int | str:
    """One request on its own connection: its status, or ``"gone"`` when the client gave up first."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            return resp.status
    except TimeoutError:
        return "gone"


async def occupy_every_worker(rr: Rr, log: Path, ms: int) -> list[asyncio.Future[object]]:
    """Slow calls on new connections until all 2 gRPC and 2 HTTP workers (of every front) are busy."""
    slow: list[asyncio.Future[object]] = []
    async with await RpcClient.connect(rr.rpc) as client:

        async def all_busy() -> bool:
            busy = [len((await client.call("informer.Activity", p))["busy"]) for p in ("grpc", "http")]
            return busy == [2, 2]

        for i in range(24):
            slow.append(asyncio.ensure_future(ping(rr.grpc, f"req-slow-{i} sleep:{ms}", 30, 100 + i)))
            slow.append(asyncio.ensure_future(get(f"{rr.http}/req-slow-{i}/sleep:{ms}", 30)))
            try:
                await eventually(lambda: markers(log).count("req-slow-0") == 2, timeout=10)
                await eventually(all_busy, timeout=1.0)
                return slow
            except AssertionError:
                continue
    raise AssertionError("the workers never were all busy")


@FRONTS
async def test_calls_abandoned_while_queued_never_run(tmp_path: Path, fronts: int) -> None:
    # sent: behind every worker busy for 2 s, 6 gRPC calls with a 0.3 s deadline, 4 gRPC calls
    # cancelled after 0.3 s and 6 HTTP requests whose client gives up after 0.3 s, each on its own
    # connection; failed: those 16 (DEADLINE_EXCEEDED, CANCELLED, client gone), and none reached PHP;
    # then the slow calls and fresh calls all succeed
    log = tmp_path / "requests.log"
    async with fault_rr(tmp_path, fronts, log) as rr:
        slow = await occupy_every_worker(rr, log, 2000)
        deadlines = [ping(rr.grpc, f"req-deadline-{i}", 0.3, i) for i in range(6)]
        gone = [get(f"{rr.http}/req-gone-{i}", 0.3) for i in range(6)]
        cancels = [asyncio.ensure_future(ping(rr.grpc, f"req-cancel-{i}", 30, 50 + i)) for i in range(4)]
        outcomes = await asyncio.gather(*deadlines, *gone, asyncio.sleep(0.3))
        for call in cancels:
            call.cancel()
        await asyncio.gather(*cancels, return_exceptions=True)
        assert outcomes[:6] == [grpc.StatusCode.DEADLINE_EXCEEDED] * 6 and outcomes[6:12] == ["gone"] * 6
        assert set(await asyncio.gather(*slow)) <= {grpc.StatusCode.OK, 200}
        fresh = await asyncio.gather(*(ping(rr.grpc, f"req-fresh-{i}", 10, 200 + i) for i in range(4)),
                                     *(get(f"{rr.http}/req-fresh-{i}", 10) for i in range(4)))
    assert fresh == [grpc.StatusCode.OK] * 4 + [200] * 4
    ran = markers(log)
    assert not [m for m in ran if m.startswith(("req-deadline", "req-gone", "req-cancel"))], ran


@FRONTS
async def test_graceful_stop_finishes_every_call_in_flight(tmp_path: Path, fronts: int) -> None:
    # sent: slow calls until every worker of every front executes one, then SIGTERM to rr;
    # failed: nothing: every call in flight is answered, rr exits 0
    log = tmp_path / "requests.log"
    async with fault_rr(tmp_path, fronts, log) as rr:
        slow = await occupy_every_worker(rr, log, 1500)
        in_flight = set(markers(log))
        rr.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(rr.proc.wait(), 30) == 0, rr.output()
        results = await asyncio.gather(*slow)
    started = [r for r, m in zip(results, [f"req-slow-{i // 2}" for i in range(len(results))], strict=True) if m in in_flight]
    assert started and set(started) <= {grpc.StatusCode.OK, 200}, results
