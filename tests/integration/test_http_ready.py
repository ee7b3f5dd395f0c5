"""The http plugin is ready only while its listeners accept: not before they bind, not once closed.

A request that takes 3 s is in flight when the plugin starts to stop: the listener closes at
once and the request is still served, and during that drain ``/ready`` must already say 503 (a
load balancer must not send more), while an idle worker would still make the pool look ready.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import AsyncExitStack

import aiohttp
import pytest

from rrgrpc.config import config_from_dict
from rrgrpc.http.plugin import HttpPlugin
from tests.helpers import StaticPeers, eventually, free_port, no_leftover_workers_fixture, php_cmd

pytestmark = pytest.mark.php
leftover_check = no_leftover_workers_fixture


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


async def test_ready_only_while_the_listener_accepts() -> None:
    port = free_port()
    cfg = config_from_dict({
        "version": "3",
        "server": {"command": " ".join(php_cmd("http_echo.php"))},
        "http": {"address": f"127.0.0.1:{port}", "pool": {"num_workers": 2, "destroy_timeout": "10s"}},
    })  # fmt: skip
    plugin = HttpPlugin(cfg)
    assert plugin.readiness() == 503  # nothing bound yet
    async with AsyncExitStack() as outer, aiohttp.ClientSession() as session:
        stack = await outer.enter_async_context(AsyncExitStack())
        await stack.enter_async_context(plugin.lifespan(StaticPeers(plugin)))
        assert plugin.readiness() == 200

        async def slow() -> tuple[int, str]:
            async with session.get(f"http://127.0.0.1:{port}/slow?ms=3000") as resp:
                return resp.status, await resp.text()

        in_flight = asyncio.create_task(slow())
        await eventually(lambda: any(w.status_str == "working" for w in plugin.workers()), timeout=10)
        stopping = asyncio.create_task(stack.aclose())
        await eventually(lambda: _refused(port), timeout=10)
        assert plugin.readiness() == 503  # draining: one worker idle, but no request can arrive
        assert not in_flight.done()
        status, _ = await asyncio.wait_for(in_flight, 10)
        assert status == 200  # the request in flight was still served
        await asyncio.wait_for(stopping, 15)
    assert plugin.readiness() == 503
