"""The Goridge RPC codec: frames with [seq, len(method)], codec selection, gob subset, error replies."""

from __future__ import annotations

import pytest

from rrgrpc.errors import ProtocolError
from rrgrpc.goridge.frame import Flag, Frame, decode
from rrgrpc.goridge.rpc import (
    RpcArgumentError,
    arg_bool,
    arg_str,
    decode_argument,
    encode_error,
    encode_reply,
    encode_request,
    encode_result,
    gob_decode_basic,
    parse,
    reply_codec,
    select_codec,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


V8 = h(
    "15 08 16 00 00 00 09 71 db a7 00 00 01 00 00 00 10 00 00 00 69 6e 66 6f 72 6d 65 72 2e 57 6f 72 6b 65 72 73 22 68 74 74 70 22"
)
V9 = h(
    "15 08 1e 00 00 00 e6 59 6f 62 00 00 01 00 00 00 10 00 00 00 69 6e 66 6f 72 6d 65 72 2e 57 6f 72 6b 65 72 73"
    " 7b 22 77 6f 72 6b 65 72 73 22 3a 5b 5d 7d"
)
V10 = h(
    "15 48 2f 00 00 00 6b 9e 0b 72 00 00 07 00 00 00 0c 00 00 00 69 6e 66 6f 72 6d 65 72 2e 46 6f 6f 72 70 63 3a"
    " 20 63 61 6e 27 74 20 66 69 6e 64 20 6d 65 74 68 6f 64 20 69 6e 66 6f 72 6d 65 72 2e 46 6f 6f"
)
V13 = h(
    "15 20 11 00 00 00 75 2d bd cb 00 00 00 00 00 00 0d 00 00 00 69 6e 66 6f 72 6d 65 72 2e 4c 69 73 74 03 02 00 01"
)


def test_request_vector_v8_round_trips() -> None:
    assert encode_request(1, "informer.Workers", Flag.CODEC_JSON, b'"http"') == V8
    req = parse(decode(V8)[0])
    assert (req.seq, req.method, req.codec, req.body) == (1, "informer.Workers", Flag.CODEC_JSON, b'"http"')
    assert decode_argument(req.codec, req.body) == "http"


def test_reply_vectors_v9_and_v10() -> None:
    assert (
        encode_reply(1, "informer.Workers", Flag.CODEC_JSON, encode_result(Flag.CODEC_JSON, {"workers": []}))
        == V9
    )
    assert encode_error(7, "informer.Foo", Flag.CODEC_JSON, "rpc: can't find method informer.Foo") == V10


def test_gob_request_v13_decodes_to_true_and_is_answered_in_json() -> None:
    req = parse(decode(V13)[0])
    assert (req.seq, req.method, req.codec) == (0, "informer.List", Flag.CODEC_GOB)
    assert decode_argument(req.codec, req.body) is True
    assert reply_codec(req.codec) == Flag.CODEC_JSON


@pytest.mark.parametrize(
    ("flags", "codec"),
    [
        (0xA0, Flag.CODEC_PROTO),  # GOB|PROTO from the Go client sending a protobuf argument
        (0x88, Flag.CODEC_PROTO),
        (0x0C, Flag.CODEC_JSON),
        (0x14, Flag.CODEC_RAW),
        (0x30, Flag.CODEC_MSGPACK),
        (0x20, Flag.CODEC_GOB),
        (0x00, Flag.CODEC_GOB),
        (0x40, Flag.CODEC_GOB),
    ],
)
def test_codec_selection_order(flags: int, codec: Flag) -> None:
    assert select_codec(flags) == codec


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ("03 02 00 01", True),
        ("03 02 00 00", False),
        ("07 0c 00 04 68 74 74 70", "http"),
        ("03 0c 00 00", ""),
        ("ff cc 0c 00 ff c8" + " 61" * 200, "a" * 200),
        # a type definition message (negative id) before the value is skipped
        ("04 ff 81 00 00 03 02 00 01", True),
    ],
)
def test_gob_subset(data: str, value: object) -> None:
    assert gob_decode_basic(h(data)) == value


@pytest.mark.parametrize("data", ["", "03 04 00 02", "07 0c 00 09 68 74", "05 0c 00 04 68 74 74 70"])
def test_gob_rejects_what_it_cannot_read(data: str) -> None:
    with pytest.raises(ValueError):
        gob_decode_basic(h(data))


def test_empty_arguments_are_zero_values_and_raw_proto_are_bytes() -> None:
    assert decode_argument(Flag.CODEC_JSON, b"") is None
    assert decode_argument(Flag.CODEC_GOB, b"") is None
    assert decode_argument(Flag.CODEC_RAW, b"abc") == b"abc"
    assert decode_argument(Flag.CODEC_PROTO, b"\x0a\x01x") == b"\x0a\x01x"
    assert decode_argument(Flag.CODEC_MSGPACK, b"\xc3") is True
    with pytest.raises(RpcArgumentError, match="json"):
        decode_argument(Flag.CODEC_JSON, b"{nope")


def test_results_per_codec() -> None:
    # bytes become base64 in JSON, exactly as Go's encoding/json does with []byte (rpc.Config)
    assert encode_result(Flag.CODEC_JSON, b'{"a":1}') == b'"eyJhIjoxfQ=="'
    assert encode_result(Flag.CODEC_RAW, b"raw") == b"raw"
    assert encode_result(Flag.CODEC_MSGPACK, True) == b"\xc3"
    with pytest.raises(RpcArgumentError, match="raw codec needs a \\[\\]byte result"):
        encode_result(Flag.CODEC_RAW, True)
    with pytest.raises(RpcArgumentError, match="message type is not a proto"):
        encode_result(Flag.CODEC_PROTO, {"code": 200})


def test_go_json_texts_for_bad_argument_types() -> None:
    assert arg_str(None) == "" and arg_str("grpc") == "grpc" and arg_str(b"grpc") == "grpc"
    assert arg_bool(None) is False and arg_bool(True) is True
    with pytest.raises(
        RpcArgumentError, match="^json: cannot unmarshal number into Go value of type string$"
    ):
        arg_str(5)
    with pytest.raises(RpcArgumentError, match="^json: cannot unmarshal string into Go value of type bool$"):
        arg_bool("yes")


@pytest.mark.parametrize(
    "frame",
    [
        Frame(b"informer.List", Flag.CODEC_JSON, (1,)),
        Frame(b"informer.List", Flag.CODEC_JSON, (1, 2, 3)),
        Frame(b"informer.List", Flag.CODEC_JSON, (1, 14)),
    ],
)
def test_malformed_rpc_frames(frame: Frame) -> None:
    with pytest.raises(ProtocolError):
        parse(frame)


def test_sequence_ids_travel_as_32_bits() -> None:
    req = parse(decode(encode_request(2**32 + 5, "a.B", Flag.CODEC_JSON, b"1"))[0])
    assert req.seq == 5
