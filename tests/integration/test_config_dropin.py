"""RoadRunner's reference ``.rr.yaml``, as a RoadRunner user has it, given to ``rr serve``.

``REFERENCE`` is written for this test after the sections, keys and value shapes of the commented
sample at the root of roadrunner-server/roadrunner (plugins rrgrpc lacks, ``acme``, ``http3``,
``fcgi``, ``relay_timeout``, ``objectives`` as a list of maps, ``logs.output`` as a list ...); only
the worker commands point at this repository's test workers and the ports are free ones. It must
start and serve HTTP, gRPC, status and metrics, saying in rr's log format what it ignores.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import grpc
import psutil
import pytest

from tests.helpers import ROOT, eventually, free_port, php_cmd
from tests.integration.test_grpc import Echo, PingRequest

pytestmark = pytest.mark.php

REFERENCE = """\
version: "3"

rpc:
  listen: tcp://127.0.0.1:{rpc}

server:
  on_init:
    command: "{python} -c pass"
    exec_timeout: 20s
    env:
      - INIT_ENV: warm
  command: "{http_worker}"
  user: ""
  group: ""
  env:
    - APP_ENV: production
    - DEBUG: false
  relay: pipes
  relay_timeout: 60s

logs:
  mode: development
  level: debug
  encoding: console
  line_ending: "\\n"
  output: [stderr]
  err_output: stderr
  file_logger_options:
    log_output: "test.log"
    max_size: 10
    max_age: 24
    max_backups: 10
    compress: true
  channels:
    http:
      mode: development
      level: info
      encoding: console
      output: stderr
      err_output: stderr
    server:
      mode: raw
      level: info

temporal:
  address: 127.0.0.1:7233
  cache_size: 10000
  namespace: default
  codec: proto
  debug_level: 2
  activities:
    num_workers: 4

kv:
  boltdb-south:
    driver: boltdb
    config:
      file: "rr.db"
      permissions: 0777
      interval: 40
  local-memory:
    driver: memory
    config:
      interval: 1

service:
  some_service_1:
    command: "php tests/plugins/service/test_files/loop.php"
    process_num: 1
    exec_timeout: 0s
    remain_after_exit: true
    restart_sec: 1

http:
  address: 127.0.0.1:{http}
  internal_error_code: 505
  access_logs: false
  max_request_size: 256
  raw_body: false
  middleware: ["headers", "gzip", "sendfile"]
  trusted_subnets:
    - 10.0.0.0/8
    - 127.0.0.0/8
    - 172.16.0.0/12
    - 192.168.0.0/16
    - ::1/128
    - fc00::/7
    - fe80::/10
  uploads:
    dir: "/tmp"
    forbid: [".php", ".exe", ".bat", ".sh"]
    allow: [".html", ".aaa"]
  headers:
    cors:
      allowed_origin: "*"
      allowed_origin_regex: "^http://foo"
      allowed_headers: "*"
      allowed_methods: "GET,POST,PUT,DELETE"
      allow_credentials: true
      exposed_headers: "Cache-Control,Content-Language,Content-Type,Expires,Last-Modified,Pragma"
      max_age: 600
      options_success_status: 200
      debug: false
    request:
      input: "custom-header"
    response:
      X-Powered-By: "RoadRunner"
  static:
    dir: "."
    forbid: [""]
    calculate_etag: false
    weak: false
    allow: [".txt", ".php"]
    request:
      input: "custom-header"
    response:
      output: "output-header"
  pool:
    debug: false
    num_workers: 2
    max_jobs: 64
    allocate_timeout: 60s
    destroy_timeout: 60s
    reset_timeout: 60s
    stream_timeout: 60s
    supervisor:
      watch_tick: 1s
      ttl: 0s
      idle_ttl: 10s
      max_worker_memory: 128
      exec_ttl: 60s
  ssl:
    address: 127.0.0.1:{https}
    acme:
      certs_dir: rr_le_certs
      email: you-email-here@email
      alt_http_port: 80
      alt_tlsalpn_port: 443
      challenge_type: http-01
      use_production_endpoint: true
      domains:
        - your-cool-domain.here
  fcgi:
    address: tcp://0.0.0.0:7921
  http2:
    h2c: false
    max_concurrent_streams: 128
  http3:
    address: 127.0.0.1:{http3}
    cert: "/ssl/cert.crt"
    key: "/ssl/key.pem"

redis:
  addrs:
    - "127.0.0.1:6379"
  master_name: ""
  password: ""
  db: 0

metrics:
  address: 127.0.0.1:{metrics}
  collect:
    app_metric:
      type: histogram
      help: "Custom application metric"
      labels: ["type"]
      buckets: [0.1, 0.2, 0.3, 1.0]
      objectives:
        - 1.4: 2.3
        - 2.0: 1.4

