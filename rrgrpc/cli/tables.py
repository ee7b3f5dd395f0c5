"""How the CLI renders informer data: byte and duration formats and one plugin's workers table."""

from __future__ import annotations

from typing import Any, Final

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

_STATUS_STYLE: Final = {"ready": "green", "working": "bold yellow", "inactive": "dim"}



def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt_duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _status(worker: dict[str, Any]) -> Text:
    name = str(worker.get("statusStr", "undefined"))
    return Text(name, style=_STATUS_STYLE.get(name, "red"))


def workers_table(
    name: str,
    workers: list[dict[str, Any]],
    *,
    now: float,
    activity: dict[str, Any] | None = None,
    selected: bool = False,
) -> Table:
    """One plugin's workers; with ``activity`` (live view) also what each busy worker executes."""
    busy = {b["pid"]: b for b in (activity or {}).get("busy", [])}
    server_now = float((activity or {}).get("now", now))
    title = Text(name, style="bold reverse" if selected else "bold")
    if activity is not None:
        title.append(f"  workers {len(workers)}  busy {len(busy)}  queue {activity.get('queue', 0)}")
    table = Table(
        title=title,
        title_justify="left",
        border_style="cyan" if selected else "dim",
        expand=activity is not None,
    )
    fronts = any("front" in w for w in workers)  # rr runs several fronts (server.num_fronts)
    for column in ("PID", *(("FRONT",) if fronts else ()), "STATUS", "EXECS", "MEMORY", "CPU%", "CREATED"):
        table.add_column(column, justify="right" if column not in ("STATUS",) else "left", no_wrap=True)
    if activity is not None:
        table.add_column("EXECUTING", overflow="ellipsis", no_wrap=True, ratio=1)
        table.add_column("FOR", justify="right", no_wrap=True)
    for w in sorted(workers, key=lambda w: w["pid"]):
        row: list[RenderableType] = [
            str(w["pid"]),
            *((str(w.get("front", "")),) if fronts else ()),
            _status(w),
            str(w.get("numExecs", 0)),
            fmt_bytes(int(w.get("memoryUsage", 0))),
            f"{float(w.get('CPUPercent', 0.0)):.1f}",
            fmt_duration(now - int(w.get("created", 0)) / 1e9) + " ago",
        ]
        if activity is not None:
            b = busy.get(w["pid"])
            row += [b["info"], fmt_duration(server_now - float(b["started"]))] if b else ["", ""]
        table.add_row(*row)
    return table
