"""Resource sampling of worker processes (psutil): RSS and CPU for the informer and the supervisor.

One ``psutil.Process`` is kept per pid (its ``create_time`` guards against a reused pid) and
dropped when the worker is reaped.
"""

from __future__ import annotations

import psutil


class Sampler:
    """RSS and CPU share of worker processes, by pid."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def usage(self, pid: int, now: float) -> tuple[int, float]:
        """(RSS bytes, CPU percent over the process's life) at unix time ``now``; zeros when gone."""
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            with proc.oneshot():
                rss = proc.memory_info().rss
                t = proc.cpu_times()
                elapsed = max(now - proc.create_time(), 1e-6)
            return rss, round((t.user + t.system) / elapsed * 100, 2)
        except (psutil.Error, OSError):
            return 0, 0.0

    def rss(self, pid: int, now: float) -> int:
        return self.usage(pid, now)[0]

    def forget(self, pid: int) -> None:
        """The process is gone (or the pid is new): drop what is cached for it."""
        self._procs.pop(pid, None)
