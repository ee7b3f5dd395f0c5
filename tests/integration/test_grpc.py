"""The gRPC plugin end to end: a real grpcio aio client against ``rr`` with PHP echo workers.

Covers calls, per-worker state, metadata in and headers/trailers out, every error path with its
details, big and over-limit messages, parallelism across workers, deadlines, cancellation, unknown
services and methods, streaming methods, and the request metrics. ``serve()`` is reused by the
other test_grpc_* modules.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from grpc_status import rpc_status

from rrgrpc.grpc.protos import load_protos
from tests.helpers import ROOT, eventually, php_cmd, running_host

pytestmark = pytest.mark.php

ECHO_PROTO = ROOT / "proto" / "echo" / "v1" / "echo.proto"
_POOL = load_protos([str(ECHO_PROTO)]).pool


def message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"echo.v1.{name}"))


PingRequest, PingReply = message("PingRequest"), message("PingReply")
MetaRequest, MetaReply = message("MetaRequest"), message("MetaReply")
FailRequest, FailReply, FailDetail = message("FailRequest"), message("FailReply"), message("FailDetail")
BigRequest, BigReply = message("BigRequest"), message("BigReply")
SleepRequest, SleepReply = message("SleepRequest"), message("SleepReply")
StreamRequest = message("StreamRequest")


class Echo:
    """Client stubs for echo.v1.Echo built from the runtime-compiled descriptors."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        def unary(method: str, req: Any, rep: Any) -> Any:
            return channel.unary_unary(
                f"/echo.v1.Echo/{method}", request_serializer=req.SerializeToString, response_deserializer=rep.FromString
            )

        self.Ping = unary("Ping", PingRequest, PingReply)
        self.Meta = unary("Meta", MetaRequest, MetaReply)
        self.Fail = unary("Fail", FailRequest, FailReply)
        self.Big = unary("Big", BigRequest, BigReply)
        self.Sleep = unary("Sleep", SleepRequest, SleepReply)
        self.Stream = channel.unary_stream(
            "/echo.v1.Echo/Stream", request_serializer=StreamRequest.SerializeToString, response_deserializer=PingReply.FromString
        )


@dataclass
class Served:
    host: Any
    plugin: Any
    target: str
    channel: grpc.aio.Channel
    echo: Echo

    def pids(self) -> set[int]:
        return {w.pid for w in self.plugin.workers()}


def config(workers: int = 2, **grpc_section: Any) -> dict[str, Any]:
    section = {"listen": "tcp://127.0.0.1:0", "proto": [str(ECHO_PROTO)], "pool": {"num_workers": workers}}
    section.update(grpc_section)
    return {"version": "3", "server": {"command": php_cmd("grpc_echo.php")}, "grpc": section}


def grpc_target(address: str) -> str:
    return "unix:" + address.removeprefix("unix://") if address.startswith("unix://") else address.removeprefix("tcp://")


@asynccontextmanager
async def serve(
    workers: int = 2,
    credentials: grpc.ChannelCredentials | None = None,
    options: tuple[tuple[str, Any], ...] = (),
    **grpc_section: Any,
) -> AsyncIterator[Served]:
    """Run a host with the echo workers and yield it with a connected channel."""
    async with running_host(config(workers, **grpc_section)) as host:
        plugin = next(p for p in host.plugins if p.name == "grpc")
        target = grpc_target(plugin.address)
        opts = (("grpc.max_receive_message_length", 64 * 1024 * 1024), *options)
        if credentials is None:
            channel = grpc.aio.insecure_channel(target, options=opts)
        else:
            channel = grpc.aio.secure_channel(target, credentials, options=opts)
        async with channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
            yield Served(host, plugin, target, channel, Echo(channel))


