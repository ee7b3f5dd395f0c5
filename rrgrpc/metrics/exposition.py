"""The text exposition with counters under the exact names they were declared with.

prometheus_client would expose a counter ``app_requests`` as ``app_requests_total``; Go keeps the
declared name, so the families named in ``bare`` are renamed back (``_created`` series are off).
"""

from __future__ import annotations

from collections.abc import Collection

import prometheus_client
from prometheus_client import CollectorRegistry


def exposition(registry: CollectorRegistry, bare: Collection[str]) -> bytes:
    """``registry`` in Prometheus text format, the counters in ``bare`` without ``_total``."""
    text = prometheus_client.generate_latest(registry)
    if not bare:
        return text
    return "".join(_unsuffix(line, bare) for line in text.decode().splitlines(keepends=True)).encode()


def _unsuffix(line: str, bare: Collection[str]) -> str:
    if line.startswith("# "):
        kind, _, rest = line[2:].partition(" ")
        name, _, tail = rest.partition(" ")
        base = name.removesuffix("_total")
        if name.endswith("_total") and base in bare:
            return f"# {kind} {base} {tail}"
        return line
    end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=len(line))
    name = line[:end]
    base = name.removesuffix("_total")
    if name.endswith("_total") and base in bare:
        return base + line[end:]
    return line
