"""Logging from the ``logs:`` section: modes, levels, encodings, outputs and per-plugin channels.

Owns the handlers of the ``rr`` logger tree. Every plugin logs on ``rr.<plugin>`` (``rr.server`` for
worker stderr); ``logs.channels.<plugin>`` gives that logger its own mode, level, encoding and outputs.
The modes follow RoadRunner's zap presets:

========== ========= ======== =====================================================
mode       level     encoding line
========== ========= ======== =====================================================
development debug    console  ``<ISO8601 time>\\t<LEVEL>\\t<logger>\\t<msg>\\t{fields}``
production info      json     ``{"level":"info","ts":<epoch>,"logger":"server","msg":…,<fields>}``
raw        info      console  the message alone (worker output passes through untouched)
off / none  —        —        nothing
========== ========= ======== =====================================================

``level`` and ``encoding`` override the preset. Fields are the record's ``extra`` keys, flattened;
the pool attaches ``pid`` (and ``trace_id`` while the worker executes a traced request) to worker
stderr lines. ``output`` and ``err_output`` take ``stderr``, ``stdout`` or a file path (or a list);
records at ERROR and above go to ``err_output`` when it is set, otherwise to ``output``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

from rrgrpc.config.compat import emit
from rrgrpc.errors import ConfigError
from rrgrpc.obs import section_fields, written_fields

if TYPE_CHECKING:
    from rrgrpc.config import RRConfig
    from rrgrpc.plugin import Peers

ROOT_LOGGER: Final = "rr"

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_PRESETS: Final = {  # mode -> (level, encoding)
    "development": ("debug", "console"),
    "production": ("info", "json"),
    "raw": ("info", "raw"),
}
_OFF_MODES: Final = frozenset({"off", "none"})

#: Attributes every LogRecord has; anything else on a record came from ``extra`` and is a field.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}


def _short_name(name: str) -> str:
    """``rr.server`` -> ``server``: RoadRunner's named loggers carry the plugin name only."""
    return name[len(ROOT_LOGGER) + 1 :] if name.startswith(ROOT_LOGGER + ".") else name


