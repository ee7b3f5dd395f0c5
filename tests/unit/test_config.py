"""Table tests for rrgrpc.config: durations, expansion, overrides, include, env files, errors, defaults."""

from __future__ import annotations

import logging
import re
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from rrgrpc.config import RRConfig, config_from_dict, decode, load_config, parse_duration, read_dotenv
from rrgrpc.config.loader import apply_override, expand, expand_tree
from rrgrpc.config.schema import OtelConfig, OtelResourceConfig
from rrgrpc.errors import ConfigError


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, **kwargs: Any) -> RRConfig:
    return load_config(write(tmp_path, ".rr.yaml", text), **kwargs)


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h2m3.5s", 3723.5),
        ("500ms", 0.5),
        ("1us", 1e-6),
        ("2µs", 2e-6),  # micro sign
        ("2μs", 2e-6),  # greek mu
        ("3ns", 3e-9),
        ("1.5h", 5400.0),
        ("1m30s", 90.0),
        ("+5s", 5.0),
        (".5s", 0.5),
        ("0", 0.0),
        ("60", 60.0),
        ("2.5", 2.5),
        (0, 0.0),
        (5, 5.0),
        (0.25, 0.25),
    ],
)
def test_duration_parses(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["5x", "", "s", "1s5", "-1s", "-3", "1 s", "5 m", True, None, [1]])
def test_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_duration_in_config_names_key_and_file() -> None:
    raw = {
        "version": "3",
        "grpc": {"listen": "tcp://127.0.0.1:9001", "pool": {"supervisor": {"ttl": "5 minutes"}}},
    }
    with pytest.raises(ConfigError, match=r"^f\.yaml: grpc\.pool\.supervisor\.ttl: expected a duration"):
        config_from_dict(raw, "f.yaml")


def test_durations_are_float_seconds() -> None:
    raw = {
        "version": "3",
        "grpc": {"listen": "tcp://127.0.0.1:9001", "timeout": "1m", "pool": {"allocate_timeout": "250ms"}},
    }
    cfg = config_from_dict(raw)
    assert cfg.grpc is not None
    assert cfg.grpc.timeout == 60.0 and isinstance(cfg.grpc.timeout, float)
    assert cfg.grpc.pool.allocate_timeout == 0.25


# --------------------------------------------------------------------------- env expansion


ENV = {"A": "alpha", "EMPTY": "", "PORT": "9001"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "alpha"),
        ("$A", "alpha"),
        ("x${A}y", "xalphay"),
        ("$A/$A", "alpha/alpha"),
        ("$A.b", "alpha.b"),
        ("${A:-dflt}", "alpha"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),  # bash :- semantics: empty counts as unset
        ("${UNSET:-}", ""),
        ("${UNSET}", ""),
        ("$UNSET", ""),
        ("tcp://127.0.0.1:${PORT:-6001}", "tcp://127.0.0.1:9001"),
        ("tcp://127.0.0.1:${NOPORT:-6001}", "tcp://127.0.0.1:6001"),
        ("${UNSET:-a b:c/d}", "a b:c/d"),
        ("no vars", "no vars"),
        ("cost $5", "cost $5"),  # not a name: left alone
        ("trailing $", "trailing $"),
    ],
)
def test_expand_forms(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_expand_tree_reaches_every_string() -> None:
    tree = {"a": "$A", "b": ["${A}", 3, {"c": "${UNSET:-d}"}], "n": 5, "t": True, "$A": "key stays"}
    assert expand_tree(tree, ENV) == {
        "a": "alpha",
        "b": ["alpha", 3, {"c": "d"}],
        "n": 5,
        "t": True,
        "$A": "key stays",
    }


def test_expanded_number_is_coerced_by_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRT_WORKERS", "7")
    cfg = load_text(
        tmp_path,
        """
        version: "3"
        grpc:
          listen: tcp://127.0.0.1:9001
          pool:
            num_workers: ${RRT_WORKERS:-4}
            max_jobs: ${RRT_UNSET:-16}
            debug: ${RRT_UNSET:-true}
        """,
    )
    assert cfg.grpc is not None
    assert (cfg.grpc.pool.num_workers, cfg.grpc.pool.max_jobs, cfg.grpc.pool.debug) == (7, 16, True)


# --------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("override", "path", "value"),
    [
        ("grpc.pool.num_workers=4", ("grpc", "pool", "num_workers"), "4"),
        ("rpc.listen=tcp://0.0.0.0:7000", ("rpc", "listen"), "tcp://0.0.0.0:7000"),
        ("rpc.listen='tcp://a:1'", ("rpc", "listen"), "tcp://a:1"),
        ('server.command="php w.php"', ("server", "command"), "php w.php"),
        (" http.address = :8080 ", ("http", "address"), ":8080"),
        ("server.env.X=a=b", ("server", "env", "X"), "a=b"),
        ("server.env.Y=${A}", ("server", "env", "Y"), "alpha"),
        ("new.deep.key=v", ("new", "deep", "key"), "v"),
    ],
)
def test_apply_override(override: str, path: tuple[str, ...], value: str) -> None:
    tree: dict[str, Any] = {"rpc": {"listen": "tcp://127.0.0.1:6001"}, "server": {"env": {}}}
    apply_override(tree, override, ENV)
    node: Any = tree
    for part in path:
        node = node[part]
    assert node == value


