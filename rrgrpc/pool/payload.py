"""Payload: the (context, body) pair every worker request and reply carries."""

from __future__ import annotations

from typing import final

import msgspec

from rrgrpc.goridge.frame import Flag


@final
class Payload(msgspec.Struct, frozen=True):
    """One worker message (a frozen msgspec Struct: several are made per request, and a frozen
    dataclass takes ten times as long to construct).

    Attributes:
        context: the header part (gRPC: JSON; HTTP: protobuf or JSON), sent first, length in option 0.
        body: the message itself (raw protobuf request, HTTP body, ...).
        codec: request frame flags (``Flag.CODEC_JSON`` for gRPC, ``Flag.CODEC_PROTO`` for HTTP);
            on a reply, the flags the worker sent.
        stream: byte 10 of a reply (``Stream.STREAM`` while more frames follow).
    """

    context: bytes = b""
    body: bytes = b""
    codec: int = Flag.CODEC_JSON
    stream: int = 0