status:
  address: 127.0.0.1:{status}
  unavailable_status_code: 503
  check_timeout: 10

reload:
  interval: 1s
  patterns: [".php"]
  services:
    http:
      recursive: true
      ignore: ["vendor"]
      patterns: [".php", ".go", ".md"]
      dirs: ["."]

jobs:
  num_pollers: 32
  pipeline_size: 100000
  pool:
    command: "{jobs_worker}"
    num_workers: 2
  consume: ["test-local"]
  pipelines:
    test-local:
      driver: memory
      config:
        priority: 10

grpc:
  listen: "tcp://127.0.0.1:{grpc}"
  proto:
    - "{proto}"
  max_send_msg_size: 50
  max_recv_msg_size: 50
  max_connection_idle: 0s
  max_connection_age: 0s
  max_connection_age_grace: 0s
  max_concurrent_streams: 10
  ping_time: 1s
  timeout: 200s
  pool:
    command: "{grpc_worker}"
    num_workers: 2
    max_jobs: 0
    allocate_timeout: 60s
    destroy_timeout: 60s

tcp:
  servers:
    server1:
      addr: 127.0.0.1:7778
      delimiter: "\\r\\n"
  pool:
    num_workers: 2

endure:
  grace_period: 30s
  print_graph: false
  log_level: error
"""


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip("\n"))


@asynccontextmanager
async def rr_serve(config: Path, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """``rr -c <config> serve`` as a process; yields it and its stderr lines as they come."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(config), "serve", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=config.parent,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    reader = asyncio.create_task(_drain(proc.stderr, lines))
    try:
        yield proc, lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.wait_for(reader, 10)