class JsonFormatter(logging.Formatter):
    """One JSON object per line, zap production style, with ``extra`` flattened into it."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname.lower().replace("warning", "warn").replace("critical", "fatal"),
            "ts": record.created,
            "logger": _short_name(record.name),
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """zap's development console line: time, level, logger and message tab-separated, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        local = time.localtime(record.created)
        stamp = "{}.{:03d}{}".format(
            time.strftime("%Y-%m-%dT%H:%M:%S", local), int(record.msecs), time.strftime("%z", local)
        )
        parts = [
            stamp,
            record.levelname.replace("WARNING", "WARN"),
            _short_name(record.name),
            record.getMessage(),
        ]
        fields = record_fields(record)
        if fields:
            parts.append(json.dumps(fields, default=str, ensure_ascii=False))
        line = "\t".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RawFormatter(logging.Formatter):
    """The message and nothing else (RoadRunner's ``raw`` mode, for worker output)."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


_FORMATTERS: Final[Mapping[str, type[logging.Formatter]]] = {
    "json": JsonFormatter,
    "console": ConsoleFormatter,
    "raw": RawFormatter,
}


class Throttle:
    """At most one line per ``interval`` seconds for an event that a client can repeat at will
    (refused connections, bad requests): the first is logged, the rest are counted, and the next line
    logged says how many were left out, so a flood cannot flood the logs."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, interval: float = 10.0) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._next = 0.0
        self._skipped = 0

    def __call__(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        self._next = now + self.interval
        if self._skipped:
            msg += f" (and {self._skipped} more like it in the last {self.interval:g}s)"
            self._skipped = 0
        self.logger.log(self.level, msg, *args)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """The resolved settings of one logger (the ``rr`` root or a channel)."""

    mode: str
    level: int
    encoding: str
    output: tuple[str, ...]
    err_output: tuple[str, ...]


def _get(section: Any, key: str, default: Any = None) -> Any:
    if section is None:
        return default
    if isinstance(section, Mapping):
        value = section.get(key, default)
    else:
        value = getattr(section, key, default)
    return default if value is None else value


def _targets(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def resolve(section: Any, where: str = "logs", parent: ChannelSettings | None = None) -> ChannelSettings:
    """Turn a ``logs`` (or ``logs.channels.<name>``) section into concrete settings.

    A channel inherits what it does not set from ``parent``.
    """
    mode = str(_get(section, "mode", "") or (parent.mode if parent else "development")).lower()
    if mode not in _PRESETS and mode not in _OFF_MODES:
        raise ConfigError(f"{where}.mode: unknown mode {mode!r} (development, production, raw, off)")
    preset_level, preset_encoding = _PRESETS.get(mode, ("info", "console"))
    explicit_mode = bool(_get(section, "mode", ""))
    level_name = str(_get(section, "level", "")).lower()
    if level_name:
        if level_name not in _LEVELS:
            raise ConfigError(f"{where}.level: unknown level {level_name!r}")
        level = _LEVELS[level_name]
    elif parent is not None and not explicit_mode:
        level = parent.level
    else:
        level = _LEVELS[preset_level]
    encoding = str(_get(section, "encoding", "")).lower()
    if not encoding:
        encoding = parent.encoding if parent is not None and not explicit_mode else preset_encoding
    if mode == "raw":
        encoding = "raw"
    if encoding not in _FORMATTERS:
        raise ConfigError(f"{where}.encoding: unknown encoding {encoding!r} (console, json)")
    output = _targets(_get(section, "output")) or (parent.output if parent else ("stderr",))
    err_output = _targets(_get(section, "err_output")) or _targets(_get(section, "error_output"))
    if not err_output and parent is not None:
        err_output = parent.err_output
    return ChannelSettings(mode, level, encoding, output, err_output)


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class _StdStream(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr``/``sys.stdout`` is at emit time (test capture swaps them)."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self._which = which

    @property
    def stream(self) -> IO[str]:
        return sys.stdout if self._which == "stdout" else sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def _handler(target: str) -> logging.Handler:
    if target in ("stderr", "stdout"):
        return _StdStream(target)
    return logging.FileHandler(target, encoding="utf-8")


class LoggingSetup:
    """The handlers installed on the ``rr`` tree; ``close()`` removes them and restores the loggers."""

    def __init__(self) -> None:
        self._installed: list[tuple[logging.Logger, logging.Handler]] = []
        self._saved: list[tuple[logging.Logger, int, bool]] = []

    def apply(self, logger: logging.Logger, settings: ChannelSettings) -> None:
        self._saved.append((logger, logger.level, logger.propagate))
        logger.propagate = False
        if settings.mode in _OFF_MODES:
            # above every level, so children that inherit it drop records too; the NullHandler keeps
            # logging's last-resort stderr handler out
            logger.setLevel(logging.CRITICAL + 10)
            self._install(logger, logging.NullHandler())
            return
        logger.setLevel(settings.level)
        formatter = _FORMATTERS[settings.encoding]()
        split = bool(settings.err_output) and settings.err_output != settings.output
        for target in settings.output:
            handler = _handler(target)
            handler.setFormatter(formatter)
            if split:
                handler.addFilter(_BelowError())
            self._install(logger, handler)
        if split:
            for target in settings.err_output:
                handler = _handler(target)
                handler.setFormatter(formatter)
                handler.setLevel(logging.ERROR)
                self._install(logger, handler)

    def _install(self, logger: logging.Logger, handler: logging.Handler) -> None:
        logger.addHandler(handler)
        self._installed.append((logger, handler))

    def close(self) -> None:
        for logger, handler in reversed(self._installed):
            logger.removeHandler(handler)
            handler.close()
        for logger, level, propagate in reversed(self._saved):
            logger.setLevel(level)
            logger.propagate = propagate
        self._installed.clear()
        self._saved.clear()


_current: LoggingSetup | None = None


def _channels(logs_cfg: Any) -> Iterable[tuple[str, Any]]:
    channels = _get(logs_cfg, "channels", None) or {}
    items = channels.items() if isinstance(channels, Mapping) else vars(channels).items()
    return list(items)


#: The schema's defaults for ``logs`` (development's preset). A Struct cannot say whether the user wrote
#: them, and in another mode they must not override that mode's preset.
_SCHEMA_DEFAULTS: Final = {
    "level": "debug",
    "encoding": "console",
    "output": ["stderr"],
    "err_output": ["stderr"],
}


def written_settings(logs_cfg: Any, raw_section: Any = None) -> dict[str, Any]:
    """The ``logs`` keys that were actually written: from the raw YAML mapping when there is one,
    otherwise the Struct's values minus those equal to the schema defaults."""
    if isinstance(raw_section, Mapping) or isinstance(logs_cfg, Mapping):
        return written_fields(logs_cfg, raw_section)
    fields = section_fields(logs_cfg)
    return {k: v for k, v in fields.items() if _SCHEMA_DEFAULTS.get(k, object()) != v}


def configure_logging(logs_cfg: Any, raw_section: Any = None) -> LoggingSetup:
    """Install handlers for the ``rr`` tree from a ``logs`` section (replacing a previous setup).

    Args:
        logs_cfg: the ``logs`` section (``cfg.logs``, or a mapping with RoadRunner's keys); ``None``
            means RoadRunner's defaults (development mode on stderr).
        raw_section: ``cfg.raw.get("logs")``, which tells the keys the user wrote from the defaults
            the schema filled in.

    Returns:
        The setup, whose ``close()`` removes what was installed.
    """
    global _current
    logs_cfg = written_settings(logs_cfg, raw_section)
    base = resolve(logs_cfg)
    channels = [(name, resolve(ch, f"logs.channels.{name}", base)) for name, ch in _channels(logs_cfg)]
    if _current is not None:
        _current.close()
    setup = LoggingSetup()
    setup.apply(logging.getLogger(ROOT_LOGGER), base)
    for name, settings in channels:
        setup.apply(logging.getLogger(f"{ROOT_LOGGER}.{name}"), settings)
    _current = setup
    return setup


class LogsPlugin:
    """Configures logging first thing on start (then logs the config's notes) and removes its handlers last."""

    name = "logs"

    def __init__(self, cfg: RRConfig) -> None:
        raw = getattr(cfg, "raw", None) or {}
        self._notes: tuple[tuple[int, str], ...] = getattr(cfg, "notes", ())
        self._section = written_settings(getattr(cfg, "logs", None), raw.get("logs") if raw else None)
        # fail at construction, like every other config error, not half-way through start-up
        base = resolve(self._section)
        for name, ch in _channels(self._section):
            resolve(ch, f"logs.channels.{name}", base)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        global _current
        setup = configure_logging(self._section)
        emit(self._notes)  # what reading the config had to say, in the format just configured
        try:
            yield
        finally:
            setup.close()
            if _current is setup:
                _current = None

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run()


__all__ = [
    "ChannelSettings",
    "ConsoleFormatter",
    "JsonFormatter",
    "LogsPlugin",
    "RawFormatter",
    "configure_logging",
    "written_settings",
    "record_fields",
    "resolve",
]
