"""The custom scalar types of the config schema and how msgspec decodes them (``dec_hook``).

Decoding is msgspec lax mode (``strict=False``) plus ``dec_hook`` for these types, because environment
expansion turns numbers into strings (``num_workers: ${N:-4}`` arrives as ``"4"``):

* ``Duration``: a ``float`` of seconds, decoded from Go duration strings ("1h2m3.5s", "500ms") or numbers.
* ``Text``: a ``str`` that also accepts YAML numbers and booleans, as RoadRunner's weakly typed decoding
  does (``true`` -> "1", ``false`` -> "0"); used for env and header maps.
* ``Argv``: a command; a string is split on runs of whitespace.
* ``StrList``: a list of strings; a single string is split on commas (RoadRunner's string-to-slice rule).
"""

from __future__ import annotations

import math
import re


class Duration(float):
    """Seconds. Decoded from Go-style strings ('500ms', '1m30s', '2µs') or numbers (= seconds)."""


class Text(str):
    """A string that also accepts numbers and booleans from YAML (RoadRunner decodes weakly)."""


class Argv(list[str]):
    """A command line: a list is argv verbatim, a single string is split on runs of whitespace."""


class StrList(list[str]):
    """A list of strings; a single string is split on commas (``a.proto,b.proto``)."""


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"[+]?(\d+\.?\d*|\.\d+)")


def parse_duration(value: object) -> Duration:
    """A Go ``time.ParseDuration`` string, "0", or a number of seconds -> ``Duration`` (seconds).

    Negative durations are rejected (no RoadRunner timeout is meaningful below zero).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _PLAIN_NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            body = text[1:] if text.startswith("+") else text
            pos, seconds = 0, 0.0
            while pos < len(body):
                m = _DURATION_PART.match(body, pos)
                if m is None:
                    raise ValueError(f"expected a duration like '1m30s' or '500ms', got {value!r}")
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0:
                raise ValueError(f"expected a duration like '1m30s' or '500ms', got {value!r}")
    else:
        raise ValueError(f"expected a duration like '30s', got {value!r}")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite non-negative value, got {value!r}")
    return Duration(seconds)


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def dec_hook(tp: type, value: object) -> object:
    if tp is Duration:
        return parse_duration(value)
    if tp is Text:
        return Text(_scalar_text(value))
    if tp is Argv or tp is StrList:
        if isinstance(value, str):
            items = value.split() if tp is Argv else [p for p in value.split(",") if p != ""]
            return tp(items)
        if isinstance(value, list):
            return tp(_scalar_text(v) for v in value)
        raise ValueError(f"expected a string or a list of strings, got {type(value).__name__}")
    raise NotImplementedError(f"no decoder for {tp!r}")


__all__ = ["Argv", "Duration", "StrList", "Text", "dec_hook", "parse_duration"]
