"""The typed `.rr.yaml` schema: one frozen msgspec Struct per section, RoadRunner's keys and defaults.

Owns every config field, its default and its validation, and ``config_from_dict`` which turns a plain
dict (already expanded and overridden by ``loader.py``) into an ``RRConfig``. Errors are ``ConfigError``
naming the file and the dotted key. Before decoding, ``compat.normalize`` reshapes the dict as
RoadRunner's viper would and drops the keys it ignores (with a note), so ``forbid_unknown_fields``
is only a guard.

Decoding is msgspec lax mode (``strict=False``) plus a ``dec_hook`` for the few custom scalar types,
because environment expansion turns numbers into strings (``num_workers: ${N:-4}`` arrives as ``"4"``):

* ``Duration``: a ``float`` of seconds, decoded from Go duration strings ("1h2m3.5s", "500ms") or numbers.
* ``Text``: a ``str`` that also accepts YAML numbers and booleans, as RoadRunner's weakly typed decoding
  does (``true`` -> "1", ``false`` -> "0"); used for env and header maps.
* ``Argv``: a command; a string is split on runs of whitespace.
* ``StrList``: a list of strings; a single string is split on commas (RoadRunner's string-to-slice rule).
"""

from __future__ import annotations

import math
import re
import tempfile
import typing
from typing import Any, Literal

import msgspec

from rrgrpc.config.compat import Notes, check_sections, normalize, without_none
from rrgrpc.errors import ConfigError
from rrgrpc.gocompat import AddressError, parse_address

# --------------------------------------------------------------------------- scalar types


class Duration(float):
    """Seconds. Decoded from Go-style strings ('500ms', '1m30s', '2µs') or numbers (= seconds)."""


class Text(str):
    """A string that also accepts numbers and booleans from YAML (RoadRunner decodes weakly)."""


class Argv(list[str]):
    """A command line: a list is argv verbatim, a single string is split on runs of whitespace."""


class StrList(list[str]):
    """A list of strings; a single string is split on commas (``a.proto,b.proto``)."""


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"[+]?(\d+\.?\d*|\.\d+)")


def parse_duration(value: object) -> Duration:
    """A Go ``time.ParseDuration`` string, "0", or a number of seconds -> ``Duration`` (seconds).

    Negative durations are rejected (no RoadRunner timeout is meaningful below zero).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _PLAIN_NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            body = text[1:] if text.startswith("+") else text
            pos, seconds = 0, 0.0
            while pos < len(body):
                m = _DURATION_PART.match(body, pos)
                if m is None:
                    raise ValueError(f"expected a duration like '1m30s' or '500ms', got {value!r}")
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0:
                raise ValueError(f"expected a duration like '1m30s' or '500ms', got {value!r}")
    else:
        raise ValueError(f"expected a duration like '30s', got {value!r}")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite non-negative value, got {value!r}")
    return Duration(seconds)


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _dec_hook(tp: type, value: object) -> object:
    if tp is Duration:
        return parse_duration(value)
    if tp is Text:
        return Text(_scalar_text(value))
    if tp is Argv or tp is StrList:
        if isinstance(value, str):
            items = value.split() if tp is Argv else [p for p in value.split(",") if p != ""]
            return tp(items)
        if isinstance(value, list):
            return tp(_scalar_text(v) for v in value)
        raise ValueError(f"expected a string or a list of strings, got {type(value).__name__}")
    raise NotImplementedError(f"no decoder for {tp!r}")


class _Invalid(ValueError):
    """Raised from ``__post_init__``: ``field`` is appended to the path msgspec reports."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}\x1f{message}")


def _check_listen(value: str, field: str) -> None:
    """A listen address :func:`rrgrpc.gocompat.parse_address` accepts."""
    try:
        parse_address(value)
    except AddressError as exc:
        raise _Invalid(field, exc.problem) from None


def _non_negative(obj: msgspec.Struct, *fields: str) -> None:
    for name in fields:
        if getattr(obj, name) < 0:
            raise _Invalid(name, f"must not be negative, got {getattr(obj, name)!r}")


def _upper_keys(obj: msgspec.Struct, name: str) -> None:
    env: dict[str, Text] = getattr(obj, name)
    msgspec.structs.force_setattr(obj, name, {k.upper(): v for k, v in env.items()})


