"""The Goridge frame: a sans-IO codec (no sockets, no asyncio).

Layout of one frame (all integers little-endian)::

    byte  0      version (high nibble, always 1) | HL (low nibble): header length in 32-bit words
    byte  1      flags: CONTROL 0x01, RAW 0x04, JSON 0x08, MSGPACK 0x10, GOB 0x20, ERROR 0x40, PROTO 0x80
    bytes 2..5   payload length (uint32), options not included
    bytes 6..9   CRC32 (IEEE) of bytes 0..5 only
    byte  10     stream bits: STREAM 0x01, STOP 0x02, PING 0x04, PONG 0x08
    byte  11     reserved, written as 0 and ignored on read
    bytes 12..   HL - 3 option words (uint32 each, at most 10)
    then         the payload

Worker data frames carry one option (the context length); RPC frames carry two (sequence id,
method-name length); control, PING/PONG/STOP and ERROR frames carry none.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Final

import msgspec

from rrgrpc.errors import ProtocolError

HEADER_SIZE: Final = 12
MAX_OPTIONS: Final = 10
VERSION: Final = 1
#: Default bound on one frame's payload: larger than any gRPC/HTTP message limit we allow.
DEFAULT_MAX_FRAME: Final = 2**31 - 1

_LEN_CRC = struct.Struct("<II")
_U32 = struct.Struct("<I")
_OPTS = [struct.Struct(f"<{n}I") for n in range(MAX_OPTIONS + 1)]
_DATA_HEAD = struct.Struct("<BBI")  # bytes 0..5 of a one-option frame
_DATA_TAIL = struct.Struct("<IBBI")  # CRC, byte 10, byte 11, the option
_NOT_A_FRAME: Final = b"Could not op"  # PHP: "Could not open input file: ..." printed to stdout


class Flag(enum.IntFlag):
    """Frame flags (byte 1)."""

    NONE = 0
    CONTROL = 0x01
    CODEC_RAW = 0x04
    CODEC_JSON = 0x08
    CODEC_MSGPACK = 0x10
    CODEC_GOB = 0x20
    ERROR = 0x40
    CODEC_PROTO = 0x80


class Stream(enum.IntFlag):
    """Stream and control bits (byte 10)."""

    NONE = 0
    STREAM = 0x01
    STOP = 0x02
    PING = 0x04
    PONG = 0x08


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 12 bytes of a frame, decoded and checked."""

    hl: int
    flags: int
    length: int
    byte10: int

    @property
    def options_size(self) -> int:
        return 4 * (self.hl - 3)


class Frame(msgspec.Struct, frozen=True):
    """One Goridge frame. ``flags`` and ``byte10`` are plain ints so unknown bits survive a round trip.

    A frozen msgspec Struct, not a frozen dataclass: one is made per frame, ten times faster."""

    payload: bytes = b""
    flags: int = 0
    options: tuple[int, ...] = ()
    byte10: int = 0

    def encode(self) -> bytes:
        return encode(self.payload, self.flags, self.options, self.byte10)


def encode(payload: bytes = b"", flags: int = 0, options: tuple[int, ...] = (), byte10: int = 0) -> bytes:
    """Encode one frame to bytes."""
    if len(options) > MAX_OPTIONS:
        raise ValueError(f"a frame carries at most {MAX_OPTIONS} options, got {len(options)}")
    head = bytes(((VERSION << 4) | (3 + len(options)), flags & 0xFF)) + _U32.pack(len(payload))
    head += _U32.pack(zlib.crc32(head)) + bytes((byte10 & 0xFF, 0))
    if options:
        head += struct.pack(f"<{len(options)}I", *options)
    return head + payload


def encode_data(context: bytes, body: bytes, flags: int) -> bytes:
    """A worker data frame: one option (the context length), payload ``context + body``.

    The same bytes as ``encode(context + body, flags, (len(context),))``, with one copy fewer.
    """
    head = _DATA_HEAD.pack((VERSION << 4) | 4, int(flags) & 0xFF, len(context) + len(body))
    return b"".join((head, _DATA_TAIL.pack(zlib.crc32(head), 0, 0, len(context)), context, body))