@pytest.mark.parametrize("override", ["grpc.listen", "=x", "a..b=1", "a.b=", ".a=1"])
def test_apply_override_rejects(override: str) -> None:
    with pytest.raises(ConfigError, match="-o"):
        apply_override({}, override, ENV)


def test_overrides_reach_the_typed_config(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        """
        version: "3"
        grpc:
          listen: tcp://127.0.0.1:9001
          proto: [x.proto]
        """,
        overrides=[
            "grpc.proto=a.proto,b.proto",  # RoadRunner splits a string on commas for a list key
            "grpc.pool.num_workers=3",
            "grpc.pool.supervisor.exec_ttl=1m",
            "rpc.listen=unix://rr.sock",
        ],
    )
    assert cfg.grpc is not None and cfg.rpc is not None
    assert cfg.grpc.proto == ["a.proto", "b.proto"]
    assert cfg.grpc.pool.num_workers == 3
    assert cfg.grpc.pool.supervisor.exec_ttl == 60.0
    assert cfg.rpc.listen == "unix://rr.sock"
    assert cfg.raw["grpc"]["pool"]["num_workers"] == "3"


def test_override_error_names_key_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.rr\.yaml: grpc\.pool\.num_workers: expected int, got 'many'"):
        load_text(
            tmp_path,
            'version: "3"\ngrpc: {listen: "tcp://127.0.0.1:9001"}\n',
            overrides=["grpc.pool.num_workers=many"],
        )


# --------------------------------------------------------------------------- include


def test_include_relative_to_main_file_and_included_sections_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRT_LEVEL", "warn")
    conf = tmp_path / "conf"
    conf.mkdir()
    write(
        conf,
        "logs.yaml",
        """
        version: "3"
        logs:
          level: ${RRT_LEVEL}
        rpc:
          listen: tcp://127.0.0.1:7001
        """,
    )
    write(conf, "extra.yaml", 'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:7002\n')
    main = write(
        conf,
        ".rr.yaml",
        """
        version: "3"
        include: [logs.yaml, extra.yaml]
        server:
          command: php worker.php
        logs:
          mode: production
          level: debug
        rpc:
          listen: tcp://127.0.0.1:6001
        """,
    )
    cfg = load_config(main)
    assert cfg.server.command == ["php", "worker.php"]  # only in the main file: kept
    assert cfg.logs.level == "warn"  # included file replaces the section...
    assert cfg.logs.mode == "development"  # ...as a whole (RoadRunner sets top-level keys)
    assert cfg.rpc is not None and cfg.rpc.listen == "tcp://127.0.0.1:7002"  # later include wins


