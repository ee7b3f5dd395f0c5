"""The dynamic allocator (``pool.dynamic_allocator``): how many workers to add on a shortage and
how many of them to take back once the pool has been idle long enough.

Pure bookkeeping over monotonic time; the pool spawns and retires the workers it is told to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rrgrpc.config.schema import DynamicAllocatorConfig


class DynamicAllocator:
    """Adds ``spawn_rate`` workers per NoFreeWorkers event (at most one a second), up to
    ``max_workers`` extra; after ``idle_timeout`` without a shortage, takes ``spawn_rate`` back per tick."""

    def __init__(self, cfg: DynamicAllocatorConfig | None) -> None:
        self.cfg = cfg
        self.extra = 0  # workers added so far and not yet taken back
        self._last_shortage = 0.0
        self._last_grow = 0.0

    def grow(self, now: float) -> int:
        """A request found no free worker at ``now``: the number of workers to add (often 0)."""
        self._last_shortage = now
        cfg = self.cfg
        if cfg is None or now - self._last_grow < 1.0:
            return 0
        self._last_grow = now
        n = max(0, min(cfg.spawn_rate, cfg.max_workers - self.extra))
        self.extra += n
        return n

    def shrink(self, now: float) -> int:
        """The number of added workers that may be taken back at ``now`` (each one counted by :meth:`took_back`)."""
        cfg = self.cfg
        if cfg is None or not self.extra or now - self._last_shortage < cfg.idle_timeout:
            return 0
        return min(cfg.spawn_rate, self.extra)

    def took_back(self, n: int, now: float) -> None:
        """``n`` added workers were retired at ``now``; the idle period starts again."""
        self.extra -= n
        self._last_shortage = now
