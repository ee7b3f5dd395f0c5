"""The one listen-address grammar (rrgrpc.gocompat.parse_address) every key and client uses."""

from __future__ import annotations

import pytest

from rrgrpc.errors import ConfigError
from rrgrpc.gocompat import Address, AddressError, parse_address


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("tcp://127.0.0.1:6001", Address("tcp", "127.0.0.1", 6001)),
        ("tcp://:6001", Address("tcp", "", 6001)),
        ("tcp://[::1]:0", Address("tcp", "::1", 0)),
        ("unix:///tmp/rr.sock", Address("unix", path="/tmp/rr.sock")),
        ("unix://rr.sock", Address("unix", path="rr.sock")),
    ],
)
def test_transport_addresses(value: str, parsed: Address) -> None:
    assert parse_address(value, "rpc.listen") == parsed
    assert parse_address(value, "http.address", bare=True) == parsed


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:8080", Address("tcp", "127.0.0.1", 8080)),
        (":8080", Address("tcp", "", 8080)),
        ("[::1]:80", Address("tcp", "::1", 80)),
    ],
)
def test_bare_host_port_only_where_allowed(value: str, parsed: Address) -> None:
    assert parse_address(value, "http.address", bare=True) == parsed
    with pytest.raises(AddressError) as caught:
        parse_address(value, "rpc.listen")
    assert str(caught.value) == f"rpc.listen: expected tcp://host:port or unix://path, got {value!r}"


@pytest.mark.parametrize(
    ("value", "bare", "message"),
    [
        ("localhost", True, "http.address: expected host:port, got 'localhost'"),
        ("127.0.0.1:99999", True, "http.address: expected host:port, got '127.0.0.1:99999'"),
        ("tcp://127.0.0.1", False, "http.address: expected tcp://host:port, got 'tcp://127.0.0.1'"),
        ("tcp://a://b:1", False, "http.address: expected tcp://host:port, got 'tcp://a://b:1'"),
        ("unix://", True, "http.address: expected unix://path, got 'unix://'"),
        ("udp://1.2.3.4:5", True, "http.address: expected host:port or unix://path, got 'udp://1.2.3.4:5'"),
        ("", False, "http.address: expected tcp://host:port or unix://path, got ''"),
    ],
)
def test_bad_addresses_name_the_key_and_the_forms(value: str, bare: bool, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_address(value, "http.address", bare=bare)
    assert str(caught.value) == message
