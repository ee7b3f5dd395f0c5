"""aiohttp request -> RoadRunner request context, and worker reply context -> response head.

Owns the HTTP wire contract with PHP workers (PROTOCOL.md §5): the ``http.v1.Request`` protobuf
context (default) or the legacy JSON context, the body rules (raw bytes, or the form tree in
PHP bracket notation with multipart files copied to ``upload*`` temp files), Go-canonical
multi-valued headers without ``Host``, cookies, the absolute URI and the client address; and on
the way back, ``http.v1.Response`` / legacy JSON heads with RoadRunner's status rules.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from rrgrpc.gocompat import canonical_header, is_token, parse_cookies, parse_query
from rrgrpc.goridge.frame import Flag
from rrgrpc.http import http_pb2
from rrgrpc.http.forms import FormError, UploadedFile, build_tree, tree_json
from rrgrpc.http.state import Forward
from rrgrpc.pool.payload import Payload

Codec = Literal["proto", "json"]

#: PHP UPLOAD_ERR_* codes RoadRunner reports per file.
UPLOAD_OK: Final = 0
UPLOAD_ERR_NO_FILE: Final = 4
UPLOAD_ERR_NO_TMP_DIR: Final = 6
UPLOAD_ERR_CANT_WRITE: Final = 7
UPLOAD_ERR_EXTENSION: Final = 8

_CHUNK: Final = 256 * 1024
_PROTO: Final = int(Flag.CODEC_PROTO)
_JSON: Final = int(Flag.CODEC_JSON)
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


class RequestError(Exception):
    """The request cannot be turned into a worker payload; answered with ``status`` (400/413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadWorkerResponse(Exception):
    """The worker's reply head is unusable (bad status or header, undecodable context); the client
    gets ``internal_error_code``."""


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The ``http:`` keys that shape a request context."""

    codec: Codec = "proto"
    raw_body: bool = False
    max_request_size: int = 1000 * 1024 * 1024  # bytes; 0 = unlimited
    uploads_dir: str = ""
    uploads_forbid: frozenset[str] = frozenset({".php", ".exe", ".bat"})
    uploads_allow: frozenset[str] = frozenset()
    uploads_owner: tuple[int, int] | None = None  # (uid, gid) for temp files when RR runs as root


@dataclass(slots=True)
class Built:
    """A request ready for the pool, plus the temp files to delete once the response is done."""

    payload: Payload
    temp_files: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        for path in self.temp_files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.temp_files.clear()


@dataclass(frozen=True, slots=True)
class Head:
    """Status and headers of one reply frame (``trailers``: names the worker asked to trail)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    trailers: tuple[str, ...] = ()


# --------------------------------------------------------------------------- names and values

def client_ip(peer: Any) -> str:
    """The IP of a peername tuple (no port, no IPv6 zone); empty for unix sockets."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        host: str = peer[0]
        return host.partition("%")[0] if "%" in host else host
    return ""


# --------------------------------------------------------------------------- request


def _strip_crlf(text: str) -> str:
    return text.replace("\r", "").replace("\n", "") if ("\r" in text or "\n" in text) else text


def forwarded_headers(request: web.BaseRequest, fwd: Forward | None) -> dict[str, list[bytes]]:
    """Request header lines grouped under Go-canonical names, without Host (and Transfer-Encoding)."""
    grouped: dict[str, list[bytes]] = {}
    for raw_name, raw_value in request.raw_headers:
        name = canonical_header(raw_name.decode("latin-1"))
        if name == "Host" or name == "Transfer-Encoding":
            continue
        grouped.setdefault(name, []).append(raw_value)
    if fwd is not None:
        for name, value in fwd.add_headers:
            grouped.setdefault(canonical_header(name), []).append(value.encode("utf-8"))
        for name, value in fwd.set_headers.items():
            grouped[canonical_header(name)] = [value.encode("utf-8")]
    return grouped


def absolute_uri(request: web.BaseRequest) -> str:
    """``scheme://Host`` + the request target as received (absolute-form targets stay as they are)."""
    target = request.raw_path
    if target.startswith(("http://", "https://")):
        return _strip_crlf(target)
    host = request.headers.get("Host", "")
    return _strip_crlf(f"{request.scheme}://{host}{target}")


async def _read_body(request: web.BaseRequest, limit: int) -> bytes:
    if not request.body_exists:
        return b""
    if limit and request.content_length is not None and request.content_length > limit:
        raise RequestError(413, "request body exceeds max_request_size")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if limit and total > limit:
            raise RequestError(413, "request body exceeds max_request_size")
        chunks.append(chunk)
    return b"".join(chunks)


def _extension(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot >= 0 else ""


async def _read_multipart(
    request: web.BaseRequest, opts: RequestOptions, built: Built
) -> tuple[dict[str, list[str]], dict[str, list[UploadedFile]]]:
    values: dict[str, list[str]] = {}
    files: dict[str, list[UploadedFile]] = {}
    limit = opts.max_request_size
    content = request.content
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):  # nested multipart: not a form field
                continue
            name = part.name
            if not name:
                continue
            filename = part.filename
            if filename is None or filename == "":
                data = await part.read(decode=False)
                if limit and content.total_bytes > limit:
                    raise RequestError(413, "request body exceeds max_request_size")
                values.setdefault(name, []).append(bytes(data).decode("utf-8", "replace"))
                continue
            filename = filename.replace("\\", "/").rsplit("/", 1)[-1]
            mime = part.headers.get("Content-Type", "")
            upload = UploadedFile(name=filename, mime=mime)
            files.setdefault(name, []).append(upload)
            ext = _extension(filename)
            if ext in opts.uploads_forbid or (opts.uploads_allow and ext not in opts.uploads_allow):
                upload.error = UPLOAD_ERR_EXTENSION
                await _drain(part, content, limit)
                continue
            try:
                fd, path = tempfile.mkstemp(prefix="upload", dir=opts.uploads_dir or None)
            except OSError:
                upload.error = UPLOAD_ERR_NO_TMP_DIR
                await _drain(part, content, limit)
                continue
            built.temp_files.append(path)
            upload.tmpName = path
            if opts.uploads_owner is not None:
                with contextlib.suppress(OSError):
                    os.fchown(fd, *opts.uploads_owner)
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = await part.read_chunk(_CHUNK)
                    if not chunk:
                        break
                    if limit and content.total_bytes > limit:
                        raise RequestError(413, "request body exceeds max_request_size")
                    try:
                        out.write(chunk)
                    except OSError:
                        upload.error = UPLOAD_ERR_CANT_WRITE
                        upload.size = 0
                        await _drain(part, content, limit)
                        break
                    upload.size += len(chunk)
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise RequestError(400, f"invalid multipart body: {exc}") from exc
    return values, files


async def _drain(part: BodyPartReader, content: Any, limit: int) -> None:
    while await part.read_chunk(_CHUNK):
        if limit and content.total_bytes > limit:
            raise RequestError(413, "request body exceeds max_request_size")


async def build_request(request: web.BaseRequest, opts: RequestOptions, fwd: Forward | None = None) -> Built:
    """Read the request (body rules of §5.3) and encode the worker payload in ``opts.codec``.

    Raises:
        RequestError: 413 over ``max_request_size``, 400 for an unparsable form; temp files
            already written are removed before it propagates.
    """
    built = Built(Payload())
    try:
        return await _build(request, opts, fwd, built)
    except BaseException:
        built.cleanup()
        raise


async def _build(request: web.BaseRequest, opts: RequestOptions, fwd: Forward | None, built: Built) -> Built:
    method = request.method
    headers = forwarded_headers(request, fwd)
    content_type = request.headers.get("Content-Type", "")
    body = b""
    parsed = False
    uploads: dict[str, Any] | None = None
    limit = opts.max_request_size
    if method in ("HEAD", "OPTIONS"):
        pass
    elif opts.raw_body or (_FORM not in content_type and _MULTIPART not in content_type):
        body = await _read_body(request, limit)
    elif _FORM in content_type:
        raw = await _read_body(request, limit)
        form = parse_query(raw.decode("utf-8", "replace")) if method in ("POST", "PUT", "PATCH") else {}
        try:
            tree = build_tree(form)
        except FormError as exc:
            raise RequestError(400, str(exc)) from exc
        body = tree_json(tree) if tree else b""
        parsed = True
    else:
        if limit and request.content_length is not None and request.content_length > limit:
            raise RequestError(413, "request body exceeds max_request_size")
        values, files = await _read_multipart(request, opts, built)
        try:
            tree = build_tree(values)
            uploads = build_tree(files, files=True)
        except FormError as exc:
            raise RequestError(400, str(exc)) from exc
        body = tree_json(tree) if tree else b""
        parsed = True

    cookie_lines = [v.decode("latin-1") for v in headers.get("Cookie", ())]
    cookies = parse_cookies(cookie_lines) if cookie_lines else {}
    remote = fwd.remote_addr if fwd is not None and fwd.remote_addr is not None else None
    if remote is None:
        remote = client_ip(request.transport.get_extra_info("peername") if request.transport else None)
    attributes = fwd.attributes if fwd is not None else {}
    target = request.raw_path
    raw_query = _strip_crlf(target.partition("?")[2]) if "?" in target else ""
    version = request.version
    protocol = f"HTTP/{version.major}.{version.minor}"
    uri = absolute_uri(request)

    if opts.codec == "json":
        ctx = _ENCODER.encode(
            _LegacyRequest(
                remoteAddr=remote,
                protocol=protocol,
                method=method,
                uri=uri,
                headers={k: [v.decode("latin-1") for v in vs] for k, vs in sorted(headers.items())},
                cookies=dict(sorted(cookies.items())),
                rawQuery=raw_query,
                parsed=parsed,
                uploads=uploads if uploads is not None else None,
                attributes=attributes,
            )
        )
        built.payload = Payload(ctx, body, _JSON)
        return built

    msg = http_pb2.Request(
        remote_addr=remote, protocol=protocol, method=method, uri=uri, raw_query=raw_query, parsed=parsed
    )
    header_map = msg.header
    for name, lines in headers.items():
        header_map[name].value.extend(lines)
    if cookies:
        cookie_map = msg.cookies
        for name, value in cookies.items():
            cookie_map[name].value.append(value.encode("utf-8"))
    if attributes:
        attr_map = msg.attributes
        for name, vals in attributes.items():
            attr_map[name].value.extend(v.encode("utf-8") for v in vals)
    if uploads is not None:
        msg.uploads = tree_json(uploads)
    built.payload = Payload(msg.SerializeToString(), body, _PROTO)
    return built


class _LegacyRequest(msgspec.Struct):
    """The JSON request context of RoadRunner <= v2023.3 (member order is Go's struct order)."""

    remoteAddr: str  # noqa: N815
    protocol: str
    method: str
    uri: str
    headers: dict[str, list[str]]
    cookies: dict[str, str]
    rawQuery: str  # noqa: N815
    parsed: bool
    uploads: dict[str, Any] | None
    attributes: dict[str, Any]


_ENCODER = msgspec.json.Encoder(order="deterministic")


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
    return Head(int(status), tuple(pairs), trailers)


def response_headers(head: Head) -> CIMultiDict[str]:
    """The head's header lines as a multidict; framing headers are left to aiohttp."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in head.headers:
        if name in ("Content-Length", "Transfer-Encoding", "Connection"):
            continue
        out.add(name, value)
    return out


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
