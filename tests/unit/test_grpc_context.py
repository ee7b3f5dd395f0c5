"""The worker request context (PROTOCOL.md §4.2) and the replay of shared/vectors/grpc_worker.json."""

from __future__ import annotations

import json
import random
from typing import Any

import grpc
import pytest
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import TracerProvider

from rrgrpc.gocompat import canonical_header, go_json, go_string
from rrgrpc.grpc.proxy import (
    ContextEncoder,
    _local_span,
    format_timeout,
    peer_address,
)
from rrgrpc.grpc.status import failure_from_error_text, parse_reply
from rrgrpc.pool.payload import Payload
from rrgrpc.tracing import PROPAGATOR
from tests.helpers import VECTORS

TRANSCRIPT = json.loads((VECTORS / "grpc_worker.json").read_text())


def test_shape_sorting_and_arrays() -> None:
    raw = ContextEncoder("helloworld.Greeter", "SayHello").encode(
        [("x-b", "2"), ("x-a", "1"), ("x-a", "3"), (":authority", "127.0.0.1:9001")], peer="127.0.0.1:53412"
    )
    assert raw == (
        b'{"service":"helloworld.Greeter","method":"SayHello","context":{":authority":["127.0.0.1:9001"],'
        b'":peer.address":["127.0.0.1:53412"],"x-a":["1","3"],"x-b":["2"]}}'
    )


def test_empty_metadata_gives_an_object_never_null() -> None:
    ctx = json.loads(ContextEncoder("a.B", "C").encode([], peer="1.2.3.4:5"))
    assert ctx["context"] == {":peer.address": ["1.2.3.4:5"]}


def test_go_escaping_of_html_characters_and_line_separators() -> None:
    raw = ContextEncoder("a.B", "C").encode([("x-q", "<a&b>\u2028\"é")], peer="p")
    assert b'"x-q":["\\u003ca\\u0026b\\u003e\\u2028\\"\xc3\xa9"]' in raw
    assert go_json({"k": "\x01\t"}) == b'{"k":"\\u0001\\t"}'


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"plain", "plain"),
        (b"\xff\x00ab", "\ufffd\x00ab"),
        (b"\xe2\x82A", "\ufffd\ufffdA"),  # a truncated sequence: one U+FFFD per byte, as Go does
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # an encoded surrogate
        ("é".encode(), "é"),
    ],
)
def test_bin_values_render_like_go(raw: bytes, text: str) -> None:
    assert go_string(raw) == text
    ctx = json.loads(ContextEncoder("a.B", "C").encode([("x-id-bin", raw)], peer="p"))
    assert ctx["context"]["x-id-bin"] == [text]


def test_peer_auth_type_and_timeout_entries() -> None:
    ctx = json.loads(ContextEncoder("a.B", "C", auth_type="tls").encode([], peer="[::1]:9", timeout=1.5))
    assert ctx["context"] == {":peer.address": ["[::1]:9"], ":peer.auth-type": ["tls"], "grpc-timeout": ["1500m"]}


@pytest.mark.parametrize(
    ("seconds", "wire"),
    [(0.0, "0m"), (-1.0, "0m"), (2.0, "2000m"), (99_999.999, "99999999m"), (100_000.0, "100000S"), (1e12, "99999999S")],
)
def test_timeout_wire_format(seconds: float, wire: str) -> None:
    assert format_timeout(seconds) == wire


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:53412", "127.0.0.1:53412"),
        ("ipv6:%5B::1%5D:8080", "[::1]:8080"),
        ("ipv6:[::1]:8080", "[::1]:8080"),
        ("unix:/tmp/rr.sock", "/tmp/rr.sock"),
        ("unix:", ""),
        ("something-else", "something-else"),
    ],
)
def test_peer_address(peer: str, address: str) -> None:
    assert peer_address(peer) == address


