"""Constructs found in RoadRunner's own configs (its reference ``.rr.yaml`` and the plugins'
``tests/configs``): each one loads here, with the note RoadRunner's behaviour calls for, and each
warning is an error under ``strict`` (``rr serve --strict``). The YAML is written for these tests."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rrgrpc.config import RRConfig, load_config
from rrgrpc.errors import ConfigError

INFO, WARN = logging.INFO, logging.WARNING
BASE = 'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:6001\n'


def load(tmp_path: Path, body: str, strict: bool = False) -> RRConfig:
    path = tmp_path / ".rr.yaml"
    head = 'version: "3"\n' if body.startswith("rpc:") else BASE  # a body with its own rpc section
    path.write_text(head + textwrap.dedent(body).lstrip())
    return load_config(path, strict=strict)


def notes(cfg: RRConfig) -> list[tuple[int, str]]:
    prefix = f"{cfg.source}: "
    return [(level, text.removeprefix(prefix)) for level, text in cfg.notes]


# (construct, yaml, check on the config, expected notes)
CONSTRUCTS: list[tuple[str, str, Any, list[tuple[int, str]]]] = [
    (
        "relay_timeout, dropped by RoadRunner",
        "server:\n  command: php w.php\n  relay: pipes\n  relay_timeout: 20s\n",
        lambda c: c.server.relay == "pipes",
        [(INFO, "server.relay_timeout is obsolete in RoadRunner, ignored")],
    ),
    (
        "the reload section, dropped by RoadRunner",
        "reload:\n  interval: 1s\n  patterns: [.php]\n",
        lambda c: c.rpc is not None,
        [(INFO, "section 'reload' is obsolete in RoadRunner, ignored")],
    ),
    (
        "server.env as a list of maps",
        "server:\n  command: php w.php\n  env:\n    - APP_ENV: prod\n    - debug: 1\n",
        lambda c: c.server.env == {"APP_ENV": "prod", "DEBUG": "1"},
        [],
    ),
    (
        "logs.output as a list",
        "logs:\n  mode: development\n  level: error\n  output: [stderr]\n  err_output: stderr\n",
        lambda c: c.logs.output == ["stderr"] and c.logs.err_output == ["stderr"],
        [],
    ),
    (
        "objectives as one map",
        "metrics:\n  collect:\n    app:\n      type: summary\n      objectives:\n        0.5: 0.05\n        0.9: 0.01\n",
        lambda c: c.metrics.collect["app"].objectives == {0.5: 0.05, 0.9: 0.01},
        [],
    ),
    (
        "objectives as a list of one-entry maps",
        "metrics:\n  collect:\n    app:\n      type: summary\n      objectives:\n        - 1.4: 2.3\n        - 2.0: 1.4\n",
        lambda c: c.metrics.collect["app"].objectives == {1.4: 2.3, 2.0: 1.4},
        [],
    ),
    (
        "a single value where a list is expected",
        "metrics:\n  collect:\n    h:\n      type: histogram\n      buckets: 0.5\n      labels: type\n",
        lambda c: c.metrics.collect["h"].buckets == [0.5] and c.metrics.collect["h"].labels == ["type"],
        [],
    ),
    (
        "a number where a string is expected",
        "server:\n  command: php w.php\n  group: 1000\n",
        lambda c: c.server.group == "1000",
        [],
    ),
    (
        "keys in another case (viper lowercases them)",
        "http:\n  Address: 127.0.0.1:8080\n  MAX_REQUEST_SIZE: 16\n",
        lambda c: c.http.address == "127.0.0.1:8080" and c.http.max_request_size == 16,
        [],
    ),
    (
        "status.check_timeout",
        "status:\n  address: 127.0.0.1:2114\n  unavailable_status_code: 503\n  check_timeout: 10\n",
        lambda c: c.status.check_timeout == 10,
        [],
    ),
    (
        "cors.allowed_origin_regex and options_success_status",
        "http:\n  address: :8080\n  middleware: [headers]\n  headers:\n    cors:\n      allowed_origin: '*'\n"
        "      allowed_origin_regex: ^https://foo\n      options_success_status: 204\n",
        lambda c: c.http.headers.cors.allowed_origin_regex == "^https://foo"
        and c.http.headers.cors.options_success_status == 204,
        [],
    ),
    (
        "the sendfile middleware",
        "http:\n  address: :8080\n  middleware: [sendfile]\n",
        lambda c: c.http.middleware == ["sendfile"],
        [],
    ),
    (
        "a middleware rrgrpc does not have",
        "http:\n  address: :8080\n  middleware: [gzip, cache, headers]\n",
        lambda c: c.http.middleware == ["gzip", "headers"],
        [
            (
                WARN,
                "http.middleware: unknown middleware 'cache', ignored (known: gzip, headers, http_metrics, otel, "
                "proxy_ip_parser, sendfile, static)",
            )
        ],
    ),
    (
        "http3",
        "http:\n  address: :8080\n  http3:\n    address: 127.0.0.1:34555\n    key: k.pem\n    cert: c.pem\n",
        lambda c: c.http.address == ":8080",
        [(WARN, "http.http3 is not implemented by rrgrpc, ignored; HTTP/3 (QUIC) is not served; clients use HTTP/1.1 or HTTP/2")],
    ),
    (
        "http.ssl with only acme",
        "http:\n  address: :8080\n  ssl:\n    address: :443\n    acme:\n      certs_dir: rr_le_certs\n"
        "      email: you@example.com\n      domains: [example.com]\n",
        lambda c: c.http.ssl is None,
        [
            (
                WARN,
                "http.ssl.acme is not implemented by rrgrpc, ignored; "
                "HTTPS needs http.ssl.cert and http.ssl.key (obtain them with certbot or similar)",
            )
        ],
    ),
    (
        "fcgi and http2",
        "http:\n  address: :8080\n  fcgi:\n    address: tcp://0.0.0.0:7921\n  http2:\n    h2c: false\n",
        lambda c: c.http.address == ":8080",
        [
            (WARN, "http.fcgi is not implemented by rrgrpc, ignored"),
            (WARN, "http.http2 is not implemented by rrgrpc, ignored"),
        ],
    ),
    (
        "file_logger_options, also in a channel",
        "logs:\n  file_logger_options:\n    log_output: rr.log\n  channels:\n    http:\n      level: info\n"
        "      file_logger_options:\n        max_size: 10\n",
        lambda c: c.logs.channels["http"].level == "info",
        [
            (WARN, "logs.file_logger_options is not implemented by rrgrpc, ignored"),
            (WARN, "logs.channels.http.file_logger_options is not implemented by rrgrpc, ignored"),
        ],
    ),
    (
        "RoadRunner sections rrgrpc does not have",
        "kv:\n  local:\n    driver: memory\nservice:\n  cron:\n    command: php cron.php\ntemporal:\n  address: x:7233\n",
        lambda c: c.rpc is not None,
        [
            (WARN, "section 'kv' (a RoadRunner plugin) is not supported by rrgrpc, ignored"),
            (WARN, "section 'service' (a RoadRunner plugin) is not supported by rrgrpc, ignored"),
            (WARN, "section 'temporal' (a RoadRunner plugin) is not supported by rrgrpc, ignored"),
        ],
    ),
    (
        "a typo in a section name",
        "grcp:\n  listen: tcp://127.0.0.1:9001\n",
        lambda c: c.grpc is None,
        [(WARN, "unknown section 'grcp', ignored (did you mean grpc?)")],
    ),
    (
        "a typo in a key",
        "grpc:\n  listen: tcp://127.0.0.1:9001\n  pool:\n    supervisor:\n      exec_tll: 1s\n",
        lambda c: c.grpc.pool.supervisor.exec_ttl == 0,
        [(WARN, "unknown key grpc.pool.supervisor.exec_tll, ignored (did you mean exec_ttl?)")],
    ),
    (
        "rpc.enable from RoadRunner 1",
        "rpc:\n  enable: true\n  listen: tcp://127.0.0.1:6001\n",
        lambda c: c.rpc.listen == "tcp://127.0.0.1:6001",
        [(INFO, "rpc.enable is obsolete in RoadRunner, ignored")],
    ),
]


@pytest.mark.parametrize(("body", "check", "expected"), [c[1:] for c in CONSTRUCTS], ids=[c[0] for c in CONSTRUCTS])
def test_roadrunner_construct_loads(
    tmp_path: Path, body: str, check: Callable[[RRConfig], bool], expected: list[tuple[int, str]]
) -> None:
    cfg = load(tmp_path, body)
    assert check(cfg)
    assert notes(cfg) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [(c[1], c[3]) for c in CONSTRUCTS if any(level == WARN for level, _ in c[3])],
    ids=[c[0] for c in CONSTRUCTS if any(level == WARN for level, _ in c[3])],
)
def test_strict_makes_the_first_warning_an_error(tmp_path: Path, body: str, expected: list[tuple[int, str]]) -> None:
    first = next(text for level, text in expected if level == WARN)
    what, _, hint = first.partition(", ignored")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body, strict=True)
    assert str(info.value) == f"{tmp_path / '.rr.yaml'}: {what}{hint}; an error with --strict"


def test_strict_keeps_info_notes(tmp_path: Path) -> None:
    cfg = load(tmp_path, "server:\n  command: php w.php\n  relay_timeout: 20s\n", strict=True)
    assert notes(cfg) == [(INFO, "server.relay_timeout is obsolete in RoadRunner, ignored")]


def test_errors_stay_errors(tmp_path: Path) -> None:
    # leniency is for what RoadRunner ignores; a wrong value of a known key is still an error
    with pytest.raises(ConfigError, match=r"http\.headers\.cors\.allowed_origin_regex: invalid regular expression"):
        load(tmp_path, "http:\n  address: :8080\n  headers:\n    cors:\n      allowed_origin_regex: '(['\n")
