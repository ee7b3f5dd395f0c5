"""The ``static`` middleware: files under ``static.dir`` served before a request reaches PHP.

Owns which paths are ours (no traversal, no dotfiles, ``forbid``/``allow`` extensions; anything
else goes on to PHP) and RoadRunner's ETag (``calculate_etag``: size and CRC32 of the content, or
of the name when ``weak``). The body goes out through aiohttp's ``FileResponse``: sendfile(2)
instead of reading the file into memory, ``Range`` requests, ``If-Modified-Since`` and
``If-Unmodified-Since``; an ``If-None-Match`` that names our ETag is answered 304 here.
"""

from __future__ import annotations

import asyncio
import email.utils
import mimetypes
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import hdrs, web

from rrgrpc.gocompat import canonical_header
from rrgrpc.http.state import Handler, finish, send_plain

if TYPE_CHECKING:
    from rrgrpc.config.schema import StaticConfig


class StaticFiles:
    """Serves files under ``static.dir`` before the request reaches PHP."""

    def __init__(self, cfg: StaticConfig) -> None:
        self.root = Path(cfg.dir or ".").resolve()
        self.forbid = {e.lower() for e in cfg.forbid}
        self.allow = {e.lower() for e in cfg.allow}
        self.calculate_etag = cfg.calculate_etag
        self.weak = cfg.weak
        self.response_headers = [(canonical_header(k), str(v)) for k, v in cfg.response.items()]
        self._etags: dict[tuple[str, int, int], str] = {}

    def _lookup(self, raw_path: str) -> Path | int | None:
        """The file to serve, an error status (403) or None (not ours: pass to PHP)."""
        path = unquote(raw_path.partition("?")[0])
        segments = [s for s in path.replace("\\", "/").split("/") if s]
        if any(s == ".." for s in segments) or "\x00" in path:
            return 403
        if not segments or any(s.startswith(".") for s in segments):
            return None
        ext = os.path.splitext(segments[-1])[1].lower()
        if ext in self.forbid or (self.allow and ext not in self.allow):
            return None
        candidate = self.root.joinpath(*segments)
        try:
            real = candidate.resolve()
        except OSError:
            return None
        if not real.is_relative_to(self.root):
            return 403
        return real if real.is_file() else None

    def _etag(self, path: Path, st: os.stat_result) -> str:
        key = (str(path), st.st_mtime_ns, st.st_size)
        tag = self._etags.get(key)
        if tag is None:
            if self.weak:
                tag = f'W/"{st.st_size:x}-{zlib.crc32(path.name.encode()):08x}"'
            else:
                tag = f'"{st.st_size:x}-{zlib.crc32(path.read_bytes()):08x}"'
            if len(self._etags) > 4096:
                self._etags.clear()
            self._etags[key] = tag
        return tag

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return await handler(request)
        found = self._lookup(request.raw_path)
        if found is None:
            return await handler(request)
        if isinstance(found, int):
            return await send_plain(request, found, "forbidden")
        st = found.stat()
        headers = dict(self.response_headers)
        headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        etag = None
        if self.calculate_etag:
            etag = await asyncio.to_thread(self._etag, found, st)
            headers["ETag"] = etag
        if etag is not None and _etag_matches(request.headers.get("If-None-Match", ""), etag):
            return await _not_modified(request, headers)
        since = request.if_modified_since
        if etag is None and since is not None and int(st.st_mtime) <= since.timestamp():
            return await _not_modified(request, headers)
        ctype, encoding = mimetypes.guess_type(found.name)
        headers["Content-Type"] = ctype or "application/octet-stream"
        if encoding:
            headers["Content-Encoding"] = encoding
        headers["Content-Length"] = str(st.st_size)  # for the gzip threshold; FileResponse sets its own
        return await finish(request, _StaticFile(found, etag, headers))


class _StaticFile(web.FileResponse):
    """aiohttp's FileResponse carrying RoadRunner's ETag (or none) instead of its mtime-size tag."""

    def __init__(self, path: Path, etag: str | None, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._rr_etag = etag

    @property
    def etag(self) -> Any:
        return self._headers.get(hdrs.ETAG)

    @etag.setter
    def etag(self, value: Any) -> None:  # FileResponse assigns its own tag while preparing
        if self._rr_etag is None:
            self._headers.popall(hdrs.ETAG, None)
        else:
            self._headers[hdrs.ETAG] = self._rr_etag


def _etag_matches(header: str, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


async def _not_modified(request: web.BaseRequest, headers: dict[str, str]) -> web.StreamResponse:
    return await finish(request, web.Response(status=304, headers=headers))
