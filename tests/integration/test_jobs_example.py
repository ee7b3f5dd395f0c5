"""examples/jobs as a user runs it (``rr serve``, memory driver), and the trace it makes: one trace from
the HTTP request through the push to the consume, exported to a real OTLP receiver."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.helpers import ROOT, eventually, free_port, running_host, wait_http_ok
from tests.obs_otlp import otlp_receiver

pytestmark = pytest.mark.php

EXAMPLE = ROOT / "examples" / "jobs"
PRODUCER, CONSUMER = 4, 5  # opentelemetry.proto SpanKind


def sent(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_example_pushes_over_http_and_consumes_on_the_memory_driver(tmp_path: Path) -> None:
    http_port, rpc_port = free_port(), free_port()
    log = tmp_path / "sent.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", ".rr.yaml",
        "-o", f"http.address=127.0.0.1:{http_port}", "-o", f"rpc.listen=tcp://127.0.0.1:{rpc_port}", "serve",
        cwd=EXAMPLE, env={**os.environ, "MAIL_LOG": str(log)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with aiohttp.ClientSession() as client:
            await wait_http_ok(client, base + "/stats")
            ids = []
            for subject in ("hi", "fail once"):
                async with client.post(base + "/mail", params={"to": "ada@example.com", "subject": subject}) as resp:
                    assert resp.status == 202
                    ids.append((await resp.json())["id"])
            await eventually(lambda: len(sent(log)) == 2, timeout=15)
            async with client.get(base + "/stats") as resp:
                stats = await resp.json()
    finally:
        proc.terminate()
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert sorted(m["id"] for m in sent(log)) == sorted(ids)
    assert {(m["subject"], m["driver"], m["pipeline"]) for m in sent(log)} == {
        ("hi", "memory", "emails"), ("fail once", "memory", "emails"),
    }  # fmt: skip
    assert stats == {"pipeline": "emails", "driver": "memory", "ready": True, "active": 0, "delayed": 0, "reserved": 0}
    # the requeued first attempt is the one error line; nothing else failed
    errors = [line for line in err.decode().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "job failed" in errors[0] and "smtp said try later" in errors[0]


async def test_request_push_and_consume_are_one_trace(tmp_path: Path) -> None:
    cfg = yaml.safe_load((EXAMPLE / ".rr.yaml").read_text())
    log = tmp_path / "sent.log"
    cfg["server"] = {"command": ["php", str(EXAMPLE / "worker.php")], "env": {"MAIL_LOG": str(log)}}
    cfg["http"]["address"] = f"127.0.0.1:{free_port()}"
    cfg["rpc"]["listen"] = f"tcp://127.0.0.1:{free_port()}"
    cfg["jobs"]["pipelines"]["emails"]["driver"] = "memory"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with otlp_receiver() as rx:
        cfg["otel"] = {
            "client": "grpc", "endpoint": rx.endpoint, "insecure": True, "resource": {"service_name": "jobs-example"},
        }  # fmt: skip
        async with running_host(cfg), aiohttp.ClientSession() as client:
            url = f"http://{cfg['http']['address']}/mail"
            headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            async with client.post(url, params={"to": "ada@example.com"}, headers=headers) as resp:
                assert resp.status == 202
            await eventually(lambda: len(sent(log)) == 1, timeout=15)
    spans = [s for s in rx.spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in spans}
    push = next(s for s in spans if s.name == "jobs push emails")
    consume = next(s for s in spans if s.name == "jobs consume emails")
    assert (push.kind, consume.kind) == (PRODUCER, CONSUMER)
    assert consume.parent_id == push.span_id  # the consume continues the push
    # the push hangs, through the PHP worker's request, off the HTTP server span of this trace
    chain, span = [], push
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span.name)
    assert span.parent_id == "00f067aa0ba902b7" and chain[-1] == "POST"  # the HTTP server span
    assert push.attributes["messaging.destination.name"] == "emails"
    # the consumer's rr.pool.exec runs under the consume span, and PHP saw this trace
    assert any(s.name == "rr.pool.exec" and s.parent_id == consume.span_id for s in spans)
    assert sent(log)[0]["traceparent"].split("-")[1] == trace_id
