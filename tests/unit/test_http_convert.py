"""HTTP context conversion: form/uploads trees, header names, cookies, and replay of the captured
RoadRunner <-> PHP transcripts (vectors/http_worker.json) through a real aiohttp server and client."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rrgrpc.errors import WorkerError
from rrgrpc.gocompat import canonical_header, is_token, parse_cookies, query_unescape
from rrgrpc.goridge.frame import Flag, Frame, decode
from rrgrpc.http import http_pb2
from rrgrpc.http import reply as reply_module
from rrgrpc.http.convert import (
    Built,
    RequestError,
    RequestOptions,
    bodiless_payload,
    build_request,
)
from rrgrpc.http.dispatch import Dispatcher
from rrgrpc.http.forms import FormError, UploadedFile, build_tree, split_key, tree_json
from rrgrpc.http.reply import BadWorkerResponse, decode_head
from rrgrpc.http.request_pb import encode_request, header_map
from rrgrpc.http.state import Forward
from rrgrpc.pool.payload import Payload
from tests.helpers import VECTORS

TRANSCRIPT = json.loads((VECTORS / "http_worker.json").read_text())
MULTIPART_BODY = (
    b'--probeboundary\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n'
    b'--probeboundary\r\nContent-Disposition: form-data; name="file"; filename="hello.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nhello upload\n\r\n--probeboundary--\r\n"
)


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("key", "segments"),
    [
        ("a", ["a"]),
        ("a[b][c]", ["a", "b", "c"]),
        ("a[]", ["a", ""]),
        ("a[b][]", ["a", "b", ""]),
        ("a [ b ]", ["a", "b"]),
        ("a[0]", ["a", "0"]),
    ],
)
def test_split_key(key: str, segments: list[str]) -> None:
    assert split_key(key) == segments


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ({"a": ["1"], "b[]": ["2", "3"], "c[d]": ["4"], "c[e][]": ["5"]},
         {"a": "1", "b": ["2", "3"], "c": {"d": "4", "e": ["5"]}}),
        ({"a": ["1", "2"]}, {"a": "2"}),  # plain key: last value
        ({"a[0]": ["x"], "a[1]": ["y"]}, {"a": {"0": "x", "1": "y"}}),
        ({"a": [""], "a[b]": ["1"]}, {"a": {"b": "1"}}),  # empty leaf gives way to nested data
        ({"a[b]": ["1"], "a": [""]}, {"a": {"b": "1"}}),  # empty value never overwrites
        ({"x" + "[y]" * 127: ["deep"]}, {}),  # more than 127 segments: ignored
    ],
)
def test_form_tree(items: dict[str, list[str]], expected: dict[str, object]) -> None:
    assert build_tree(items) == expected


def test_form_tree_conflict() -> None:
    with pytest.raises(FormError, match="invalid multiple values"):
        build_tree({"a": ["1"], "a[b]": ["2"]})


def test_form_json_is_sorted_like_go() -> None:
    assert tree_json(build_tree({"name": ["rr"], "list[]": ["1", "2"]})) == b'{"list":["1","2"],"name":"rr"}'


def test_uploads_tree_first_file_wins_and_lists_keep_all() -> None:
    a, b, c = (UploadedFile(name=n, mime="text/plain", size=1, tmpName="/t/" + n) for n in "abc")
    tree = build_tree({"one": [a, b], "many[]": [b, c], "nested[x]": [c]}, files=True)
    assert tree == {"one": a, "many": [b, c], "nested": {"x": c}}
    assert tree_json({"f": a}) == b'{"f":{"name":"a","mime":"text/plain","size":1,"error":0,"tmpName":"/t/a"}}'


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("content-type", "Content-Type"),
        ("X-FORWARDED-FOR", "X-Forwarded-For"),
        ("traceparent", "Traceparent"),
        ("uber-trace-id", "Uber-Trace-Id"),
        ("x_under", "X_under"),
        ("bad header", "bad header"),  # invalid token: unchanged, as Go does
    ],
)
def test_canonical_header(raw: str, canon: str) -> None:
    assert canonical_header(raw) == canon


def test_cookies_unescaped_and_bad_ones_dropped() -> None:
    jar = parse_cookies(['sid=abc123; theme=dark', 'q=a+b%21; bad=%zz; "x"=1; quoted="v"'])
    assert jar == {"sid": "abc123", "theme": "dark", "q": "a b!", "quoted": "v"}
    assert query_unescape("%") is None


def test_token_and_cookie_value_characters_by_the_rfc() -> None:
    """Every character up to U+02FF (and a few beyond): a header or cookie name is RFC 9110 tchars
    only; a cookie value is printable ASCII without ``"``, ``;`` or backslash (Go's net/http)."""
    tchars = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for c in [chr(i) for i in range(0x300)] + ["\u2028", "\udcff", "\U0001f600"]:
        assert is_token(f"a{c}b") == (c in tchars), repr(c)
        if c == ";":  # the separator
            continue
        value_ok = 0x20 <= ord(c) < 0x7F and c not in '"\\%'  # "%b" is a bad escape
        assert parse_cookies([f"n=a{c}b"]) == ({"n": f"a{c}b".replace("+", " ")} if value_ok else {}), repr(c)
    assert not is_token("") and parse_cookies(["n="]) == {"n": ""}


