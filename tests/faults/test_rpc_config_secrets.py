"""rpc.Config over a real socket hands out no secret: redaction by position, from a real .rr.yaml.

Sent: rpc.Config (JSON and RAW codecs) to an endpoint whose config holds secrets in every position
issue 10 found leaking. Expected: none of the secret values in the reply, the rest unchanged; and a
warning at startup when rpc.listen binds an address other machines can reach.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rrgrpc.config import RRConfig, load_config
from rrgrpc.goridge.frame import Flag
from rrgrpc.goridge.relay import SocketRelayListener
from rrgrpc.goridge.rpc import RpcClient
from rrgrpc.rpc.server import RpcPlugin
from tests.helpers import StaticPeers

SECRETS = {
    "RRT_DB_PASS": "hunter2-db",
    "RRT_SENTRY_DSN": "https://0a1b2c3dsentrykey@o1.ingest.sentry.io/42",
    "RRT_HONEYCOMB": "hc-team-key",
    "RRT_PLAIN": "interpolated-but-harmless",
}

CONFIG = """
version: "3"
rpc:
  listen: tcp://127.0.0.1:0
server:
  command: "php worker.php --db-password=${RRT_DB_PASS} --mode=web"
  env:
    DB_PASS: literal-db-pass
    MYSQL_PWD: literal-mysql-pwd
    STRIPE_SK: sk_live_literal
    SENTRY_DSN: ${RRT_SENTRY_DSN}
    APP_ENV: prod
grpc:
  listen: tcp://127.0.0.1:0
  proto: [a.proto]
  tls: {key: /etc/tls/grpc.key, cert: /etc/tls/grpc.crt}
  env: {GRPC_TOKEN: literal-grpc-token}
http:
  address: 127.0.0.1:0
  ssl: {address: "127.0.0.1:0", key: /etc/tls/http.key, cert: /etc/tls/http.crt}
  middleware: [static]
  static: {dir: "${RRT_PLAIN}"}
otel:
  headers: {x-honeycomb-team: "${RRT_HONEYCOMB}", x-literal: literal-otel-header}
kv:
  redis:
    addrs: ["redis://app:literal-redis-pass@redis:6379/0"]
    password: literal-kv-pass
logs:
  output: "https://user:literal-url-pass@logs.example/ingest"
"""


@asynccontextmanager
async def endpoint(cfg: RRConfig) -> AsyncIterator[RpcPlugin]:
    rpc = RpcPlugin(cfg)
    async with asyncio.timeout(10), rpc.lifespan(StaticPeers()):
        yield rpc


def load(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> RRConfig:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / ".rr.yaml"
    path.write_text(text)
    return load_config(path)


async def test_rpc_config_redacts_by_position(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load(tmp_path, CONFIG, monkeypatch)
    async with endpoint(cfg) as rpc, await RpcClient.connect(rpc.address) as client:
        async with asyncio.timeout(5):
            as_json = json.loads(base64.b64decode(await client.call("rpc.Config", True)))
            raw = await client.call("rpc.Config", b"", codec=Flag.CODEC_RAW)
    assert json.loads(raw) == as_json
    for secret in [*SECRETS.values(), "0a1b2c3dsentrykey", "literal-db-pass", "literal-mysql-pwd",
                   "sk_live_literal", "literal-grpc-token", "/etc/tls/grpc.key", "/etc/tls/http.key",
                   "literal-otel-header", "literal-redis-pass", "literal-kv-pass", "literal-url-pass"]:
        assert secret.encode() not in raw, secret
    r = "<redacted>"
    assert as_json["server"]["command"] == "php worker.php --db-password=${RRT_DB_PASS} --mode=web"
    assert as_json["server"]["env"] == {k: r for k in ("DB_PASS", "MYSQL_PWD", "STRIPE_SK", "SENTRY_DSN", "APP_ENV")}
    assert as_json["grpc"]["tls"] == {"key": r, "cert": "/etc/tls/grpc.crt"}
    assert as_json["grpc"]["env"] == {"GRPC_TOKEN": r}
    assert as_json["http"]["ssl"] == {"address": "127.0.0.1:0", "key": r, "cert": "/etc/tls/http.crt"}
    assert as_json["http"]["static"] == {"dir": "${RRT_PLAIN}"}
    assert as_json["otel"]["headers"] == {"x-honeycomb-team": r, "x-literal": r}
    assert as_json["kv"] == {"redis": {"addrs": [r], "password": r}}
    assert as_json["logs"]["output"] == f"https://{r}@logs.example/ingest"
    # what is not secret is shown as loaded
    assert as_json["rpc"] == {"listen": "tcp://127.0.0.1:0"}
    assert as_json["grpc"]["proto"] == ["a.proto"]


async def test_overrides_and_includes_keep_track_of_interpolated_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "part.yaml").write_text('version: "3"\nstatus:\n  address: "${RRT_DB_PASS}"\n')
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / ".rr.yaml"
    path.write_text('version: "3"\ninclude: [part.yaml]\nrpc:\n  listen: tcp://127.0.0.1:0\nmetrics:\n  address: 127.0.0.1:0\n')
    cfg = load_config(path, overrides=["metrics.address=${RRT_HONEYCOMB}:1"])
    async with endpoint(cfg) as rpc, await RpcClient.connect(rpc.address) as client:
        async with asyncio.timeout(5):
            raw = await client.call("rpc.Config", b"", codec=Flag.CODEC_RAW)
    shown = json.loads(raw)
    assert shown["status"] == {"address": "${RRT_DB_PASS}"}
    assert shown["metrics"] == {"address": "${RRT_HONEYCOMB}:1"}
    assert b"hunter2" not in raw and b"hc-team" not in raw


@pytest.mark.parametrize(
    ("listen", "warned"),
    [("tcp://:0", True), ("tcp://0.0.0.0:0", True), ("tcp://127.0.0.1:0", False), ("tcp://localhost:0", False)],
)
async def test_non_loopback_rpc_listen_is_warned_about_once(
    listen: str, warned: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load(tmp_path, f'version: "3"\nrpc:\n  listen: "{listen}"\n', monkeypatch)
    with caplog.at_level(logging.WARNING, logger="rr.rpc"):
        async with endpoint(cfg) as rpc, await RpcClient.connect(rpc.address.replace("0.0.0.0", "127.0.0.1")) as c:
            async with asyncio.timeout(5):
                assert await c.call("rpc.Version", True)
    lines = [r.getMessage() for r in caplog.records if r.name == "rr.rpc" and r.levelno == logging.WARNING]
    if warned:
        assert len(lines) == 1 and "reachable from other machines" in lines[0] and "0.0.0.0:" in lines[0]
    else:
        assert lines == []


@pytest.mark.parametrize(("relay", "warned"), [("tcp://0.0.0.0:0", True), ("tcp://127.0.0.1:0", False)])
async def test_non_loopback_tcp_relay_is_warned_about(
    relay: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    listener = SocketRelayListener(relay, handshake_timeout=1)
    with caplog.at_level(logging.WARNING, logger="rr.server"):
        await listener.start()
        await listener.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [("server.relay listens on 0.0.0.0:" in line) for line in lines] == ([True] if warned else [])