@pytest.mark.parametrize(
    ("key", "canon"),
    [("traceparent", "Traceparent"), ("uber-trace-id", "Uber-Trace-Id"), ("BAGGAGE", "Baggage"), ("bad key", "bad key")],
)
def test_canonical_header_keys(key: str, canon: str) -> None:
    assert canonical_header(key) == canon


def test_trace_headers_are_injected_from_the_span_with_go_capitalisation() -> None:
    tracer = TracerProvider().get_tracer("test")
    parent = PROPAGATOR.extract(
        {"traceparent": "00-2678b910f57fe3320587f4126a390868-6b87f1600005b643-01", "tracestate": "k=v", "baggage": "user=alice"}
    )
    with tracer.start_as_current_span("/a.B/C", context=parent, kind=trace.SpanKind.SERVER) as span:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, parent))
        span_id = format(span.get_span_context().span_id, "016x")
    assert baggage.get_baggage("user", parent) == "alice"
    ctx = json.loads(
        ContextEncoder("a.B", "C").encode([("traceparent", "00-incoming-kept-as-metadata")], peer="p", injected=carrier)
    )["context"]
    assert ctx["Traceparent"] == [f"00-2678b910f57fe3320587f4126a390868-{span_id}-01"]
    assert ctx["Tracestate"] == ["k=v"]
    assert ctx["Baggage"] == ["user=alice"]
    assert ctx["Uber-Trace-Id"] == [f"2678b910f57fe3320587f4126a390868:{span_id}:0:1"]
    assert ctx["traceparent"] == ["00-incoming-kept-as-metadata"]  # metadata keeps its own lower-case key
    assert not any(k.lower().startswith("uberctx") for k in ctx)  # Go's Jaeger propagator writes no baggage


def test_no_tracestate_or_baggage_keys_when_empty() -> None:
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    ctx = json.loads(ContextEncoder("a.B", "C").encode([], peer="p", injected=carrier))["context"]
    assert sorted(ctx) == [":peer.address", "Traceparent", "Uber-Trace-Id"]


# ------------------------------------------------------------------------ vector replay


