"""status end to end: /health and /ready of a host with slow-booting PHP gRPC workers, across boot, a
reset and a graceful shutdown (health stays 200 while ready goes unavailable), and the status RPC."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import message_factory

from rrgrpc.config import config_from_dict
from rrgrpc.goridge.rpc import RpcClient
from rrgrpc.grpc.plugin import GrpcPlugin
from rrgrpc.grpc.protos import load_protos
from rrgrpc.host import Host
from rrgrpc.logs import LogsPlugin
from rrgrpc.rpc.server import RpcPlugin
from rrgrpc.status import StatusPlugin
from tests.helpers import ROOT, eventually, php_cmd

pytestmark = pytest.mark.php

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
_POOL = load_protos([str(ECHO_PROTO)]).pool
SleepRequest = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.SleepRequest"))
SleepReply = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("echo.v1.SleepReply"))


async def get(session: aiohttp.ClientSession, status: StatusPlugin, path: str) -> tuple[int, Any]:
    async with session.get(f"http://127.0.0.1:{status.port}{path}") as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text.startswith("[") else text)


async def test_health_and_ready_across_boot_reset_and_shutdown() -> None:
    cfg = config_from_dict(
        {
            "version": "3",
            "server": {"command": php_cmd("metrics_app.php", "slowboot:400")},
            "grpc": {"listen": "tcp://127.0.0.1:0", "proto": [str(ECHO_PROTO)], "pool": {"num_workers": 1}},
            "rpc": {"listen": "tcp://127.0.0.1:0"},
            "status": {"address": "127.0.0.1:0", "unavailable_status_code": 599},
        }
    )
    assert cfg.status is not None
    assert cfg.grpc is not None and cfg.rpc is not None
    grpc_plugin = GrpcPlugin(cfg.grpc, cfg.server, rpc_listen=cfg.rpc.listen, source=cfg.source)
    status, rpc = StatusPlugin(cfg.status), RpcPlugin(cfg)
    # status before the plugins it checks (its endpoint outlives them), the RPC endpoint last
    host = Host([LogsPlugin(cfg.logs), status, grpc_plugin, rpc])
    stop = asyncio.Event()
    run = asyncio.create_task(host.run(stop.wait()))
    try:
        async with aiohttp.ClientSession() as session:
            # boot: the endpoint is up while the PHP worker is still starting
            await eventually(lambda: status.port is not None or run.done(), timeout=20)
            code, report = await get(session, status, "/ready?plugin=grpc")
            assert not host.ready.is_set()
            assert code == 599
            assert report == [
                {
                    "plugin_name": "grpc",
                    "error_message": "internal server error, see logs",
                    "status_code": 599,
                }
            ]
            async with asyncio.timeout(30):
                await host.ready.wait()
            assert await get(session, status, "/ready?plugin=grpc") == (
                200,
                [{"plugin_name": "grpc", "error_message": "", "status_code": 200}],
            )
            assert (await get(session, status, "/health"))[0] == 200

            async with await RpcClient.connect(rpc.address) as client, asyncio.timeout(10):
                assert await client.call("status.Ready", {"plugin": "grpc"}) == {"code": 200}
                assert await client.call("status.Status", {"plugin": "grpc"}) == {"code": 200}

            # reset is zero-downtime (the new worker boots before the old one retires): health and
            # readiness stay 200 throughout, and the worker has been replaced afterwards
            before = {w.pid for w in grpc_plugin.workers()}
            reset = asyncio.create_task(grpc_plugin.reset())
            seen = set()
            while not reset.done():
                seen.add((await get(session, status, "/ready?plugin=grpc"))[0])
                seen.add((await get(session, status, "/health?plugin=grpc"))[0])
            await reset
            assert seen == {200}
            assert {w.pid for w in grpc_plugin.workers()}.isdisjoint(before)
            assert (await get(session, status, "/ready?plugin=grpc"))[0] == 200

            # shutdown: health stays 200, ready goes unavailable, while an in-flight call drains
            async with grpc.aio.insecure_channel(grpc_plugin.address.removeprefix("tcp://")) as channel:
                sleep = channel.unary_unary(
                    "/echo.v1.Echo/Sleep",
                    request_serializer=SleepRequest.SerializeToString,
                    response_deserializer=SleepReply.FromString,
                )
                call = asyncio.ensure_future(sleep(SleepRequest(ms=3000), timeout=20))
                await eventually(lambda: grpc_plugin.activity().busy, timeout=10)
                stop.set()
                await eventually(host.stopping.is_set)
                assert await get(session, status, "/health") == (200, "service is shutting down\n")
                assert await get(session, status, "/ready?plugin=grpc") == (599, "service is shutting down\n")
                assert not call.done()
                assert (await call).slept_ms == 3000
        async with asyncio.timeout(30):
            await run
    finally:
        stop.set()
        if not run.done():
            async with asyncio.timeout(30):
                await run
