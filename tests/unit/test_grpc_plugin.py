"""GrpcPlugin construction: server options from the ``grpc:`` section (RoadRunner keys -> grpcio args)."""

from __future__ import annotations

import pytest

from rrgrpc.config import config_from_dict
from rrgrpc.errors import ConfigError
from rrgrpc.grpc.plugin import GrpcPlugin

MB = 1024 * 1024


def plugin(**grpc: object) -> GrpcPlugin:
    section = {"listen": "tcp://127.0.0.1:0", **grpc}
    cfg = config_from_dict({"version": "3", "server": {"command": "php w.php"}, "grpc": section})
    assert cfg.grpc is not None
    return GrpcPlugin(cfg.grpc, cfg.server, source=cfg.source)


def test_defaults_follow_roadrunner() -> None:
    opts = dict(plugin()._options())
    assert opts["grpc.max_send_message_length"] == 50 * MB
    assert opts["grpc.max_receive_message_length"] == 50 * MB
    assert opts["grpc.max_concurrent_streams"] == 10
    assert opts["grpc.keepalive_time_ms"] == 2 * 3600 * 1000  # ping_time 2h
    assert opts["grpc.keepalive_timeout_ms"] == 20_000  # timeout 20s
    assert opts["grpc.so_reuseport"] == 0
    for infinite in ("grpc.max_connection_idle_ms", "grpc.max_connection_age_ms", "grpc.max_connection_age_grace_ms"):
        assert infinite not in opts


def test_configured_values_are_mapped() -> None:
    opts = dict(
        plugin(
            max_send_msg_size=4,
            max_recv_msg_size=8,
            max_concurrent_streams=100,
            ping_time="30s",
            timeout="5s",
            max_connection_idle="1m",
            max_connection_age="1h",
            max_connection_age_grace="10s",
        )._options()
    )
    assert opts["grpc.max_send_message_length"] == 4 * MB
    assert opts["grpc.max_receive_message_length"] == 8 * MB
    assert opts["grpc.max_concurrent_streams"] == 100
    assert (opts["grpc.keepalive_time_ms"], opts["grpc.keepalive_timeout_ms"]) == (30_000, 5_000)
    assert opts["grpc.max_connection_idle_ms"] == 60_000
    assert opts["grpc.max_connection_age_ms"] == 3_600_000
    assert opts["grpc.max_connection_age_grace_ms"] == 10_000


def test_an_unknown_interceptor_is_refused_naming_key_file_and_name() -> None:
    cfg = config_from_dict({"version": "3", "grpc": {"listen": "tcp://127.0.0.1:0", "interceptors": "sentry,auth"}})
    assert cfg.grpc is not None
    with pytest.raises(ConfigError) as err:
        GrpcPlugin(cfg.grpc, cfg.server, source="/srv/.rr.yaml")
    assert str(err.value) == "/srv/.rr.yaml: grpc.interceptors: unknown interceptor 'sentry' (known: rrgrpc has none)"


def test_idle_plugin_reports_no_workers_and_not_ready() -> None:
    p = plugin()
    assert p.workers() == [] and p.activity().busy == {}
    assert (p.health(), p.readiness()) == (503, 503)
    names = {m.name for c in p.collectors() for m in c.describe()}
    assert names == {"rr_grpc_requests_queue", "rr_grpc_request", "rr_grpc_request_duration_seconds"}
