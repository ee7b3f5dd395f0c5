"""otel: exporter choice, URLs, resource precedence, RoadRunner's propagator, export and flush."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from rrgrpc.config import config_from_dict
from rrgrpc.config.schema import OtelConfig
from rrgrpc.errors import ConfigError
from rrgrpc.otel import (
    OtelPlugin,
    build_exporter,
    build_resource,
    exporter_kind,
    http_url,
    one_instance,
    otlp_client,
)
from rrgrpc.tracing import PROPAGATOR
from tests.helpers import StaticPeers
from tests.obs_otlp import otlp_receiver


def _cfg(otel: dict[str, object]) -> OtelConfig:
    section = config_from_dict({"version": "3", "otel": otel}).otel
    assert section is not None
    return section


@pytest.mark.parametrize(
    "section, env, expected",
    [
        ({}, {}, "http"),
        ({"client": "grpc"}, {}, "grpc"),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        (
            {},
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            "grpc",
        ),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http"),
        ({"client": "http"}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http"),
    ],
)
def test_client_from_config_then_env(section: dict[str, object], env: dict[str, str], expected: str) -> None:
    assert otlp_client(_cfg(section), env) == expected


def test_exporters() -> None:
    assert isinstance(build_exporter(OtelConfig(exporter="stdout"), {}), ConsoleSpanExporter)
    assert isinstance(build_exporter(OtelConfig(exporter="stderr"), {}), ConsoleSpanExporter)
    grpc_exp = build_exporter(OtelConfig(client="grpc", endpoint="127.0.0.1:4317", insecure=True), {})
    assert isinstance(grpc_exp, GrpcExporter)
    grpc_exp.shutdown()
    http_exp = build_exporter(OtelConfig(endpoint="collector:4318", insecure=True, compress=True), {})
    assert isinstance(http_exp, HttpExporter)
    assert http_exp._endpoint == "http://collector:4318/v1/traces"
    http_exp.shutdown()  # type: ignore[no-untyped-call]  # the OTLP/HTTP exporter is not annotated
    assert exporter_kind(OtelConfig(), {}) == "otlp-http"


@pytest.mark.parametrize("exporter", ["zipkin", "jaeger", "jaeger_agent", "carrier-pigeon"])
def test_unsupported_exporters_are_refused_by_the_schema(exporter: str) -> None:
    # one validator: the schema; the plugin never sees an exporter it cannot build
    with pytest.raises(ConfigError, match=f"^<dict>: otel.exporter: .*'{exporter}'"):
        config_from_dict({"version": "3", "otel": {"exporter": exporter}})


def test_http_urls() -> None:
    assert http_url("127.0.0.1:4318", insecure=True) == "http://127.0.0.1:4318/v1/traces"
    assert http_url("collector:4318", insecure=False) == "https://collector:4318/v1/traces"
    assert http_url("collector:4318", True, "/custom/traces") == "http://collector:4318/custom/traces"
    assert http_url("https://c.example/otlp/v1/traces", False) == "https://c.example/otlp/v1/traces"


def test_resource_config_wins_then_env_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    cfg = _cfg({})
    attrs = build_resource(cfg).attributes
    assert (attrs["service.name"], attrs["service.version"]) == ("RoadRunner", "1.0.0")

    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=mesh,service.version=9")
    attrs = build_resource(cfg).attributes
    assert (attrs["service.name"], attrs["service.version"], attrs["service.namespace"]) == (
        "from-env",
        "9",
        "mesh",
    )

    cfg = _cfg(
        {"resource": {"service_name": "orders", "service_instance_id": "i-1"}, "service_version": "2.0"}
    )
    attrs = build_resource(cfg).attributes
    assert attrs["service.name"] == "orders"
    assert attrs["service.instance.id"] == "i-1"
    assert attrs["service.version"] == "2.0"  # the deprecated top-level key still counts


def test_one_instance_fixes_the_instance_id_every_process_then_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    # a supervisor pins the id once (the SDK draws one per process); fronts built from the pinned section
    # report the same resource (tests/integration/test_fronts_otel.py)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    pinned = one_instance(_cfg({}))
    generated = pinned.resource.service_instance_id
    assert generated and build_resource(pinned).attributes["service.instance.id"] == generated
    assert one_instance(pinned) is pinned
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=from-env")
    assert one_instance(_cfg({})).resource.service_instance_id == "from-env"
    configured = _cfg({"resource": {"service_instance_id": "i-1"}})
    assert one_instance(configured).resource.service_instance_id == "i-1"


def test_unset_endpoint_leaves_the_env_endpoint_in_charge() -> None:
    # the schema leaves endpoint unset, so its default cannot hide OTEL_EXPORTER_OTLP_ENDPOINT
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318"}
    assert _cfg({}).endpoint == ""
    exporter = build_exporter(_cfg({}), env)
    assert isinstance(exporter, HttpExporter)
    exporter.shutdown()  # type: ignore[no-untyped-call]  # the OTLP/HTTP exporter is not annotated
    exporter = build_exporter(_cfg({}), {})
    assert isinstance(exporter, HttpExporter) and exporter._endpoint == f"https://{OtelConfig.DEFAULT_ENDPOINT}/v1/traces"
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_propagator_injects_roadrunner_keys() -> None:
    tp = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=trace.TraceFlags(1),
        )
    )
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(tp))
    assert carrier["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert carrier["uber-trace-id"] == "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1"
    # and extraction from a Jaeger-only caller works too
    ctx = PROPAGATOR.extract({"uber-trace-id": "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1"})
    assert trace.get_current_span(ctx).get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C


async def test_plugin_exports_through_otlp_grpc_and_flushes_on_exit() -> None:
    async with otlp_receiver() as rx:
        cfg = _cfg(
            {
                "client": "grpc",
                "endpoint": rx.endpoint,
                "insecure": True,
                "resource": {"service_name": "unit-a"},
            }
        )
        plugin = OtelPlugin(cfg)
        tracer = trace.get_tracer("test")  # obtained before the plugin starts: still routed
        async with plugin.lifespan(StaticPeers()):
            assert plugin.tracer_provider is not None
            with tracer.start_as_current_span("outer"):
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                with tracer.start_as_current_span("inner"):
                    pass
            assert set(carrier) == {"traceparent", "uber-trace-id"}
            assert rx.spans == []  # batched, not exported per span
        spans = {s.name: s for s in rx.spans}
        assert set(spans) == {"outer", "inner"}
        assert spans["inner"].parent_id == spans["outer"].span_id
        assert spans["outer"].service == "unit-a"

        # a second host in the same process exports under its own resource; spans after stop are dropped
        plugin_b = OtelPlugin(
            _cfg(
                {
                    "client": "grpc",
                    "endpoint": rx.endpoint,
                    "insecure": True,
                    "resource": {"service_name": "unit-b"},
                }
            )
        )
        async with plugin_b.lifespan(StaticPeers()):
            with tracer.start_as_current_span("second"):
                pass
        with tracer.start_as_current_span("after-stop"):
            pass
        await asyncio.sleep(0)
        assert [(s.name, s.service) for s in rx.spans[2:]] == [("second", "unit-b")]


async def test_stdout_exporter_prints_spans(capsys: pytest.CaptureFixture[str]) -> None:
    plugin = OtelPlugin(_cfg({"exporter": "stdout"}))
    async with plugin.lifespan(StaticPeers()):
        with trace.get_tracer("test").start_as_current_span("printed"):
            pass
    assert '"name": "printed"' in capsys.readouterr().out
