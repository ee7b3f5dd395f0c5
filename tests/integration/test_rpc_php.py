"""The PHP kit's RPC client (php/src/RPC) against the golden transcript and against our endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rrgrpc import RR_COMPAT_VERSION
from rrgrpc.goridge.rpc import read_frame
from tests.helpers import php_cmd
from tests.integration.test_rpc_server import FakePool, FakeService, exchanges, serving

pytestmark = pytest.mark.php


async def run_php(*args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        *php_cmd("rpc_client.php", *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


GOLDEN = {
    # transcript name -> the rpc_client.php call that produced it with spiral/goridge
    "informer.Workers via WorkerPool::getWorkers('grpc')": ("informer.Workers", '"grpc"'),
    "informer.List": ("informer.List", "true"),
    "resetter.Reset('grpc')": ("resetter.Reset", '"grpc"'),
    "informer.AddWorker via WorkerPool::addWorker('grpc')": ("informer.AddWorker", '"grpc"'),
    "unknown method -> Goridge ERROR frame": ("informer.Nope", '"x"'),
}


@pytest.mark.parametrize("name", list(GOLDEN))
async def test_php_client_sends_the_bytes_of_spiral_goridge(name: str) -> None:
    """A recording listener answers with the transcript's reply; the request must match byte for byte."""
    (request, reply) = next((req, rep) for ex, req, rep in exchanges() if ex == name)
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frame = await read_frame(reader)
        assert frame is not None
        seen.append(frame.encode())
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        method, arg = GOLDEN[name]
        out = await run_php(f"tcp://127.0.0.1:{port}", "call", method, arg)
    assert seen == [request]
    if method == "informer.Nope":
        assert out == {
            "ok": False,
            "error": f"Error 'rpc: can't find method informer.Nope' on tcp://127.0.0.1:{port}",
            "class": "RRGrpc\\RPC\\ServiceException",
        }
    else:
        assert out["ok"] is True


async def test_php_client_calls_every_method_on_our_endpoint() -> None:
    grpc = FakePool("grpc", [4242, 4243])
    async with serving(grpc, FakePool("http", [5000]), FakeService("metrics")) as rpc:
        out = await run_php(rpc.address, "every", "grpc")
    ok = {k: v["result"] for k, v in out.items() if v["ok"]}
    errors = {k: v["error"] for k, v in out.items() if not v["ok"]}
    assert ok["informer.List"] == ["grpc", "http"]
    assert [w["pid"] for w in ok["informer.Workers"]["workers"]] == [4242, 4243]
    assert ok["informer.Workers unknown"] == {"workers": []}
    assert ok["informer.Jobs"] is None
    assert ok["informer.AddWorker"] is False and ok["workers after add"] == 3
    assert ok["informer.RemoveWorker"] is False and ok["workers after remove"] == 2
    assert ok["informer.Activity"]["queue"] == 0
    assert ok["resetter.List"] == ["grpc", "http"]
    assert ok["resetter.Reset"] is True and grpc.resets == 1
    assert ok["rpc.Version"] == RR_COMPAT_VERSION
    assert (
        ok["rpc.Config"] == ok["rpc.Config raw"] and ok["rpc.Config"]["rpc"]["listen"] == "tcp://127.0.0.1:0"
    )
    assert errors == {
        "resetter.Reset unknown": f"Error 'no such plugin: nope' on {rpc.address}",
        "unknown method": f"Error 'rpc: can't find method informer.Nope' on {rpc.address}",
    }


async def test_php_client_over_a_unix_socket(tmp_path: Any) -> None:
    path = tmp_path / "rpc.sock"
    async with serving(FakePool("grpc", [1]), listen=f"unix://{path}") as rpc:
        out = await run_php(rpc.address, "call", "informer.List", "true")
    assert out == {"ok": True, "result": ["grpc"]}
