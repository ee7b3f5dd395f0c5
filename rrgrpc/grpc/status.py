"""Worker replies and pool failures -> gRPC outcomes (PROTOCOL.md §4.3, §4.4; ARCHITECTURE §2.11.3).

Owns the translation of what comes back from a PHP worker into what the client sees: the body,
the response headers and trailers, and the status (code, message, ``google.rpc.Status`` details).
Pure functions over :class:`~rrgrpc.pool.payload.Payload` and exceptions; no I/O, no server.

Response context variants (all accepted, keys lower-cased):

* A: ``{"headers": "<json object>", "trailers": "<json object>", "error"?: "<base64 Status>"}``.
* B: a flat ``{"x-key": "value", ...}``: every entry is a response header (``error`` excepted:
  RoadRunner also echoes it as a header; we do not).
* empty context, ``{}`` or ``[]``: nothing.

Metadata values are strings. For a ``-bin`` key the client receives the UTF-8 bytes of the string,
exactly what RoadRunner's Go server puts on the wire (grpc-go base64-encodes raw values itself).
Keys or values gRPC cannot carry (``:`` or ``grpc-`` prefixes, upper-case after lower-casing is
impossible, non-printable values) are dropped with a warning instead of failing the call.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import msgspec
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from rrgrpc.errors import (
    BootError,
    ExecTTLExceeded,
    NoFreeWorkers,
    PoolClosed,
    QueueFull,
    RequestDropped,
    WorkerError,
    WorkerLost,
)
from rrgrpc.pool.payload import Payload

__all__ = [
    "Failure",
    "Metadata",
    "Reply",
    "parse_reply",
    "plain_body",
    "failure_from_exception",
    "failure_from_error_text",
    "go_code_name",
    "DETAILS_KEY",
]

log = logging.getLogger("rr.grpc")

Metadata = tuple[tuple[str, str | bytes], ...]
DETAILS_KEY = "grpc-status-details-bin"
LEGACY_DELIMITER = b"|:|"

_CODES = {c.value[0]: c for c in grpc.StatusCode}
# contexts that carry nothing: the kit's reply without headers or trailers is the common one
_EMPTY = frozenset(
    [b"{}", b"[]"]
    + [b'{"headers":"%s","trailers":"%s"}' % (h, t) for h in (b"{}", b"[]") for t in (b"{}", b"[]")]
)
_decode = msgspec.json.decode
_KEY = re.compile(r"[0-9a-z_.\-]+")
_VALUE = re.compile(r"[\x20-\x7e]*")
# grpc-go's codes.Code.String(): the status_code label values of rr_grpc_request_total.
_GO_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def go_code_name(code: grpc.StatusCode) -> str:
    """The name grpc-go (and so RoadRunner's metrics) gives a status code: ``NotFound``, ``OK``..."""
    return _GO_NAMES[code]


@dataclass(frozen=True, slots=True)
class Failure:
    """A non-OK status for the client.

    Attributes:
        code: the gRPC code (codes beyond 16 arrive as UNKNOWN, grpcio cannot send them).
        message: the status message.
        details: ``google.protobuf.Any`` details; when present the serialized ``google.rpc.Status``
            travels in the ``grpc-status-details-bin`` trailer, as grpc-go sends it.
    """

    code: grpc.StatusCode
    message: str
    details: tuple[any_pb2.Any, ...] = ()

    def trailers(self) -> Metadata:
        """The details trailer (empty without details)."""
        if not self.details:
            return ()
        st = status_pb2.Status(code=self.code.value[0], message=self.message, details=self.details)
        return ((DETAILS_KEY, st.SerializeToString()),)


@dataclass(frozen=True, slots=True)
class Reply:
    """A worker reply, decoded: body bytes, response headers and trailers, and a failure if any."""

    body: bytes = b""
    headers: Metadata = ()
    trailers: Metadata = ()
    failure: Failure | None = field(default=None)


def plain_body(reply: Payload) -> bytes | None:
    """The body of a reply whose context carries nothing (the common case), else ``None``."""
    return reply.body if not reply.context or reply.context in _EMPTY else None


def parse_reply(reply: Payload) -> Reply:
    """Decode a worker's data-frame reply (any of the context variants of §4.3)."""
    if (body := plain_body(reply)) is not None:
        return Reply(body=body)
    try:
        ctx = _decode(reply.context)
    except msgspec.DecodeError as exc:
        return Reply(failure=Failure(grpc.StatusCode.INTERNAL, f"malformed worker reply context: {exc}"))
    if ctx == []:
        return Reply(body=reply.body)
    if not isinstance(ctx, dict) or not all(isinstance(v, str) for v in ctx.values()):
        return Reply(
            failure=Failure(
                grpc.StatusCode.INTERNAL,
                "malformed worker reply context: expected a JSON object of strings, got "
                + reply.context[:200].decode("utf-8", "replace"),
            )
        )
    ctx = {k.lower(): v for k, v in ctx.items()}
    if "headers" in ctx or "trailers" in ctx:
        headers = _pairs(_embedded(ctx.get("headers", "")))
        trailers = _pairs(_embedded(ctx.get("trailers", "")))
    else:
        headers = _pairs((k, v) for k, v in ctx.items() if k != "error")
        trailers = ()
    failure = _status_from_base64(ctx["error"]) if "error" in ctx else None
    return Reply(body=b"" if failure else reply.body, headers=headers, trailers=trailers, failure=failure)


def failure_from_exception(exc: BaseException) -> Failure:
    """Map a pool failure to a status (ARCHITECTURE §2.11 decision 3).

    NoFreeWorkers/QueueFull -> RESOURCE_EXHAUSTED; RequestDropped -> CANCELLED; ExecTTLExceeded and the caller's deadline
    (TimeoutError) -> DEADLINE_EXCEEDED; PoolClosed/BootError -> UNAVAILABLE; WorkerLost ->
    INTERNAL saying the worker crashed; WorkerError -> the legacy ``code|:|message`` text or
    INTERNAL with the worker's message; anything else -> INTERNAL.
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, NoFreeWorkers | QueueFull):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, f"no free PHP worker: {text}")
    if isinstance(exc, RequestDropped):
        return Failure(grpc.StatusCode.CANCELLED, f"request dropped: {text}")
    if isinstance(exc, ExecTTLExceeded):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, f"worker exec_ttl exceeded: {text}")
    if isinstance(exc, TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded while waiting for the PHP worker")
    if isinstance(exc, PoolClosed | BootError):
        return Failure(grpc.StatusCode.UNAVAILABLE, f"worker pool unavailable: {text}")
    if isinstance(exc, WorkerLost):
        return Failure(grpc.StatusCode.INTERNAL, f"the PHP worker crashed during the call: {text}")
    if isinstance(exc, WorkerError):
        return failure_from_error_text(exc.raw)
    return Failure(grpc.StatusCode.INTERNAL, text)


def failure_from_error_text(text: bytes) -> Failure:
    """An ERROR frame's text: legacy ``<code>|:|<message>[|:|<Any bytes>]...`` or plain -> INTERNAL.

    As RoadRunner does: at least two parts and an unsigned integer first part make a status
    (code 0 means INTERNAL); each further part that parses as ``google.protobuf.Any`` is a detail.
    """
    parts = text.split(LEGACY_DELIMITER)
    if len(parts) >= 2 and parts[0].isdigit() and parts[0].isascii() and int(parts[0]) < 2**32 - 1:
        number = int(parts[0])
        code = _code(number) if number else grpc.StatusCode.INTERNAL
        details = []
        for chunk in parts[2:]:
            detail = any_pb2.Any()
            try:
                detail.ParseFromString(chunk)
            except DecodeError:
                continue
            details.append(detail)
        return Failure(code, _text(parts[1]), tuple(details))
    return Failure(grpc.StatusCode.INTERNAL, _text(text))


def _status_from_base64(value: str) -> Failure | None:
    try:
        data = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        st = status_pb2.Status.FromString(data)
    except (binascii.Error, ValueError, DecodeError) as exc:
        return Failure(grpc.StatusCode.INTERNAL, f"malformed error in worker reply: {exc}")
    if st.code == 0:  # grpc-go: an OK Status is no error
        return None
    return Failure(_code(st.code), st.message, tuple(st.details))


def _code(number: int) -> grpc.StatusCode:
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _embedded(raw: str) -> Iterable[tuple[str, Any]]:
    """A ``headers``/``trailers`` value: a JSON object in a string (variant A)."""
    if not raw:
        return ()
    try:
        obj = _decode(raw)
    except msgspec.DecodeError:
        log.error("worker reply: headers/trailers are not JSON: %.200s", raw)
        return ()
    if not obj:
        return ()
    if not isinstance(obj, dict):
        log.error("worker reply: headers/trailers are not a JSON object: %.200s", raw)
        return ()
    return obj.items()


def _pairs(items: Iterable[tuple[str, Any]]) -> Metadata:
    out: list[tuple[str, str | bytes]] = []
    for key, value in items:
        values = value if isinstance(value, list) else [value]
        key = key.lower()
        for v in values:
            if not isinstance(v, str):
                continue  # RoadRunner skips numbers and other non-strings
            if not _KEY.fullmatch(key) or key.startswith("grpc-"):
                log.warning("worker reply: metadata key %r cannot be sent over gRPC; dropped", key)
                break
            if key.endswith("-bin"):
                out.append((key, v.encode()))
            elif _VALUE.fullmatch(v):
                out.append((key, v))
            else:
                log.warning("worker reply: metadata %r has a non-printable value; dropped", key)
    return tuple(out)
