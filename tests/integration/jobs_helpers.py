"""Shared pieces of the jobs tests: an rr config with a jobs section, a protobuf RPC producer, the
consumer's task log (tests/php/jobs_consumer.php writes one JSON line per task it takes)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rrgrpc.goridge.frame import Flag
from rrgrpc.goridge.rpc import RpcClient
from rrgrpc.jobs import jobs_pb2 as pb
from tests.helpers import free_port, php_cmd


def jobs_config(tmp_path: Path, pipelines: dict[str, Any], *, workers: int = 1, **jobs: Any) -> dict[str, Any]:
    """A config with rpc on a free port and a jobs pool of tests/php/jobs_consumer.php."""
    return {
        "version": "3",
        "rpc": {"listen": f"tcp://127.0.0.1:{free_port()}"},
        "server": {"command": php_cmd("jobs_consumer.php"), "env": {"JOBS_LOG": str(tmp_path / "tasks.log")}},
        "jobs": {
            "pool": {"num_workers": workers, "destroy_timeout": "10s"},
            "pipelines": pipelines,
            "consume": list(pipelines),
            **jobs,
        },
    }


def job(name: str, pipeline: str, payload: bytes = b"", **options: Any) -> pb.Job:
    headers = options.pop("headers", {})
    msg = pb.Job(job=name, id=str(uuid.uuid4()), payload=payload, options=pb.Options(pipeline=pipeline, **options))
    for key, values in headers.items():
        msg.headers[key].value.extend(values)
    return msg


async def call(client: RpcClient, method: str, message: Any, result: Any = None) -> Any:
    """A protobuf-codec call, as spiral/roadrunner-jobs makes it; returns the decoded result message."""
    reply = await client.call(method, message.SerializeToString(), codec=Flag.CODEC_PROTO)
    return result.FromString(reply) if result is not None else reply


async def push(client: RpcClient, *jobs: pb.Job) -> None:
    if len(jobs) == 1:
        await call(client, "jobs.Push", pb.PushRequest(job=jobs[0]))
    else:
        await call(client, "jobs.PushBatch", pb.PushBatchRequest(jobs=jobs))


async def stats(client: RpcClient) -> dict[str, pb.Stat]:
    out = await call(client, "jobs.Stat", pb.Empty(), pb.Stats)
    return {s.pipeline: s for s in out.stats}


async def idle(client: RpcClient, pipeline: str = "p") -> bool:
    """Nothing active, reserved or delayed in the pipeline."""
    row = (await stats(client))[pipeline]
    return row.active == row.reserved == row.delayed == 0


def tasks(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "tasks.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@contextmanager
def jobs_errors() -> Iterator[list[logging.LogRecord]]:
    """The ERROR records of ``rr.jobs`` while the block runs (the logs plugin stops propagation)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.ERROR)
    logger = logging.getLogger("rr.jobs")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
