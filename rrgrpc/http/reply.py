"""Worker reply context -> HTTP response head (PROTOCOL.md §5): RoadRunner's status and header rules.

Owns decoding a reply frame's context (``http.v1.Response`` protobuf, or the legacy JSON head old
PHP libraries send), the checks that keep a bad worker from splitting a response (status 100..599,
token header names, no CR/LF/NUL in values), ``Trailer`` names, a small cache of repeated heads, and
Go's ``http.DetectContentType`` for a body without a Content-Type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
from multidict import CIMultiDict

from rrgrpc.gocompat import canonical_header, is_token
from rrgrpc.goridge.frame import Flag
from rrgrpc.http import http_pb2

_PROTO: Final = int(Flag.CODEC_PROTO)


class BadWorkerResponse(Exception):
    """The worker's reply head is unusable (bad status or header, undecodable context); the client
    gets ``internal_error_code``."""


#: Framing headers a worker may send but aiohttp writes itself.
_FRAMING: Final = frozenset({"Content-Length", "Transfer-Encoding", "Connection"})


@dataclass(frozen=True, slots=True)
class Head:
    """Status and headers of one reply frame (``trailers``: names the worker asked to trail).

    ``lines`` are the header lines a response carries (framing headers left to aiohttp) and
    ``typed`` says whether they name a Content-Type: worked out once per head, and heads are cached.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    trailers: tuple[str, ...] = ()
    lines: tuple[tuple[str, str], ...] = ()
    typed: bool = False


# --------------------------------------------------------------------------- response


class _LegacyResponse(msgspec.Struct):
    status: int = 0
    headers: dict[str, list[str]] | list[Any] = msgspec.field(default_factory=dict)


_legacy_decoder = msgspec.json.Decoder(_LegacyResponse)


#: Decoded heads by (context bytes, proto?): an application sends the same few heads over and over.
_head_cache: dict[tuple[bytes, bool], Head] = {}
_HEAD_CACHE_SIZE: Final = 256
_HEAD_CACHE_MAX_BYTES: Final = 512


def decode_head(context: bytes, flags: int) -> Head | None:
    """Decode a reply frame's context; None when the frame carries none (body only).

    Protobuf when the frame has the PROTO flag; otherwise the legacy JSON head (flags 0), which old
    PHP libraries send. Status must be 100..599. Small heads are remembered (heads are immutable).

    Raises:
        BadWorkerResponse: undecodable context, a status outside 100..599, a header name that is not
            an HTTP token (``X:Y``, ``X Y``) or a header value with CR, LF or NUL.
    """
    if not context:
        return None
    key = (context, bool(flags & _PROTO))
    head = _head_cache.get(key)
    if head is None:
        head = _decode_head(context, key[1])
        if len(context) <= _HEAD_CACHE_MAX_BYTES:
            if len(_head_cache) >= _HEAD_CACHE_SIZE:
                _head_cache.clear()  # one-off heads (cookies, dates) must not pin the cache
            _head_cache[key] = head
    return head


def _decode_head(context: bytes, proto: bool) -> Head:
    pairs: list[tuple[str, str]] = []
    if proto:
        try:
            msg = http_pb2.Response.FromString(context)
        except Exception as exc:  # DecodeError: the runtime raises its own class per backend
            raise BadWorkerResponse(f"invalid response context: {exc}") from exc
        status = msg.status
        for name, hv in msg.headers.items():
            canon = canonical_header(name)
            pairs.extend((canon, v.decode("utf-8", "replace")) for v in hv.value)
    else:
        try:
            legacy = _legacy_decoder.decode(context)
        except msgspec.DecodeError as exc:
            raise BadWorkerResponse(f"invalid response context: {exc}") from exc
        status = legacy.status
        if isinstance(legacy.headers, dict):
            for name, values in legacy.headers.items():
                canon = canonical_header(name)
                pairs.extend((canon, str(v)) for v in values)
    if not 100 <= status <= 599:
        raise BadWorkerResponse(f"unknown status code from worker: {status}")
    for name, value in pairs:
        if not is_token(name):
            raise BadWorkerResponse(f"invalid response header name from worker: {name!r}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise BadWorkerResponse(f"response header {name} from worker has CR, LF or NUL in its value")
    trailers: tuple[str, ...] = ()
    if any(name == "Trailer" for name, _ in pairs):
        names = [t.strip() for name, v in pairs if name == "Trailer" for t in v.split(",")]
        trailers = tuple(canonical_header(t) for t in names if t)
        pairs = [(n, v) for n, v in pairs if n != "Trailer"]
    lines = tuple((n, v) for n, v in pairs if n not in _FRAMING)
    return Head(int(status), tuple(pairs), trailers, lines, any(n == "Content-Type" for n, _ in lines))


def response_headers(head: Head) -> CIMultiDict[str]:
    """The head's header lines as a multidict; framing headers are left to aiohttp."""
    return CIMultiDict(head.lines)


def sniff_content_type(body: bytes) -> str:
    """A small ``http.DetectContentType``: html, plain text or octet-stream."""
    start = body[:512].lstrip(b"\t\n\x0c\r ").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<div", b"<p>", b"<h1")):
        return "text/html; charset=utf-8"
    if start.startswith(b"{") or start.startswith(b"["):
        return "text/plain; charset=utf-8"
    sample = body[:512]
    if all(b >= 0x20 or b in (9, 10, 12, 13, 27) for b in sample):
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(sample) - 3:
                return "application/octet-stream"
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