def _frames(direction: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for ex in TRANSCRIPT["exchanges"]:
        for frame in ex["frames"]:
            if frame["dir"] == direction and "CONTROL" not in frame["header"]["flags_names"]:
                out.append((ex, frame))
    return out


def _payload(frame: dict[str, Any]) -> bytes:
    raw = bytes.fromhex(frame.get("hex") or frame["hex_prefix"])
    return raw[4 * frame["header"]["hl"] :]


@pytest.mark.parametrize(("ex", "frame"), _frames("server->worker"), ids=lambda v: v.get("name", "") if "frames" in v else "")
def test_vector_request_context_is_rebuilt_byte_for_byte(ex: dict[str, Any], frame: dict[str, Any]) -> None:
    captured = frame["context_json"]
    metadata = [
        (key, value)
        for key, values in captured["context"].items()
        if key != ":peer.address"
        for value in values
    ]
    encoder = ContextEncoder(captured["service"], captured["method"])
    built = encoder.encode(metadata, peer=captured["context"][":peer.address"][0])
    assert json.loads(built) == captured
    assert built == _payload(frame)[: frame["context_len"]]


@pytest.mark.parametrize(("ex", "frame"), _frames("worker->server"), ids=lambda v: v.get("name", "") if "frames" in v else "")
def test_vector_worker_reply_maps_to_the_captured_outcome(ex: dict[str, Any], frame: dict[str, Any]) -> None:
    outcome = ex["outcome"]
    if "ERROR" in frame["header"]["flags_names"]:
        failure = failure_from_error_text(bytes.fromhex(frame["hex"])[12:])
        assert outcome["kind"] == "error_frame"
        assert (failure.code, failure.message) == (grpc.StatusCode.INTERNAL, outcome["message"])
        return
    payload = _payload(frame)
    n = frame["context_len"]
    reply = parse_reply(Payload(payload[:n], payload[n:], 0))
    if "status" in outcome:
        st = outcome["status"]
        assert reply.failure is not None
        assert reply.failure.code.value[0] == st["code"] and reply.failure.message == st["message"]
        details = [(d.type_url, d.value.hex()) for d in reply.failure.details]
        assert details == [(d["type_url"], d["value_hex"]) for d in st.get("details", [])]
        return
    assert outcome["kind"] == "response" and reply.failure is None
    meta = outcome["response_metadata"]
    if "headers" in meta or "trailers" in meta:
        assert dict(reply.headers) == json.loads(meta.get("headers", "{}"))
        assert dict(reply.trailers) == json.loads(meta.get("trailers", "{}"))
    else:
        assert dict(reply.headers) == meta and reply.trailers == ()
    if frame.get("hex_truncated"):  # the 3 MiB reply is stored as a prefix: the body is passed through
        assert reply.body == payload[n:] and reply.body.startswith(bytes.fromhex("18f2e401"))
    else:
        assert reply.body == bytes.fromhex(frame["body"]["hex"])


def _injected_local_span(seed: int) -> dict[str, str]:
    """What the propagators write for a parentless local span drawn after ``random.seed(seed)``."""
    random.seed(seed)
    parent = PROPAGATOR.extract({"user-agent": "x"})
    injected: dict[str, str] = {}
    PROPAGATOR.inject(injected, context=trace.set_span_in_context(_local_span(parent), parent))
    return injected


HEAD = ((":authority", "127.0.0.1:9001"), ("content-type", "application/grpc"))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("timeout", [None, 2.5])
def test_fresh_trace_renders_as_an_injected_local_span(seed: int, timeout: float | None) -> None:
    """The fast path without a provider or incoming trace gives PHP the bytes the propagators would,
    from a new template and from the cached one alike."""
    encoder = ContextEncoder("a.B", "C", HEAD, "tls")
    metadata = (("user-agent", "x"), ("x-id-bin", b"\xff1"), ("x-a", "1"), ("x-a", "2"))
    for _ in range(2):
        injected = _injected_local_span(seed)
        expected = encoder.encode(metadata, peer="1.2.3.4:5", injected=injected, timeout=timeout)
        random.seed(seed)
        assert encoder.encode_fresh(metadata, "ipv4:1.2.3.4:5", timeout) == expected


def test_fresh_trace_ids_differ_per_call_on_one_template() -> None:
    encoder = ContextEncoder("a.B", "C", HEAD)
    seen = {json.loads(encoder.encode_fresh((), "ipv4:1.2.3.4:5", None))["context"]["Traceparent"][0] for _ in range(50)}
    assert len(seen) == 50


def test_metadata_holding_a_template_mark_is_encoded_as_sent() -> None:
    """A value that looks like the template's marks cannot confuse the splice."""
    encoder = ContextEncoder("a.B", "C", HEAD)
    metadata = (("x-evil", "rr-mark-traceparent"), ("x-b", "rr-mark-grpc-timeout"))
    injected = _injected_local_span(7)
    expected = encoder.encode(metadata, peer="1.2.3.4:5", injected=injected, timeout=1.0)
    random.seed(7)
    assert encoder.encode_fresh(metadata, "ipv4:1.2.3.4:5", 1.0) == expected
    ctx = json.loads(expected)["context"]
    assert ctx["x-evil"] == ["rr-mark-traceparent"] and ctx["grpc-timeout"] == ["1000m"]


def test_templates_stay_bounded_with_one_off_connections() -> None:
    encoder = ContextEncoder("a.B", "C", HEAD)
    for port in range(1000):
        ctx = json.loads(encoder.encode_fresh((), f"ipv4:10.0.0.1:{port}", None))["context"]
        assert ctx[":peer.address"] == [f"10.0.0.1:{port}"]
    assert len(encoder._templates) <= 256
