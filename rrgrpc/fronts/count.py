"""How many fronts a config gets: ``server.num_fronts`` resolved against the machine and the config."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rrgrpc.config.schema import PoolConfig, RRConfig
from rrgrpc.gocompat import parse_address
from rrgrpc.pool.spawn import pool_size


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup CPU quota when one is set."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, int(quota)))
    return max(1, cpus)


def _cgroup_quota() -> float | None:
    """CPUs the cgroup's quota allows (cgroup v2 ``cpu.max``, else v1 ``cfs_quota_us``); None = no quota."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def data_addresses(cfg: RRConfig) -> list[tuple[str, str]]:
    """The data listeners every front binds: (config key, address)."""
    out: list[tuple[str, str]] = []
    if cfg.grpc is not None:
        out.append(("grpc.listen", cfg.grpc.listen))
    if cfg.http is not None:
        if cfg.http.ssl is not None:
            out.append(("http.ssl.address", cfg.http.ssl.address))
        if cfg.http.address:
            out.append(("http.address", cfg.http.address))
    return out


def data_pools(cfg: RRConfig) -> list[PoolConfig]:
    return [s.pool for s in (cfg.grpc, cfg.http) if s is not None]


Note = tuple[int, str]  # (logging level, message), as RRConfig.notes holds them


def resolve(cfg: RRConfig) -> tuple[int, Note | None]:
    """The number of fronts to run, and the one line that says why it is not what was asked (info),
    or that more fronts than CPUs were asked for (warning)."""
    wanted = cfg.server.num_fronts
    cpus = usable_cpus()
    n = max(1, cpus // 2) if wanted == "auto" else wanted
    if n == 1:
        return 1, None
    addresses = data_addresses(cfg)
    if not addresses:
        return 1, None if wanted == "auto" else _info("no grpc or http section to serve; one process")
    for key, address in addresses:
        addr = parse_address(address, key, bare=True)
        if addr.scheme == "unix":
            return 1, _info(f"{key} is a unix socket, which fronts cannot share; one front")
        if addr.port == 0:
            return 1, _info(f"{key} asks for any free port, which fronts cannot share; one front")
    if any(p.debug for p in data_pools(cfg)):
        return 1, _info("a pool runs in debug mode; one front")
    smallest = min(pool_size(p) for p in data_pools(cfg))
    if n > smallest:
        why = f"{n} fronts capped at {smallest}, the smallest pool's num_workers (each front needs a worker)"
        return smallest, _info(why) if wanted != "auto" else None
    if n > cpus:
        why = f"server.num_fronts: {n} fronts on {cpus} usable CPUs: a front without a CPU of its own gains nothing"
        return n, (logging.WARNING, why)
    return n, None


def _info(why: str) -> Note:
    return logging.INFO, f"server.num_fronts: {why}"


def share(total: int, index: int, fronts: int) -> int:
    """Front ``index``'s share of ``total`` split over ``fronts`` (5 over 2: 3 + 2)."""
    return total // fronts + (1 if index < total % fronts else 0)
