"""HTTP middleware helpers without a server: forwarded-IP resolution, listen addresses, static lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from rrgrpc.config.schema import StaticConfig
from rrgrpc.http.middleware import Middleware, chain, parse_subnets, resolve_forwarded_ip
from rrgrpc.http.state import Handler
from rrgrpc.http.static import StaticFiles
from tests.helpers import section


@pytest.mark.parametrize(
    ("headers", "ip"),
    [
        ({"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}, "203.0.113.7"),
        ({"X-Real-Ip": "198.51.100.2"}, "198.51.100.2"),
        ({"Forwarded": 'for="[2001:db8::1]:4711";proto=https, for=10.0.0.1'}, "2001:db8::1"),
        ({"Forwarded": "for=192.0.2.60:8080;by=203.0.113.43"}, "192.0.2.60"),
        ({"CF-Connecting-IP": "192.0.2.9"}, "192.0.2.9"),
        ({"X-Forwarded-For": "not-an-ip"}, None),
        ({}, None),
    ],
)
def test_resolve_forwarded_ip(headers: dict[str, str], ip: str | None) -> None:
    assert resolve_forwarded_ip(CIMultiDict(headers)) == ip


def test_parse_subnets() -> None:
    nets = parse_subnets(["10.0.0.0/8", " ::1/128 ", ""])
    assert [str(n) for n in nets] == ["10.0.0.0/8", "::1/128"]


def test_static_lookup(tmp_path: Path) -> None:
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "a.css").write_text("x")
    (tmp_path / "index.php").write_text("<?php")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "link").symlink_to("/etc")
    static = StaticFiles(section(StaticConfig, dir=str(tmp_path), forbid=[".php"]))
    assert static._lookup("/css/a.css?v=1") == (tmp_path / "css" / "a.css").resolve()
    assert static._lookup("/index.php") is None  # forbidden: PHP answers
    assert static._lookup("/.git/config") is None  # dotfiles are never served
    assert static._lookup("/missing.css") is None
    assert static._lookup("/../etc/passwd") == 403
    assert static._lookup("/css/%2e%2e/%2e%2e/etc/passwd") == 403
    assert static._lookup("/link/hostname") == 403  # a symlink out of the root
    allow_only = StaticFiles(section(StaticConfig, dir=str(tmp_path), allow=[".png"]))
    assert allow_only._lookup("/css/a.css") is None


async def test_chain_runs_first_listed_outermost() -> None:
    seen: list[str] = []

    def mw(name: str) -> Middleware:
        async def run(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
            seen.append(name)
            return await handler(request)

        return run

    async def terminal(request: web.BaseRequest) -> web.StreamResponse:
        seen.append("terminal")
        return web.Response(text="done")

    response = await chain([mw("a"), mw("b")], terminal)(make_mocked_request("GET", "/"))
    assert isinstance(response, web.Response) and response.text == "done"
    assert seen == ["a", "b", "terminal"]


def test_the_registry_serves_every_middleware_the_config_accepts() -> None:
    from rrgrpc.config.schema import HTTP_MIDDLEWARE
    from rrgrpc.http.middleware import REGISTRY

    assert set(REGISTRY) == HTTP_MIDDLEWARE