async def rpc_error(awaitable: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await awaitable
    return err.value


async def test_call_and_state_kept_on_each_worker() -> None:
    async with serve(workers=2) as s:
        served: dict[int, list[int]] = collections.defaultdict(list)
        for i in range(8):
            reply = await s.echo.Ping(PingRequest(msg=f"m{i}"), timeout=10)
            assert reply.msg == f"m{i}"
            served[reply.pid].append(reply.counter)
        assert set(served) <= s.pids()
        for counters in served.values():  # each PHP process counts its own calls: state survives calls
            assert counters == list(range(1, len(counters) + 1))


async def test_metadata_in_headers_and_trailers_out() -> None:
    async with serve(workers=1) as s:
        md = (("x-key", "v1"), ("x-key", "v2"), ("authorization", "Bearer t0k3n"), ("x-blob-bin", b"\xff\x00ok"))
        call = s.echo.Meta(MetaRequest(msg="m1", mode="plain"), metadata=md, timeout=10)
        reply = await call
        seen = {k: list(v.values) for k, v in reply.metadata.items()}
        assert seen["x-key"] == ["v1", "v2"]
        assert seen["authorization"] == ["Bearer t0k3n"]
        assert seen["x-blob-bin"] == ["\ufffd\x00ok"]
        assert seen["content-type"] == ["application/grpc"]
        assert seen[":authority"] == [s.target]
        host, _, port = seen[":peer.address"][0].rpartition(":")
        assert host == "127.0.0.1" and port.isdigit()
        assert ":peer.auth-type" not in seen
        assert seen["Traceparent"][0].startswith("00-") and seen["Uber-Trace-Id"][0].endswith(":0:1")
        # grpc-core rounds the wire grpc-timeout up to a few significant digits: allow that slack
        assert 0 < reply.timeout_ms <= 11_000 and seen["grpc-timeout"][0].endswith("m")
        headers = dict(await call.initial_metadata())
        assert headers["x-echo-header"] == "h-m1" and headers["x-echo-pid"] == str(reply.pid)

        split = s.echo.Meta(MetaRequest(msg="m2", mode="split"))
        reply = await split
        assert reply.timeout_ms == 0  # no deadline, no grpc-timeout entry
        assert "grpc-timeout" not in reply.metadata
        assert dict(await split.initial_metadata())["x-echo-header"] == "h-m2"
        assert dict(await split.trailing_metadata())["x-echo-trailer"] == "t-m2"


async def test_worker_status_with_details() -> None:
    async with serve(workers=1) as s:
        err = await rpc_error(s.echo.Fail(FailRequest(code=3, message="bad argument", with_details=True)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details() == "bad argument"
        st = rpc_status.from_call(err)
        assert st is not None and st.code == 3 and st.message == "bad argument"
        assert st.details[0].type_url == "type.googleapis.com/echo.v1.FailDetail"
        detail = FailDetail.FromString(st.details[0].value)
        assert detail.reason == "ECHO_FAIL" and detail.metadata["code"] == "3"


async def test_worker_status_without_details_and_plain_exception() -> None:
    async with serve(workers=1) as s:
        err = await rpc_error(s.echo.Fail(FailRequest(code=5, message="nothing here")))
        assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "nothing here")
        assert rpc_status.from_call(err) is None  # no details: no grpc-status-details-bin, as grpc-go

        err = await rpc_error(s.echo.Fail(FailRequest(message="boom", kind="runtime")))
        assert err.code() == grpc.StatusCode.INTERNAL and "boom" in err.details()

        # a failing call still delivers the headers and trailers the worker set
        call = s.echo.Meta(MetaRequest(msg="m3", mode="fail"))
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert dict(await call.initial_metadata())["x-echo-header"] == "h-m3"
        assert dict(await call.trailing_metadata())["x-echo-trailer"] == "t-m3"

        reply = await s.echo.Ping(PingRequest(msg="after errors"))
        assert reply.counter == 1  # the worker survived every error above


async def test_three_mib_messages_both_ways() -> None:
    async with serve(workers=1) as s:
        size = 3 * 1024 * 1024
        reply = await s.echo.Big(BigRequest(size=size), timeout=30)
        assert len(reply.payload) == size and reply.payload[:16] == b"0123456789abcdef"
        big = "x" * size
        echoed = await s.echo.Ping(PingRequest(msg=big), timeout=30)
        assert echoed.msg == big


async def test_over_limit_messages_are_resource_exhausted() -> None:
    async with serve(workers=1, max_recv_msg_size=1, max_send_msg_size=1) as s:
        err = await rpc_error(s.echo.Ping(PingRequest(msg="x" * (2 * 1024 * 1024))))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        err = await rpc_error(s.echo.Big(BigRequest(size=2 * 1024 * 1024)))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await s.echo.Ping(PingRequest(msg="small"))).msg == "small"


async def test_sixteen_slow_calls_spread_over_four_workers() -> None:
    async with serve(workers=4) as s:
        replies = await asyncio.gather(*(s.echo.Sleep(SleepRequest(ms=200), timeout=30) for _ in range(16)))
        counts = collections.Counter(r.pid for r in replies)
        assert set(counts) == s.pids() and len(counts) == 4  # every worker took part
        assert sum(counts.values()) == 16 and min(counts.values()) >= 2  # ~4 rounds, not one worker doing it all


async def test_deadline_exceeded_and_the_pool_stays_intact() -> None:
    async with serve(workers=1) as s:
        before = s.pids()
        err = await rpc_error(s.echo.Sleep(SleepRequest(ms=1500), timeout=0.3))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # the worker finishes the abandoned call in the background and serves the next one
        reply = await s.echo.Ping(PingRequest(msg="next"), timeout=10)
        assert reply.pid in before and s.pids() == before


async def test_deadline_bounds_the_wait_for_a_worker() -> None:
    async with serve(workers=1) as s:
        slow = asyncio.ensure_future(s.echo.Sleep(SleepRequest(ms=1500), timeout=10))
        await eventually(lambda: s.plugin.activity().busy)
        err = await rpc_error(s.echo.Ping(PingRequest(msg="queued"), timeout=0.3))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert (await slow).slept_ms == 1500


async def test_client_cancel_never_strands_a_worker() -> None:
    async with serve(workers=1) as s:
        before = s.pids()
        call = s.echo.Sleep(SleepRequest(ms=500), timeout=10)
        await eventually(lambda: s.plugin.activity().busy)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        reply = await s.echo.Ping(PingRequest(msg="after cancel"), timeout=10)
        assert reply.pid in before and s.pids() == before and reply.counter == 1


async def test_unknown_service_and_method() -> None:
    async with serve(workers=1) as s:
        nope = s.channel.unary_unary("/echo.v1.Nope/Ping")
        err = await rpc_error(nope(b""))
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED
        missing = s.channel.unary_unary("/echo.v1.Echo/Missing")
        err = await rpc_error(missing(b""))
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_method_in_the_proto_but_not_in_php(tmp_path: Path) -> None:
    proto = tmp_path / "echo" / "v1" / "echo.proto"
    proto.parent.mkdir(parents=True)
    proto.write_text(ECHO_PROTO.read_text().replace("service Echo {", "service Echo {\n  rpc Nope(PingRequest) returns (PingReply);"))
    async with serve(workers=1, proto=[str(proto)]) as s:
        nope = s.channel.unary_unary("/echo.v1.Echo/Nope")
        err = await rpc_error(nope(PingRequest(msg="x").SerializeToString()))
        assert err.code() != grpc.StatusCode.OK and "Nope" in err.details()
        assert (await s.echo.Ping(PingRequest(msg="still fine"))).counter == 1


async def test_streaming_method_is_unimplemented_naming_it() -> None:
    async with serve(workers=1) as s:
        call = s.echo.Stream(StreamRequest(count=3))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "/echo.v1.Echo/Stream" in err.value.details()
        assert all(w.num_execs == 0 for w in s.plugin.workers())  # no worker was bothered


async def test_request_metrics() -> None:
    async with serve(workers=1) as s:
        await s.echo.Ping(PingRequest(msg="x"))
        await rpc_error(s.echo.Fail(FailRequest(code=5, message="nf")))

        def collect() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for c in s.plugin.collectors()
                for m in c.collect()
                for sample in m.samples
            }

        ok = ("rr_grpc_request_total", (("grpc_method", "/echo.v1.Echo/Ping"), ("status_code", "OK")))
        nf = ("rr_grpc_request_total", (("grpc_method", "/echo.v1.Echo/Fail"), ("status_code", "NotFound")))
        # the server counts a call after its status went out, so the client can be a moment ahead
        await eventually(lambda: nf in collect() and ok in collect())
        samples = collect()
        assert samples[ok] == 1 and samples[nf] == 1
        assert samples[("rr_grpc_requests_queue", ())] == 0
        count = next(v for (name, labels), v in samples.items() if name == "rr_grpc_request_duration_seconds_bucket" and ("le", "+Inf") in labels and ("grpc_method", "/echo.v1.Echo/Ping") in labels)
        assert count == 1


