"""OpenTelemetry from the ``otel:`` section: tracer provider, exporter, resource and propagators.

Owns the process-wide tracing setup. On start the plugin builds an SDK ``TracerProvider`` (always
sampling, as RoadRunner does, unless ``OTEL_TRACES_SAMPLER`` says otherwise) with a
``BatchSpanProcessor`` in front of the configured exporter, makes it the target of the global
tracer provider, and sets the global propagator to ``tracing.PROPAGATOR`` (RoadRunner's composite). Every later plugin (gRPC, HTTP, the pool's ``rr.pool.exec`` spans) uses the
globals and needs no wiring. On stop it flushes and shuts the provider down (off the event loop, so
an exporter talking to a server in the same loop cannot deadlock), after gRPC and HTTP have stopped.

The OpenTelemetry API lets a process set its global tracer provider only once; the plugin installs a
small switchable provider there once and points it at the current host's SDK provider, so hosts that
start and stop one after another in one process (tests) each export with their own resource.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Final

import msgspec
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import (
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    SERVICE_NAMESPACE,
    SERVICE_VERSION,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

import rrgrpc
from rrgrpc.config.schema import OtelConfig, OtelResourceConfig
from rrgrpc.tracing import PROPAGATOR

if TYPE_CHECKING:
    from rrgrpc.plugin import Peers

log = logging.getLogger("rr.otel")

FLUSH_TIMEOUT_MS: Final = 30_000


def otlp_client(section: OtelConfig, env: Mapping[str, str] = os.environ) -> str:
    """``grpc`` or ``http``: the ``client`` key, else ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``, else http."""
    if section.client:
        return section.client
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    return "grpc" if protocol.strip().lower() == "grpc" else "http"


def _env_endpoint(env: Mapping[str, str]) -> bool:
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def exporter_kind(section: OtelConfig, env: Mapping[str, str] = os.environ) -> str:
    """``otlp-grpc``, ``otlp-http``, ``stdout`` or ``stderr`` (the schema has refused anything else)."""
    if section.exporter in ("stdout", "stderr"):
        return section.exporter
    return "otlp-" + otlp_client(section, env)


def build_exporter(section: OtelConfig, env: Mapping[str, str] = os.environ) -> SpanExporter:
    """The span exporter the ``otel`` section asks for (otlp over gRPC or HTTP, stdout, stderr)."""
    kind = exporter_kind(section, env)
    if kind == "stdout":
        return ConsoleSpanExporter(out=sys.stdout)
    if kind == "stderr":
        return ConsoleSpanExporter(out=sys.stderr)
    client = kind.removeprefix("otlp-")
    endpoint = section.endpoint
    if not endpoint and not _env_endpoint(env):
        endpoint = OtelConfig.DEFAULT_ENDPOINT
    insecure = section.insecure
    headers = {str(k): str(v) for k, v in section.headers.items()}
    if client == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(
            endpoint=endpoint or None,
            insecure=insecure if endpoint else None,
            headers=headers or None,
            compression=grpc.Compression.Gzip if section.compress else None,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(
        endpoint=http_url(endpoint, insecure, section.custom_url) if endpoint else None,
        headers=headers or None,
        compression=HttpCompression.Gzip if section.compress else None,
    )


def http_url(endpoint: str, insecure: bool, custom_url: str = "") -> str:
    """``host:port`` (RoadRunner style) or a URL -> the full OTLP/HTTP traces URL."""
    if "://" in endpoint:
        scheme, rest = endpoint.split("://", 1)
    else:
        scheme, rest = ("http" if insecure else "https"), endpoint
    host, _, path = rest.partition("/")
    if custom_url:
        path = custom_url
    elif not path:
        path = "v1/traces"
    return f"{scheme}://{host}/{path.lstrip('/')}"


def build_resource(section: OtelConfig) -> Resource:
    """service.name/version/namespace/instance.id from ``otel.resource`` (or the deprecated top-level
    ``service_name``/``service_version``), then ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``,
    then RoadRunner's defaults (``OtelResourceConfig.DEFAULT_*``)."""
    res = section.resource
    attributes: dict[str, str] = {"webengine.name": "rrgrpc", "webengine.version": rrgrpc.__version__}
    for attr, value in (
        (SERVICE_NAME, res.service_name or section.service_name),  # top-level keys: the deprecated spelling
        (SERVICE_VERSION, res.service_version or section.service_version),
        (SERVICE_NAMESPACE, res.service_namespace),
        (SERVICE_INSTANCE_ID, res.service_instance_id),
    ):
        if value:
            attributes[attr] = str(value)
    resource = Resource.create(attributes)
    defaults: dict[str, str] = {}
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        defaults[SERVICE_NAME] = OtelResourceConfig.DEFAULT_SERVICE_NAME
    if not resource.attributes.get(SERVICE_VERSION):
        defaults[SERVICE_VERSION] = OtelResourceConfig.DEFAULT_SERVICE_VERSION
    return resource.merge(Resource(defaults)) if defaults else resource


