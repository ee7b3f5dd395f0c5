"""Fuzzing the decoders that read bytes from outside: Goridge frames (``frame.parse``, the one frame
parser, alone and as ``relay.Channel`` runs it on bytes in any chunking), RPC requests (``rpc.read_frame``, ``rpc.parse``,
``decode_argument`` with the gob subset) and the config loader (YAML text -> ``load_config``).

The only failures allowed are the project's own clear errors (ProtocolError, RpcArgumentError,
ConfigError). Runs briefly in the normal suite; for a long run set ``RRGRPC_FUZZ_EXAMPLES``, e.g.
``RRGRPC_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest -q tests/unit/test_fuzz.py -o timeout=0``
(the suite's 60 s per-test timeout off).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rrgrpc.config import load_config
from rrgrpc.errors import ConfigError, ProtocolError
from rrgrpc.goridge.frame import MAX_OPTIONS, Frame, decode
from rrgrpc.goridge.frame import parse as parse_frame
from rrgrpc.goridge.relay import Channel
from rrgrpc.goridge.rpc import RpcArgumentError, decode_argument, encode_request, parse, read_frame

EXAMPLES = int(os.environ.get("RRGRPC_FUZZ_EXAMPLES", "50"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

u32 = st.integers(0, 2**32 - 1)
frames = st.builds(
    Frame,
    payload=st.binary(max_size=300),
    flags=st.integers(0, 255),
    options=st.lists(u32, max_size=MAX_OPTIONS).map(tuple),
    byte10=st.integers(0, 255),
)


def bytes_with_frames() -> st.SearchStrategy[bytes]:
    """Random bytes, valid frames, and valid frames with a few bytes flipped or cut."""
    valid = st.lists(frames, max_size=4).map(lambda fs: b"".join(f.encode() for f in fs))

    @st.composite
    def damaged(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(valid) or b"\x13")
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data[: draw(st.integers(0, len(data)))])

    return st.one_of(st.binary(max_size=400), valid, damaged())


def all_frames(data: bytes, max_payload: int) -> tuple[list[Frame], bool]:
    """Parse the whole of ``data`` at once: the frames, and whether a bad header stopped it."""
    out: list[Frame] = []
    while True:
        try:
            parsed = parse_frame(data, max_payload)
        except ProtocolError:
            return out, True
        if parsed is None:
            return out, False
        out.append(parsed[0])
        data = data[parsed[1] :]


async def received(channel: Channel) -> list[Frame]:
    """Every frame the channel holds, read through its public ``recv`` until the relay error."""
    out: list[Frame] = []
    while True:
        try:
            out.append(await channel.recv())
        except ProtocolError:
            return out


@fuzz
@given(frames)
def test_frame_roundtrip(frame: Frame) -> None:
    assert decode(frame.encode()) == (frame, len(frame.encode()))


@fuzz
@given(bytes_with_frames(), st.integers(0, 400), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_channel_parses_any_chunking_as_one_buffer(data: bytes, max_payload: int, chunks: list[int]) -> None:
    """The relay channel, fed in any chunking, sees exactly the frames of one parse over the whole
    buffer, and fails (with a ProtocolError, never an exception from feed) exactly when a header is bad."""
    channel = Channel(lambda _b: None, max_frame=max_payload, name="fuzz")
    i = 0
    for n in chunks * (len(data) // max(1, sum(chunks)) + 1):
        channel.feed(data[i : i + n])
        i += n
    expected, bad_header = all_frames(data, max_payload)
    assert (channel.broken is not None) == bad_header
    channel.feed_eof()
    assert isinstance(channel.broken, ProtocolError)
    assert asyncio.run(received(channel)) == expected


@fuzz
@given(bytes_with_frames())
def test_rpc_read_frame_and_parse_fail_only_with_protocol_errors(data: bytes) -> None:
    async def read_all() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        while True:
            try:
                frame = await read_frame(reader, 1000, timeout=5, sender="client")
                if frame is None:
                    return
                parse(frame)
            except ProtocolError:
                return

    asyncio.run(read_all())


codecs = st.sampled_from([0x04, 0x08, 0x10, 0x20, 0x80])


@fuzz
@given(codecs, st.binary(max_size=200))
def test_rpc_arguments_fail_only_with_argument_errors(codec: int, body: bytes) -> None:
    try:
        decode_argument(codec, body)
    except RpcArgumentError:
        pass


@fuzz
@given(st.text(max_size=40), codecs, st.binary(max_size=100), u32)
def test_rpc_request_roundtrip(method: str, codec: int, body: bytes, seq: int) -> None:
    frame, _ = decode(encode_request(seq, method, codec, body))
    req = parse(frame)
    assert (req.seq, req.method, req.body) == (seq, method.encode().decode("utf-8", "replace"), body)


# -- config loader -------------------------------------------------------------------------------

SECTIONS = ["server", "rpc", "grpc", "http", "metrics", "otel", "status", "logs", "kv", "include", "envfile"]
KEYS = ["command", "env", "relay", "listen", "address", "pool", "num_workers", "max_jobs", "proto", "tls",
        "key", "ssl", "middleware", "level", "mode", "headers", "supervisor", "exec_ttl", "max_connections"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["3", "1s", "-1s", "tcp://127.0.0.1:0", "${HOME}", "$", "${X:-y}", "1e400"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4)
    ),
    max_leaves=20,
)
trees = st.dictionaries(st.sampled_from(SECTIONS), values, max_size=5).map(lambda d: {"version": "3", **d})


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    text = yaml.safe_dump(draw(trees), allow_unicode=True)
    if draw(st.booleans()):  # damage it: cut, or insert YAML syntax
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(["", "\t", "- ", ": ", "{", "[", "&a ", "*a", "!!python/object:x ", "'"])) + text[i:]
    return text


def test_config_fuzz_catches_what_it_should() -> None:
    """The harness itself: a broken file gives ConfigError (so 'only ConfigError' is meaningful)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".rr.yaml"
        path.write_text('version: "3"\nrpc: {listen: 5}\n')
        try:
            load_config(path)
        except ConfigError as exc:
            assert "rpc.listen" in str(exc)
        else:
            raise AssertionError("no ConfigError")


@fuzz
@given(st.one_of(yaml_texts(), st.text(max_size=200)))
def test_config_loader_fails_only_with_config_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".rr.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc) and "Traceback" not in str(exc)