# --------------------------------------------------------------------------- server


class OnInitConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    command: Argv = msgspec.field(default_factory=Argv)
    exec_timeout: Duration = Duration(60)
    env: dict[str, Text] = {}
    user: str = ""
    exit_on_error: bool = False

    def __post_init__(self) -> None:
        if not self.command:
            raise _Invalid("command", "required")
        _upper_keys(self, "env")


class ServerConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    command: Argv = msgspec.field(default_factory=Argv)
    user: str = ""
    group: str = ""
    env: dict[str, Text] = {}
    relay: str = "pipes"
    on_init: OnInitConfig | None = None

    def __post_init__(self) -> None:
        _upper_keys(self, "env")
        if self.relay != "pipes":
            _check_listen(self.relay, "relay")


# --------------------------------------------------------------------------- pool


class SupervisorConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    watch_tick: Duration = Duration(5)
    ttl: Duration = Duration(0)
    idle_ttl: Duration = Duration(0)
    exec_ttl: Duration = Duration(0)
    max_worker_memory: int = 0  # MB, 0 = off

    def __post_init__(self) -> None:
        _non_negative(self, "max_worker_memory")
        if not self.watch_tick:
            msgspec.structs.force_setattr(self, "watch_tick", Duration(5))


class DynamicAllocatorConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    max_workers: int = 10
    spawn_rate: int = 5
    idle_timeout: Duration = Duration(60)

    def __post_init__(self) -> None:
        _non_negative(self, "max_workers", "spawn_rate")
        if self.spawn_rate > 100:
            raise _Invalid("spawn_rate", f"must be at most 100, got {self.spawn_rate}")
        if self.idle_timeout < 1:
            raise _Invalid("idle_timeout", f"must be at least 1s, got {float(self.idle_timeout)}s")


MAX_WORKERS = 500


class PoolConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    command: Argv = msgspec.field(default_factory=Argv)  # empty = server.command
    num_workers: int = 0  # 0 = CPU count
    max_jobs: int = 0
    max_queue_size: int = 0
    allocate_timeout: Duration = Duration(60)
    destroy_timeout: Duration = Duration(60)
    reset_timeout: Duration = Duration(60)
    stream_timeout: Duration = Duration(60)
    debug: bool = False
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    dynamic_allocator: DynamicAllocatorConfig | None = None

    def __post_init__(self) -> None:
        _non_negative(self, "num_workers", "max_jobs", "max_queue_size")
        if self.num_workers > MAX_WORKERS:
            raise _Invalid("num_workers", f"must be at most {MAX_WORKERS}, got {self.num_workers}")
        for name in ("allocate_timeout", "destroy_timeout", "reset_timeout", "stream_timeout"):
            if getattr(self, name) == 0:  # RoadRunner: unset (0) means the 60 s default
                msgspec.structs.force_setattr(self, name, Duration(60))


# --------------------------------------------------------------------------- rpc


class RpcConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    listen: str = "tcp://127.0.0.1:6001"
    # rrgrpc (RoadRunner has none of these): bounds on what clients can make the endpoint hold
    max_connections: int = 1024  # more are closed at once
    frame_timeout: Duration = Duration(10)  # a started frame must be complete within this
    max_buffer_size: int = 128  # MB of request payloads held at once, all connections together

    def __post_init__(self) -> None:
        _check_listen(self.listen, "listen")
        for name in ("max_connections", "frame_timeout", "max_buffer_size"):
            if getattr(self, name) <= 0:
                raise _Invalid(name, f"must be positive, got {getattr(self, name)!r}")


# --------------------------------------------------------------------------- grpc

ClientAuthType = Literal[
    "no_client_certs",
    "request_client_cert",
    "require_any_client_cert",
    "verify_client_cert_if_given",
    "require_and_verify_client_cert",
]


class GrpcTlsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    key: str
    cert: str
    root_ca: str = ""
    client_auth_type: ClientAuthType = "no_client_certs"


class GrpcConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    listen: str
    proto: StrList = msgspec.field(default_factory=StrList)
    import_paths: StrList = msgspec.field(default_factory=StrList)  # rrgrpc: extra `import` roots
    tls: GrpcTlsConfig | None = None
    max_send_msg_size: int = 50  # MB
    max_recv_msg_size: int = 50  # MB
    max_connection_idle: Duration = Duration(0)  # 0 = infinite
    max_connection_age: Duration = Duration(0)
    max_connection_age_grace: Duration = Duration(0)
    max_concurrent_streams: int = 10
    ping_time: Duration = Duration(7200)
    timeout: Duration = Duration(20)
    env: dict[str, Text] = {}
    interceptors: StrList = msgspec.field(default_factory=StrList)
    pool: PoolConfig = msgspec.field(default_factory=PoolConfig)

    def __post_init__(self) -> None:
        _check_listen(self.listen, "listen")
        _non_negative(self, "max_send_msg_size", "max_recv_msg_size", "max_concurrent_streams")
        for name, default in (
            ("max_send_msg_size", 50),
            ("max_recv_msg_size", 50),
            ("max_concurrent_streams", 10),
        ):
            if getattr(self, name) == 0:
                msgspec.structs.force_setattr(self, name, default)
        for name, dflt in (("ping_time", 7200.0), ("timeout", 20.0)):
            if getattr(self, name) == 0:
                msgspec.structs.force_setattr(self, name, Duration(dflt))
        _upper_keys(self, "env")


# --------------------------------------------------------------------------- http

# RoadRunner's http.trusted_subnets default (private, loopback and reserved ranges), in its order.
DEFAULT_TRUSTED_SUBNETS: tuple[str, ...] = (
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
)

HTTP_MIDDLEWARE = frozenset({"headers", "gzip", "static", "otel", "http_metrics", "proxy_ip_parser", "sendfile"})


class UploadsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    dir: str = msgspec.field(default_factory=tempfile.gettempdir)
    forbid: StrList = msgspec.field(default_factory=lambda: StrList([".php", ".exe", ".bat"]))
    allow: StrList = msgspec.field(default_factory=StrList)


class CorsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    allowed_origin: str = ""
    allowed_origin_regex: str = ""  # when set, allowed_origin is ignored (as in RoadRunner)
    allowed_headers: str = ""
    allowed_methods: str = ""
    allow_credentials: bool | None = None
    exposed_headers: str = ""
    max_age: int = 0
    options_success_status: int = 200

    def __post_init__(self) -> None:
        if self.allowed_origin_regex:
            try:
                re.compile(self.allowed_origin_regex)
            except re.error as exc:
                raise _Invalid("allowed_origin_regex", f"invalid regular expression: {exc}") from None
        if self.options_success_status == 0:
            msgspec.structs.force_setattr(self, "options_success_status", 200)


class HeadersConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    request: dict[str, Text] = {}
    response: dict[str, Text] = {}
    cors: CorsConfig | None = None


class StaticConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    dir: str = "."
    forbid: StrList = msgspec.field(default_factory=StrList)
    allow: StrList = msgspec.field(default_factory=StrList)
    calculate_etag: bool = False
    weak: bool = False
    request: dict[str, Text] = {}
    response: dict[str, Text] = {}


class HttpSslConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    address: str = "127.0.0.1:443"
    cert: str
    key: str
    root_ca: str = ""
    client_auth_type: ClientAuthType = "no_client_certs"
    redirect: bool = False


class HttpConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    address: str = ""
    max_request_size: int = 1000  # MB
    raw_body: bool = False
    internal_error_code: int = 500
    access_logs: bool = False
    # rrgrpc (RoadRunner hard-codes 5m / 1h / no limit): bounds on what clients can make rr hold
    read_header_timeout: Duration = Duration(10)  # first byte of a request to the end of its headers
    idle_timeout: Duration = Duration(75)  # a keep-alive connection waiting for its next request
    max_connections: int = 4096  # more are closed as soon as they are accepted
    trusted_subnets: StrList = msgspec.field(default_factory=lambda: StrList(DEFAULT_TRUSTED_SUBNETS))
    codec: Literal["proto", "json"] = "proto"  # rrgrpc: "json" = legacy JSON request context
    uploads: UploadsConfig = msgspec.field(default_factory=UploadsConfig)
    headers: HeadersConfig | None = None
    static: StaticConfig | None = None
    ssl: HttpSslConfig | None = None
    middleware: StrList = msgspec.field(default_factory=StrList)
    pool: PoolConfig = msgspec.field(default_factory=PoolConfig)

    def __post_init__(self) -> None:
        if not self.address and self.ssl is None:
            raise _Invalid("address", "required (or configure http.ssl)")
        # only a shape check here: `rr workers` loads this file without the serve-time .env, and the
        # http plugin parses the address fully (gocompat.parse_address) when it listens
        if self.address and ":" not in self.address:
            raise _Invalid("address", f"expected host:port or :port, got {self.address!r}")
        _non_negative(self, "max_request_size")
        for name in ("read_header_timeout", "idle_timeout", "max_connections"):
            if getattr(self, name) <= 0:
                raise _Invalid(name, f"must be positive, got {getattr(self, name)!r}")
        if self.max_request_size == 0:
            msgspec.structs.force_setattr(self, "max_request_size", 1000)
        if self.internal_error_code == 0:
            msgspec.structs.force_setattr(self, "internal_error_code", 500)


