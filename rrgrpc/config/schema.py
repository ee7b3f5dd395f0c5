"""The typed `.rr.yaml` schema: one frozen msgspec Struct per section, RoadRunner's keys and defaults.

Owns every config field, its default and its validation (``__post_init__`` raises ``_Invalid`` naming
the field; ``decode.py`` turns that into one ``ConfigError`` line with the file and the dotted key).
Plugins read their section's values from here and repeat no default. The module is long because it
is the list of RoadRunner's sections; it holds declarations only (scalar types: ``types.py``;
turning a dict into an ``RRConfig``: ``decode.py``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import msgspec

from rrgrpc.config.types import Argv, Duration, StrList, Text
from rrgrpc.gocompat import AddressError, parse_address


class _Invalid(ValueError):
    """Raised from ``__post_init__``: ``field`` is appended to the path msgspec reports (``decode.py``)."""

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
        if not self.exec_timeout:  # unset (0) means the 60 s default
            msgspec.structs.force_setattr(self, "exec_timeout", Duration(60))
        _upper_keys(self, "env")


class ServerConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    command: Argv = msgspec.field(default_factory=Argv)
    user: str = ""
    group: str = ""
    env: dict[str, Text] = {}
    relay: str = "pipes"
    on_init: OnInitConfig | None = None
    #: rrgrpc's extension (RoadRunner has no such key): how many front processes serve the data
    #: listeners (docs/data-plane.md); ``auto`` = half the usable CPUs, 1 = one process as before.
    num_fronts: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        _upper_keys(self, "env")
        if self.num_fronts != "auto" and self.num_fronts < 1:
            raise _Invalid("num_fronts", f"must be at least 1 or auto, got {self.num_fronts!r}")
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


#: The largest ``num_workers`` a config may ask for at start (the pool's own ceiling for workers
#: added at run time, ``informer.AddWorker``, is ``pool.MAX_WORKERS``).
MAX_NUM_WORKERS = 500


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
        if self.num_workers > MAX_NUM_WORKERS:
            raise _Invalid("num_workers", f"must be at most {MAX_NUM_WORKERS}, got {self.num_workers}")
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


def _temp_dir() -> str:
    import tempfile  # with shutil, bz2, lzma: loaded only by a config with an http section

    return tempfile.gettempdir()


class UploadsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    dir: str = msgspec.field(default_factory=_temp_dir)
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
    DEFAULT_ADDRESS: ClassVar[str] = "127.0.0.1:2112"

    address: str = DEFAULT_ADDRESS
    collect: dict[str, CollectorConfig] = {}

    def __post_init__(self) -> None:
        if not self.address:  # RoadRunner: empty means the default
            msgspec.structs.force_setattr(self, "address", self.DEFAULT_ADDRESS)


# --------------------------------------------------------------------------- otel


class OtelResourceConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Unset (""): ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``, then RoadRunner's defaults below."""

    DEFAULT_SERVICE_NAME: ClassVar[str] = "RoadRunner"
    DEFAULT_SERVICE_VERSION: ClassVar[str] = "1.0.0"

    service_name: str = ""
    service_version: Text = Text("")
    service_namespace: str = ""
    service_instance_id: str = ""


#: Exporters RoadRunner dropped; naming one is an error that says to use otlp.
DEPRECATED_EXPORTERS = ("zipkin", "jaeger", "jaeger_agent")


class OtelConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``endpoint`` unset (""): ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, else ``DEFAULT_ENDPOINT``."""

    DEFAULT_ENDPOINT: ClassVar[str] = "127.0.0.1:4318"

    exporter: str = "otlp"
    client: Literal["", "grpc", "http"] = ""  # "" = OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http
    endpoint: str = ""
    insecure: bool = False
    compress: bool = False
    custom_url: str = ""
    headers: dict[str, Text] = {}
    resource: OtelResourceConfig = msgspec.field(default_factory=OtelResourceConfig)
    service_name: str = ""  # deprecated, use resource.service_name
    service_version: Text = Text("")  # deprecated, use resource.service_version

    def __post_init__(self) -> None:
        if self.exporter in DEPRECATED_EXPORTERS:
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


#: Each mode's level and encoding, used where ``logs`` (and a channel that sets its own mode) leaves
#: them unset; ``raw`` writes the message alone whatever the encoding, ``off``/``none`` write nothing.
LOG_PRESETS: dict[LogMode, tuple[LogLevel, LogEncoding]] = {
    "development": ("debug", "console"),
    "production": ("info", "json"),
    "raw": ("info", "console"),
    "off": ("info", "console"),
    "none": ("info", "console"),
}


class LogChannelConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Per-plugin override; ``None`` fields inherit from the top-level ``logs`` values (a channel that
    sets ``mode`` takes that mode's preset level and encoding instead)."""

    mode: LogMode | None = None
    level: LogLevel | None = None
    encoding: LogEncoding | None = None
    output: StrList | None = None
    err_output: StrList | None = None


class LogsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``None`` level and encoding: the mode's (``LOG_PRESETS``); ``None`` output: stderr; ``None``
    err_output: errors go to ``output`` too."""

    mode: LogMode = "development"
    level: LogLevel | None = None
    encoding: LogEncoding | None = None
    output: StrList | None = None
    err_output: StrList | None = None
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
    #: The broker connection sections (``BROKER_SECTIONS``) present, as written: each jobs driver
    #: checks the keys of the section named after it.
    brokers: dict[str, dict[str, Any]] = {}


SECTIONS = ("server", "rpc", "grpc", "http", "metrics", "otel", "status", "logs", "endure", "jobs")
# Broker connection sections, given as plain dicts (RRConfig.brokers) to the jobs drivers named after them.
BROKER_SECTIONS = ("amqp", "beanstalk", "nats", "boltdb")
# Top-level keys the loader consumes itself; they are not sections and not "unknown".
LOADER_KEYS = ("version", "include", "envfile")
