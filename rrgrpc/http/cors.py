"""The ``headers`` middleware: ``headers.request`` / ``headers.response`` and CORS (``headers.cors``).

Owns RoadRunner's CORS rules: an allowed origin (``allowed_origin`` list or ``*``, or
``allowed_origin_regex``, searched as Go's ``MatchString`` does) gets ``Access-Control-Allow-*``
headers on its responses; a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is
answered here with ``options_success_status`` and never reaches PHP.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from rrgrpc.gocompat import canonical_header
from rrgrpc.http.state import Handler, finish, forward_of

if TYPE_CHECKING:
    from rrgrpc.config.schema import CorsConfig, HeadersConfig
    from rrgrpc.http.middleware import Middleware


def headers_middleware(cfg: HeadersConfig) -> Middleware:
    request_headers = [(canonical_header(k), str(v)) for k, v in cfg.request.items()]
    response_headers = [(canonical_header(k), str(v)) for k, v in cfg.response.items()]
    cors = cfg.cors

    async def headers(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        fwd = forward_of(request)
        fwd.add_headers.extend(request_headers)
        fwd.response_headers.extend(response_headers)
        if cors is not None:
            origin = request.headers.get("Origin")
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return await _preflight(request, cors, origin)
            if origin is not None:
                fwd.response_headers.append(("Vary", "Origin"))
                if _origin_allowed(cors, origin):
                    fwd.response_headers.extend(_cors_common(cors, origin))
                    if cors.exposed_headers:
                        fwd.response_headers.append(("Access-Control-Expose-Headers", cors.exposed_headers))
        return await handler(request)

    return headers


def _origin_allowed(cors: CorsConfig, origin: str) -> bool:
    """``allowed_origin_regex`` (searched, as Go's MatchString does) wins over ``allowed_origin``."""
    if cors.allowed_origin_regex:
        return re.search(cors.allowed_origin_regex, origin) is not None
    allowed = [o.strip() for o in cors.allowed_origin.split(",") if o.strip()]
    return "*" in allowed or origin in allowed


def _cors_common(cors: CorsConfig, origin: str) -> list[tuple[str, str]]:
    wildcard = cors.allowed_origin.strip() == "*" and not cors.allowed_origin_regex and not cors.allow_credentials
    out = [("Access-Control-Allow-Origin", "*" if wildcard else origin)]
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    return out


async def _preflight(request: web.BaseRequest, cors: CorsConfig, origin: str | None) -> web.StreamResponse:
    """Answer a CORS preflight here; it never reaches PHP."""
    headers = {"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
    if origin is not None and _origin_allowed(cors, origin):
        headers.update(_cors_common(cors, origin))
        method = request.headers.get("Access-Control-Request-Method", "").upper()
        headers["Access-Control-Allow-Methods"] = cors.allowed_methods or method
        wanted = request.headers.get("Access-Control-Request-Headers", "")
        allowed = cors.allowed_headers.strip()
        if allowed == "*":
            allowed = wanted
        if allowed:
            headers["Access-Control-Allow-Headers"] = allowed
        if cors.max_age > 0:
            headers["Access-Control-Max-Age"] = str(cors.max_age)
    return await finish(request, web.Response(status=cors.options_success_status, headers=headers))
