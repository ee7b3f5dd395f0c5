"""Reading a real RoadRunner config the way RoadRunner (viper + mapstructure) does, before the schema.

Owns what RoadRunner tolerates and rrgrpc must too, and what is said about it:

* unknown keys and sections: RoadRunner ignores them; here each one is a warning with a "did you
  mean" (``grcp:`` is a typo that silently turns gRPC off there);
* keys RoadRunner itself no longer reads (``server.relay_timeout``, ``reload``): one info line each;
* keys and sections RoadRunner has and rrgrpc does not (``http.http3``, ``kv``, ``temporal``): one
  warning each, naming it;
* viper's coercions: a scalar where a list is expected becomes a one-item list, a list of maps where
  a map is expected is merged into one map, a number or boolean where a string is expected becomes
  its text, and keys match struct fields case-insensitively.

Every message is collected in a ``Notes`` (the logs plugin emits them once logging is configured);
with ``strict`` (``rr serve --strict``) a warning is raised as the ``ConfigError`` it would otherwise
have been.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import types
import typing
from typing import Any

import msgspec

from rrgrpc.errors import ConfigError

#: Keys RoadRunner v2023+ no longer reads; a config that still has them starts there, and here.
OBSOLETE: tuple[str, ...] = (
    "server.relay_timeout",
    "rpc.enable",
    "reload",
)
#: RoadRunner keys inside sections rrgrpc has, which rrgrpc does not implement.
NOT_IMPLEMENTED: tuple[str, ...] = (
    "http.fcgi",
    "http.http2",
    "http.http3",
    "http.ssl.acme",
    "http.headers.cors.debug",
    "endure.print_graph",
    "endure.log_level",
    "logs.file_logger_options",
    "logs.line_ending",
    "logs.channels.*.file_logger_options",
    "logs.channels.*.line_ending",
)
#: RoadRunner plugins' top-level sections that rrgrpc does not have.
ROADRUNNER_SECTIONS: tuple[str, ...] = (
    "broadcast",
    "centrifuge",
    "fileserver",
    "google_pub_sub",
    "kafka",
    "kv",
    "lock",
    "memcached",
    "memory",
    "redis",
    "service",
    "sqs",
    "tcp",
    "temporal",
    "websockets",
)
#: Why a not-implemented key matters, where a short hint helps the user.
_HINTS = {
    "http.ssl.acme": "HTTPS needs http.ssl.cert and http.ssl.key (obtain them with certbot or similar)",
    "http.http3": "HTTP/3 (QUIC) is not served; clients use HTTP/1.1 or HTTP/2",
}

log = logging.getLogger("rr.config")


class Notes:
    """What reading a config had to say: ``(level, message)`` pairs, in file order."""

    def __init__(self, source: str, strict: bool = False) -> None:
        self.source = source
        self.strict = strict
        self.items: list[tuple[int, str]] = []

    def info(self, message: str) -> None:
        self.items.append((logging.INFO, f"{self.source}: {message}"))

    def warn(self, what: str, hint: str = "", outcome: str = "ignored") -> None:
        """``what`` is tolerated (``outcome``); with ``strict`` that is an error instead."""
        if self.strict:
            raise ConfigError(f"{self.source}: {what}{hint}; an error with --strict")
        self.items.append((logging.WARNING, f"{self.source}: {what}, {outcome}{hint}"))

    def ignored_key(self, dotted: str, key: str, known: typing.Iterable[str]) -> None:
        """An unknown, obsolete or not implemented key (``dotted``, last part ``key``) was dropped."""
        if _matches(dotted, OBSOLETE):
            self.info(f"{dotted} is obsolete in RoadRunner, ignored")
        elif _matches(dotted, NOT_IMPLEMENTED):
            hint = next((h for p, h in _HINTS.items() if fnmatch.fnmatchcase(dotted, p)), "")
            self.warn(f"{dotted} is not implemented by rrgrpc", f"; {hint}" if hint else "")
        else:
            self.warn(f"unknown key {dotted}", _did_you_mean(key, known))


def emit(notes: typing.Iterable[tuple[int, str]]) -> None:
    """Log collected notes on ``rr.config`` (the logs plugin calls this once its handlers are in)."""
    for level, message in notes:
        log.log(level, message)


def _matches(dotted: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(dotted, p) for p in patterns)


def _did_you_mean(key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key.lower(), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def check_sections(raw: dict[str, Any], sections: tuple[str, ...], loader_keys: tuple[str, ...], notes: Notes) -> None:
    """Say something about every top-level key that is neither a section nor a loader key."""
    for key in raw:
        if key in sections or key in loader_keys:
            continue
        if _matches(key, OBSOLETE):
            notes.info(f"section {key!r} is obsolete in RoadRunner, ignored")
        elif key in ROADRUNNER_SECTIONS:
            notes.warn(f"section {key!r} (a RoadRunner plugin) is not supported by rrgrpc")
        else:
            known = sections + ROADRUNNER_SECTIONS
            notes.warn(f"unknown section {key!r}", _did_you_mean(key, known))


def normalize(value: Any, tp: Any, dotted: str, notes: Notes) -> Any:
    """``value`` reshaped for type ``tp`` as viper would decode it; unknown keys dropped with a note.

    Returns a new tree (the caller's is not modified). Values that cannot be reshaped are returned
    as they are, for the schema to reject with its usual message.
    """
    tp = without_none(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _normalize_struct(value, tp, dotted, notes) if isinstance(value, dict) else value
    if origin is dict:
        item_tp = typing.get_args(tp)[1]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            merged: dict[Any, Any] = {}
            for part in value:
                merged.update(part)
            value = merged
        if isinstance(value, dict):
            return {k: normalize(v, item_tp, f"{dotted}.{k}", notes) for k, v in value.items()}
        return value
    if origin is list or (isinstance(tp, type) and issubclass(tp, list)):
        if isinstance(value, list):
            args = typing.get_args(tp)
            return [normalize(v, args[0], f"{dotted}[{i}]", notes) for i, v in enumerate(value)] if args else value
        if isinstance(value, str) and origin is not list:
            return value  # StrList / Argv split a string themselves
        return [value] if isinstance(value, str | int | float | bool) else value
    if tp is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _normalize_struct(value: dict[Any, Any], tp: type[msgspec.Struct], dotted: str, notes: Notes) -> dict[str, Any]:
    hints = typing.get_type_hints(tp)
    by_lower = {name.lower(): name for name in hints}
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{dotted}.{key}" if dotted else str(key)
        name = key if key in hints else by_lower.get(str(key).lower())
        if name is None:
            notes.ignored_key(path, str(key), hints)
            continue
        out[name] = normalize(item, hints[name], f"{dotted}.{name}" if dotted else name, notes)
    return out


def without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``; any other type as it is."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (types.UnionType, typing.Union) and len(args) == 1 else tp
