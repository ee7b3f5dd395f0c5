"""Goridge RPC frames and values (PROTOCOL.md §6): what a request and a reply are on the wire.

* request/reply frames: exactly two options ``[seq, len(method)]``, payload = method name ‖ body;
* codec selection from the request flags (PROTO → JSON → RAW → MSGPACK → GOB, none set ⇒ GOB),
  argument decoding, result encoding, and error replies (``codec | ERROR``, plain-text message);
* the minimal gob decoder for the ``bool`` / ``string`` arguments the Go ``rr`` CLI sends (§6.4).
  Gob requests are answered in JSON, which the Go client decodes by the reply's flags;
* the argument helpers methods use to read Go's ``string``/``bool`` arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from rrgrpc.errors import ProtocolError, RRError
from rrgrpc.goridge.frame import Flag, Frame, encode

#: Bound on one RPC frame's payload: far above any real request (metrics, informer) or reply.
MAX_RPC_FRAME: Final = 64 * 1024 * 1024

_CODEC_ORDER: Final = (Flag.CODEC_PROTO, Flag.CODEC_JSON, Flag.CODEC_RAW, Flag.CODEC_MSGPACK, Flag.CODEC_GOB)
SEQ_MOD: Final = 2**32


class RpcError(RRError):
    """The server answered a call with an ERROR reply; ``str(exc)`` is the server's text."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(message)
        self.method = method


class RpcArgumentError(RRError):
    """An argument cannot be decoded into what the method takes (sent back as an error reply)."""



# --------------------------------------------------------------------------------------------
# codec


def select_codec(flags: int) -> Flag:
    """The codec of a request: the first of PROTO, JSON, RAW, MSGPACK, GOB set in ``flags``; none ⇒ GOB."""
    for codec in _CODEC_ORDER:
        if flags & codec:
            return codec
    return Flag.CODEC_GOB


def reply_codec(codec: int) -> Flag:
    """The codec a reply is written in: the request's, except GOB which is answered in JSON."""
    return Flag.CODEC_JSON if codec == Flag.CODEC_GOB else Flag(codec)


@dataclass(frozen=True, slots=True)
class Request:
    """One RPC request (or reply) frame taken apart."""

    seq: int
    method: str
    codec: Flag
    body: bytes
    flags: int = 0


def parse(frame: Frame) -> Request:
    """Split an RPC frame into sequence id, method name, codec and body.

    Raises:
        ProtocolError: not exactly two options, or a method length beyond the payload.
    """
    if len(frame.options) != 2:
        raise ProtocolError(f"an RPC frame carries 2 options [seq, method length], got {len(frame.options)}")
    seq, mlen = frame.options
    if mlen > len(frame.payload):
        raise ProtocolError(f"method name length {mlen} exceeds the payload of {len(frame.payload)} bytes")
    method = frame.payload[:mlen].decode("utf-8", "replace")
    return Request(seq, method, select_codec(frame.flags), frame.payload[mlen:], frame.flags)


def encode_request(seq: int, method: str, codec: int, body: bytes) -> bytes:
    name = method.encode()
    return encode(name + body, codec, (seq % SEQ_MOD, len(name)))


def encode_reply(seq: int, method: str, codec: int, body: bytes) -> bytes:
    """A success reply: flags = the codec, options ``[seq, len(method)]``, payload = method ‖ body."""
    return encode_request(seq, method, codec, body)


def encode_error(seq: int, method: str, codec: int, text: str) -> bytes:
    """An error reply: flags = codec | ERROR, payload = method ‖ plain UTF-8 text (never codec-encoded)."""
    name = method.encode()
    return encode(name + text.encode(), codec | Flag.ERROR, (seq % SEQ_MOD, len(name)))


