"""Bad jobs configuration stops ``rr serve`` with one line naming the key (or pipeline) and the file."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import php_cmd
from tests.integration.test_serve import start_rr


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            "driver: sqs",
            "jobs.pipelines.emails.driver: driver 'sqs' is not supported (a RoadRunner driver rrgrpc does not "
            "implement); supported: memory, boltdb, amqp, beanstalk, nats",
        ),
        ("config: {}", "jobs.pipelines.emails.driver: required"),
    ],
)
async def test_bad_pipeline_is_one_line_and_exit_code_1(tmp_path: Path, pipeline: str, message: str) -> None:
    proc = await start_rr(tmp_path, f"""
        version: "3"
        server:
          command: "php worker.php"
        jobs:
          pipelines:
            emails:
              {pipeline}
    """)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert out.decode().strip().splitlines() == [f"rr: error: {tmp_path / '.rr.yaml'}: {message}"]


async def test_a_typo_in_a_pipeline_is_a_warning_and_an_error_with_strict(tmp_path: Path) -> None:
    (tmp_path / ".rr.yaml").write_text(textwrap.dedent("""
        version: "3"
        server:
          command: "php worker.php"
        jobs:
          pipelines:
            emails:
              driver: memory
              confg: {}
    """))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "serve", "-c", str(tmp_path / ".rr.yaml"), "--strict",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert out.decode().strip().splitlines() == [
        f"rr: error: {tmp_path / '.rr.yaml'}: unknown key jobs.pipelines.emails.confg (did you mean config?); "
        "an error with --strict"
    ]


async def test_a_boltdb_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "queue.db").mkdir()  # a directory where the database file should be
    proc = await start_rr(tmp_path, f"""
        version: "3"
        server:
          command: "{' '.join(php_cmd('jobs_consumer.php'))}"
        jobs:
          pool: {{num_workers: 1}}
          pipelines:
            durable:
              driver: boltdb
              config: {{file: queue.db}}
    """)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    errors = [line for line in out.decode().splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in out.decode(), out.decode()
    assert "boltdb pipeline durable: cannot open queue.db" in errors[0]
