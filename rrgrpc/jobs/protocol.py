"""The consumer exchange with a ``RR_MODE=jobs`` worker (PROTOCOL.md §8a.2), sans I/O.

One task = one frame: context = JSON ``{"id", "job", "driver", "queue", "pipeline", "headers"}``, body =
the job's payload. The worker answers with a body holding JSON ``{"type": T, "data": ...}``:

====  =========  ====================================================================
T     name       what the plugin does with the delivery
====  =========  ====================================================================
0     no error   ack
1     error      requeue (``delay_seconds``, ``headers``) when ``requeue``, else ack as failed
2     ack        ack
3     nack       nack with ``requeue`` and ``delay_seconds``
4     requeue    requeue with ``delay_seconds`` and ``headers``
====  =========  ====================================================================

An empty reply body is an ack (RoadRunner does the same); an unknown type is acked with a warning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rrgrpc.jobs.driver import Delivery, Headers


class ReplyType(enum.IntEnum):
    NO_ERROR = 0
    ERROR = 1
    ACK = 2
    NACK = 3
    REQUEUE = 4


@dataclass(frozen=True, slots=True)
class Reply:
    type: int
    message: str = ""
    requeue: bool = False
    delay: int = 0
    headers: Headers = field(default_factory=dict)


def task_context(delivery: Delivery, headers: Headers | None = None) -> bytes:
    """The JSON context of one task, in the key order RoadRunner writes (``headers`` replace the job's)."""
    job = delivery.job
    return msgspec.json.encode(
        {
            "id": job.id,
            "job": job.name,
            "driver": delivery.driver,
            "queue": delivery.queue,
            "pipeline": job.pipeline,
            "headers": job.headers if headers is None else headers,
        }
    )


def parse_reply(body: bytes) -> Reply:
    """Decode a worker's answer; ``ValueError`` (one line, quoting the start of the body) when malformed."""
    if not body:
        return Reply(ReplyType.ACK)
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ValueError(f"the worker's answer is not JSON: {body[:120]!r}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), int) or isinstance(raw["type"], bool):
        raise ValueError(f'the worker\'s answer has no integer "type": {body[:120]!r}')
    data: Any = raw.get("data")
    if not isinstance(data, dict):
        return Reply(raw["type"])
    headers = data.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError(f'the worker\'s answer has "headers" that are not a map: {body[:120]!r}')
    return Reply(
        raw["type"],
        message=str(data.get("message") or ""),
        requeue=bool(data.get("requeue")),
        delay=_int(data.get("delay_seconds")),
        headers={str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in headers.items()},
    )


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