def decode_argument(codec: int, body: bytes) -> Any:
    """Decode a request argument. Empty bytes are Go's zero value, passed on as ``None`` (JSON, GOB,
    MSGPACK); RAW and PROTO arguments are the bytes themselves.

    Raises:
        RpcArgumentError: the bytes are not valid for the codec.
    """
    if codec in (Flag.CODEC_RAW, Flag.CODEC_PROTO):
        return bytes(body)
    if not body:
        return None
    try:
        if codec == Flag.CODEC_JSON:
            return msgspec.json.decode(body)
        if codec == Flag.CODEC_MSGPACK:
            return msgspec.msgpack.decode(body)
        return gob_decode_basic(body)
    except (msgspec.DecodeError, ValueError, IndexError) as exc:
        name = _CODEC_NAMES.get(Flag(codec), "codec")
        raise RpcArgumentError(f"{name}: cannot decode the argument: {exc}") from exc


def encode_result(codec: int, result: Any) -> bytes:
    """Encode a method's result in the reply codec (JSON as Go does it: bytes become base64 strings).

    Raises:
        RpcArgumentError: RAW needs bytes, PROTO needs bytes or a protobuf message.
    """
    if codec == Flag.CODEC_RAW:
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result)
        raise RpcArgumentError(f"raw codec needs a []byte result, got {type(result).__name__}")
    if codec == Flag.CODEC_PROTO:
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result)
        serialize = getattr(result, "SerializeToString", None)
        if serialize is None:
            raise RpcArgumentError("message type is not a proto")
        return bytes(serialize())
    if codec == Flag.CODEC_MSGPACK:
        return msgspec.msgpack.encode(result)
    return msgspec.json.encode(result)


_CODEC_NAMES: Final = {Flag.CODEC_JSON: "json", Flag.CODEC_MSGPACK: "msgpack", Flag.CODEC_GOB: "gob"}


# --------------------------------------------------------------------------------------------
# gob: just what the Go rr CLI sends (one bool or one string per request)

_GOB_BOOL: Final = 1
_GOB_STRING: Final = 6


def _gob_uint(b: bytes, i: int) -> tuple[int, int]:
    x = b[i]
    if x < 0x80:
        return x, i + 1
    n = 256 - x
    if n > 8 or i + 1 + n > len(b):
        raise ValueError("gob: bad unsigned integer")
    return int.from_bytes(b[i + 1 : i + 1 + n], "big"), i + 1 + n


def _gob_int(b: bytes, i: int) -> tuple[int, int]:
    u, i = _gob_uint(b, i)
    return (~(u >> 1) if u & 1 else u >> 1), i


def gob_decode_basic(b: bytes) -> bool | str:
    """Decode a gob stream holding one ``bool`` or ``string`` (PROTOCOL.md §6.4).

    Type-definition messages (negative type id) are skipped.

    Raises:
        ValueError: truncated stream, a struct value, or a type other than bool and string.
    """
    i = 0
    while i < len(b):
        size, i = _gob_uint(b, i)
        end = i + size
        if end > len(b):
            raise ValueError("gob: message is truncated")
        tid, j = _gob_int(b, i)
        if tid < 0:
            i = end
            continue
        if j >= end or b[j] != 0:
            raise ValueError(f"gob: type id {tid} is not a basic top-level value")
        j += 1
        if tid == _GOB_BOOL:
            v, _ = _gob_uint(b, j)
            return bool(v)
        if tid == _GOB_STRING:
            n, j = _gob_uint(b, j)
            if j + n > end:
                raise ValueError("gob: string is truncated")
            return b[j : j + n].decode()
        raise ValueError(f"gob: unsupported type id {tid} (only bool and string are understood)")
    raise ValueError("gob: no value in the stream")


# --------------------------------------------------------------------------------------------
# argument helpers for methods (Go's json texts, since the Go argument types are string/bool)


def arg_str(arg: Any) -> str:
    """A ``string`` argument: ``None`` (empty/null) is ``""``; bytes (RAW) are decoded as UTF-8."""
    if arg is None:
        return ""
    if isinstance(arg, str):
        return arg
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    raise RpcArgumentError(f"json: cannot unmarshal {_json_kind(arg)} into Go value of type string")


def arg_bool(arg: Any) -> bool:
    """A ``bool`` argument: ``None`` (empty/null) is ``False``."""
    if arg is None:
        return False
    if isinstance(arg, bool):
        return arg
    raise RpcArgumentError(f"json: cannot unmarshal {_json_kind(arg)} into Go value of type bool")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
