"""``server.num_fronts``: the key's validation and how many fronts a config gets (rrgrpc.fronts.count)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rrgrpc.config import config_from_dict
from rrgrpc.errors import ConfigError
from rrgrpc.fronts import count
from rrgrpc.fronts.count import resolve, share


def cfg(num_fronts: object, grpc_listen: str = "tcp://127.0.0.1:9001", workers: int = 4, **http: Any) -> Any:
    raw: dict[str, Any] = {
        "version": "3",
        "server": {"command": "php worker.php", "num_fronts": num_fronts},
        "grpc": {"listen": grpc_listen, "proto": ["x.proto"], "pool": {"num_workers": workers}},
    }
    if http:
        raw["http"] = http
    return config_from_dict(raw, source="/app/.rr.yaml", strict=True)  # strict: the key is known


@pytest.fixture(autouse=True)
def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(count, "usable_cpus", lambda: 8)


def test_auto_is_half_the_cpus_capped_by_the_smallest_pool() -> None:
    assert resolve(cfg("auto", workers=16)) == (4, None)
    assert resolve(cfg("auto", workers=3)) == (3, None)
    assert cfg("auto").server.num_fronts == config_from_dict({"version": "3", "rpc": {}}).server.num_fronts == "auto"


def test_an_explicit_number_is_kept_capped_or_warned_about() -> None:
    assert resolve(cfg(2)) == (2, None)
    assert resolve(cfg(1)) == (1, None)
    n, note = resolve(cfg(6, workers=4))
    assert (n, note) == (4, (logging.INFO, "server.num_fronts: 6 fronts capped at 4, the smallest pool's "
                                          "num_workers (each front needs a worker)"))
    n, note = resolve(cfg(12, workers=12))
    assert n == 12 and note is not None and note[0] == logging.WARNING and "12 fronts on 8 usable CPUs" in note[1]


@pytest.mark.parametrize(
    ("listen", "http", "why"),
    [
        ("unix:///tmp/rr.sock", {}, "grpc.listen is a unix socket, which fronts cannot share; one front"),
        ("tcp://127.0.0.1:0", {}, "grpc.listen asks for any free port, which fronts cannot share; one front"),
        ("tcp://127.0.0.1:9001", {"address": "unix:///tmp/h.sock"}, "http.address is a unix socket, which fronts cannot share; one front"),
    ],
)
def test_a_listener_fronts_cannot_share_means_one_front(listen: str, http: dict[str, Any], why: str) -> None:
    assert resolve(cfg("auto", listen, **http)) == (1, (logging.INFO, f"server.num_fronts: {why}"))


@pytest.mark.parametrize(("value", "problem"), [(0, "must be at least 1 or auto, got 0"), ("many", "expected an int or 'auto', got 'many'")])
def test_a_bad_value_is_one_line_naming_the_key_and_the_file(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg(value)
    assert str(err.value).startswith("/app/.rr.yaml: server.num_fronts") and problem in str(err.value)


def test_workers_are_split_over_the_fronts() -> None:
    assert [share(5, i, 2) for i in range(2)] == [3, 2]
    assert [share(4, i, 3) for i in range(3)] == [2, 1, 1]
