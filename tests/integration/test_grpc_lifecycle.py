"""gRPC plugin lifecycle: health (overall, per service, reset, shutdown), reflection, reset under
load, graceful stop with a call in flight, worker management."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from rrgrpc.errors import BootError, ConfigError
from tests.helpers import eventually, running_host
from tests.integration.test_grpc import (
    Echo,
    PingRequest,
    SleepRequest,
    config,
    grpc_target,
    rpc_error,
    serve,
)

pytestmark = pytest.mark.php

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(channel: grpc.aio.Channel, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def watch(channel: grpc.aio.Channel, service: str, into: asyncio.Queue[Any]) -> None:
    call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service))
    try:
        async for reply in call:
            await into.put(int(reply.status))
    except grpc.aio.AioRpcError as exc:
        await into.put(exc.code())


async def test_health_overall_per_service_and_unknown() -> None:
    async with serve(workers=1) as s:
        assert await check(s.channel, "") == SERVING
        assert await check(s.channel, "echo.v1.Echo") == SERVING
        err = await rpc_error(check(s.channel, "no.such.Service"))
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert s.plugin.health() == 200 and s.plugin.readiness() == 200


async def test_health_is_not_serving_during_reset_and_calls_keep_working() -> None:
    async with serve(workers=2) as s:
        overall: asyncio.Queue[Any] = asyncio.Queue()
        echo: asyncio.Queue[Any] = asyncio.Queue()
        watchers = [asyncio.create_task(watch(s.channel, "", overall)), asyncio.create_task(watch(s.channel, "echo.v1.Echo", echo))]
        assert await asyncio.wait_for(overall.get(), 5) == SERVING
        assert await asyncio.wait_for(echo.get(), 5) == SERVING
        before = s.pids()
        await s.plugin.reset()
        for q in (overall, echo):
            assert await asyncio.wait_for(q.get(), 5) == NOT_SERVING
            assert await asyncio.wait_for(q.get(), 5) == SERVING
        assert s.pids().isdisjoint(before) and len(s.pids()) == 2
        assert await check(s.channel, "") == SERVING
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)


async def test_reset_under_load_fails_no_call() -> None:
    async with serve(workers=3) as s:
        before = s.pids()
        done = asyncio.Event()
        reset_done = False
        results: list[Any] = []
        started_after_reset: list[Any] = []  # calls sent once reset() had returned

        async def client() -> None:
            while not done.is_set():
                after_reset = reset_done
                try:
                    result = await s.echo.Sleep(SleepRequest(ms=5), timeout=20)
                except grpc.aio.AioRpcError as exc:
                    result = exc
                results.append(result)
                if after_reset:
                    started_after_reset.append(result)

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await eventually(lambda: len(results) >= 20, timeout=20)
        await s.plugin.reset()
        reset_done = True
        await eventually(lambda: len(started_after_reset) >= 20, timeout=20)
        done.set()
        await asyncio.gather(*clients)
        failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert failures == []
        after = s.pids()
        assert after.isdisjoint(before) and len(after) == 3
        # a call in flight when reset() returned may still come back from an old worker; one sent after it may not
        assert {r.pid for r in started_after_reset} <= after


async def test_reflection_lists_services_and_resolves_a_method_input_type() -> None:
    async with serve(workers=1) as s:

        def introspect() -> tuple[list[str], str]:
            with grpc.insecure_channel(s.target) as channel:
                db = ProtoReflectionDescriptorDatabase(channel)
                services = list(db.get_services())
                pool = descriptor_pool.DescriptorPool(db)
                method = pool.FindServiceByName("echo.v1.Echo").methods_by_name["Ping"]
                return services, method.input_type.full_name

        services, input_type = await asyncio.to_thread(introspect)
        assert "echo.v1.Echo" in services and "grpc.health.v1.Health" in services
        # both reflection versions are listed (grpcurl list shows what a client may ask)
        assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
        assert input_type == "echo.v1.PingRequest"

        # grpc.reflection.v1 (what current grpcurl and Postman ask first) answers the same way
        v1 = s.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        reply = await call.read()
        assert {"echo.v1.Echo", "grpc.reflection.v1.ServerReflection"} <= {svc.name for svc in reply.list_services_response.service}
        call.cancel()


async def test_graceful_stop_finishes_the_call_in_flight_and_ends_watches() -> None:
    channel: grpc.aio.Channel | None = None
    statuses: asyncio.Queue[Any] = asyncio.Queue()
    try:
        async with running_host(config(1)) as host:
            plugin = next(p for p in host.plugins if p.name == "grpc")
            channel = grpc.aio.insecure_channel(grpc_target(plugin.address))
            watcher = asyncio.create_task(watch(channel, "", statuses))
            assert await asyncio.wait_for(statuses.get(), 5) == SERVING
            slow = asyncio.ensure_future(Echo(channel).Sleep(SleepRequest(ms=400), timeout=20))
            await eventually(lambda: plugin.activity().busy)
        # the host stopped: the call that was running completed, the watch saw NOT_SERVING and ended
        assert (await slow).slept_ms == 400
        assert await asyncio.wait_for(statuses.get(), 5) == NOT_SERVING
        await asyncio.wait_for(watcher, 5)
        assert plugin.workers() == [] and plugin.health() == 503
    finally:
        if channel is not None:
            await channel.close()


async def test_add_and_remove_workers() -> None:
    async with serve(workers=1) as s:
        await s.plugin.add_worker()
        assert len(s.pids()) == 2
        await s.plugin.remove_worker()
        await eventually(lambda: len(s.pids()) == 1)
        assert (await s.echo.Ping(PingRequest(msg="x"), timeout=10)).msg == "x"


async def test_a_proto_that_does_not_compile_stops_startup(tmp_path: Path) -> None:
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\npackage bad;\nservice S { rpc M(In) returns (Out); }\n')
    with pytest.raises(ConfigError) as err:
        async with running_host(config(1, proto=[str(bad)])):
            pass
    assert "bad.proto" in str(err.value) and '"In" is not defined' in str(err.value)


async def test_workers_that_cannot_boot_stop_startup() -> None:
    raw = config(1)
    raw["server"]["command"] = ["php", "/nonexistent/worker.php"]
    with pytest.raises(BootError):
        async with running_host(raw):
            pass
