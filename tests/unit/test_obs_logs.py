"""logs: modes, levels, encodings, outputs, channels and the JSON fields of worker stderr lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from rrgrpc.config import LogChannelConfig, LogsConfig, StrList, config_from_dict
from rrgrpc.errors import ConfigError
from rrgrpc.logs import LogsPlugin, configure_logging
from tests.helpers import StaticPeers


@pytest.fixture(autouse=True)
def _restore_rr_loggers() -> Iterator[None]:
    yield
    configure_logging().close()


def _emit(name: str = "rr.server", level: int = logging.INFO, msg: str = "hello %s", *args: object, **extra: object) -> None:
    logging.getLogger(name).log(level, msg, *(args or ("php",)), extra=extra or None)


def test_production_is_json_lines_with_flattened_extra(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogsConfig(mode="production"))
    _emit(pid=4242, trace_id="0af7651916cd43dd8448eb211c80319c")
    _emit(level=logging.DEBUG)  # production's preset level is info
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "info"
    assert line["logger"] == "server"
    assert line["msg"] == "hello php"
    assert line["pid"] == 4242
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert isinstance(line["ts"], float)


def test_development_is_console_with_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogsConfig(mode="development"))
    _emit(level=logging.DEBUG, pid=7)
    err = capsys.readouterr().err
    stamp, level, logger, msg, fields = err.rstrip("\n").split("\t")
    assert (level, logger, msg) == ("DEBUG", "server", "hello php")
    assert json.loads(fields) == {"pid": 7}
    assert stamp[:2] == "20"


def test_raw_prints_the_message_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogsConfig(mode="raw"))
    _emit(msg="%s", pid=1)
    assert capsys.readouterr().err == "php\n"


def test_off_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogsConfig(mode="off"))
    _emit(level=logging.ERROR)
    assert capsys.readouterr().err == ""


def test_level_and_encoding_override_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogsConfig(mode="development", level="warn", encoding="json", output=StrList(["stdout"])))
    _emit()
    _emit(level=logging.WARNING)
    out = capsys.readouterr()
    assert out.err == ""
    assert [json.loads(x)["level"] for x in out.out.splitlines()] == ["warn"]


def test_err_output_takes_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = tmp_path / "errors.log"
    configure_logging(LogsConfig(mode="production", output=StrList(["stdout"]), err_output=StrList([str(errors)])))
    _emit()
    _emit(level=logging.ERROR, msg="boom %s")
    out = capsys.readouterr()
    assert [json.loads(x)["msg"] for x in out.out.splitlines()] == ["hello php"]
    assert json.loads(errors.read_text())["msg"] == "boom php"


def test_channels_get_their_own_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    http_log = tmp_path / "http.log"
    configure_logging(
        LogsConfig(
            mode="production",
            level="info",
            channels={
                "http": LogChannelConfig(level="debug", output=StrList([str(http_log)])),
                "grpc": LogChannelConfig(mode="off"),
            },
        )
    )
    _emit("rr.http", logging.DEBUG, "request %s", "GET")
    _emit("rr.grpc", logging.ERROR)
    _emit("rr.server", logging.DEBUG)
    assert capsys.readouterr().err == ""
    line = json.loads(http_log.read_text())
    assert (line["logger"], line["level"], line["msg"]) == ("http", "debug", "request GET")


def test_unset_level_is_the_modes_preset_not_developments(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_from_dict({"version": "3", "logs": {"mode": "production"}})
    # the schema leaves unwritten keys unset, so development's level cannot leak into production
    assert cfg.logs.level is None and cfg.logs.encoding is None
    configure_logging(cfg.logs)
    _emit(level=logging.DEBUG)
    _emit()
    assert [json.loads(x)["level"] for x in capsys.readouterr().err.splitlines()] == ["info"]


async def test_plugin_lifespan_installs_and_removes(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_from_dict({"version": "3", "logs": {"mode": "raw"}})
    plugin = LogsPlugin(cfg.logs, cfg.notes)
    async with plugin.lifespan(StaticPeers()):
        _emit(msg="inside %s")
        assert logging.getLogger("rr").handlers
    assert capsys.readouterr().err == "inside php\n"
    assert not logging.getLogger("rr").handlers


@pytest.mark.parametrize(
    "section, message",
    [
        ({"mode": "loud"}, "logs.mode: expected one of 'development', 'production', 'raw', 'off', 'none', got 'loud'"),
        ({"level": "warning"}, "logs.level: expected one of 'debug', 'info', 'warn', 'error', 'panic', 'fatal', got 'warning'"),
        ({"encoding": "xml"}, "logs.encoding: expected one of 'console', 'json', got 'xml'"),
        ({"channels": {"http": {"level": "chatty"}}}, "logs.channels.http.level: expected one of"),
    ],
)
def test_bad_values_name_the_key(section: dict[str, object], message: str) -> None:
    # the schema is the one validator: what it refuses, nothing downstream accepts
    with pytest.raises(ConfigError) as err:
        config_from_dict({"version": "3", "logs": section})
    assert str(err.value).startswith(f"<dict>: {message}")


def test_throttle_logs_one_line_per_interval_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    import time

    from rrgrpc.obs import Throttle

    throttle = Throttle(logging.getLogger("test.throttle"), interval=0.2)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for i in range(5):
            throttle("refused %d", i)
        time.sleep(0.25)
        throttle("refused %d", 5)
        throttle("refused %d", 6)
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "refused 5 (and 4 more like it in the last 0.2s)",
    ]