async def test_no_free_worker_within_allocate_timeout_is_resource_exhausted() -> None:
    async with serve(workers=1, pool={"num_workers": 1, "allocate_timeout": "200ms"}) as s:
        slow = asyncio.ensure_future(s.echo.Sleep(SleepRequest(ms=2500), timeout=10))  # well past 200ms, even loaded
        await eventually(lambda: s.plugin.activity().busy)
        err = await rpc_error(s.echo.Ping(PingRequest(msg="waits too long"), timeout=10))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await slow).slept_ms == 2500


async def test_full_queue_is_resource_exhausted() -> None:
    async with serve(workers=1, pool={"num_workers": 1, "max_queue_size": 1}) as s:
        slow = asyncio.ensure_future(s.echo.Sleep(SleepRequest(ms=2500), timeout=10))  # still busy after two more calls, even loaded
        await eventually(lambda: s.plugin.activity().busy)
        queued = asyncio.ensure_future(s.echo.Ping(PingRequest(msg="queued"), timeout=10))
        await eventually(lambda: s.plugin.activity().queue == 1)
        err = await rpc_error(s.echo.Ping(PingRequest(msg="rejected"), timeout=10))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await queued).msg == "queued" and (await slow).slept_ms == 2500


async def test_exec_ttl_is_deadline_exceeded_and_the_worker_is_replaced() -> None:
    async with serve(workers=1, pool={"num_workers": 1, "supervisor": {"exec_ttl": "300ms"}}) as s:
        before = s.pids()
        err = await rpc_error(s.echo.Sleep(SleepRequest(ms=3000), timeout=10))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "exec_ttl" in err.details()
        reply = await s.echo.Ping(PingRequest(msg="fresh"), timeout=10)
        assert reply.pid not in before and reply.counter == 1


