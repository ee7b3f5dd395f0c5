"""The control plane against a real host (``running_host``: gRPC plugin, PHP echo workers, status,
RPC): the Python and PHP RPC clients call every method, ``rr workers``/``rr reset`` drive it, the
live view scales it in a real terminal, and a reset under steady gRPC load fails no request."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from rrgrpc import RR_COMPAT_VERSION
from rrgrpc.goridge.frame import Flag
from rrgrpc.goridge.rpc import Request, RpcClient, RpcError, encode_request, parse, read_frame
from tests.helpers import eventually, running_host
from tests.integration.test_cli_workers import TMUX, Terminal, invoke, rr_argv, write_config
from tests.integration.test_grpc import Echo, PingRequest, SleepRequest, config, grpc_target
from tests.integration.test_rpc_php import run_php

pytestmark = pytest.mark.php


@asynccontextmanager
async def host(workers: int = 2) -> AsyncIterator[tuple[Any, Any, str]]:
    """A running host; yields (host, grpc plugin, rpc address)."""
    raw = config(workers)
    raw["rpc"] = {"listen": "tcp://127.0.0.1:0"}
    raw["status"] = {"address": "127.0.0.1:0"}
    async with running_host(raw) as h:
        plugins = {p.name: p for p in h.plugins}
        yield h, plugins["grpc"], plugins["rpc"].address


def pids(plugin: Any) -> list[int]:
    return sorted(w.pid for w in plugin.workers())


async def test_python_client_calls_every_method_on_a_running_host() -> None:
    async with (
        host() as (_, grpc_plugin, address),
        await RpcClient.connect(address) as client,
        asyncio.timeout(50),
    ):
        assert await client.call("informer.List", True) == ["grpc"]
        workers = (await client.call("informer.Workers", "grpc"))["workers"]
        assert sorted(w["pid"] for w in workers) == pids(grpc_plugin)
        assert {w["statusStr"] for w in workers} == {"ready"} and all(w["memoryUsage"] > 0 for w in workers)
        assert await client.call("informer.Workers", "http") == {"workers": []}
        assert await client.call("informer.Jobs", "grpc") is None
        assert await client.call("informer.AddWorker", "grpc") is False
        assert len(pids(grpc_plugin)) == 3
        assert await client.call("informer.RemoveWorker", "grpc") is False
        await eventually(lambda: len(pids(grpc_plugin)) == 2)
        activity = await client.call("informer.Activity", "grpc")
        assert activity["queue"] == 0 and activity["busy"] == []
        assert await client.call("resetter.List", True) == ["grpc"]
        before = set(pids(grpc_plugin))
        assert await client.call("resetter.Reset", "grpc") is True
        assert set(pids(grpc_plugin)).isdisjoint(before) and len(pids(grpc_plugin)) == 2
        assert await client.call("rpc.Version", True) == RR_COMPAT_VERSION
        cfg = json.loads(base64.b64decode(await client.call("rpc.Config", True)))
        assert cfg["grpc"]["pool"] == {"num_workers": 2}
        assert json.loads(await client.call("rpc.Config", b"", codec=Flag.CODEC_RAW)) == cfg
        assert await client.call("status.Status", {"plugin": "grpc"}) == {"code": 200}
        assert await client.call("status.Ready", {"plugin": "grpc"}) == {"code": 200}
        with pytest.raises(RpcError, match="^rpc: can't find method informer.Nope$"):
            await client.call("informer.Nope", "x")


async def test_php_client_calls_every_method_on_a_running_host() -> None:
    async with host() as (_, grpc_plugin, address):
        before = set(pids(grpc_plugin))
        out = await run_php(address, "every", "grpc")
        after = set(pids(grpc_plugin))
    ok = {k: v["result"] for k, v in out.items() if v["ok"]}
    assert ok["informer.List"] == ["grpc"]
    assert len(ok["informer.Workers"]["workers"]) == 2
    assert ok["informer.Workers unknown"] == {"workers": []}
    assert ok["workers after add"] == 3 and ok["workers after remove"] == 2
    assert ok["resetter.Reset"] is True and after.isdisjoint(before)
    assert ok["rpc.Version"] == RR_COMPAT_VERSION
    assert ok["rpc.Config"] == ok["rpc.Config raw"]
    assert out["unknown method"]["error"] == f"Error 'rpc: can't find method informer.Nope' on {address}"


async def test_rr_workers_and_rr_reset_against_a_running_host(tmp_path: Path) -> None:
    async with host() as (_, grpc_plugin, address):
        cfg = str(write_config(tmp_path, address))
        result = await invoke("-c", cfg, "workers")
        assert result.exit_code == 0, result.output
        rows = [line for line in result.stdout.splitlines() if "ready" in line]
        assert [int(r.split()[1]) for r in rows] == pids(grpc_plugin)  # sorted by PID
        data = json.loads((await invoke("-c", cfg, "workers", "grpc", "--json")).stdout)
        assert sorted(w["pid"] for w in data["grpc"]["workers"]) == pids(grpc_plugin)
        before = set(pids(grpc_plugin))
        result = await invoke("-c", cfg, "reset")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("grpc  reset in ")
        assert set(pids(grpc_plugin)).isdisjoint(before)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
async def test_live_view_scales_a_running_host(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    async with host() as (_, grpc_plugin, address):
        try:
            await term.start(rr_argv(write_config(tmp_path, address), "workers", "-i"))
            await term.shows(*(str(p) for p in pids(grpc_plugin)), "2 workers")
            await term.keys("+")
            await eventually(lambda: len(pids(grpc_plugin)) == 3, timeout=20)
            await term.shows(*(str(p) for p in pids(grpc_plugin)), "3 workers")
            await term.keys("q")
            assert await term.exit_code() == 0
        finally:
            await term.close()


async def test_rr_reset_under_steady_grpc_load_fails_no_request(tmp_path: Path) -> None:
    async with host(workers=3) as (_, grpc_plugin, address):
        before = set(pids(grpc_plugin))
        channel = grpc.aio.insecure_channel(grpc_target(grpc_plugin.address))
        async with channel:
            echo = Echo(channel)
            results: list[Any] = []
            done = asyncio.Event()

            async def steady() -> None:
                while not done.is_set():
                    try:
                        results.append(await echo.Sleep(SleepRequest(ms=5), timeout=20))
                    except grpc.aio.AioRpcError as exc:
                        results.append(exc)

            clients = [asyncio.create_task(steady()) for _ in range(6)]
            await eventually(lambda: len(results) >= 20, timeout=20)
            result = await invoke("-c", str(write_config(tmp_path, address)), "reset", "grpc")
            mark = len(results)
            await eventually(lambda: len(results) >= mark + 20, timeout=20)
            done.set()
            await asyncio.gather(*clients)
            assert (await echo.Ping(PingRequest(msg="after"), timeout=10)).msg == "after"
        after = set(pids(grpc_plugin))
    assert result.exit_code == 0, result.output
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert failures == [], f"{len(failures)} of {len(results)} calls failed during the reset"
    assert after.isdisjoint(before) and len(after) == 3
    assert {r.pid for r in results[mark:]} <= after  # calls after the reset ran on new workers only


def gob_string(text: str) -> bytes:
    """A gob stream holding one short string, as the Go rr CLI encodes it (PROTOCOL.md §6.4)."""
    data = text.encode()
    assert len(data) < 120
    return bytes([len(data) + 3, 0x0C, 0x00, len(data)]) + data


async def test_go_cli_session_in_gob_is_answered_in_json() -> None:
    """What `rr workers` and `rr reset` of the Go binary send: GOB requests, seq from 0, one connection."""
    requests = [
        (0, "informer.List", bytes.fromhex("03020001")),
        (1, "informer.Workers", gob_string("grpc")),
        (2, "informer.Jobs", gob_string("grpc")),
        (3, "resetter.List", bytes.fromhex("03020001")),
        (4, "resetter.Reset", gob_string("grpc")),
    ]
    async with host() as (_, grpc_plugin, address):
        before = set(pids(grpc_plugin))
        reader, writer = await asyncio.open_connection(*address.removeprefix("tcp://").rsplit(":", 1))
        writer.write(b"".join(encode_request(seq, m, Flag.CODEC_GOB, body) for seq, m, body in requests))
        replies: dict[int, Request] = {}
        async with asyncio.timeout(30):
            while len(replies) < len(requests):
                frame = await read_frame(reader)
                assert frame is not None
                reply = parse(frame)
                replies[reply.seq] = reply
        writer.close()
        after = set(pids(grpc_plugin))
    assert {r.flags for r in replies.values()} == {Flag.CODEC_JSON}
    assert [replies[seq].method for seq, _, _ in requests] == [m for _, m, _ in requests]
    assert json.loads(replies[0].body) == ["grpc"]
    assert {w["pid"] for w in json.loads(replies[1].body)["workers"]} == before
    assert replies[2].body == b"null"
    assert json.loads(replies[3].body) == ["grpc"]
    assert replies[4].body == b"true" and after.isdisjoint(before)