def test_override_beats_include(tmp_path: Path) -> None:
    write(tmp_path, "inc.yaml", 'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:7001\n')
    cfg = load_text(
        tmp_path, 'version: "3"\ninclude: [inc.yaml]\n', overrides=["rpc.listen=tcp://127.0.0.1:7003"]
    )
    assert cfg.rpc is not None and cfg.rpc.listen == "tcp://127.0.0.1:7003"


@pytest.mark.parametrize(
    ("included", "include_value", "message"),
    [
        ('version: "2.7"\n', "[inc.yaml]", r"inc\.yaml: version: expected \"3\""),
        ("logs: {}\n", "[inc.yaml]", r"inc\.yaml: version: required"),
        (None, "[missing.yaml]", r"missing\.yaml: cannot read configuration"),
        ('version: "3"\n', "{a: 1}", r"\.rr\.yaml: include: expected a list of file names"),
        ('version: "3"\nrpc: [1\n', "[inc.yaml]", r"inc\.yaml:\d+:\d+: invalid YAML"),
    ],
)
def test_include_errors(tmp_path: Path, included: str | None, include_value: str, message: str) -> None:
    if included is not None:
        write(tmp_path, "inc.yaml", included)
    with pytest.raises(ConfigError, match=message):
        load_text(tmp_path, f'version: "3"\ninclude: {include_value}\n')


# --------------------------------------------------------------------------- env files


def test_read_dotenv_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ".env",
        r"""
        # a comment

        PLAIN=value
        export EXPORTED=yes
        SPACED = around
        INLINE=kept # dropped
        HASH=a#b
        SINGLE='lit $X \n # kept'
        DOUBLE="line1\nline2 \"q\" # kept"
        EMPTY=
        EQ=a=b
        """,
    )
    assert read_dotenv(path) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "around",
        "INLINE": "kept",
        "HASH": "a#b",
        "SINGLE": r"lit $X \n # kept",
        "DOUBLE": 'line1\nline2 "q" # kept',
        "EMPTY": "",
        "EQ": "a=b",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GOOD=1\nnot a pair\n", r"\.env:2: expected KEY=VALUE"),
        ('X="open\n', r"\.env:1: unterminated \" quote"),
        ("X='a' b\n", r"\.env:1: unexpected text after the closing quote"),
    ],
)
def test_read_dotenv_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_dotenv(write(tmp_path, ".env", text))


def test_envfile_relative_to_config_and_existing_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRT_EXISTING", "from-process")
    monkeypatch.delenv("RRT_FROM_FILE", raising=False)
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf, "app.env", "RRT_FROM_FILE=file\nRRT_EXISTING=from-file\n")
    main = write(
        conf,
        ".rr.yaml",
        """
        version: "3"
        envfile: app.env
        server:
          command: php w.php
          env:
            a: ${RRT_FROM_FILE}
            b: ${RRT_EXISTING}
        """,
    )
    cfg = load_config(main)
    assert cfg.server.env == {"A": "file", "B": "from-process"}


def test_dotenv_option_precedes_envfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RRT_BOTH", raising=False)
    write(tmp_path, "cli.env", "RRT_BOTH=cli\n")
    write(tmp_path, "cfg.env", "RRT_BOTH=cfg\n")
    cfg = load_text(
        tmp_path,
        'version: "3"\nenvfile: cfg.env\nserver:\n  env: {x: "${RRT_BOTH}"}\n',
        dotenv="cli.env",
        workdir=tmp_path,
    )
    assert cfg.server.env == {"X": "cli"}


def test_missing_envfile_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.env: cannot read env file"):
        load_text(tmp_path, 'version: "3"\nenvfile: nope.env\n')


