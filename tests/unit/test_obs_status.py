"""status: RoadRunner's /health and /ready reports, filters, unavailable code, shutdown, RPC."""

from __future__ import annotations

import aiohttp
import pytest

from rrgrpc.config import config_from_dict
from rrgrpc.status import StatusPlugin, StatusRpcError, encode_proto_response
from tests.helpers import StaticPeers as Peers


class Checked:
    def __init__(self, name: str, health: int = 200, ready: int = 200) -> None:
        self.name = name
        self.health_code = health
        self.ready_code = ready

    def health(self) -> int:
        return self.health_code

    def readiness(self) -> int:
        if self.ready_code < 0:
            raise RuntimeError("pool is gone")
        return self.ready_code


def _plugin(**status: object) -> StatusPlugin:
    section = config_from_dict({"version": "3", "status": {"address": "127.0.0.1:0", **status}}).status
    assert section is not None
    return StatusPlugin(section)


async def _get(plugin: StatusPlugin, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{plugin.port}{path}") as r:
        return r.status, await r.text(), r.headers.get("Content-Type", "")


async def test_health_and_ready_reports() -> None:
    grpc, http = Checked("grpc"), Checked("http", ready=503)
    plugin = _plugin(unavailable_status_code=599)
    async with plugin.lifespan(Peers(grpc, http)):
        code, body, ctype = await _get(plugin, "/health?plugin=grpc&plugin=rpc")
        assert (code, body) == (200, '[{"plugin_name":"grpc","error_message":"","status_code":200}]')
        assert ctype.startswith("application/json")

        code, body, _ = await _get(plugin, "/health")
        assert code == 200
        assert body.count('"status_code":200') == 2

        code, body, _ = await _get(plugin, "/ready?plugin=http")
        assert code == 599
        assert (
            body
            == '[{"plugin_name":"http","error_message":"internal server error, see logs","status_code":599}]'
        )

        code, body, _ = await _get(plugin, "/ready?plugin=grpc")
        assert code == 200

        http.ready_code = 404
        code, body, _ = await _get(plugin, "/ready?plugin=http")
        assert (code, body) == (
            200,
            '[{"plugin_name":"http","error_message":"unexpected status code","status_code":404}]',
        )

        http.ready_code = -1
        code, body, _ = await _get(plugin, "/ready")
        assert code == 599
        assert '"error_message":"pool is gone"' in body

        code, body, _ = await _get(plugin, "/ready?plugin=nothing")
        assert (code, body) == (200, "[]")


async def test_shutdown_keeps_health_ok_and_ready_unavailable() -> None:

    plugin = _plugin()
    peers = Peers(Checked("grpc"))
    async with plugin.lifespan(peers):
        assert (await _get(plugin, "/ready"))[0] == 200
        peers.stopping.set()
        assert await _get(plugin, "/health") == (
            200,
            "service is shutting down\n",
            "text/plain; charset=utf-8",
        )
        code, body, _ = await _get(plugin, "/ready?plugin=grpc")
        assert (code, body) == (503, "service is shutting down\n")


async def test_rpc_json_and_proto() -> None:
    plugin = _plugin()
    rpc = plugin.rpc_methods()
    async with plugin.lifespan(Peers(Checked("grpc", ready=503))):
        assert await rpc["Status"]({"plugin": "grpc"}) == {"code": 200}
        assert await rpc["Ready"]({"plugin": "grpc"}) == {"code": 503}
        # status.v1.Request{plugin: "grpc"} -> status.v1.Response{code: 503}
        assert await rpc["Ready"](b"\x0a\x04grpc") == b"\x08\xf7\x03"
        with pytest.raises(StatusRpcError, match="no such plugin: http"):
            await rpc["Status"]({"plugin": "http"})
    assert encode_proto_response(200, "ok") == b"\x08\xc8\x01\x12\x02ok"