# --------------------------------------------------------------------------- metrics


class CollectorConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    type: Literal["counter", "gauge", "histogram", "summary"]
    namespace: str = ""
    subsystem: str = ""
    help: str = ""
    labels: StrList = msgspec.field(default_factory=StrList)
    buckets: list[float] = []
    objectives: dict[float, float] = {}  # a list of one-entry maps is merged into one


class MetricsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    address: str = "127.0.0.1:2112"
    collect: dict[str, CollectorConfig] = {}


# --------------------------------------------------------------------------- otel


class OtelResourceConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    service_name: str = "RoadRunner"
    service_version: Text = Text("1.0.0")
    service_namespace: str = ""
    service_instance_id: str = ""


class OtelConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    exporter: str = "otlp"
    client: Literal["", "grpc", "http"] = ""  # "" = OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http
    endpoint: str = "127.0.0.1:4318"
    insecure: bool = False
    compress: bool = False
    custom_url: str = ""
    headers: dict[str, Text] = {}
    resource: OtelResourceConfig = msgspec.field(default_factory=OtelResourceConfig)
    service_name: str = ""  # deprecated, use resource.service_name
    service_version: Text = Text("")  # deprecated, use resource.service_version

    def __post_init__(self) -> None:
        if self.exporter in ("zipkin", "jaeger"):
            raise _Invalid(
                "exporter",
                f"{self.exporter!r} is no longer supported by RoadRunner; use 'otlp' "
                "(the collector accepts OTLP) or 'stdout'/'stderr'",
            )
        if self.exporter not in ("otlp", "stdout", "stderr"):
            raise _Invalid("exporter", f"expected one of 'otlp', 'stdout', 'stderr', got {self.exporter!r}")


# --------------------------------------------------------------------------- status


class StatusConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    address: str
    unavailable_status_code: int = 503
    check_timeout: Duration = Duration(60)  # rrgrpc's checks are in-process reads; they never wait

    def __post_init__(self) -> None:
        if self.unavailable_status_code == 0:
            msgspec.structs.force_setattr(self, "unavailable_status_code", 503)
        if not self.check_timeout:
            msgspec.structs.force_setattr(self, "check_timeout", Duration(60))


# --------------------------------------------------------------------------- jobs


class JobsPipelineConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One ``jobs.pipelines.<name>``: the driver and its keys (checked by the driver itself)."""

    driver: str
    config: dict[str, Any] = {}


class JobsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    num_pollers: int = 0  # 0 = pool.num_workers + 2 (RoadRunner)
    pipeline_size: int = 1_000_000  # bound of the priority queue shared by all pipelines
    timeout: Duration = Duration(60)  # per driver operation (push, pause, stop, ...)
    pool: PoolConfig = msgspec.field(default_factory=PoolConfig)
    pipelines: dict[str, JobsPipelineConfig] = {}
    consume: StrList = msgspec.field(default_factory=StrList)

    def __post_init__(self) -> None:
        _non_negative(self, "num_pollers", "pipeline_size")
        if self.pipeline_size == 0:
            msgspec.structs.force_setattr(self, "pipeline_size", 1_000_000)
        if not self.timeout:
            msgspec.structs.force_setattr(self, "timeout", Duration(60))


# --------------------------------------------------------------------------- logs

LogMode = Literal["development", "production", "raw", "off", "none"]
LogLevel = Literal["debug", "info", "warn", "error", "panic", "fatal"]
LogEncoding = Literal["console", "json"]


class LogChannelConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Per-plugin override; ``None`` fields inherit from the top-level ``logs`` values."""

    mode: LogMode | None = None
    level: LogLevel | None = None
    encoding: LogEncoding | None = None
    output: StrList | None = None
    err_output: StrList | None = None


class LogsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    mode: LogMode = "development"
    level: LogLevel = "debug"
    encoding: LogEncoding = "console"
    output: StrList = msgspec.field(default_factory=lambda: StrList(["stderr"]))
    err_output: StrList = msgspec.field(default_factory=lambda: StrList(["stderr"]))
    channels: dict[str, LogChannelConfig] = {}


# --------------------------------------------------------------------------- endure


class EndureConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """RoadRunner's container settings; only the shutdown budget means something here."""

    grace_period: Duration = Duration(30)  # the whole graceful stop, then it is forced

    def __post_init__(self) -> None:
        if not self.grace_period:
            msgspec.structs.force_setattr(self, "grace_period", Duration(30))


# --------------------------------------------------------------------------- the whole file


class RRConfig(msgspec.Struct, kw_only=True, frozen=True):
    """The whole configuration. Sections other than ``server`` and ``logs`` are ``None`` when absent."""

    version: str = "3"
    source: str = "<dict>"
    raw: dict[str, Any] = {}
    notes: tuple[tuple[int, str], ...] = ()  # (logging level, message) from reading it, see compat.py
    #: Values of ``raw`` that came from ``${VAR}``/``$VAR`` interpolation, by path, as written.
    interpolated: dict[tuple[str | int, ...], str] = {}
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    rpc: RpcConfig | None = None
    grpc: GrpcConfig | None = None
    http: HttpConfig | None = None
    metrics: MetricsConfig | None = None
    otel: OtelConfig | None = None
    status: StatusConfig | None = None
    jobs: JobsConfig | None = None
    logs: LogsConfig = msgspec.field(default_factory=LogsConfig)
    endure: EndureConfig = msgspec.field(default_factory=EndureConfig)


SECTIONS = ("server", "rpc", "grpc", "http", "metrics", "otel", "status", "logs", "endure", "jobs")
# Broker connection sections, read as plain dicts by the jobs drivers named after them (cfg.raw).
BROKER_SECTIONS = ("amqp", "beanstalk", "nats", "boltdb")
# Top-level keys the loader consumes itself; they are not sections and not "unknown".
LOADER_KEYS = ("version", "include", "envfile")


def check_version(raw: dict[str, Any], source: str) -> str:
    """The configuration version: "3" (a YAML number 3 is accepted too), anything else is an error."""
    version = raw.get("version")
    if version is None:
        raise ConfigError(f'{source}: version: required, set version: "3"')
    if version != "3" and not (isinstance(version, int) and not isinstance(version, bool) and version == 3):
        raise ConfigError(
            f'{source}: version: expected "3" (the only configuration version rrgrpc reads), got {version!r}'
        )
    return "3"


