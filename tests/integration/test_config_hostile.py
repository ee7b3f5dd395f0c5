"""Hostile and broken config files given to ``rr serve``: one clear line naming the file, exit code 1.

Each test writes the file, runs ``rr -c <file> serve`` as a real process with a bounded wait, and
asserts that stderr holds exactly one line (no traceback) and nothing went to stdout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rrgrpc.config import load_config
from rrgrpc.errors import ConfigError
from tests.helpers import free_port, php_cmd

BILLION_LAUGHS = 'version: "3"\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def rr_serve(config: Path, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "rrgrpc", "-c", str(config), "serve", *args],
        capture_output=True, timeout=30, cwd=config.parent,
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode(errors="replace")


def one_error_line(config: Path) -> str:
    code, out, err = rr_serve(config)
    lines = err.strip().splitlines()
    assert (code, out, len(lines)) == (1, "", 1), err
    assert lines[0].startswith(f"rr: error: {config}")
    return lines[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("billion-laughs", BILLION_LAUGHS, ":7:4: invalid YAML: aliases expand to more than 100000 nodes"),
        ("self-alias", 'version: "3"\nx: &x\n  - *x\n', ":2:4: invalid YAML: recursive alias"),
        ("mapping-alias", 'version: "3"\nhttp: &h\n  a: *h\n', ":2:7: invalid YAML: recursive alias"),
        (
            "duplicate-key",
            'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:6001\nrpc:\n  listen: tcp://127.0.0.1:6002\n',
            ':4:1: invalid YAML: mapping key "rpc" already defined at line 2',
        ),
        (
            "nested-duplicate",
            'version: "3"\nserver:\n  command: "php a.php"\n  relay: pipes\n  command: "php b.php"\n',
            ':5:3: invalid YAML: mapping key "command" already defined at line 3',
        ),
        ("deep", 'version: "3"\nx: ' + "[" * 5000 + "]" * 5000 + "\n", ": invalid YAML: nested too deeply"),
    ],
)
def test_hostile_yaml_is_one_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    config = tmp_path / f"{name}.yaml"
    config.write_text(content)
    assert one_error_line(config).startswith(f"rr: error: {config}{message}")


def test_billion_laughs_file_is_small() -> None:
    # the point of the attack: a few hundred bytes that would expand to 9^9 nodes
    assert len(BILLION_LAUGHS) < 500


def test_non_utf8_file_names_line_and_byte(tmp_path: Path) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes(b'version: "3"\nserver:\n  command: "php caf\xe9.php"\n')
    assert one_error_line(config) == (
        f"rr: error: {config}:3: not UTF-8 text (byte 0xe9 at offset 40); save the file as UTF-8"
    )


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    # a key set again after a ``<<`` merge is not a duplicate (yaml.v3 agrees), and an anchor
    # shared a few times is no bomb
    config = tmp_path / "merge.yaml"
    config.write_text(
        'version: "3"\n'
        "x-pool: &pool {num_workers: 2, max_jobs: 5}\n"
        "http:\n  address: 127.0.0.1:8080\n  pool:\n    <<: *pool\n    num_workers: 4\n"
        "grpc:\n  listen: tcp://127.0.0.1:9001\n  pool: *pool\n"
    )
    cfg = load_config(config)
    assert cfg.http is not None and (cfg.http.pool.num_workers, cfg.http.pool.max_jobs) == (4, 5)
    assert cfg.grpc is not None and (cfg.grpc.pool.num_workers, cfg.grpc.pool.max_jobs) == (2, 5)


def test_unset_variable_is_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RRGRPC_TEST_RPC_ADDR", raising=False)
    config = tmp_path / ".rr.yaml"
    config.write_text('version: "3"\nrpc:\n  listen: ${RRGRPC_TEST_RPC_ADDR}\n')
    assert one_error_line(config) == (
        f"rr: error: {config}: rpc.listen: expected tcp://host:port or unix://path, got '' "
        "(${RRGRPC_TEST_RPC_ADDR} is not set)"
    )


def test_unset_variable_is_a_warning_and_strict_makes_it_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RRGRPC_TEST_FLAGS", raising=False)
    config = tmp_path / ".rr.yaml"
    config.write_text('version: "3"\nserver:\n  command: "php w.php ${RRGRPC_TEST_FLAGS}"\nrpc:\n  listen: tcp://127.0.0.1:1\n')
    cfg = load_config(config)
    assert cfg.server.command == ["php", "w.php"]
    assert cfg.notes == (
        (30, f"{config}: server.command: ${{RRGRPC_TEST_FLAGS}} is not set, expanded to an empty string, as RoadRunner does"),
    )
    with pytest.raises(ConfigError, match=r"server\.command: \$\{RRGRPC_TEST_FLAGS\} is not set; an error with --strict$"):
        load_config(config, strict=True)


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    """Two self-signed certificates with their keys, and a file that is not PEM."""
    out: dict[str, Path] = {}
    for name in ("a", "b"):
        cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        made = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=127.0.0.1"],
            capture_output=True, check=False,
        )
        if made.returncode != 0:
            pytest.skip("openssl cannot make a test certificate")
        out[f"{name}_crt"], out[f"{name}_key"] = cert, key
    out["junk"] = tmp_path / "junk.pem"
    out["junk"].write_text("not a certificate\n")
    out["missing"] = tmp_path / "missing.pem"
    return out


@pytest.mark.php
@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("missing", "a_key", "http.ssl.cert: cannot read {missing}: No such file or directory"),
        ("a_crt", "missing", "http.ssl.key: cannot read {missing}: No such file or directory"),
        ("junk", "a_key", "http.ssl.cert: {junk} holds no PEM certificate ("),
        ("a_crt", "junk", "http.ssl.key: {junk} holds no usable PEM private key for {a_crt} ("),
        ("a_crt", "b_key", "http.ssl.key: {b_key} does not match the certificate {a_crt} ("),
    ],
)
def test_tls_files_are_named_with_their_key(
    tmp_path: Path, pems: dict[str, Path], cert: str, key: str, message: str
) -> None:
    config = tmp_path / ".rr.yaml"
    config.write_text(
        f'version: "3"\nserver:\n  command: "{" ".join(php_cmd("http_echo.php"))}"\n'
        f"http:\n  address: 127.0.0.1:{free_port()}\n  pool:\n    num_workers: 1\n"
        f"  ssl:\n    address: 127.0.0.1:{free_port()}\n    cert: {pems[cert]}\n    key: {pems[key]}\n"
    )
    expected = message.format(**{k: str(v) for k, v in pems.items()})
    assert one_error_line(config).startswith(f"rr: error: {config}: {expected}")


def test_unset_variables_follow_include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the main file's http section is replaced by the included one: its unset variable no longer
    # matters; the included file's does, and an error on that key names it
    monkeypatch.delenv("RRGRPC_TEST_MAIN_PORT", raising=False)
    monkeypatch.delenv("RRGRPC_TEST_INC_ADDR", raising=False)
    (tmp_path / "inc.yaml").write_text('version: "3"\nhttp:\n  address: ${RRGRPC_TEST_INC_ADDR}\n')
    config = tmp_path / ".rr.yaml"
    config.write_text(
        'version: "3"\ninclude: [inc.yaml]\nrpc:\n  listen: tcp://127.0.0.1:1\n'
        "http:\n  address: 127.0.0.1:${RRGRPC_TEST_MAIN_PORT}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value) == f"{config}: http.address: required (or configure http.ssl) (${{RRGRPC_TEST_INC_ADDR}} is not set)"
    (tmp_path / "inc.yaml").write_text(
        'version: "3"\nhttp:\n  address: 127.0.0.1:8080\n  uploads:\n    dir: ${RRGRPC_TEST_INC_ADDR}\n'
    )
    assert load_config(config).notes == (
        (30, f"{config}: http.uploads.dir: ${{RRGRPC_TEST_INC_ADDR}} is not set, expanded to an empty string, as RoadRunner does"),
    )