# --------------------------------------------------------------------------- workdir


def test_workdir_anchors_relative_config_path_and_paths_stay_relative(tmp_path: Path) -> None:
    write(
        tmp_path, "rr.yaml", 'version: "3"\ngrpc:\n  listen: tcp://127.0.0.1:9001\n  proto: [proto/a.proto]\n'
    )
    cfg = load_config("rr.yaml", workdir=tmp_path)
    assert cfg.source == str(tmp_path / "rr.yaml")
    assert cfg.grpc is not None and cfg.grpc.proto == ["proto/a.proto"]


def test_yaml_scalars_read_as_yaml_1_2(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        """
        version: 3
        server:
          env: {a: yes, b: off, c: true, d: 1:30, e: 2024-01-02, f: 0x1F, g: 1.5}
        """,
    )
    assert cfg.server.env == {
        "A": "yes",
        "B": "off",
        "C": "1",
        "D": "1:30",
        "E": "2024-01-02",
        "F": "31",
        "G": "1.5",
    }


# --------------------------------------------------------------------------- errors


GRPC = {"listen": "tcp://127.0.0.1:9001"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"grpc": {**GRPC, "pool": {"num_workers": "abc"}}},
            "grpc.pool.num_workers: expected int, got 'abc'",
        ),
        (
            {"grpc": {**GRPC, "pool": {"num_workers": 501}}},
            "grpc.pool.num_workers: must be at most 500, got 501",
        ),
        ({"grpc": {**GRPC, "pool": {"max_jobs": -1}}}, "grpc.pool.max_jobs: must not be negative"),
        ({"grpc": {**GRPC, "pool": {"debug": "maybe"}}}, "grpc.pool.debug: expected bool, got 'maybe'"),
        ({"grpc": {}}, "grpc.listen: required"),
        ({"grpc": {"listen": "127.0.0.1:9001"}}, "grpc.listen: expected tcp://host:port or unix://path"),
        ({"grpc": {"listen": "tcp://127.0.0.1"}}, "grpc.listen: expected tcp://host:port"),
        ({"grpc": {**GRPC, "proto": [{"a": 1}]}}, "grpc.proto: expected a string, got dict"),
        (
            {"grpc": {**GRPC, "tls": {"key": "k", "cert": "c", "client_auth_type": "x"}}},
            "grpc.tls.client_auth_type",
        ),
        ({"grpc": {**GRPC, "tls": {"key": "k"}}}, "grpc.tls.cert: required"),
        (
            {"grpc": {**GRPC, "pool": {"dynamic_allocator": {"spawn_rate": 101}}}},
            "dynamic_allocator.spawn_rate",
        ),
        (
            {"grpc": {**GRPC, "pool": {"dynamic_allocator": {"idle_timeout": "10ms"}}}},
            "idle_timeout: must be at least 1s",
        ),
        (
            {"rpc": {"listen": "127.0.0.1:6001"}},
            "rpc.listen: expected tcp://host:port or unix://path, got '127.0.0.1:6001'",
        ),
        ({"rpc": {"listen": "unix://"}}, "rpc.listen: expected unix://path"),
        ({"rpc": "tcp://127.0.0.1:6001"}, "rpc: expected a mapping"),
        ({"server": {"relay": "tcp:127.0.0.1:1"}}, "server.relay: expected tcp://host:port or unix://path"),
        ({"server": {"on_init": {"exec_timeout": "1s"}}}, "server.on_init.command: required"),
        ({"server": {"env": {"A": [1]}}}, "server.env"),
        ({"http": {"address": ":8080", "codec": "xml"}}, "http.codec"),
        ({"http": {}}, "http.address: required"),
        ({"http": {"address": ":80", "ssl": {"cert": "c"}}}, "http.ssl.key: required"),
        ({"metrics": {"collect": {"app": {"type": "meter"}}}}, "metrics.collect.app.type"),
        ({"otel": {"exporter": "zipkin"}}, "otel.exporter: 'zipkin' is no longer supported"),
        ({"otel": {"exporter": "jaeger"}}, "otel.exporter: 'jaeger' is no longer supported"),
        ({"otel": {"exporter": "kafka"}}, "otel.exporter: expected one of"),
        ({"otel": {"client": "udp"}}, "otel.client"),
        ({"status": {}}, "status.address: required"),
        ({"logs": {"mode": "verbose"}}, "logs.mode"),
        ({"logs": {"channels": {"grpc": {"level": "loud"}}}}, "logs.channels.grpc.level"),
    ],
)
def test_errors_name_file_and_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"version": "3", **raw}, "/app/.rr.yaml")
    text = str(info.value)
    assert text.startswith("/app/.rr.yaml: "), text
    assert message in text, text


