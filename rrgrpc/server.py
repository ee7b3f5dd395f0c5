"""The ``server`` plugin: runs ``server.on_init`` once, before any worker starts.

RoadRunner's ``on_init`` is a one-off command (migrations, cache warm-up) whose output is logged;
it is killed after ``exec_timeout``. A failure stops startup only with ``exit_on_error``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from rrgrpc.config.schema import OnInitConfig
from rrgrpc.errors import BootError
from rrgrpc.plugin import Peers
from rrgrpc.pool.worker import run_as

log = logging.getLogger("rr.server")


class ServerPlugin:
    name = "server"

    def __init__(self, on_init: OnInitConfig) -> None:
        self.on_init = on_init  # server.on_init

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        await run_on_init(self.on_init)
        yield


async def run_on_init(cfg: OnInitConfig) -> None:
    """Run the command; log its output line by line; enforce exec_timeout and exit_on_error."""
    cmd = " ".join(cfg.command)
    env = {**os.environ, **cfg.env}
    try:
        proc = await asyncio.create_subprocess_exec(
            *cfg.command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, **run_as(cfg.user),
        )
    except OSError as exc:
        return _failed(cfg, f"server.on_init: cannot start {cmd!r}: {exc}")
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(cfg.exec_timeout):
            async for line in proc.stdout:
                log.info("%s", line.decode("utf-8", "replace").rstrip(), extra={"pid": proc.pid, "on_init": True})
            code = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return _failed(cfg, f"server.on_init: {cmd!r} killed after exec_timeout ({cfg.exec_timeout:g}s)")
    if code != 0:
        return _failed(cfg, f"server.on_init: {cmd!r} exited with code {code}")
    log.info("on_init command finished", extra={"pid": proc.pid})


def _failed(cfg: OnInitConfig, message: str) -> None:
    if cfg.exit_on_error:
        raise BootError(message)
    log.error("%s (exit_on_error is off: starting anyway)", message)
