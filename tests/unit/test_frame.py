"""The frame codec against PROTOCOL.md §1.8 and every frame captured in ../shared/vectors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from rrgrpc.errors import ProtocolError
from rrgrpc.goridge.frame import Flag, Frame, Stream, decode, decode_header, encode, encode_data
from tests.helpers import VECTORS

SPEC = {
    "V1": ("13 09 0c 00 00 00 5f 0c 46 73 00 00 7b 22 70 69 64 22 3a 31 32 33 34 7d", Frame(b'{"pid":1234}', 0x09)),
    "V3": ("13 01 0c 00 00 00 9e 47 36 43 00 00 7b 22 70 69 64 22 3a 34 33 32 31 7d", Frame(b'{"pid":4321}', 0x01)),
    "V6": ("14 00 07 00 00 00 97 d9 52 b4 00 00 02 00 00 00 7b 7d 68 65 6c 6c 6f", Frame(b"{}hello", 0, (2,))),
    "V7": ("13 40 14 00 00 00 17 49 08 b3 00 00 " + b"something went wrong".hex(" "), Frame(b"something went wrong", Flag.ERROR)),
    "V11": ("13 00 00 00 00 00 96 d1 80 34 08 00", Frame(b"", 0, (), Stream.PONG)),
    "V12": ("13 00 00 00 00 00 96 d1 80 34 02 00", Frame(b"", 0, (), Stream.STOP)),
    "V13": ("15 20 11 00 00 00 75 2d bd cb 00 00 00 00 00 00 0d 00 00 00 " + b"informer.List".hex(" ") + " 03 02 00 01",
            Frame(b"informer.List\x03\x02\x00\x01", Flag.CODEC_GOB, (0, 13))),
    "V16": ("14 00 00 00 00 00 2e e1 85 29 00 00 00 00 00 00", Frame(b"", 0, (0,))),
}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_spec_vectors(name: str) -> None:
    hexs, frame = SPEC[name]
    raw = bytes.fromhex(hexs.replace(" ", ""))
    assert frame.encode() == raw
    assert decode(raw) == (frame, len(raw))


def _captured() -> Iterator[Any]:
    for path in sorted(VECTORS.glob("*.json")):
        data = json.loads(path.read_text())
        parts = [data[k] for k in ("json_codec", "proto_codec") if k in data] or [data]
        for part in parts:
            for ex in part["exchanges"]:
                for i, fr in enumerate(ex["frames"]):
                    if "hex" in fr and not fr.get("hex_truncated"):
                        yield pytest.param(fr, id=f"{path.stem}:{ex['name'][:40]}:{i}")


@pytest.mark.parametrize("captured", list(_captured()))
def test_captured_frames_roundtrip(captured: dict[str, Any]) -> None:
    raw = bytes.fromhex(captured["hex"])
    frame, used = decode(raw)
    assert used == len(raw)
    assert frame.flags == captured["header"]["flags"]
    assert list(frame.options) == captured["header"]["options"]
    assert frame.byte10 == captured["header"]["byte10"]
    assert frame.encode() == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x13\x09\x0c\x00", "short read"),
        (bytes.fromhex("13090c0000005f0c467400007b"), "CRC mismatch"),
        (b"Could not open input file: x.php\n", "Could not open input file"),
        (b"hello world garbage\n", "wrote text to stdout"),
        (encode(b"x")[:0] + bytes([0x12]) + encode(b"x")[1:], "CRC mismatch"),
    ],
)
def test_malformed_headers(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_header(raw)


def test_header_length_and_size_bounds() -> None:
    import struct
    import zlib

    head = bytes([0x12, 0]) + struct.pack("<I", 0)
    bad_hl = head + struct.pack("<I", zlib.crc32(head)) + b"\0\0"
    with pytest.raises(ProtocolError, match="outside 3..13"):
        decode_header(bad_hl)
    with pytest.raises(ProtocolError, match="exceeds the limit of 4 bytes"):
        decode_header(encode(b"hello"), max_payload=4)
    with pytest.raises(ProtocolError, match="short read"):
        decode(encode(b"hello")[:-1])
    with pytest.raises(ValueError):
        encode(b"", 0, tuple(range(11)))


@pytest.mark.parametrize(
    ("context", "body", "flags"),
    [(b"", b"", 0), (b'{"a":1}', b"hello", Flag.CODEC_JSON), (b"c" * 70_000, b"\x00\xff", Flag.CODEC_PROTO | 0x100)],
)
def test_encode_data_is_encode_with_the_context_length(context: bytes, body: bytes, flags: int) -> None:
    assert encode_data(context, body, flags) == encode(context + body, flags, (len(context),))
