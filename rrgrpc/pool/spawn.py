"""Starting workers for a pool: the command and environment, the socket relay listener, the
boot-failure count.

A boot that fails ``MAX_BOOT_FAILURES`` times in a row (with a growing pause between tries) gives
up with the cause, so a broken worker script cannot spin the pool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from rrgrpc import RR_COMPAT_VERSION
from rrgrpc.errors import BootError, ConfigError
from rrgrpc.goridge.relay import SocketRelayListener
from rrgrpc.pool.worker import Worker

if TYPE_CHECKING:
    from rrgrpc.config.schema import PoolConfig, ServerConfig

MAX_BOOT_FAILURES: Final = 3


def pool_size(pool: PoolConfig) -> int:
    """The workers a pool starts with: ``num_workers``, where 0 is the CPU count (as RoadRunner)."""
    return pool.num_workers or os.cpu_count() or 1


def worker_env(server: ServerConfig, mode: str, extra: Mapping[str, str], rpc_listen: str | None) -> dict[str, str]:
    """The environment of a worker, in RoadRunner's order (later keys win)."""
    env = dict(os.environ)
    env["RR_RELAY"] = server.relay
    if rpc_listen:
        env["RR_RPC"] = rpc_listen
    env.update({k.upper(): str(v) for k, v in server.env.items()})
    env["RR_VERSION"] = RR_COMPAT_VERSION
    env["RR_MODE"] = mode
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


class Spawner:
    """Starts the workers of one pool, each watched by ``on_exit`` from its start."""

    def __init__(
        self,
        name: str,
        cfg: PoolConfig,
        server: ServerConfig,
        env: Mapping[str, str],
        max_frame: int,
        on_exit: Callable[[Worker, asyncio.Future[int]], None],
    ) -> None:
        self.name = name
        self.argv = list(cfg.command or server.command)
        if not self.argv:
            raise ConfigError(f"server.command: no worker command configured for the {name} pool")
        self.env = dict(env)
        self.user = server.user
        self.relay = server.relay
        self.max_frame = max_frame
        self.timeout = cfg.allocate_timeout or 60
        self.max_jobs = cfg.max_jobs
        self._on_exit = on_exit
        self._listener: SocketRelayListener | None = None
        self._boot_failures = 0
        self._log = logging.getLogger(f"rr.{name}")
        self._stderr_log = logging.getLogger("rr.server")

    async def open(self) -> None:
        """Listen on the socket relay (tcp/unix), when the workers connect back over one."""
        if self.relay != "pipes":
            self._listener = SocketRelayListener(self.relay, self.timeout, self.max_frame)
            await self._listener.start()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    async def spawn(self) -> Worker:
        """One worker, handshaken within allocate_timeout; BootError with the cause when it fails."""
        w = await Worker.spawn(
            self.name, self.argv, self.env, timeout=self.timeout, listener=self._listener,
            user=self.user, max_frame=self.max_frame, log=self._stderr_log,
        )
        if self.max_jobs:  # up to 15 % more, so workers started together do not all retire together
            w.job_limit = self.max_jobs + self.max_jobs * random.randrange(15) // 100
        assert w.proc is not None
        w.proc.exited.add_done_callback(functools.partial(self._on_exit, w))
        return w

    async def spawn_with_retries(self, give_up: Callable[[BootError], None]) -> Worker:
        """A new worker, retried after boot failures; after MAX_BOOT_FAILURES in a row, ``give_up``
        hears the cause and the BootError is raised."""
        while True:
            try:
                w = await self.spawn()
            except BootError as exc:
                self._boot_failures += 1
                self._log.error("worker failed to start (%d in a row): %s", self._boot_failures, exc)
                if self._boot_failures >= MAX_BOOT_FAILURES:
                    give_up(exc)
                    raise
                await asyncio.sleep(0.1 * 2**self._boot_failures)
                continue
            self._boot_failures = 0
            return w