def _drop_none(value: Any) -> Any:
    """An empty YAML key (``user:``) means "not set": drop it so the field default applies."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _resolve(raw: dict[str, Any], path: str) -> tuple[str, bool, Any, Any]:
    """msgspec's ``$.a.b[...].c`` -> ``("a.b.<key>.c", found, value, schema type there)``.

    msgspec does not say which mapping entry failed (``[...]``); walking the schema types along the
    path and converting each entry of that mapping on its own finds it.
    """
    tp: Any = RRConfig
    node: Any = raw
    found = True
    dotted = ""
    for m in _PATH_PART.finditer(path):
        key, index = m.group(1), m.group(2)
        tp = without_none(tp)
        if key is not None:
            dotted += f".{key}"
            is_struct = isinstance(tp, type) and issubclass(tp, msgspec.Struct)
            tp = typing.get_type_hints(tp).get(key, Any) if is_struct else Any
            found = found and isinstance(node, dict) and key in node
            node = node[key] if found else None
        elif index != "...":
            dotted += f"[{index}]"
            tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else Any
            found = found and isinstance(node, list) and int(index) < len(node)
            node = node[int(index)] if found else None
        else:
            tp = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else Any
            bad = (
                [k for k, v in node.items() if not _converts(v, tp)]
                if found and isinstance(node, dict)
                else []
            )
            found = bool(bad)
            dotted += f".{bad[0]}" if found else "[...]"
            node = node[bad[0]] if found else None
    return dotted.lstrip("."), found, node, without_none(tp)


def _converts(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(_drop_none(value), tp, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError:
        return False
    return True


_MSG = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _format_error(exc: msgspec.ValidationError, raw: dict[str, Any], source: str) -> ConfigError:
    m = _MSG.match(str(exc))
    assert m is not None  # the pattern matches any string
    msg = m.group("msg")
    dotted, found, value, tp = _resolve(raw, m.group("path") or "")
    if "\x1f" in msg:
        field, msg = msg.split("\x1f", 1)
        return ConfigError(f"{source}: {_join(dotted, field)}: {msg}")
    if mm := _MISSING.match(msg):
        return ConfigError(f"{source}: {_join(dotted, mm.group('field'))}: required")
    if em := _EXPECTED.match(msg):
        got = repr(value) if found else em.group("got")
        return ConfigError(f"{source}: {dotted}: expected {em.group('want')}, got {got}")
    if msg.startswith("Invalid enum value") and typing.get_origin(tp) is typing.Literal:
        allowed = ", ".join(repr(a) for a in typing.get_args(tp) if a != "")
        return ConfigError(f"{source}: {dotted}: expected one of {allowed}, got {value!r}")
    if msg:
        msg = msg[0].lower() + msg[1:]
    return ConfigError(f"{source}: {dotted}: {msg}" if dotted else f"{source}: {msg}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def config_from_dict(
    raw: dict[str, Any], source: str = "<dict>", strict: bool = False, notes: Notes | None = None
) -> RRConfig:
    """Validate a plain config dict (no env expansion here) and build the frozen ``RRConfig``.

    What RoadRunner tolerates is tolerated (``compat.py``): unknown and unsupported keys and sections
    are dropped with a note in ``RRConfig.notes``, or raised with ``strict``. An empty known section
    means "present with defaults"; everything else that is wrong raises
    ``ConfigError("<source>: <dotted.key>: ...")``. ``notes`` carries what the loader already noted.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    version = check_version(raw, source)
    notes = notes if notes is not None else Notes(source, strict)
    check_sections(raw, SECTIONS, LOADER_KEYS + BROKER_SECTIONS, notes)
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(RRConfig)
    for key in SECTIONS:
        if key not in raw:
            continue
        value = raw[key]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        if key == "http":
            value = _without_acme_only_ssl(value, notes)
        sections[key] = normalize(_drop_none(value), hints[key], key, notes)
    try:
        cfg = msgspec.convert(sections, RRConfig, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise _format_error(exc, sections, source) from None
    cfg = _known_middleware(cfg, notes)
    return msgspec.structs.replace(cfg, version=version, source=source, raw=raw, notes=tuple(notes.items))


def _without_acme_only_ssl(http: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """``http.ssl`` with ``acme`` and no ``cert``/``key``: RoadRunner obtains the certificate; rrgrpc
    cannot, so the section goes (with the ``http.ssl.acme`` warning) and plain HTTP is still served."""
    ssl = http.get("ssl")
    if isinstance(ssl, dict) and "acme" in ssl and "cert" not in ssl and "key" not in ssl:
        notes.ignored_key("http.ssl.acme", "acme", ())
        return {k: v for k, v in http.items() if k != "ssl"}
    return http


def _known_middleware(cfg: RRConfig, notes: Notes) -> RRConfig:
    """RoadRunner warns about a middleware no plugin provides and serves without it; so does rrgrpc."""
    if cfg.http is None:
        return cfg
    known = [m for m in cfg.http.middleware if m in HTTP_MIDDLEWARE]
    for name in cfg.http.middleware:
        if name not in HTTP_MIDDLEWARE:
            notes.warn(f"http.middleware: unknown middleware {name!r}", f" (known: {', '.join(sorted(HTTP_MIDDLEWARE))})")
    if len(known) == len(cfg.http.middleware):
        return cfg
    return msgspec.structs.replace(cfg, http=msgspec.structs.replace(cfg.http, middleware=StrList(known)))