@pytest.mark.parametrize(
    ("context", "flags", "status", "headers"),
    [
        (http_pb2.Response(status=204).SerializeToString(), Flag.CODEC_PROTO, 204, ()),
        (b'{"status":201,"headers":{"x-a":["1","2"]}}', 0, 201, (("X-A", "1"), ("X-A", "2"))),
        (b'{"status":200,"headers":[]}', 0, 200, ()),
    ],
)
def test_decode_head(context: bytes, flags: int, status: int, headers: tuple[tuple[str, str], ...]) -> None:
    head = decode_head(context, flags)
    assert head is not None and head.status == status and head.headers == headers


def test_decode_head_rejects_bad_status_and_splits_trailers() -> None:
    with pytest.raises(BadWorkerResponse, match="unknown status code from worker: 0"):
        decode_head(http_pb2.Response().SerializeToString() or b"\x08\x00", Flag.CODEC_PROTO)
    with pytest.raises(BadWorkerResponse, match="unknown status code from worker: 600"):
        decode_head(b'{"status":600}', 0)
    head = decode_head(b'{"status":200,"headers":{"Trailer":["X-Sum, X-N"],"X-Sum":["1"]}}', 0)
    assert head is not None and head.trailers == ("X-Sum", "X-N") and head.headers == (("X-Sum", "1"),)
    assert decode_head(b"", Flag.CODEC_PROTO) is None


def test_decode_head_cache_keeps_codecs_apart_and_stays_bounded() -> None:
    proto = http_pb2.Response(status=201).SerializeToString()
    first = decode_head(proto, Flag.CODEC_PROTO)
    assert first is not None and decode_head(proto, Flag.CODEC_PROTO) is first
    with pytest.raises(BadWorkerResponse, match="invalid response context"):
        decode_head(proto, 0)  # the same bytes as a legacy JSON head are not JSON
    for i in range(1000):
        head = decode_head(b'{"status":200,"headers":{"X-N":["%d"]}}' % i, 0)
        assert head is not None and head.headers == (("X-N", str(i)),)
    assert len(reply_module._head_cache) <= 256


LONG = "v" * 300  # a length that takes a two-byte varint


@pytest.mark.parametrize(
    ("header", "cookies", "attributes", "strings", "parsed", "uploads"),
    [
        ({}, {}, {}, ("", "", "", "", ""), False, b""),
        ({"Accept": [b"a", b"b"], "X-Empty": [b""], "X-None": []}, {}, {}, ("10.0.0.1", "HTTP/1.1", "GET", "http://h/", ""), False, b""),
        ({"User-Agent": [LONG.encode()], "X-Bin": [bytes(range(256))]}, {"s": "é", "t": LONG}, {"k": ["1", "é"], "e": []},
         ("::1", "HTTP/1.0", "POST", "http://h/ä?" + LONG, "q=é"), True, b'{"f":{"name":"x"}}'),
    ],
)  # fmt: skip
def test_request_context_encodes_as_protobuf_would(
    header: dict[str, list[bytes]], cookies: dict[str, str], attributes: dict[str, list[str]],
    strings: tuple[str, str, str, str, str], parsed: bool, uploads: bytes,
) -> None:  # fmt: skip
    remote, protocol, method, uri, query = strings
    ours = encode_request(remote, protocol, method, uri, header_map(header), cookies, query, parsed, uploads, attributes)
    expected = http_pb2.Request(remote_addr=remote, protocol=protocol, method=method, uri=uri, raw_query=query,
                                parsed=parsed, uploads=uploads)  # fmt: skip
    for name, lines in header.items():
        expected.header[name].value.extend(lines)
    for name, value in cookies.items():
        expected.cookies[name].value.append(value.encode())
    for name, values in attributes.items():
        expected.attributes[name].value.extend(v.encode() for v in values)
    assert http_pb2.Request.FromString(ours) == expected
    assert len(ours) == len(expected.SerializeToString())  # no field written that protobuf leaves out