def decode_header(head: bytes, max_payload: int = DEFAULT_MAX_FRAME, *, sender: str = "worker") -> Header:
    """Check and decode the fixed 12-byte header.

    ``sender`` is ``"worker"`` (a PHP worker's stdout or relay socket) or ``"client"`` (an RPC client):
    it picks how bytes that are plainly not a frame are explained.

    Raises:
        ProtocolError: short header, header length outside 3..13, CRC mismatch or oversized payload.
            Bytes that are plainly not a frame (PHP's "Could not open input file", text printed to
            stdout, an HTTP request sent to the RPC port) are named as such.
    """
    if len(head) < HEADER_SIZE:
        raise ProtocolError(f"short read: got {len(head)} of the {HEADER_SIZE} header bytes")
    _check_header(head, max_payload, sender)
    return Header(hl=head[0] & 0x0F, flags=head[1], length=_U32.unpack_from(head, 2)[0], byte10=head[10])


def _check_header(head: bytes | bytearray, max_payload: int, sender: str) -> None:
    """Raise the ProtocolError that explains what is wrong with a full header, if anything is."""
    hl = head[0] & 0x0F
    length, crc = _LEN_CRC.unpack_from(head, 2)
    if zlib.crc32(head[:6]) != crc:
        raw = bytes(head[:HEADER_SIZE])
        hint = _guess(raw) if sender == "worker" else _guess_client(raw)
        raise ProtocolError(f"CRC mismatch in frame header {raw.hex(' ')}{hint}")
    if not 3 <= hl <= 3 + MAX_OPTIONS:
        raise ProtocolError(f"header length {hl} words is outside 3..{3 + MAX_OPTIONS}")
    if length > max_payload:
        raise ProtocolError(f"frame payload of {length} bytes exceeds the limit of {max_payload} bytes")


def decode_options(header: Header, raw: bytes) -> tuple[int, ...]:
    """Decode the option words that follow the header."""
    n = header.hl - 3
    if len(raw) != 4 * n:
        raise ProtocolError(f"short read: got {len(raw)} of {4 * n} option bytes")
    return struct.unpack(f"<{n}I", raw) if n else ()


def parse(buf: bytes | bytearray, max_payload: int = DEFAULT_MAX_FRAME) -> tuple[Frame, int] | None:
    """The frame at the start of ``buf`` and the bytes it used, or None while ``buf`` ends before it does.

    This is the one frame parser: :func:`decode` and the relays' :class:`~rrgrpc.goridge.relay.Channel`
    both use it, so the codec the vectors and the fuzz target test is the code in production.

    Raises:
        ProtocolError: as :func:`decode_header`, as soon as the 12 header bytes are there.
    """
    if len(buf) < HEADER_SIZE:
        return None
    hl = buf[0] & 0x0F
    length, crc = _LEN_CRC.unpack_from(buf, 2)
    if zlib.crc32(buf[:6]) != crc or not 3 <= hl <= 3 + MAX_OPTIONS or length > max_payload:
        _check_header(buf, max_payload, "worker")
    opt_end = HEADER_SIZE + 4 * (hl - 3)
    end = opt_end + length
    if len(buf) < end:
        return None
    return Frame(bytes(buf[opt_end:end]), buf[1], _OPTS[hl - 3].unpack_from(buf, HEADER_SIZE), buf[10]), end


def decode(buf: bytes, max_payload: int = DEFAULT_MAX_FRAME) -> tuple[Frame, int]:
    """Decode one frame from the start of ``buf``; returns the frame and the bytes it used.

    Raises:
        ProtocolError: as :func:`decode_header`, or when ``buf`` ends before the frame does.
    """
    parsed = parse(buf, max_payload)
    if parsed is None:
        if len(buf) < HEADER_SIZE:
            raise ProtocolError(f"short read: got {len(buf)} of the {HEADER_SIZE} header bytes")
        end = HEADER_SIZE + 4 * ((buf[0] & 0x0F) - 3) + _U32.unpack_from(buf, 2)[0]
        raise ProtocolError(f"short read: frame needs {end} bytes, got {len(buf)}")
    return parsed


def _guess(head: bytes) -> str:
    if head.startswith(_NOT_A_FRAME):
        return ": the worker printed 'Could not open input file' -- check the script path in the command"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:HEADER_SIZE]):
        text = head[:HEADER_SIZE].decode("ascii", "replace")
        return f": the worker wrote text to stdout ({text!r}...) -- stdout is the relay, log to stderr"
    return ""


def _guess_client(head: bytes) -> str:
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:HEADER_SIZE]):
        text = head[:HEADER_SIZE].decode("ascii", "replace")
        return f": not a Goridge frame but text ({text!r}...) -- is an HTTP or other non-RPC client connected?"
    return ": not a Goridge frame"