async def test_a_worker_crash_mid_call_is_internal_saying_so() -> None:
    raw = config(1)
    raw["server"]["command"] = php_cmd("crash.php")
    async with running_host(raw) as host:
        plugin = next(p for p in host.plugins if p.name == "grpc")
        async with grpc.aio.insecure_channel(grpc_target(plugin.address)) as channel:
            err = await rpc_error(Echo(channel).Ping(PingRequest(msg="boom"), timeout=10))
        assert err.code() == grpc.StatusCode.INTERNAL and "crashed" in err.details()


async def test_a_client_deadline_is_logged_and_counted_as_deadline_exceeded(tmp_path: Path) -> None:
    # sent: Sleep(1500 ms) with a 300 ms deadline; fails: DEADLINE_EXCEEDED, so says the log and the metric
    log_file = tmp_path / "rr.log"
    raw = {**config(1), "logs": {"mode": "production", "output": str(log_file)}}
    async with running_host(raw) as host:
        plugin = next(p for p in host.plugins if p.name == "grpc")
        async with grpc.aio.insecure_channel(grpc_target(plugin.address)) as channel:
            echo = Echo(channel)
            err = await rpc_error(echo.Sleep(SleepRequest(ms=1500), timeout=0.3))
            assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED

            def logged() -> list[str]:
                return [line for line in log_file.read_text().splitlines() if "/echo.v1.Echo/Sleep" in line]

            lines = await eventually(logged)
            assert len(lines) == 1 and "DeadlineExceeded: " in lines[0] and "TimeoutError" not in lines[0], lines
            def codes() -> dict[str, float]:
                return {
                    sample.labels["status_code"]: sample.value
                    for c in plugin.collectors()
                    for m in c.collect()
                    for sample in m.samples
                    if sample.name == "rr_grpc_request_total"
                    and sample.labels.get("grpc_method") == "/echo.v1.Echo/Sleep"
                    and sample.value
                }

            assert await eventually(codes) == {"DeadlineExceeded": 1}
            assert (await echo.Ping(PingRequest(msg="next"), timeout=10)).msg == "next"  # nothing else failed