def test_request_context_refuses_a_lone_surrogate_as_protobuf_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_request("", "", "GET", "http://h/\udcff", b"", {}, "", False, b"", {})


# --------------------------------------------------------------------------- vector replay


def _frames(exchange: dict[str, Any]) -> list[tuple[str, Frame]]:
    return [(f["dir"], decode(bytes.fromhex(f["hex"]))[0]) for f in exchange["frames"]]


def _data_exchanges(part: str) -> Iterator[dict[str, Any]]:
    for ex in TRANSCRIPT[part]["exchanges"]:
        if "outcome" in ex:
            yield ex


def _client_request(ex: dict[str, Any], sent: Frame) -> tuple[str, str, list[tuple[str, str]], bytes]:
    ctx, body = sent.payload[: sent.options[0]], sent.payload[sent.options[0] :]
    if sent.flags & Flag.CODEC_PROTO:
        msg = http_pb2.Request.FromString(ctx)
        method, uri = msg.method, msg.uri
        headers = [(k, v.decode()) for k, hv in msg.header.items() for v in hv.value]
    else:
        legacy = json.loads(ctx)
        method, uri = legacy["method"], legacy["uri"]
        headers = [(k, v) for k, vs in legacy["headers"].items() for v in vs]
    headers = [(k, v) for k, v in headers if k != "Content-Length"]
    if "note" in ex and "original body: " in ex["note"]:
        body = ex["note"].split("original body: ", 1)[1].encode()
    elif "multipart" in ex["name"]:
        body = MULTIPART_BODY
    path = uri.split("://", 1)[1].partition("/")[1:]
    return method, "".join(path), [*headers, ("Host", "127.0.0.1:8080")], body


def _normalised(ctx: bytes, flags: int) -> dict[str, Any]:
    """A context in comparable form: tmpName and Content-Length (our multipart body is ours) blanked."""
    if flags & Flag.CODEC_PROTO:
        msg = http_pb2.Request.FromString(ctx)
        out: dict[str, Any] = {
            "remote_addr": msg.remote_addr, "protocol": msg.protocol, "method": msg.method, "uri": msg.uri,
            "headers": {k: list(v.value) for k, v in msg.header.items()},
            "cookies": {k: list(v.value) for k, v in msg.cookies.items()},
            "raw_query": msg.raw_query, "parsed": msg.parsed,
            "uploads": json.loads(msg.uploads) if msg.uploads else None,
            "attributes": {k: list(v.value) for k, v in msg.attributes.items()},
        }
    else:
        out = json.loads(ctx)
        out["headers"] = {k: [x.encode() for x in v] for k, v in out.pop("headers").items()}
    out["headers"].pop("Content-Length", None)
    uploads = out.get("uploads")
    if uploads:
        for f in uploads.values():
            f["tmpName"] = ""
    return out


