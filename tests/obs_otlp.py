"""A real OTLP/gRPC trace receiver for the observability tests (grpc.aio + opentelemetry-proto).

``async with otlp_receiver() as rx`` listens on 127.0.0.1:<port 0>; ``rx.endpoint`` is the
``host:port`` to put in ``otel.endpoint`` and ``rx.spans`` the flattened spans received so far.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    events: list[str]
    resource: dict[str, Any] = field(default_factory=dict)


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


@dataclass
class Receiver:
    endpoint: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    def by_name(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def take(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        self.requests += 1
        for rs in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=service,
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            status_code=s.status.code,
                            events=[e.name for e in s.events],
                            resource=attrs,
                        )
                    )


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, rx: Receiver) -> None:
        self._rx = rx

    async def Export(  # noqa: N802 (generated name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._rx.take(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(rx), server)  # type: ignore[no-untyped-call]  # generated, not annotated
    port = server.add_insecure_port("127.0.0.1:0")
    rx.endpoint = f"127.0.0.1:{port}"
    await server.start()
    try:
        yield rx
    finally:
        await server.stop(None)