def write_reference(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    ports = {name: free_port() for name in ("rpc", "http", "https", "http3", "metrics", "status", "grpc")}
    text = REFERENCE.format(
        python=sys.executable,
        http_worker=" ".join(php_cmd("http_echo.php")),
        grpc_worker=" ".join(php_cmd("grpc_echo.php")),
        jobs_worker=" ".join(php_cmd("jobs_consumer.php")),
        proto=ROOT / "proto" / "echo" / "v1" / "echo.proto",
        **ports,
    )
    config = tmp_path / ".rr.yaml"
    config.write_text(text)
    return config, ports


async def test_reference_config_serves_http_grpc_status_and_metrics(tmp_path: Path) -> None:
    config, ports = write_reference(tmp_path)
    async with rr_serve(config) as (proc, lines), aiohttp.ClientSession() as client:

        async def ready() -> bool:
            if proc.returncode is not None:
                raise AssertionError("rr exited:\n" + "\n".join(lines))
            try:
                async with client.get(f"http://127.0.0.1:{ports['status']}/ready") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=60, interval=0.1)

        async with client.get(f"http://127.0.0.1:{ports['http']}/echo") as resp:
            assert resp.status == 200 and resp.headers["X-Powered-By"] == "RoadRunner"
            assert json.loads(await resp.read())["headers"]["Input"] == ["custom-header"]
        async with client.get(f"http://127.0.0.1:{ports['http']}/", headers={"Origin": "http://foo.example"}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "http://foo.example"  # the regex, not "*"

        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
            reply = await Echo(channel).Ping(PingRequest(msg="drop-in"), timeout=20)
            assert reply.msg == "drop-in"

        async with client.get(f"http://127.0.0.1:{ports['status']}/health?plugin=http&plugin=grpc") as resp:
            assert resp.status == 200

        async with client.get(f"http://127.0.0.1:{ports['metrics']}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200 and "# TYPE app_metric histogram" in text and "rr_http_total_workers" in text

    assert proc.returncode == 0, "\n".join(lines)
    assert not any("Traceback" in line for line in lines)
    # each ignored thing once, as an rr log line: <time>\tWARN\tconfig\t<file>: <what>, ignored...
    config_lines = [line for line in lines if "\tconfig\t" in line]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+[+-]\d{4}\t(INFO|WARN)\tconfig\t", line) for line in config_lines)
    said = [line.split("\tconfig\t", 1)[1].removeprefix(f"{config}: ") for line in config_lines]
    assert said == [
        "section 'temporal' (a RoadRunner plugin) is not supported by rrgrpc, ignored",
        "section 'kv' (a RoadRunner plugin) is not supported by rrgrpc, ignored",
        "section 'service' (a RoadRunner plugin) is not supported by rrgrpc, ignored",
        "section 'redis' (a RoadRunner plugin) is not supported by rrgrpc, ignored",
        "section 'reload' is obsolete in RoadRunner, ignored",
        "section 'tcp' (a RoadRunner plugin) is not supported by rrgrpc, ignored",
        "server.relay_timeout is obsolete in RoadRunner, ignored",
        "http.ssl.acme is not implemented by rrgrpc, ignored; "
        "HTTPS needs http.ssl.cert and http.ssl.key (obtain them with certbot or similar)",
        "http.headers.cors.debug is not implemented by rrgrpc, ignored",
        "http.fcgi is not implemented by rrgrpc, ignored",
        "http.http2 is not implemented by rrgrpc, ignored",
        "http.http3 is not implemented by rrgrpc, ignored; HTTP/3 (QUIC) is not served; clients use HTTP/1.1 or HTTP/2",
        "logs.line_ending is not implemented by rrgrpc, ignored",
        "logs.file_logger_options is not implemented by rrgrpc, ignored",
        "endure.print_graph is not implemented by rrgrpc, ignored",
        "endure.log_level is not implemented by rrgrpc, ignored",
    ]


async def test_reference_config_with_strict_stops_on_the_first_ignored_thing(tmp_path: Path) -> None:
    config, _ = write_reference(tmp_path)
    async with rr_serve(config, "--strict") as (proc, lines):
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 1
    assert lines == [
        f"rr: error: {config}: section 'temporal' (a RoadRunner plugin) is not supported by rrgrpc; an error with --strict"
    ]


async def test_warnings_follow_the_logs_section_format(tmp_path: Path) -> None:
    config = tmp_path / ".rr.yaml"
    config.write_text(
        f'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:{free_port()}\nlogs:\n  mode: production\n'
        "grcp:\n  listen: tcp://127.0.0.1:9001\n"
    )
    async with rr_serve(config) as (proc, lines):
        await eventually(lambda: any('"logger":"config"' in line.replace(" ", "") for line in lines), timeout=20)
    record = json.loads(next(line for line in lines if '"config"' in line))
    assert (record["level"], record["logger"]) == ("warn", "config")
    assert record["msg"] == f"{config}: unknown section 'grcp', ignored (did you mean grpc?)"


async def test_endure_grace_period_bounds_the_graceful_stop(tmp_path: Path) -> None:
    # the worker ignores the stop command and destroy_timeout would wait a minute for it; the
    # graceful stop gets endure.grace_period, then it is forced and the worker killed
    config = tmp_path / ".rr.yaml"
    config.write_text(
        f'version: "3"\nserver:\n  command: "{" ".join(php_cmd("echo.php", "linger"))}"\n'
        f"http:\n  address: 127.0.0.1:{free_port()}\n  pool:\n    num_workers: 1\n    destroy_timeout: 60s\n"
        "endure:\n  grace_period: 1s\n"
    )
    async with rr_serve(config) as (proc, lines):
        await eventually(lambda: any("\tserving\t" in line for line in lines), timeout=30)
        await sigterm_until_forced(proc, lines)


async def sigterm_until_forced(proc: asyncio.subprocess.Process, lines: list[str]) -> None:
    """One SIGTERM: rr must stop (forced once endure.grace_period is over) and leave no worker."""
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 20)
    except TimeoutError:
        raise AssertionError("\n".join(lines)) from None
    assert proc.returncode == 1  # a forced stop exits 1, as RoadRunner's "exit forced"
    assert any("forced stop (grace period over): killing workers" in line for line in lines), "\n".join(lines)
    await eventually(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers))


async def test_forced_stop_kills_a_worker_hung_on_a_request(tmp_path: Path) -> None:
    # the forced stop's cancel lands while the HTTP server drains the hung request; the pool must
    # then kill the busy worker at once, not wait destroy_timeout (a minute) for it
    port, status = free_port(), free_port()
    config = tmp_path / ".rr.yaml"
    config.write_text(
        f'version: "3"\nserver:\n  command: "{" ".join(php_cmd("hang.php"))}"\n'
        f"http:\n  address: 127.0.0.1:{port}\n  pool:\n    num_workers: 1\n    destroy_timeout: 60s\n"
        f"status:\n  address: 127.0.0.1:{status}\nendure:\n  grace_period: 1s\n"
    )
    async with rr_serve(config) as (proc, lines), aiohttp.ClientSession() as client:

        async def ready_is(expected: int) -> bool:
            try:
                async with client.get(f"http://127.0.0.1:{status}/ready?plugin=http") as resp:
                    return resp.status == expected
            except aiohttp.ClientError:
                return False

        await eventually(lambda: any("\tserving\t" in line for line in lines), timeout=30)  # listening
        await eventually(lambda: ready_is(200), timeout=10)
        hung = asyncio.ensure_future(client.get(f"http://127.0.0.1:{port}/"))
        await eventually(lambda: ready_is(503), timeout=10)  # the only worker is busy with it
        await sigterm_until_forced(proc, lines)
        resp = await hung
        assert resp.status == 500  # the hung request fails (its worker was killed), nothing else does
    assert any("was killed by SIGKILL mid-request" in line for line in lines), "\n".join(lines)