@pytest.mark.parametrize(
    ("version", "ok"),
    [("3", True), (3, True), ("2.7", False), (2.7, False), ("3.1", False), (True, False), (None, False)],
)
def test_version_gate(version: object, ok: bool) -> None:
    raw = {} if version is None else {"version": version}
    if ok:
        assert config_from_dict(raw, "v.yaml").version == "3"
    else:
        with pytest.raises(ConfigError, match=r"^v\.yaml: version: "):
            config_from_dict(raw, "v.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('version: "3"\nrpc: [1\n', r"\.rr\.yaml:\d+:\d+: invalid YAML"),
        ("- a\n- b\n", r"\.rr\.yaml: expected a mapping at the top level, got list"),
        ("", r"\.rr\.yaml: version: required"),
        ('version: "3"\nenvfile: [a]\n', r"\.rr\.yaml: envfile: expected a file name"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_text(tmp_path, text)


def test_missing_config_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read configuration"):
        load_config(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- sections


def test_unknown_and_unsupported_sections_are_noted_and_ignored() -> None:
    cfg = config_from_dict(
        {"version": "3", "kv": None, "amqp": {"addr": "amqp://x"}, "grcp": {}, "server": {"command": "php w.php"}}, "s.yaml"
    )
    assert cfg.server.command == ["php", "w.php"]
    assert cfg.notes == (
        (logging.WARNING, "s.yaml: section 'kv' (a RoadRunner plugin) is not supported by rrgrpc, ignored"),
        (logging.WARNING, "s.yaml: unknown section 'grcp', ignored (did you mean grpc?)"),
    )


def test_roadrunner_keys_not_implemented_are_noted_and_dropped() -> None:
    raw: dict[str, Any] = {
        "version": "3",
        "http": {"address": ":80", "http2": {"h2c": True}, "fcgi": {"address": "tcp://0.0.0.0:9000"}},
        "logs": {"line_ending": "\n"},
    }
    cfg = config_from_dict(raw, "s.yaml")
    assert cfg.http is not None and cfg.http.address == ":80"
    assert [n for _, n in cfg.notes] == [
        "s.yaml: http.http2 is not implemented by rrgrpc, ignored",
        "s.yaml: http.fcgi is not implemented by rrgrpc, ignored",
        "s.yaml: logs.line_ending is not implemented by rrgrpc, ignored",
    ]
    assert raw["http"]["http2"] == {"h2c": True}  # the caller's dict is not modified


def test_empty_sections_mean_present_with_defaults(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, 'version: "3"\nrpc:\nmetrics:\nserver:\n  command: php w.php\n  user:\n')
    assert cfg.rpc is not None and cfg.rpc.listen == "tcp://127.0.0.1:6001"
    assert cfg.metrics is not None and cfg.metrics.address == "127.0.0.1:2112"
    assert cfg.server.user == ""
    assert cfg.grpc is None and cfg.http is None and cfg.otel is None and cfg.status is None


def test_absent_sections_are_none_but_server_and_logs_exist() -> None:
    cfg = config_from_dict({"version": "3"})
    assert (cfg.rpc, cfg.grpc, cfg.http, cfg.metrics, cfg.otel, cfg.status) == (None,) * 6
    assert cfg.server.command == [] and cfg.logs.mode == "development"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("php worker.php", ["php", "worker.php"]),
        ("  php   -d  memory_limit=1G\tworker.php ", ["php", "-d", "memory_limit=1G", "worker.php"]),
        (["php", "my worker.php"], ["php", "my worker.php"]),
    ],
)
def test_server_command(command: str | list[str], argv: list[str]) -> None:
    assert config_from_dict({"version": "3", "server": {"command": command}}).server.command == argv


def test_server_env_keys_upper_cased_and_scalars_stringified() -> None:
    cfg = config_from_dict(
        {"version": "3", "server": {"env": {"app_env": "prod", "n": 5, "f": 1.5, "t": True, "x": False}}}
    )
    assert cfg.server.env == {"APP_ENV": "prod", "N": "5", "F": "1.5", "T": "1", "X": "0"}


def test_single_strings_for_lists() -> None:
    cfg = config_from_dict(
        {
            "version": "3",
            "grpc": {**GRPC, "proto": "svc.proto", "interceptors": "a,b"},
            "http": {"address": ":80", "middleware": "gzip"},
        }
    )
    assert cfg.grpc is not None and cfg.http is not None
    assert cfg.grpc.proto == ["svc.proto"] and cfg.grpc.interceptors == ["a", "b"]
    assert cfg.http.middleware == ["gzip"]


def test_config_is_frozen() -> None:
    cfg = config_from_dict({"version": "3", "rpc": {}})
    with pytest.raises(AttributeError):
        cfg.rpc.listen = "tcp://x:1"  # type: ignore[misc, union-attr]


def test_zero_means_roadrunner_default() -> None:
    cfg = config_from_dict(
        {
            "version": "3",
            "grpc": {
                **GRPC,
                "max_concurrent_streams": 0,
                "ping_time": 0,
                "timeout": "0",
                "pool": {"allocate_timeout": 0, "supervisor": {"watch_tick": 0}},
            },
            "http": {"address": ":80", "internal_error_code": 0},
        }
    )
    assert cfg.grpc is not None and cfg.http is not None
    assert cfg.grpc.max_concurrent_streams == 10 and cfg.grpc.ping_time == 7200.0 and cfg.grpc.timeout == 20.0
    assert cfg.grpc.pool.allocate_timeout == 60.0 and cfg.grpc.pool.supervisor.watch_tick == 5.0
    assert cfg.http.internal_error_code == 500


# --------------------------------------------------------------------------- defaults (RoadRunner's values)


def test_defaults_equal_roadrunner() -> None:
    cfg = config_from_dict(
        {
            "version": "3",
            "rpc": {},
            "grpc": {"listen": "tcp://127.0.0.1:9001"},
            "http": {"address": "127.0.0.1:8080"},
            "metrics": {},
            "otel": {},
            "status": {"address": "127.0.0.1:2114"},
            "logs": {},
        }
    )
    assert cfg.server.relay == "pipes" and cfg.server.env == {} and cfg.server.on_init is None
    assert cfg.rpc is not None and cfg.rpc.listen == "tcp://127.0.0.1:6001"

    g = cfg.grpc
    assert g is not None
    assert (g.max_send_msg_size, g.max_recv_msg_size, g.max_concurrent_streams) == (50, 50, 10)
    assert (g.max_connection_idle, g.max_connection_age, g.max_connection_age_grace) == (0.0, 0.0, 0.0)
    assert (g.ping_time, g.timeout) == (7200.0, 20.0)
    assert g.tls is None and g.proto == [] and g.import_paths == [] and g.env == {} and g.interceptors == []

    p = g.pool
    assert (p.command, p.num_workers, p.max_jobs, p.max_queue_size, p.debug) == ([], 0, 0, 0, False)
    assert (p.allocate_timeout, p.destroy_timeout, p.reset_timeout, p.stream_timeout) == (60.0, 60.0, 60.0, 60.0)
    s = p.supervisor
    assert (s.watch_tick, s.ttl, s.idle_ttl, s.exec_ttl, s.max_worker_memory) == (5.0, 0.0, 0.0, 0.0, 0)
    assert p.dynamic_allocator is None
    da = config_from_dict({"version": "3", "grpc": {**GRPC, "pool": {"dynamic_allocator": {}}}}).grpc
    assert da is not None and da.pool.dynamic_allocator is not None
    assert (da.pool.dynamic_allocator.max_workers, da.pool.dynamic_allocator.spawn_rate) == (10, 5)
    assert da.pool.dynamic_allocator.idle_timeout == 60.0

    h = cfg.http
    assert h is not None
    assert (h.max_request_size, h.raw_body, h.internal_error_code, h.access_logs, h.codec) == (
        1000,
        False,
        500,
        False,
        "proto",
    )
    assert h.trusted_subnets == [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "127.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    ]
    assert h.uploads.dir == tempfile.gettempdir()
    assert h.uploads.forbid == [".php", ".exe", ".bat"] and h.uploads.allow == []
    assert h.headers is None and h.static is None and h.ssl is None and h.middleware == []

    assert cfg.metrics is not None and cfg.metrics.address == "127.0.0.1:2112" and cfg.metrics.collect == {}

    o = cfg.otel
    assert o is not None
    # endpoint and service unset: the OTEL_* variables, then these defaults, decide (see otel.py)
    assert (o.exporter, o.client, o.endpoint, o.insecure, o.compress, o.custom_url) == ("otlp", "", "", False, False, "")
    assert (OtelConfig.DEFAULT_ENDPOINT, o.resource.service_name, o.resource.service_version) == ("127.0.0.1:4318", "", "")
    assert (OtelResourceConfig.DEFAULT_SERVICE_NAME, OtelResourceConfig.DEFAULT_SERVICE_VERSION) == ("RoadRunner", "1.0.0")

    assert cfg.status is not None and cfg.status.unavailable_status_code == 503 and cfg.status.check_timeout == 60.0

    lg = cfg.logs
    # unset: the mode's preset (LOG_PRESETS), stderr, errors with the rest
    assert (lg.mode, lg.level, lg.encoding, lg.output, lg.err_output, lg.channels) == (
        "development",
        None,
        None,
        None,
        None,
        {},
    )


def test_full_sections_decode() -> None:
    cfg = config_from_dict(
        {
            "version": "3",
            "server": {
                "command": "php w.php",
                "on_init": {"command": "php init.php", "exec_timeout": "10s", "env": {"k": "v"}},
            },
            "grpc": {
                **GRPC,
                "tls": {
                    "key": "k.pem",
                    "cert": "c.pem",
                    "client_auth_type": "require_and_verify_client_cert",
                },
                "pool": {"command": ["php", "g.php"], "supervisor": {"max_worker_memory": "128"}},
            },
            "http": {
                "address": ":80",
                "headers": {
                    "request": {"X-A": 1},
                    "cors": {"allowed_origin": "*", "allow_credentials": True, "max_age": 600},
                },
                "static": {
                    "dir": "public",
                    "forbid": [".php"],
                    "calculate_etag": True,
                    "response": {"X-S": "1"},
                },
                "ssl": {"address": ":443", "cert": "c", "key": "k", "redirect": True},
                "middleware": ["headers", "gzip", "static", "otel", "http_metrics", "proxy_ip_parser"],
            },
            "metrics": {
                "collect": {
                    "app_hits": {
                        "type": "histogram",
                        "help": "h",
                        "labels": ["a"],
                        "buckets": [0.1, 1],
                        "objectives": [{0.5: 0.05}],
                    }
                }
            },
            "otel": {
                "exporter": "stdout",
                "client": "grpc",
                "headers": {"auth": "x"},
                "resource": {"service_name": "svc", "service_version": 2},
            },
            "logs": {"mode": "production", "channels": {"grpc": {"level": "info"}}},
        }
    )
    assert (
        cfg.server.on_init is not None
        and cfg.server.on_init.exec_timeout == 10.0
        and cfg.server.on_init.env == {"K": "v"}
    )
    assert cfg.grpc is not None and cfg.grpc.tls is not None
    assert cfg.grpc.tls.client_auth_type == "require_and_verify_client_cert"
    assert cfg.grpc.pool.command == ["php", "g.php"] and cfg.grpc.pool.supervisor.max_worker_memory == 128
    assert cfg.http is not None and cfg.http.headers is not None and cfg.http.headers.cors is not None
    assert cfg.http.headers.request == {"X-A": "1"} and cfg.http.headers.cors.max_age == 600
    assert cfg.http.static is not None and cfg.http.static.calculate_etag
    assert cfg.http.ssl is not None and cfg.http.ssl.redirect
    assert cfg.metrics is not None and cfg.metrics.collect["app_hits"].objectives == {0.5: 0.05}
    assert cfg.otel is not None and cfg.otel.resource.service_version == "2"
    assert cfg.logs.channels["grpc"].level == "info" and cfg.logs.channels["grpc"].mode is None


def test_broker_sections_reach_the_drivers_as_plain_mappings() -> None:
    # the jobs drivers get their broker section from cfg.brokers, never from cfg.raw
    cfg = config_from_dict(
        {"version": "3", "amqp": {"addr": "amqp://guest:guest@127.0.0.1:5672/"}, "boltdb": None, "kv": {}}
    )
    assert cfg.brokers == {"amqp": {"addr": "amqp://guest:guest@127.0.0.1:5672/"}}


class _Inner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    n: int = 0
    kind: Literal["a", "b"] = "a"
    counts: dict[str, int] = {}
    positive: int = 1

    def __post_init__(self) -> None:
        if self.positive < 1:
            raise ValueError("positive\x1fmust be positive")


class _Outer(msgspec.Struct, kw_only=True):
    inner: _Inner
    needed: int


@pytest.mark.parametrize(
    "value, pattern, path",
    [
        ({"inner": {"n": "x"}, "needed": 1}, decode._EXPECTED, ".inner.n"),
        ({"inner": {"counts": {"k": "v"}}, "needed": 1}, decode._EXPECTED, ".inner.counts[...]"),
        ({"inner": {}}, decode._MISSING, None),
        ({"inner": {"kind": "c"}, "needed": 1}, re.compile(re.escape(decode._ENUM)), ".inner.kind"),
        ({"inner": {"positive": 0}, "needed": 1}, re.compile("^positive\x1fmust be positive$"), ".inner"),
    ],
)
def test_msgspec_error_forms_are_the_ones_we_read(value: dict[str, Any], pattern: re.Pattern[str], path: str | None) -> None:
    # msgspec says where a value failed only in its message text; if an upgrade rewords a form that
    # decode._format_error reads, this fails here instead of config errors quietly losing their key
    with pytest.raises(msgspec.ValidationError) as err:
        msgspec.convert(value, _Outer, strict=False)
    parts = decode._MSG.match(str(err.value))
    assert parts is not None and parts.group("path") == path, str(err.value)
    assert pattern.match(parts.group("msg")), str(err.value)


def test_on_init_exec_timeout_zero_means_the_default() -> None:
    cfg = config_from_dict({"version": "3", "server": {"on_init": {"command": "php init.php", "exec_timeout": 0}}})
    assert cfg.server.on_init is not None and float(cfg.server.on_init.exec_timeout) == 60
