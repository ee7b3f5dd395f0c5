"""The ``http.v1.Request`` protobuf context, encoded straight to wire bytes.

The same message ``http_pb2.Request`` describes (proto/http/http.proto), written without building a
message object: protobuf's runtime costs about 1.5 µs per map entry (one per header line name),
more than the rest of a request's context together. Fields go out in field-number order and
proto3 defaults (empty strings, ``false``) are left out, as protobuf writes them; map entries keep
the caller's order (protobuf's own order is unspecified, and parsers accept any). Strings are
UTF-8 and, as with protobuf, a lone surrogate raises UnicodeEncodeError.

    field  1 remote_addr   2 protocol   3 method   4 uri   7 raw_query       (string)
    field  5 header   6 cookies   10 attributes   map<string, HeaderValue{repeated bytes value = 1}>
    field  8 parsed (bool)   9 uploads (bytes)

The ``header`` field comes encoded (:func:`header_map`): the caller keeps the bytes of a header set
that repeats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

_SMALL: Final = [bytes((n,)) for n in range(128)]  # one-byte varints
#: Fields 1-3 (client address, protocol, method) as bytes: the same few combinations, request after request.
_leads: dict[tuple[str, str, str], bytes] = {}
_LEADS_SIZE: Final = 4096
#: Map keys (header, cookie and attribute names) with their key tag and length, and the value tag.
_keys: dict[str, bytes] = {}
_KEYS_SIZE: Final = 4096


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(tag: bytes, text: str) -> bytes:
    raw = text.encode("utf-8")
    return tag + _varint(len(raw)) + raw


def _map(tag: bytes, entries: Iterable[tuple[str, Sequence[bytes]]]) -> bytes:
    """Map entries {key: HeaderValue}, each as ``tag`` + length + (key = 1, value = 2)."""
    out = []
    keys, small = _keys, _SMALL
    for name, values in entries:
        key = keys.get(name)
        if key is None:
            raw = name.encode("utf-8")
            key = b"\x0a" + _varint(len(raw)) + raw + b"\x12"
            if len(keys) < _KEYS_SIZE:
                keys[name] = key
        # lengths under 128 (nearly every header) are one byte, looked up without a call
        if len(values) == 1:  # the usual header: one line
            n = len(values[0])
            value = b"\x0a" + (small[n] if n < 128 else _varint(n)) + values[0]
        else:
            value = b"".join([b"\x0a" + _varint(len(v)) + v for v in values])
        n = len(value)
        entry = key + (small[n] if n < 128 else _varint(n)) + value
        n = len(entry)
        out.append(tag + (small[n] if n < 128 else _varint(n)) + entry)
    return b"".join(out)


def header_map(header: Mapping[str, Sequence[bytes]]) -> bytes:
    """The ``header`` field (5) of a request, as :func:`encode_request` takes it."""
    return _map(b"\x2a", header.items())


def encode_request(
    remote_addr: str,
    protocol: str,
    method: str,
    uri: str,
    header: bytes,
    cookies: Mapping[str, str],
    raw_query: str,
    parsed: bool,
    uploads: bytes,
    attributes: Mapping[str, Sequence[str]],
) -> bytes:
    """The serialized ``http.v1.Request`` (what ``http_pb2.Request(...).SerializeToString()`` parses back
    to); ``header`` is :func:`header_map`'s encoding."""
    key = (remote_addr, protocol, method)
    lead = _leads.get(key)
    if lead is None:
        lead = b"".join(_string(tag, text) for tag, text in ((b"\x0a", remote_addr), (b"\x12", protocol), (b"\x1a", method)) if text)
        if len(_leads) < _LEADS_SIZE:  # clients come from few addresses; a scan of many must not grow it forever
            _leads[key] = lead
    parts = [lead, _string(b"\x22", uri) if uri else b"", header]
    if cookies:
        parts.append(_map(b"\x32", ((k, (v.encode("utf-8"),)) for k, v in cookies.items())))
    if raw_query:
        parts.append(_string(b"\x3a", raw_query))
    if parsed:
        parts.append(b"\x40\x01")
    if uploads:
        parts.append(b"\x4a" + _varint(len(uploads)) + uploads)
    if attributes:
        parts.append(_map(b"\x52", ((k, [v.encode("utf-8") for v in vs]) for k, vs in attributes.items())))
    return b"".join(parts)
