"""The RPC endpoint over real sockets, with fake providers behind tests.helpers.StaticPeers.

Covers the golden transcript (rpc_client.json) byte for byte, gob requests from the Go CLI,
pipelining, Go net/rpc error texts, malformed frames and unix sockets (rpc.Config redaction:
tests/faults/test_rpc_config_secrets.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rrgrpc.config import config_from_dict
from rrgrpc.errors import ConfigError
from rrgrpc.goridge.frame import Flag, decode
from rrgrpc.goridge.rpc import RpcClient, RpcError, encode_request, parse, read_frame
from rrgrpc.plugin import Degraded, RpcMethod
from rrgrpc.pool.state import Activity, ProcessState, WorkerState
from rrgrpc.rpc.informer import Informer
from rrgrpc.rpc.resetter import Resetter
from rrgrpc.rpc.server import RpcPlugin
from tests.helpers import VECTORS, StaticPeers, eventually

CREATED = 1795788548630673452  # the timestamp in rpc_client.json


def state(pid: int, execs: int = 0, status: WorkerState = WorkerState.READY) -> ProcessState:
    return ProcessState(
        pid=pid,
        status=int(status),
        num_execs=execs,
        created=CREATED,
        memory_usage=23068672,
        cpu_percent=0.5,
        command="",
        status_str=status.wire_name,
    )


class FakePool:
    """A plugin with workers: HasWorkers, ManagesWorkers and Resettable, in memory; Degraded too,
    naming what is down when ``down`` is set."""

    capabilities = (Degraded,)

    def __init__(self, name: str, pids: list[int], execs: dict[int, int] | None = None) -> None:
        self.name = name
        self.pids = list(pids)
        self.execs = execs or {}
        self.resets = 0
        self.queue = 0
        self.busy: dict[int, tuple[str, float]] = {}
        self.down = ""

    def degraded(self) -> str:
        return self.down

    def lifespan(self, peers: Any) -> Any:
        raise NotImplementedError  # never entered: only the RPC plugins run in these tests

    def workers(self) -> list[ProcessState]:
        return [
            state(pid, self.execs.get(pid, 0), WorkerState.WORKING if pid in self.busy else WorkerState.READY)
            for pid in self.pids
        ]

    def activity(self) -> Activity:
        return Activity(queue=self.queue, busy=dict(self.busy))

    async def add_worker(self) -> None:
        self.pids.append(max(self.pids, default=1000) + 1)

    async def remove_worker(self) -> None:
        if len(self.pids) > 1:
            self.pids.pop()

    async def reset(self) -> None:
        self.resets += 1
        self.pids = [p + 100 for p in self.pids]


class FakeService:
    """An RpcProvider with methods the tests need to observe concurrency and codecs."""

    def __init__(self, service: str = "test") -> None:
        self.rpc_service = service
        self.release = asyncio.Event()

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        async def echo(arg: Any) -> Any:
            return arg

        async def wait(arg: Any) -> Any:
            await self.release.wait()
            return arg

        async def release(arg: Any) -> bool:
            self.release.set()
            return True

        async def fail(arg: Any) -> None:
            raise RuntimeError("boom")

        async def true(arg: Any) -> bool:
            return True

        return {"Echo": echo, "Wait": wait, "Release": release, "Fail": fail, "Declare": true, "Add": true}


def make_config(listen: str = "tcp://127.0.0.1:0", **extra: Any) -> Any:
    return config_from_dict({"version": "3", "rpc": {"listen": listen}, **extra})


@asynccontextmanager
async def serving(
    *plugins: object, listen: str = "tcp://127.0.0.1:0", **extra: Any
) -> AsyncIterator[RpcPlugin]:
    """Run Informer, Resetter and RpcPlugin (as the roster does) with the given fake peers."""
    cfg = make_config(listen, **extra)
    rpc = RpcPlugin(cfg)
    informer, resetter = Informer(), Resetter()
    peers = StaticPeers(*plugins, informer, resetter, rpc)
    async with informer.lifespan(peers), resetter.lifespan(peers), rpc.lifespan(peers):
        yield rpc


def default_plugins() -> tuple[object, ...]:
    return FakePool("grpc", [4242, 4243], {4242: 3}), FakePool("http", [5000]), FakeService("metrics")


async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def roundtrip(address: str, request: bytes) -> bytes:
    reader, writer = await connect(address)
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            frame = await read_frame(reader)
        assert frame is not None
        return frame.encode()
    finally:
        writer.close()


def exchanges() -> list[tuple[str, bytes, bytes]]:
    data = json.loads((VECTORS / "rpc_client.json").read_text())
    out = []
    for ex in data["exchanges"]:
        frames = ex["frames"]
        for i in range(0, len(frames), 2):
            out.append((ex["name"], bytes.fromhex(frames[i]["hex"]), bytes.fromhex(frames[i + 1]["hex"])))
    return out


@pytest.mark.parametrize(
    ("name", "request_bytes", "reply_bytes"), exchanges(), ids=[e[0] for e in exchanges()]
)
async def test_golden_transcript_is_replayed_byte_for_byte(
    name: str, request_bytes: bytes, reply_bytes: bytes
) -> None:
    async with serving(*default_plugins()) as rpc:
        got = await roundtrip(rpc.address, request_bytes)
    if "without workers" in name:
        # Deliberate difference: RoadRunner answers {"workers":null}, which makes PHP's WorkerPool throw
        # a TypeError; we answer an empty list (PROTOCOL.md §6.5 calls it the safe improvement).
        assert reply_bytes.endswith(b'{"workers":null}')
        assert got == encode_request(1, "informer.Workers", Flag.CODEC_JSON, b'{"workers":[]}')
    else:
        assert got == reply_bytes


async def test_gob_requests_from_the_go_cli_are_answered_in_json() -> None:
    v13 = (
        bytes.fromhex("15 20 11 00 00 00 75 2d bd cb 00 00 00 00 00 00 0d 00 00 00".replace(" ", ""))
        + b"informer.List\x03\x02\x00\x01"
    )
    gob_http = encode_request(1, "informer.Workers", Flag.CODEC_GOB, bytes.fromhex("070c000468747470"))
    async with serving(*default_plugins()) as rpc:
        reply = parse(decode(await roundtrip(rpc.address, v13))[0])
        assert (reply.seq, reply.method, reply.flags, reply.body) == (
            0,
            "informer.List",
            Flag.CODEC_JSON,
            b'["grpc","http"]',
        )
        reply = parse(decode(await roundtrip(rpc.address, gob_http))[0])
        assert reply.flags == Flag.CODEC_JSON
        assert [w["pid"] for w in json.loads(reply.body)["workers"]] == [5000]


async def test_pipelined_requests_are_executed_concurrently_and_matched_by_seq() -> None:
    service = FakeService()
    async with serving(service) as rpc:
        reader, writer = await connect(rpc.address)
        # "Wait" blocks until "Release" runs: its reply can only come after a later request's.
        writer.write(encode_request(1, "test.Wait", Flag.CODEC_JSON, b'"first"'))
        writer.write(
            b"".join(
                encode_request(seq, "test.Echo", Flag.CODEC_JSON, b"%d" % (seq * 10)) for seq in range(2, 21)
            )
        )
        writer.write(encode_request(21, "test.Release", Flag.CODEC_JSON, b"true"))
        replies = {}
        async with asyncio.timeout(5):
            for _ in range(21):
                frame = await read_frame(reader)
                assert frame is not None
                reply = parse(frame)
                replies[reply.seq] = reply
        writer.close()
    order = list(replies)
    assert order[-1] == 1, "the blocked request is answered last"
    assert replies[1].body == b'"first"'
    assert all(json.loads(replies[seq].body) == seq * 10 for seq in range(2, 21))
    assert replies[21].method == "test.Release"


async def test_python_client_pipelines_many_calls() -> None:
    async with serving(FakeService()) as rpc, await RpcClient.connect(rpc.address) as client:
        async with asyncio.timeout(10):
            results = await asyncio.gather(*(client.call("test.Echo", {"n": n}) for n in range(50)))
    assert results == [{"n": n} for n in range(50)]


async def test_unknown_and_ill_formed_methods_get_net_rpc_texts() -> None:
    async with serving(FakeService()) as rpc, await RpcClient.connect(rpc.address) as client:
        async with asyncio.timeout(10):
            with pytest.raises(RpcError, match="^rpc: can't find method informer.Nope$"):
                await client.call("informer.Nope", "x")
            with pytest.raises(RpcError, match="^rpc: can't find service jobs.List$"):
                await client.call("jobs.List", True)
            with pytest.raises(RpcError, match="^rpc: service/method request ill-formed: nodot$"):
                await client.call("nodot", True)
            with pytest.raises(RpcError, match="^boom$"):
                await client.call("test.Fail", None)
            with pytest.raises(
                RpcError, match="^json: cannot unmarshal number into Go value of type string$"
            ):
                await client.call("informer.Workers", 5)
            # every error above left the connection usable
            assert await client.call("test.Echo", "still here") == "still here"


async def test_undecodable_argument_is_an_error_reply_not_a_disconnect() -> None:
    async with serving(FakeService()) as rpc:
        reader, writer = await connect(rpc.address)
        writer.write(encode_request(3, "test.Echo", Flag.CODEC_JSON, b"{broken"))
        writer.write(encode_request(4, "test.Echo", Flag.CODEC_JSON, b"1"))
        async with asyncio.timeout(5):
            first, second = parse(await read_frame(reader)), parse(await read_frame(reader))  # type: ignore[arg-type]
        writer.close()
    assert (first.seq, first.flags) == (3, Flag.CODEC_JSON | Flag.ERROR)
    assert first.body.startswith(b"json: cannot decode the argument")
    assert (second.seq, second.body) == (4, b"1")


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # text: CRC mismatch
        encode_request(1, "test.Echo", Flag.CODEC_JSON, b"1")[:12]
        + b"\x00" * 3,  # only 1 option word then EOF
        bytes.fromhex("1308") + bytes(10),  # bad CRC
    ],
)
async def test_garbage_closes_only_its_connection(garbage: bytes) -> None:
    async with serving(FakeService()) as rpc, await RpcClient.connect(rpc.address) as good:
        reader, writer = await connect(rpc.address)
        writer.write(garbage)
        writer.write_eof()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server, nothing sent back
            assert await good.call("test.Echo", "alive") == "alive"
        writer.close()


async def test_frame_with_wrong_option_count_closes_the_connection() -> None:
    from rrgrpc.goridge.frame import encode

    async with serving(FakeService()) as rpc:
        reader, writer = await connect(rpc.address)
        writer.write(encode(b"test.Echo1", Flag.CODEC_JSON, (1,)))
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()


async def test_unix_socket_listen_mode_0600_stale_socket_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "rr.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as a crashed server leaves it
    async with serving(*default_plugins(), listen=f"unix://{path}") as rpc:
        assert rpc.address == f"unix://{path}"
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        async with await RpcClient.connect(rpc.address) as client, asyncio.timeout(5):
            assert await client.call("informer.List", True) == ["grpc", "http"]
        # a second server on the same live socket is refused, not silently stolen
        with pytest.raises(ConfigError, match="another server is listening"):
            async with serving(listen=f"unix://{path}"):
                pass
    assert not path.exists()


async def test_unix_listen_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "precious.txt"
    path.write_text("data")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        async with serving(listen=f"unix://{path}"):
            pass
    assert path.read_text() == "data"


async def test_every_built_in_method_through_the_python_client() -> None:
    grpc, http, _ = plugins = default_plugins()
    assert isinstance(grpc, FakePool) and isinstance(http, FakePool)
    grpc.queue = 2
    grpc.busy = {4243: ("/echo.Echo/Ping", time.time() - 3)}
    async with serving(*plugins) as rpc, await RpcClient.connect(rpc.address) as client, asyncio.timeout(10):
        assert await client.call("informer.List", True) == ["grpc", "http"]
        workers = (await client.call("informer.Workers", "grpc"))["workers"]
        assert [(w["pid"], w["statusStr"], w["numExecs"]) for w in workers] == [
            (4242, "ready", 3),
            (4243, "working", 0),
        ]
        assert list(workers[0]) == [
            "pid",
            "status",
            "numExecs",
            "created",
            "memoryUsage",
            "CPUPercent",
            "command",
            "statusStr",
        ]
        assert await client.call("informer.Workers", "nope") == {"workers": []}
        assert await client.call("informer.Jobs", "grpc") is None
        assert await client.call("informer.AddWorker", "grpc") is False
        assert len(grpc.pids) == 3
        assert await client.call("informer.RemoveWorker", "grpc") is False
        assert len(grpc.pids) == 2
        with pytest.raises(RpcError, match="^plugin does not support workers management: nope$"):
            await client.call("informer.AddWorker", "nope")
        activity = await client.call("informer.Activity", "grpc")
        assert activity["queue"] == 2
        assert [(b["pid"], b["info"]) for b in activity["busy"]] == [(4243, "/echo.Echo/Ping")]
        assert activity["now"] - activity["busy"][0]["started"] >= 3
        assert await client.call("resetter.List", True) == ["grpc", "http"]
        assert await client.call("resetter.Reset", "grpc") is True
        assert grpc.resets == 1
        with pytest.raises(RpcError, match="^no such plugin: nope$"):
            await client.call("resetter.Reset", "nope")
        assert await client.call("rpc.Version", True) == __import__("rrgrpc").RR_COMPAT_VERSION
        assert json.loads(base64.b64decode(await client.call("rpc.Config", True)))["rpc"] == {
            "listen": "tcp://127.0.0.1:0"
        }


async def test_codecs_raw_proto_msgpack() -> None:
    async with (
        serving(FakeService()) as rpc,
        await RpcClient.connect(rpc.address) as client,
        asyncio.timeout(5),
    ):
        assert await client.call("test.Echo", b"\x00\x01raw", codec=Flag.CODEC_RAW) == b"\x00\x01raw"
        assert await client.call("test.Echo", b"\x0a\x01x", codec=Flag.CODEC_PROTO) == b"\x0a\x01x"
        assert await client.call("test.Echo", {"a": [1, 2]}, codec=Flag.CODEC_MSGPACK) == {"a": [1, 2]}
        with pytest.raises(RpcError, match="raw codec needs a \\[\\]byte result"):
            await client.call("test.Declare", b"", codec=Flag.CODEC_RAW)
        with pytest.raises(RpcError, match="message type is not a proto"):
            await client.call("test.Declare", b"", codec=Flag.CODEC_PROTO)


async def test_client_fails_pending_calls_when_the_server_goes_away() -> None:
    service = FakeService()
    async with serving(service) as rpc:
        client = await RpcClient.connect(rpc.address)
        pending = asyncio.create_task(client.call("test.Wait", 1))
        await eventually(lambda: rpc._connections)
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(5):
            await pending
    with pytest.raises(ConnectionError):
        await client.call("test.Echo", 1)
    await client.close()
