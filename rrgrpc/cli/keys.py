"""Keys from a terminal for the live view: cbreak mode (restored on exit), escape sequences decoded to
key names, and a reader that hands them to a callback from the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any, Final


@contextlib.contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one by one without echo; the terminal is restored whatever happens."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


_ESCAPES: Final = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[Z": "shift-tab", "\x1bOA": "up", "\x1bOB": "down"}


def parse_keys(data: str) -> list[str]:
    """Split terminal input into key names: arrows and shift-tab by name, tab as "tab", else the char."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        seq = next((s for s in _ESCAPES if data.startswith(s, i)), None)
        if seq is not None:
            keys.append(_ESCAPES[seq])
            i += len(seq)
            continue
        keys.append({"\t": "tab", "\x03": "ctrl-c"}.get(data[i], data[i]))
        i += 1
    return keys


class KeyReader:
    """Reads stdin through the event loop (``add_reader``); ``q`` and Ctrl-C set ``stop``."""

    def __init__(self, fd: int, on_key: Any, stop: asyncio.Event) -> None:
        self.fd = fd
        self.on_key = on_key
        self.stop = stop

    def __enter__(self) -> KeyReader:
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 64).decode("utf-8", "replace")
        except OSError:
            data = ""
        if not data:  # stdin closed
            self.stop.set()
            return
        for key in parse_keys(data):
            if key in ("q", "Q", "ctrl-c"):
                self.stop.set()
                return
            self.on_key(key)