def one_instance(section: OtelConfig) -> OtelConfig:
    """``section`` with ``service.instance.id`` fixed to what it resolves to now (``otel.resource``,
    then ``OTEL_RESOURCE_ATTRIBUTES``, then the SDK's random one), so that the processes built from
    it, a supervisor and its fronts, report one resource."""
    instance = str(build_resource(section).attributes.get(SERVICE_INSTANCE_ID, ""))
    if not instance or instance == section.resource.service_instance_id:
        return section
    resource = msgspec.structs.replace(section.resource, service_instance_id=instance)
    return msgspec.structs.replace(section, resource=resource)


class _SwitchTracer(trace.Tracer):
    """A tracer that resolves the switch's current provider on every span (cached per provider)."""

    def __init__(self, switch: SwitchableTracerProvider, args: tuple[Any, ...]) -> None:
        self._switch = switch
        self._args = args
        self._for: trace.TracerProvider | None = None
        self._tracer: trace.Tracer = trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        target = self._switch.target or self._switch.local()
        if target is not self._for:
            self._for = target
            self._tracer = target.get_tracer(*self._args)
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        with self._current().start_as_current_span(*args, **kwargs) as span:
            yield span


class SwitchableTracerProvider(trace.TracerProvider):
    """The global tracer provider: forwards to ``target`` (the running host's SDK provider).

    Without a target (a host without ``otel`` after one with it, in one process) spans go to a local
    SDK provider that exports nothing: ids stay valid, as RoadRunner's local tracer keeps them, and the
    plugins that checked for a real global provider at start keep working.
    """

    def __init__(self) -> None:
        self.target: trace.TracerProvider | None = None
        self._local: TracerProvider | None = None

    def local(self) -> trace.TracerProvider:
        if self._local is None:
            self._local = TracerProvider()
        return self._local

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _SwitchTracer(
            self, (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        )


_SWITCH = SwitchableTracerProvider()


def _install_switch() -> bool:
    """Make the switch the global tracer provider (once per process); False if something else won."""
    trace.set_tracer_provider(_SWITCH)
    return trace.get_tracer_provider() is _SWITCH


class OtelPlugin:
    """Tracing for the whole host, from ``otel:``. Enter it before every plugin that makes spans."""

    name = "otel"

    def __init__(self, section: OtelConfig) -> None:
        self._section = section
        self.tracer_provider: TracerProvider | None = None

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run()

    def _build(self) -> TracerProvider:
        sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_ON
        provider = TracerProvider(resource=build_resource(self._section), sampler=sampler)
        provider.add_span_processor(BatchSpanProcessor(build_exporter(self._section)))
        return provider

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        provider = self._build()
        if not _install_switch():
            log.warning("another global tracer provider is installed; rrgrpc spans will not be exported")
        previous_target, _SWITCH.target = _SWITCH.target, provider
        previous_propagator = propagate.get_global_textmap()
        propagate.set_global_textmap(PROPAGATOR)
        self.tracer_provider = provider
        log.debug(
            "tracing enabled",
            extra={
                "exporter": exporter_kind(self._section),
                "service": provider.resource.attributes.get(SERVICE_NAME),
            },
        )
        try:
            yield
        finally:
            if _SWITCH.target is provider:
                _SWITCH.target = previous_target
            propagate.set_global_textmap(previous_propagator)
            # the exporter may talk to a server living in this very event loop: flush off the loop
            flushed = await asyncio.to_thread(provider.force_flush, FLUSH_TIMEOUT_MS)
            if not flushed:
                log.warning("spans not flushed within the timeout", extra={"timeout_ms": FLUSH_TIMEOUT_MS})
            await asyncio.to_thread(provider.shutdown)
            self.tracer_provider = None


__all__ = [
    "OtelPlugin",
    "SwitchableTracerProvider",
    "build_exporter",
    "build_resource",
    "one_instance",
    "exporter_kind",
    "http_url",
    "otlp_client",
]
