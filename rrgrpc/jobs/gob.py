"""Go's ``encoding/gob``, as much of it as RoadRunner's beanstalk driver puts in a job body.

RoadRunner stores a beanstalk job as the gob of its ``Item``; this module reads any gob stream of
structs, strings, byte slices, integers, booleans, slices and maps (what such bodies hold), and writes
RoadRunner's ``Item`` with one more field, ``Headers``, which RoadRunner's decoder skips (its own
``headers`` field is unexported, so RoadRunner itself does not carry them).

A stream is a sequence of messages, each ``uint(length) int(type id) value``; a negative type id
defines that type (a ``wireType``) before a value uses it::

    uint    < 0x80: one byte; else a byte holding -(byte count), then the big-endian bytes
    int     as uint: i << 1, or (~i << 1) | 1 when negative
    struct  (uint field delta, field value)*, then 0      fields at their zero value are left out
    string / []byte: uint length, bytes      slice: uint count, elements      map: uint count, (k, v)*
"""

from __future__ import annotations

import struct
from typing import Any

from rrgrpc.errors import ProtocolError

# builtin type ids
BOOL, INT, UINT, FLOAT, BYTES, STRING = 1, 2, 3, 4, 5, 6
WIRE_TYPE = 16


class GobError(ProtocolError):
    """Not a gob stream (or a gob of a kind this reader does not handle)."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise GobError("gob: truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def read_uint(self) -> int:
        b = self.byte()
        if b < 0x80:
            return b
        n = 256 - b
        if n > 8:
            raise GobError("gob: bad unsigned integer")
        return int.from_bytes(self.take(n), "big")

    def read_int(self) -> int:
        u = self.read_uint()
        return ~(u >> 1) if u & 1 else u >> 1

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise GobError("gob: truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


# -- reading ----------------------------------------------------------------------------------
# A type is ("struct", [(name, id)]), ("slice", elem), ("array", elem, len) or ("map", key, elem).
_Type = tuple[Any, ...]


def decode(data: bytes) -> dict[str, Any]:
    """The first value of a gob stream, which must be a struct: its fields by name."""
    r = _Reader(data)
    types: dict[int, _Type] = {}
    while r.pos < len(data):
        end = r.read_uint()
        end += r.pos
        tid = r.read_int()
        if tid < 0:
            types[-tid] = _wire_type(r)
        else:
            value = _value(r, tid, types)
            if not isinstance(value, dict):
                raise GobError("gob: the value is not a struct")
            return value
        if r.pos != end:
            raise GobError("gob: message length mismatch")
    raise GobError("gob: no value")


def _struct_fields(r: _Reader, read: dict[int, Any]) -> dict[int, Any]:
    """Generic struct walk: field number -> what ``read[field]`` returns (unknown fields are an error)."""
    out: dict[int, Any] = {}
    field = -1
    while (delta := r.read_uint()) != 0:
        field += delta
        if field not in read:
            raise GobError("gob: unexpected field in a type definition")
        out[field] = read[field](r)
    return out


def _name(r: _Reader) -> str:
    return r.take(r.read_uint()).decode(errors="replace")


def _common(r: _Reader) -> Any:
    return _struct_fields(r, {0: _name, 1: _Reader.read_int})


def _wire_type(r: _Reader) -> _Type:
    def struct_t(r: _Reader) -> _Type:
        def field_t(r: _Reader) -> tuple[str, int]:
            f = _struct_fields(r, {0: _name, 1: _Reader.read_int})
            return f.get(0, ""), f.get(1, 0)

        f = _struct_fields(r, {0: _common, 1: lambda r: [field_t(r) for _ in range(r.read_uint())]})
        return ("struct", f.get(1, []))

    def slice_t(r: _Reader) -> _Type:
        return ("slice", _struct_fields(r, {0: _common, 1: _Reader.read_int}).get(1, 0))

    def array_t(r: _Reader) -> _Type:
        f = _struct_fields(r, {0: _common, 1: _Reader.read_int, 2: _Reader.read_int})
        return ("array", f.get(1, 0), f.get(2, 0))

    def map_t(r: _Reader) -> _Type:
        f = _struct_fields(r, {0: _common, 1: _Reader.read_int, 2: _Reader.read_int})
        return ("map", f.get(1, 0), f.get(2, 0))

    wire = _struct_fields(r, {0: array_t, 1: slice_t, 2: struct_t, 3: map_t})
    if len(wire) != 1:
        raise GobError("gob: a type this reader does not handle (GobEncoder, marshalers)")
    return next(iter(wire.values()))


def _value(r: _Reader, tid: int, types: dict[int, _Type]) -> Any:
    if tid == BOOL:
        return r.read_uint() != 0
    if tid == INT:
        return r.read_int()
    if tid == UINT:
        return r.read_uint()
    if tid == FLOAT:  # byte-reversed IEEE 754
        return struct.unpack(">d", r.read_uint().to_bytes(8, "little"))[0]
    if tid in (BYTES, STRING):
        raw = r.take(r.read_uint())
        return raw if tid == BYTES else raw.decode(errors="replace")
    kind = types.get(tid)
    if kind is None:
        raise GobError(f"gob: undefined type id {tid}")
    if kind[0] == "struct":
        fields: dict[str, Any] = {}
        field = -1
        while (delta := r.read_uint()) != 0:
            field += delta
            if field >= len(kind[1]):
                raise GobError("gob: field number out of range")
            name, ftid = kind[1][field]
            fields[name] = _value(r, ftid, types)
        return fields
    if kind[0] in ("slice", "array"):
        return [_value(r, kind[1], types) for _ in range(r.read_uint())]
    if kind[0] == "map":
        return {_value(r, kind[1], types): _value(r, kind[2], types) for _ in range(r.read_uint())}
    raise GobError("gob: unknown type kind")


# -- writing RoadRunner's beanstalk Item -------------------------------------------------------
def _uint(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([256 - len(raw)]) + raw


def _int(i: int) -> bytes:
    return _uint((~i << 1) | 1 if i < 0 else i << 1)


def _str(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return _uint(len(raw)) + raw


def _fields(values: list[bytes | None]) -> bytes:
    """A struct from its encoded field values in order (None = zero value, left out)."""
    out, last = b"", -1
    for number, value in enumerate(values):
        if value is not None:
            out += _uint(number - last) + value
            last = number
    return out + b"\x00"


def _message(tid: int, body: bytes) -> bytes:
    head = _int(tid)
    return _uint(len(head) + len(body)) + head + body


ITEM, OPTIONS, HEADERS, STRINGS = 64, 65, 66, 67


def _struct_type(name: str, tid: int, fields: list[tuple[str, int]]) -> bytes:
    common = _fields([_str(name), _int(tid)])
    listed = _uint(len(fields)) + b"".join(_fields([_str(n), _int(t)]) for n, t in fields)
    return _fields([None, None, _fields([common, listed])])


_TYPES = b"".join((
    _message(-ITEM, _struct_type("Item", ITEM, [
        ("Job", STRING), ("Ident", STRING), ("Payload", BYTES), ("Options", OPTIONS), ("Headers", HEADERS)])),
    _message(-OPTIONS, _struct_type("Options", OPTIONS, [
        ("Priority", INT), ("Pipeline", STRING), ("Delay", INT), ("AutoAck", BOOL), ("Queue", STRING)])),
    _message(-HEADERS, _fields([None, None, None, _fields([_fields([_str("map[string][]string"), _int(HEADERS)]),
                                                         _int(STRING), _int(STRINGS)])])),
    _message(-STRINGS, _fields([None, _fields([_fields([_str("[]string"), _int(STRINGS)]), _int(STRING)])])),
))


def encode_item(*, job: str, ident: str, payload: bytes, priority: int, pipeline: str, delay: int,
                auto_ack: bool, queue: str, headers: dict[str, list[str]]) -> bytes:
    """The gob RoadRunner's beanstalk driver writes for a job, with ``Headers`` added."""
    options = _fields([_int(priority) if priority else None, _str(pipeline) if pipeline else None,
                       _int(delay) if delay else None, _uint(1) if auto_ack else None,
                       _str(queue) if queue else None])
    encoded_headers = None
    if headers:
        encoded_headers = _uint(len(headers)) + b"".join(
            _str(k) + _uint(len(v)) + b"".join(_str(x) for x in v) for k, v in headers.items())
    item = _fields([_str(job) if job else None, _str(ident) if ident else None,
                    _str(payload) if payload else None, options, encoded_headers])
    return _TYPES + _message(ITEM, item)