@asynccontextmanager
async def serving(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    server = web.Server(handler, access_log=None)
    srv = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()
        await server.shutdown(0.1)


@pytest.mark.parametrize("part", ["json_codec", "proto_codec"])
async def test_request_contexts_match_the_transcript(part: str, tmp_path: Path) -> None:
    opts = RequestOptions(codec="proto" if part == "proto_codec" else "json", uploads_dir=str(tmp_path))
    seen: list[Built] = []
    files_during: list[list[str]] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        built = await build_request(request, opts)
        files_during.append([p for p in built.temp_files if os.path.exists(p)])
        seen.append(built)
        built.cleanup()
        return web.Response(text="ok")

    checked = 0
    async with serving(handler) as base, aiohttp.ClientSession(
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
    ) as client:
        for ex in _data_exchanges(part):
            frames = _frames(ex)
            sent = frames[0][1]
            method, path, headers, body = _client_request(ex, sent)
            async with client.request(method, base + path, headers=headers, data=body or None) as resp:
                assert resp.status == 200
            built = seen[-1]
            ours, theirs = built.payload, sent.payload[sent.options[0] :]
            assert built.payload.codec == sent.flags
            assert _normalised(ours.context, ours.codec) == _normalised(sent.payload[: sent.options[0]], sent.flags), ex["name"]
            assert ours.body == theirs, ex["name"]
            checked += 1
    assert checked == 10
    multipart = [f for f in files_during if f]
    assert len(multipart) == 1 and all(os.path.basename(p).startswith("upload") for p in multipart[0])
    assert not os.listdir(tmp_path)  # cleaned up


@pytest.mark.parametrize(
    ("method", "content_type", "body", "raw_body", "fast"),
    [
        ("GET", "", b"", False, True),
        ("HEAD", "", b"", False, True),
        ("OPTIONS", "text/plain", b"ignored", False, True),
        ("DELETE", "application/json", b"", False, True),
        ("POST", "application/x-www-form-urlencoded", b"", False, False),  # an empty form is still "parsed"
        ("POST", "application/x-www-form-urlencoded", b"", True, True),
        ("POST", "multipart/form-data; boundary=x", b"", False, False),
        ("POST", "text/plain", b"body", False, False),
    ],
)
async def test_bodiless_payload_is_what_build_request_sends(
    method: str, content_type: str, body: bytes, raw_body: bool, fast: bool
) -> None:
    """The dispatcher's shortcut for a request with nothing to read encodes the same payload as the full path."""
    opts = RequestOptions(raw_body=raw_body)
    got: list[tuple[Payload | None, Payload | None]] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        quick = bodiless_payload(request, opts)
        try:
            full: Payload | None = (await build_request(request, opts)).payload
        except RequestError:  # an empty multipart body has no boundary: a 400 on the full path
            full = None
        got.append((quick, full))
        return web.Response(text="ok")

    headers = {"Content-Type": content_type} if content_type else {}
    async with serving(handler) as base, aiohttp.ClientSession() as client:
        async with client.request(method, base + "/p?q=1", headers=headers, data=body or None) as resp:
            assert resp.status == 200
    [(quick, full)] = got
    assert (quick is not None) == fast
    if quick is not None:
        assert quick == full


async def test_a_repeated_header_set_is_converted_once_and_middleware_headers_still_apply() -> None:
    """A client's header set seen before gives the same context (headers, cookies) from the cache; a
    request whose middleware adds or sets headers gets them, before and after its set was cached."""
    opts = RequestOptions()
    contexts: list[http_pb2.Request] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        fwd = None
        if request.path == "/added":
            fwd = Forward(add_headers=[("x-added", "1")], set_headers={"accept": "text/set"})
        payload = bodiless_payload(request, opts, fwd)
        assert payload is not None
        contexts.append(http_pb2.Request.FromString(payload.context))
        return web.Response(text="ok")

    def header(msg: http_pb2.Request) -> dict[str, list[bytes]]:
        return {k: list(v.value) for k, v in msg.header.items()}

    sent = {"Accept": "text/plain", "X-Repeated": "a", "Cookie": "c=1"}
    async with serving(handler) as base, aiohttp.ClientSession(skip_auto_headers=("User-Agent", "Accept-Encoding")) as client:
        for path in ("/plain", "/plain", "/added", "/plain", "/added"):
            async with client.get(base + path, headers=sent) as resp:
                assert resp.status == 200
        async with client.get(base + "/plain", headers={**sent, "X-Repeated": "b"}) as resp:
            assert resp.status == 200
        async with client.get(base + "/plain", headers={**sent, "Cookie": "c=2; d=%41"}) as resp:
            assert resp.status == 200
    plain = {"Accept": [b"text/plain"], "X-Repeated": [b"a"], "Cookie": [b"c=1"]}
    added = {**plain, "X-Added": [b"1"], "Accept": [b"text/set"]}
    assert [header(c) for c in contexts[:6]] == [plain, plain, added, plain, added, {**plain, "X-Repeated": [b"b"]}]
    cookies = [{k: list(v.value) for k, v in c.cookies.items()} for c in contexts]
    assert cookies == [{"c": [b"1"]}] * 6 + [{"c": [b"2"], "d": [b"A"]}]


class ReplayPool:
    """Plays captured worker reply frames back, as the pool's stream() would yield them."""

    debug = False

    def __init__(self, replies: list[Payload] | Exception) -> None:
        self.replies = replies

    @asynccontextmanager
    async def stream(
        self, payload: Payload, *, timeout: float | None = None, info: str = "", alive: Callable[[], bool] | None = None
    ) -> AsyncIterator[AsyncIterator[Payload]]:
        if isinstance(self.replies, Exception):
            raise self.replies
        replies = self.replies

        async def frames() -> AsyncIterator[Payload]:
            for reply in replies:
                yield reply

        yield frames()


def _replies(ex: dict[str, Any]) -> list[Payload]:
    out: list[Payload] = []
    for direction, f in _frames(ex)[1:]:
        if direction == "worker->server" and len(f.options) == 1:
            cut = f.options[0]
            out.append(Payload(f.payload[:cut], f.payload[cut:], f.flags, f.byte10))
    return out


@pytest.mark.parametrize("part", ["json_codec", "proto_codec"])
async def test_captured_replies_map_to_the_same_http_response(part: str) -> None:
    checked = 0
    dispatcher = Dispatcher(ReplayPool([]), RequestOptions())
    async with serving(dispatcher) as base, aiohttp.ClientSession(auto_decompress=False) as client:
        for ex in _data_exchanges(part):
            outcome = ex["outcome"]
            if outcome["kind"] == "error_frame":
                dispatcher.pool = ReplayPool(WorkerError(outcome["message"]))
            else:
                dispatcher.pool = ReplayPool(_replies(ex))
            async with client.get(base + "/") as resp:
                body = await resp.read()
                if outcome["kind"] == "error_frame":
                    assert resp.status == 500 and body == b"", ex["name"]
                else:
                    expected = _expected_head(outcome["response_context"])
                    assert resp.status == expected[0]
                    for name, values in expected[1].items():
                        assert resp.headers.getall(name) == values, (ex["name"], name)
                    assert body == outcome["body"].encode(), ex["name"]
                    if outcome["kind"] == "stream":
                        assert resp.headers.get("Transfer-Encoding") == "chunked"
            checked += 1
    assert checked == 10


def _expected_head(ctx: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    headers: dict[str, list[str]] = {}
    for name, vals in ctx["headers"].items():
        headers[name] = vals["value_text"] if isinstance(vals, dict) else vals
    return int(ctx["status"]), headers


async def test_bad_status_from_worker_is_internal_error_code_without_the_reason() -> None:
    bad = Payload(http_pb2.Response(status=700).SerializeToString(), b"body", Flag.CODEC_PROTO)
    dispatcher = Dispatcher(ReplayPool([bad]), RequestOptions(), internal_error_code=502)
    async with serving(dispatcher) as base, aiohttp.ClientSession() as client:
        async with client.get(base + "/") as resp:
            assert (resp.status, await resp.text()) == (502, "")  # the reason is logged (and shown with pool.debug)
        dispatcher.pool = ReplayPool([Payload(b"", b"no head at all", Flag.CODEC_PROTO)])
        async with client.get(base + "/") as resp:
            assert (resp.status, await resp.text()) == (200, "no head at all")


def test_plugin_capabilities() -> None:
    from rrgrpc.config import config_from_dict
    from rrgrpc.http.plugin import HttpPlugin
    from rrgrpc.plugin import HasStatus, HasWorkers, ManagesWorkers, Plugin, ProvidesMetrics, Resettable

    plugin = HttpPlugin(config_from_dict({"version": "3", "server": {"command": "php x.php"},
                                          "http": {"address": "127.0.0.1:0"}}))
    for capability in (Plugin, HasWorkers, ManagesWorkers, Resettable, HasStatus, ProvidesMetrics):
        assert isinstance(plugin, capability), capability
    assert plugin.health() == 503 and plugin.workers() == []


async def test_uploads_are_chowned_to_the_worker_owner(tmp_path: Path) -> None:
    owner = (os.getuid(), os.getgid())  # chown to ourselves: allowed without root, proves the call
    opts = RequestOptions(uploads_dir=str(tmp_path), uploads_owner=owner)
    owners: list[tuple[int, int]] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        built = await build_request(request, opts)
        owners.extend((os.stat(p).st_uid, os.stat(p).st_gid) for p in built.temp_files)
        built.cleanup()
        return web.Response(text="ok")

    form = aiohttp.FormData()
    form.add_field("f", b"data", filename="a.txt", content_type="text/plain")
    async with serving(handler) as base, aiohttp.ClientSession() as client:
        async with client.post(base + "/", data=form) as resp:
            assert resp.status == 200
    assert owners == [owner]
