"""examples/http as a user runs it: ``rr serve`` in the example directory, then HTTP and gRPC calls
against the one process (ports moved to free ones with -o overrides)."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import grpc
import pytest
from google.protobuf import message_factory

from rrgrpc.grpc.protos import load_protos
from tests.helpers import ROOT, free_port, wait_http_ok

pytestmark = pytest.mark.php

EXAMPLE = ROOT / "examples" / "http"


async def test_example_serves_http_and_grpc_from_one_process() -> None:
    http_port, grpc_port, rpc_port, metrics_port = (free_port() for _ in range(4))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", ".rr.yaml",
        "-o", f"http.address=127.0.0.1:{http_port}", "-o", f"grpc.listen=tcp://127.0.0.1:{grpc_port}",
        "-o", f"rpc.listen=tcp://127.0.0.1:{rpc_port}", "-o", f"metrics.address=127.0.0.1:{metrics_port}",
        "serve", cwd=EXAMPLE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with aiohttp.ClientSession() as client:
            await wait_http_ok(client, base + "/hello?name=Ada")
            async with client.get(base + "/hello?name=Ada") as resp:
                data = await resp.json()
                assert data["message"] == "Hello Ada" and resp.headers["X-Powered-By"] == "rrgrpc"
            async with client.get(base + "/style.css") as resp:
                assert resp.status == 200 and "ETag" in resp.headers and "font-family" in await resp.text()
            async with client.get(base + "/events?n=3") as resp:
                lines = [line async for line in resp.content]
                assert [line.split(b" from")[0] for line in lines] == [b"tick 1 of 3", b"tick 2 of 3", b"tick 3 of 3"]
            async with client.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                assert "rr_http_request_total" in await resp.text()

        pool = load_protos([str(ROOT / "proto" / "greeter" / "v1" / "greeter.proto")]).pool
        req_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1.HelloRequest"))
        rep_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1.HelloReply"))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            say = channel.unary_unary(
                "/greeter.v1.Greeter/SayHello", request_serializer=req_cls.SerializeToString,
                response_deserializer=rep_cls.FromString,
            )
            reply = await say(req_cls(name="Grace"), timeout=10)
            assert reply.message == "Hello Grace"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
