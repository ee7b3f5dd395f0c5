"""The Go-compatibility rules every edge shares: how RoadRunner's Go standard library spells things.

Owns, in one place: header key canonicalisation (``textproto.CanonicalMIMEHeaderKey``), HTTP token
checks, ``url.QueryUnescape`` / ``url.ParseQuery``, ``Request.Cookies()``, how ``encoding/json``
renders strings and documents (``go_string``, ``go_json``), and the listen-address grammar of
``.rr.yaml`` (``tcp://host:port``, ``unix://path`` and, where RoadRunner takes one, a bare
``host:port``). It sits at the bottom layer (it imports only :mod:`rrgrpc.errors`), so config,
goridge and the edges all call the same rules.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from rrgrpc.errors import ConfigError

# --------------------------------------------------------------------------- names


#: An HTTP token, whole: one regex match, not a Python step per character.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_canon_cache: dict[str, str] = {}
_CANON_CACHE_SIZE: Final = 4096


def is_token(name: str) -> bool:
    """Whether ``name`` is an HTTP token (RFC 9110 §5.6.2): what a header or cookie name may be."""
    return _TOKEN.fullmatch(name) is not None


def canonical_header(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``content-type`` -> ``Content-Type``; non-token names unchanged."""
    hit = _canon_cache.get(name)
    if hit is not None:
        return hit
    out = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-")) if is_token(name) else name
    if len(_canon_cache) < _CANON_CACHE_SIZE:  # odd one-off names must not grow the cache forever
        _canon_cache[name] = out
    return out


# --------------------------------------------------------------------------- query strings and cookies


def query_unescape(text: str) -> str | None:
    """Go's ``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte; a bad escape gives None."""
    if "%" not in text:
        return text.replace("+", " ")
    out = bytearray()
    raw = text.encode("utf-8")
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25:  # %
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2:
                return None
            try:
                out.append(int(pair, 16))
            except ValueError:
                return None
            i += 3
            continue
        out.append(0x20 if b == 0x2B else b)
        i += 1
    return out.decode("utf-8", "replace")


def parse_query(text: str) -> dict[str, list[str]]:
    """``url.ParseQuery`` semantics: ``&``-separated, ``+`` and ``%XX`` unescaped, bad pairs skipped."""
    items: dict[str, list[str]] = {}
    for pair in text.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        k, v = query_unescape(key), query_unescape(value)
        if k is None or v is None:
            continue
        items.setdefault(k, []).append(v)
    return items


#: What a cookie value may hold: printable ASCII but ``"``, ``;`` and backslash.
_COOKIE_VALUE: Final = re.compile(r"[\x20\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]*")


def parse_cookies(lines: Iterable[str]) -> dict[str, str]:
    """Cookies as Go's ``Request.Cookies()`` reads them, values query-unescaped (bad ones dropped)."""
    jar: dict[str, str] = {}
    for line in lines:
        for part in line.split(";"):
            part = part.strip(" \t")
            if not part:
                continue
            name, _, value = part.partition("=")
            name = name.strip(" \t")
            if not is_token(name):
                continue
            if len(value) > 1 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if _COOKIE_VALUE.fullmatch(value) is None:
                continue
            plain = query_unescape(value)
            if plain is not None:
                jar[name] = plain
    return jar


# --------------------------------------------------------------------------- encoding/json


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("rr-go-replace", _go_replace)


def go_string(raw: bytes) -> str:
    """Bytes as Go's ``encoding/json`` renders a string: every invalid UTF-8 byte becomes U+FFFD."""
    return raw.decode("utf-8", "rr-go-replace")


_GO_ESCAPES: Final = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


_encode_sorted: Final = msgspec.json.Encoder(order="deterministic").encode


def go_json(obj: Any, *, sort_maps: bool = False) -> bytes:
    """``json.Marshal`` output: compact, HTML-safe escapes of ``<>&``; object keys in the order
    given, or, with ``sort_maps`` (the dicts stand for Go maps, which Go sorts), in byte order."""
    raw = _encode_sorted(obj) if sort_maps else msgspec.json.encode(obj)
    # These characters can only occur inside JSON strings, so a global replace is exact.
    for ch, esc in _GO_ESCAPES:
        if ch in raw:
            raw = raw.replace(ch, esc)
    return raw


# --------------------------------------------------------------------------- listen addresses


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed listen address: ``tcp`` (``host`` may be empty: every interface) or ``unix``."""

    scheme: Literal["tcp", "unix"]
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else f"tcp://{self.host}:{self.port}"


class AddressError(ConfigError):
    """A listen address that does not parse; ``problem`` is the message without the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.problem = problem


def parse_address(value: str, key: str = "", *, bare: bool = False) -> Address:
    """Parse ``tcp://host:port`` or ``unix://path``; with ``bare``, also ``host:port`` / ``:port``.

    ``bare`` is for the keys RoadRunner hands to Go's ``net.Listen("tcp", ...)`` (``http.address``,
    ``metrics.address``, ``status.address``) and for RPC clients; ``rpc.listen``, ``grpc.listen`` and
    ``server.relay`` must say their transport. IPv6 hosts come in brackets (``[::1]:80``).

    Raises:
        AddressError: naming ``key``, the value and the expected forms.
    """
    forms = "host:port or unix://path" if bare else "tcp://host:port or unix://path"
    scheme, sep, rest = value.partition("://")
    if not sep:
        if not bare:
            raise AddressError(key, f"expected {forms}, got {value!r}")
        scheme, rest = "tcp", value
    if scheme == "unix":
        if not rest:
            raise AddressError(key, f"expected unix://path, got {value!r}")
        return Address("unix", path=rest)
    if scheme != "tcp":
        raise AddressError(key, f"expected {forms}, got {value!r}")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535 or "://" in rest:
        raise AddressError(key, f"expected {'host:port' if bare and not sep else 'tcp://host:port'}, got {value!r}")
    return Address("tcp", host=host.strip("[]"), port=int(port))


__all__ = [
    "Address",
    "AddressError",
    "canonical_header",
    "go_json",
    "go_string",
    "is_token",
    "parse_address",
    "parse_cookies",
    "parse_query",
    "query_unescape",
]
