"""Worker replies and pool failures -> gRPC outcomes (table tests)."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from rrgrpc.errors import (
    BootError,
    ExecTTLExceeded,
    NoFreeWorkers,
    PoolClosed,
    ProtocolError,
    QueueFull,
    WorkerError,
    WorkerLost,
)
from rrgrpc.grpc.status import (
    DETAILS_KEY,
    Failure,
    Reply,
    failure_from_error_text,
    failure_from_exception,
    go_code_name,
    parse_reply,
)
from rrgrpc.pool.payload import Payload

C = grpc.StatusCode


def reply(ctx: object, body: bytes = b"body") -> Payload:
    raw = ctx if isinstance(ctx, bytes) else json.dumps(ctx).encode()
    return Payload(raw, body, 0)


def status_b64(code: int, message: str, *details: any_pb2.Any) -> str:
    return base64.b64encode(status_pb2.Status(code=code, message=message, details=details).SerializeToString()).decode()


def error_info() -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="R", domain="d", metadata={"k": "v"}))
    return detail


@pytest.mark.parametrize(
    ("ctx", "headers", "trailers"),
    [
        (b"", (), ()),
        ({}, (), ()),
        ([], (), ()),
        # variant A
        (
            {"headers": json.dumps({"x-request-id": "42", "X-Upper": "u"}), "trailers": json.dumps({"x-t": "t"})},
            (("x-request-id", "42"), ("x-upper", "u")),
            (("x-t", "t"),),
        ),
        ({"headers": "{}", "trailers": "{}"}, (), ()),
        ({"headers": "[]", "trailers": "[]"}, (), ()),
        ({"headers": json.dumps({"n": 1, "s": "x", "l": ["a", "b"]}), "trailers": "{}"}, (("s", "x"), ("l", "a"), ("l", "b")), ()),
        ({"headers": "not json", "trailers": json.dumps({"x-t": "t"})}, (), (("x-t", "t"),)),
        ({"trailers": json.dumps({"x-only": "t"})}, (), (("x-only", "t"),)),
        # variant B: everything is a header
        ({"x-conformance-header": "h-m1", "X-Pid": "29298"}, (("x-conformance-header", "h-m1"), ("x-pid", "29298")), ()),
        # -bin: the client receives the string's bytes, as grpc-go sends them
        ({"headers": json.dumps({"x-raw-bin": "héllo"}), "trailers": json.dumps({"t-bin": "AAE="})},
         (("x-raw-bin", "héllo".encode()),), (("t-bin", b"AAE="),)),
        # what gRPC cannot carry is dropped
        ({"headers": json.dumps({"grpc-status": "0", "bad key": "v", ":path": "/", "x-ok": "ok", "x-nl": "a\nb"}), "trailers": "{}"},
         (("x-ok", "ok"),), ()),
    ],
)
def test_response_context_variants(
    ctx: object, headers: tuple[tuple[str, str | bytes], ...], trailers: tuple[tuple[str, str | bytes], ...]
) -> None:
    r = parse_reply(reply(ctx))
    assert r.failure is None
    assert r.body == b"body"
    assert r.headers == headers
    assert r.trailers == trailers


def test_error_key_with_details_variant_a() -> None:
    ctx = {"error": status_b64(3, "bad argument", error_info()), "headers": json.dumps({"x-h": "1"}), "trailers": json.dumps({"x-t": "2"})}
    r = parse_reply(reply(ctx))
    assert r.failure is not None
    assert (r.failure.code, r.failure.message) == (C.INVALID_ARGUMENT, "bad argument")
    assert r.headers == (("x-h", "1"),) and r.trailers == (("x-t", "2"),)
    assert r.body == b""
    ((key, raw),) = r.failure.trailers()
    assert key == DETAILS_KEY
    st = status_pb2.Status.FromString(raw)
    assert st.code == 3 and st.message == "bad argument"
    info = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(info) and info.reason == "R" and dict(info.metadata) == {"k": "v"}


def test_spec_example_error_without_details_has_no_details_trailer() -> None:
    r = parse_reply(reply(b'{"error":"CAUSDnVzZXIgbm90IGZvdW5k","headers":"{}","trailers":"{}"}', b""))
    assert r.failure == Failure(C.NOT_FOUND, "user not found")
    assert r.failure.trailers() == ()


def test_error_variant_b_is_not_echoed_as_a_header() -> None:
    r = parse_reply(reply({"error": status_b64(5, "nothing here"), "x-a": "b"}))
    assert r.failure == Failure(C.NOT_FOUND, "nothing here")
    assert r.headers == (("x-a", "b"),)


@pytest.mark.parametrize(
    ("ctx", "code", "fragment"),
    [
        ({"error": "!!!not base64"}, C.INTERNAL, "malformed error"),
        ({"error": base64.b64encode(b"\xff\xff\xff").decode()}, C.INTERNAL, "malformed error"),
        (b"{not json", C.INTERNAL, "malformed worker reply context"),
        ({"a": 1}, C.INTERNAL, "JSON object of strings"),
        (["x"], C.INTERNAL, "JSON object of strings"),
        ({"error": status_b64(99, "odd code")}, C.UNKNOWN, "odd code"),
    ],
)
def test_malformed_replies_become_statuses(ctx: object, code: grpc.StatusCode, fragment: str) -> None:
    r = parse_reply(reply(ctx))
    assert r.failure is not None and r.failure.code == code and fragment in r.failure.message


def test_ok_status_in_error_key_is_success_like_grpc_go() -> None:
    r = parse_reply(reply({"error": status_b64(0, "")}))
    assert r.failure is None and r.body == b"body"


def test_unpadded_base64_is_accepted() -> None:
    r = parse_reply(reply({"error": status_b64(5, "x").rstrip("=")}))
    assert r.failure == Failure(C.NOT_FOUND, "x")


@pytest.mark.parametrize(
    ("text", "code", "message", "ndetails"),
    [
        (b"boom", C.INTERNAL, "boom", 0),
        (b"5|:|not found", C.NOT_FOUND, "not found", 0),
        (b"0|:|zero means internal", C.INTERNAL, "zero means internal", 0),
        (b"3|:|bad|:|" + error_info().SerializeToString(), C.INVALID_ARGUMENT, "bad", 1),
        (b"3|:|bad|:|\xff\xff|:|" + error_info().SerializeToString(), C.INVALID_ARGUMENT, "bad", 1),
        (b"x|:|not a code", C.INTERNAL, "x|:|not a code", 0),
        (b"-1|:|negative", C.INTERNAL, "-1|:|negative", 0),
        (b"77|:|beyond 16", C.UNKNOWN, "beyond 16", 0),
    ],
)
def test_legacy_error_frame_text(text: bytes, code: grpc.StatusCode, message: str, ndetails: int) -> None:
    f = failure_from_error_text(text)
    assert (f.code, f.message, len(f.details)) == (code, message, ndetails)


def test_legacy_details_survive_the_worker_error() -> None:
    """Binary Any bytes reach status.py intact: WorkerError keeps the ERROR frame's raw bytes."""
    raw = b"7|:|denied|:|" + error_info().SerializeToString()
    f = failure_from_exception(WorkerError(raw.decode("utf-8", "replace"), raw))
    assert f.code == C.PERMISSION_DENIED and len(f.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert f.details[0].Unpack(info) and info.domain == "d"


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (NoFreeWorkers("no free workers in the pool"), C.RESOURCE_EXHAUSTED, "no free workers"),
        (QueueFull("max queue size reached"), C.RESOURCE_EXHAUSTED, "max queue"),
        (ExecTTLExceeded("worker 7 killed"), C.DEADLINE_EXCEEDED, "exec_ttl"),
        (TimeoutError(), C.DEADLINE_EXCEEDED, "deadline"),
        (PoolClosed("grpc pool is stopping"), C.UNAVAILABLE, "stopping"),
        (BootError("cannot start"), C.UNAVAILABLE, "cannot start"),
        (WorkerLost("worker 9 relay is closed"), C.INTERNAL, "crashed"),
        (WorkerError("plain php failure"), C.INTERNAL, "plain php failure"),
        (WorkerError("streaming is not supported"), C.INTERNAL, "streaming is not supported"),
        (ProtocolError("bad crc"), C.INTERNAL, "bad crc"),
    ],
)
def test_pool_failures(exc: BaseException, code: grpc.StatusCode, fragment: str) -> None:
    f = failure_from_exception(exc)
    assert f.code == code and fragment in f.message


def test_go_code_names_cover_every_code() -> None:
    assert go_code_name(C.CANCELLED) == "Canceled"
    assert go_code_name(C.RESOURCE_EXHAUSTED) == "ResourceExhausted"
    assert {go_code_name(c) for c in C} >= {"OK", "Unknown", "Internal"}


@pytest.mark.parametrize("headers", ["{}", "[]"])
@pytest.mark.parametrize("trailers", ["{}", "[]"])
def test_reply_with_empty_headers_and_trailers_is_just_the_body(headers: str, trailers: str) -> None:
    ctx = json.dumps({"headers": headers, "trailers": trailers}, separators=(",", ":")).encode()
    assert parse_reply(Payload(ctx, b"body", 0)) == Reply(body=b"body")
    spaced = json.dumps({"headers": headers, "trailers": trailers}).encode()  # the general decoder agrees
    assert parse_reply(Payload(spaced, b"body", 0)) == Reply(body=b"body")
