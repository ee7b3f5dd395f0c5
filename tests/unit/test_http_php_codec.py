"""The PHP worker's hand-written http.v1 codec (php/src/Http/ProtoCodec.php) against the generated
classes of the protobuf runtime: every request context of the captured transcript plus synthetic
edge cases decode the same, and responses encode to the same bytes (also those of the transcript)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from rrgrpc.http import http_pb2
from tests.helpers import ROOT, VECTORS, php_cmd

TRANSCRIPT = json.loads((VECTORS / "http_worker.json").read_text())


def _frames(direction: str) -> list[dict[str, Any]]:
    return [
        f
        for ex in TRANSCRIPT["proto_codec"]["exchanges"]
        for f in ex["frames"]
        if f["dir"] == direction and f.get("context_hex")
    ]


def _synthetic_requests() -> list[bytes]:
    full = http_pb2.Request(
        remote_addr="::1", protocol="HTTP/2.0", method="POST", uri="https://h/ü?a=1",
        raw_query="a=1", parsed=True, uploads=b'{"f":{"name":"x"}}',
    )
    full.header["X-Long"].value.append(b"v" * 300)  # two-byte lengths
    full.header["X-Multi"].value.extend([b"a", b"", b"\xff\x00"])
    full.header["X-Empty"].value.extend([])
    full.cookies["sid"].value.append(b"1")
    full.attributes[""].value.append(b"empty key")
    big = http_pb2.Request(method="GET")
    for i in range(200):
        big.header[f"H{i}"].value.append(b"x" * i)
    # unknown fields of every wire type (a newer server) must be skipped
    unknown = bytes.fromhex("f80101" "f9010102030405060708" "fa0103616263" "fd0101020304") + full.SerializeToString()
    return [b"", full.SerializeToString(), big.SerializeToString(), unknown]


RESPONSES = [
    {"status": 200, "headers": {"Content-Type": ["text/plain"]}},
    {"status": 0, "headers": {}},
    {"status": 404, "headers": {"X-Multi": ["a", "b", ""], "": ["empty name"], "X-None": []}},
    {"status": 200, "headers": {"X-Long": ["v" * 300], "Set-Cookie": ["c1=v1; Path=/", "c2=v2"]}},
    {"status": -1, "headers": {"X": ["ü"]}},
    {"status": 2**40, "headers": {}},
]


@pytest.mark.php
def test_php_codec_matches_generated_classes() -> None:
    requests = [bytes.fromhex(f["context_hex"]) for f in _frames("server->worker")] + _synthetic_requests()
    responses = RESPONSES + [
        {
            "status": (msg := http_pb2.Response.FromString(bytes.fromhex(f["context_hex"]))).status,
            "headers": {k: [v.decode() for v in hv.value] for k, hv in msg.headers.items()},
            "expect": f["context_hex"],
        }
        for f in _frames("worker->server")
    ]
    out = subprocess.run(
        php_cmd("http_codec.php"),
        input=json.dumps({"requests": [r.hex() for r in requests], "responses": responses}),
        capture_output=True, text=True, check=True, timeout=30,
    )
    result = json.loads(out.stdout)
    assert len(result["requests"]) == len(requests)
    for got in result["requests"]:
        assert got["codec"] == got["generated"]
    assert len(result["responses"]) == len(responses)
    for case, got in zip(responses, result["responses"], strict=True):
        assert got["codec"] == got["generated"], case
        if "expect" in case:  # what the reference PHP library sent (Python's map order differs)
            mine = http_pb2.Response.FromString(bytes.fromhex(got["codec"]))
            assert mine == http_pb2.Response.FromString(bytes.fromhex(case["expect"]))
            assert len(got["codec"]) == len(case["expect"])


@pytest.mark.php
def test_php_codec_rejects_truncated_input() -> None:
    script = (
        "require 'php/autoload.php';"
        "foreach (['0a05616263', '0a', '08ffffffffffffffffffff01', '0b'] as $h) {"
        " try { RRGrpc\\Http\\ProtoCodec::decodeRequest(hex2bin($h)); echo \"accepted $h\\n\"; }"
        " catch (UnexpectedValueException $e) { echo 'rejected: ', $e->getMessage(), \"\\n\"; } }"
    )
    out = subprocess.run(["php", "-r", script], capture_output=True, text=True, check=True, cwd=ROOT, timeout=30)
    lines = out.stdout.splitlines()
    assert len(lines) == 4
    assert all(line.startswith("rejected: ") for line in lines), lines
