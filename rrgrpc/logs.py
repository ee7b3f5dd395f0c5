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
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

from rrgrpc.config.compat import emit
from rrgrpc.config.schema import LOG_PRESETS, LogChannelConfig, LogMode, LogsConfig

if TYPE_CHECKING:
    from rrgrpc.plugin import Peers

ROOT_LOGGER: Final = "rr"

#: The schema's level names (``LogLevel``) as logging levels.
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
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


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """The resolved settings of one logger (the ``rr`` root or a channel)."""

    mode: LogMode
    level: int
    encoding: str
    output: tuple[str, ...]
    err_output: tuple[str, ...]


def resolve(section: LogsConfig | LogChannelConfig, parent: ChannelSettings | None = None) -> ChannelSettings:
    """Turn the ``logs`` section (or, with its ``parent``, a ``logs.channels.<name>``) into concrete
    settings. The schema has validated the values; what is unset comes from the parent or the preset.

    A channel inherits what it does not set from ``parent``, except that a channel naming its own
    mode takes that mode's preset level and encoding.
    """
    mode = section.mode or (parent.mode if parent else "development")
    preset_level, preset_encoding = LOG_PRESETS[mode]
    inherit = parent is not None and section.mode is None
    if section.level is not None:
        level = _LEVELS[section.level]
    else:
        level = parent.level if parent is not None and inherit else _LEVELS[preset_level]
    encoding: str = section.encoding or (parent.encoding if parent is not None and inherit else preset_encoding)
    if mode == "raw":
        encoding = "raw"
    output = tuple(section.output or ()) or (parent.output if parent else ("stderr",))
    err_output = tuple(section.err_output or ()) or (parent.err_output if parent else ())
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


def configure_logging(section: LogsConfig | None = None) -> LoggingSetup:
    """Install handlers for the ``rr`` tree from a ``logs`` section (replacing a previous setup);
    ``None`` means RoadRunner's defaults (development mode on stderr).

    Returns:
        The setup, whose ``close()`` removes what was installed.
    """
    global _current
    section = section if section is not None else LogsConfig()
    base = resolve(section)
    channels = [(name, resolve(ch, base)) for name, ch in section.channels.items()]
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

    def __init__(self, section: LogsConfig, notes: tuple[tuple[int, str], ...] = ()) -> None:
        self._section = section
        self._notes = notes  # RRConfig.notes

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
    "record_fields",
    "resolve",
]
