"""aiohttp request -> RoadRunner request context (the worker reply side is :mod:`~rrgrpc.http.reply`).

Owns the HTTP wire contract with PHP workers (PROTOCOL.md §5): the ``http.v1.Request`` protobuf
context (default) or the legacy JSON context, the body rules (raw bytes, or the form tree in
PHP bracket notation with multipart files copied to ``upload*`` temp files), Go-canonical
multi-valued headers without ``Host``, cookies, the absolute URI and the client address. Reading
the body (:func:`read_body`) and encoding the context (:func:`encode_context`) are separate steps;
a request with no body to read skips the first (:func:`bodiless_payload`), and a header set seen
before (headers, their encoded field, cookies) is converted once (:func:`header_set`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http import HttpVersion10, HttpVersion11

from rrgrpc.gocompat import canonical_header, parse_cookies, parse_query
from rrgrpc.goridge.frame import Flag
from rrgrpc.http.forms import FormError, UploadedFile, build_tree, tree_json
from rrgrpc.http.request_pb import encode_request, header_map
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
_PROTOCOLS: Final = {HttpVersion10: "HTTP/1.0", HttpVersion11: "HTTP/1.1"}
_NONE: Final[dict[str, Any]] = {}  # no cookies, no attributes (read only)
_PROTO: Final = int(Flag.CODEC_PROTO)
_JSON: Final = int(Flag.CODEC_JSON)
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


class RequestError(Exception):
    """The request cannot be turned into a worker payload; answered with ``status`` (400/413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


# --------------------------------------------------------------------------- names and values

def client_ip(peer: Any) -> str:
    """The IP of a peername tuple (no port, no IPv6 zone); empty for unix sockets."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        host: str = peer[0]
        return host.partition("%")[0] if "%" in host else host
    return ""


def peer_ip(request: web.BaseRequest) -> str:
    """The client IP of the request's connection (:func:`client_ip`). An EdgeServer connection
    works it out once, as ``peer_ip``: asking the transport builds the address string every time."""
    known: str | None = getattr(request.protocol, "peer_ip", None)
    if known is not None:
        return known
    transport = request.transport
    return client_ip(transport.get_extra_info("peername")) if transport is not None else ""


# --------------------------------------------------------------------------- request


def _strip_crlf(text: str) -> str:
    return text.replace("\r", "").replace("\n", "") if ("\r" in text or "\n" in text) else text


#: Header names as received -> Go-canonical names (a client sends the same few, byte for byte).
_raw_names: dict[bytes, str] = {}
_RAW_NAMES_SIZE: Final = 4096
_NOT_FORWARDED: Final = frozenset({"Host", "Transfer-Encoding"})


def forwarded_headers(request: web.BaseRequest, fwd: Forward | None) -> dict[str, list[bytes]]:
    """Request header lines grouped under Go-canonical names, without Host (and Transfer-Encoding)."""
    grouped: dict[str, list[bytes]] = {}
    names = _raw_names
    for raw_name, raw_value in request.raw_headers:
        name = names.get(raw_name)
        if name is None:
            name = canonical_header(raw_name.decode("latin-1"))
            if len(names) < _RAW_NAMES_SIZE:  # odd one-off names must not grow it forever
                names[raw_name] = name
        if name in _NOT_FORWARDED:
            continue
        grouped.setdefault(name, []).append(raw_value)
    if fwd is not None:
        for name, value in fwd.add_headers:
            grouped.setdefault(canonical_header(name), []).append(value.encode("utf-8"))
        for name, value in fwd.set_headers.items():
            grouped[canonical_header(name)] = [value.encode("utf-8")]
    return grouped


class HeaderSet(NamedTuple):
    """What a request's header lines give the worker context (read only: a cached set is shared)."""

    headers: dict[str, list[bytes]]  # forwarded_headers()
    field: bytes  # their encoded ``header`` field (request_pb.header_map)
    cookies: dict[str, str]  # the Cookie lines parsed (Go's Request.Cookies())


#: Header sets seen before, by their raw lines: a client repeats its header lines (cookies
#: included) byte for byte, request after request.
_header_sets: dict[tuple[tuple[bytes, bytes], ...], HeaderSet] = {}
_HEADER_SETS_SIZE: Final = 256
_HEADER_SET_MAX_BYTES: Final = 4096  # larger sets are converted every time: the cache stays small


def header_set(request: web.BaseRequest, fwd: Forward | None) -> HeaderSet:
    """The request's :class:`HeaderSet`; a set seen before is converted once (unless a middleware
    adds or sets headers)."""
    raw = request.raw_headers
    plain = fwd is None or not (fwd.add_headers or fwd.set_headers)
    if plain:
        known = _header_sets.get(raw)
        if known is not None:
            return known
    grouped = forwarded_headers(request, fwd)
    cookie_lines = grouped.get("Cookie")
    cookies = parse_cookies([v.decode("latin-1") for v in cookie_lines]) if cookie_lines else _NONE
    found = HeaderSet(grouped, header_map(grouped), cookies)
    if plain and len(found.field) <= _HEADER_SET_MAX_BYTES:
        if len(_header_sets) >= _HEADER_SETS_SIZE:
            _header_sets.clear()  # a stream of one-off sets must not pin it
        _header_sets[raw] = found
    return found


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
    built = Built(_NO_PAYLOAD)
    try:
        body = await read_body(request, opts, built)
        built.payload = encode_context(request, opts, fwd, body)
    except BaseException:
        built.cleanup()
        raise
    return built


@dataclass(frozen=True, slots=True)
class Body:
    """What the worker gets as the request body: raw bytes, or the form tree as JSON (``parsed``)
    plus the uploads tree of a multipart form."""

    data: bytes = b""
    parsed: bool = False
    uploads: dict[str, Any] | None = None


def bodiless(request: web.BaseRequest, opts: RequestOptions) -> bool:
    """Whether the worker gets no body at all (§5.3): a HEAD or OPTIONS request, or one without a
    body that is not a form (an empty form is still sent as ``parsed``)."""
    if request.method in ("HEAD", "OPTIONS"):
        return True
    if request.body_exists:
        return False
    content_type = request.headers.get("Content-Type", "")
    return opts.raw_body or (_FORM not in content_type and _MULTIPART not in content_type)


def bodiless_payload(request: web.BaseRequest, opts: RequestOptions, fwd: Forward | None = None) -> Payload | None:
    """The worker payload of a :func:`bodiless` request, else None (then :func:`build_request`):
    nothing to read, no temp files, no coroutine."""
    return encode_context(request, opts, fwd, _NO_BODY) if bodiless(request, opts) else None


async def read_body(request: web.BaseRequest, opts: RequestOptions, built: Built) -> Body:
    """Read the body by the rules of PROTOCOL.md §5.3; upload temp files are listed on ``built``."""
    if bodiless(request, opts):
        return _NO_BODY
    method = request.method
    content_type = request.headers.get("Content-Type", "")
    limit = opts.max_request_size
    if opts.raw_body or (_FORM not in content_type and _MULTIPART not in content_type):
        return Body(await _read_body(request, limit))
    if _FORM in content_type:
        raw = await _read_body(request, limit)
        form = parse_query(raw.decode("utf-8", "replace")) if method in ("POST", "PUT", "PATCH") else {}
        return Body(_form_json(form), parsed=True)
    if limit and request.content_length is not None and request.content_length > limit:
        raise RequestError(413, "request body exceeds max_request_size")
    values, files = await _read_multipart(request, opts, built)
    data = _form_json(values)
    try:
        uploads = build_tree(files, files=True)
    except FormError as exc:
        raise RequestError(400, str(exc)) from exc
    return Body(data, parsed=True, uploads=uploads)


_NO_BODY: Final = Body()
_NO_PAYLOAD: Final = Payload()


def _form_json(values: dict[str, list[str]]) -> bytes:
    """A form's fields as the PHP-bracket tree in JSON (empty form: no body)."""
    try:
        tree = build_tree(values)
    except FormError as exc:
        raise RequestError(400, str(exc)) from exc
    return tree_json(tree) if tree else b""


def encode_context(request: web.BaseRequest, opts: RequestOptions, fwd: Forward | None, body: Body) -> Payload:
    """The worker payload: the request context in ``opts.codec`` (protobuf or legacy JSON) + the body."""
    headers, header_field, cookies = header_set(request, fwd)
    remote = fwd.remote_addr if fwd is not None else None
    if remote is None:
        remote = peer_ip(request)
    attributes = fwd.attributes if fwd is not None else _NONE
    target = request.raw_path
    raw_query = _strip_crlf(target.partition("?")[2]) if "?" in target else ""
    version = request.version
    protocol = _PROTOCOLS.get(version) or f"HTTP/{version.major}.{version.minor}"
    uri = absolute_uri(request)

    if opts.codec == "json":
        ctx = _ENCODER.encode(
            _LegacyRequest(
                remoteAddr=remote,
                protocol=protocol,
                method=request.method,
                uri=uri,
                headers={k: [v.decode("latin-1") for v in vs] for k, vs in sorted(headers.items())},
                cookies=dict(sorted(cookies.items())),
                rawQuery=raw_query,
                parsed=body.parsed,
                uploads=body.uploads,
                attributes=attributes,
            )
        )
        return Payload(ctx, body.data, _JSON)

    uploads = tree_json(body.uploads) if body.uploads is not None else b""
    ctx = encode_request(remote, protocol, request.method, uri, header_field, cookies, raw_query, body.parsed, uploads, attributes)
    return Payload(ctx, body.data, _PROTO)


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
