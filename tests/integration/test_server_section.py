"""The ``server`` section end to end: on_init, user, and the CLI's directory and dotenv rules."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest

from rrgrpc.config.schema import PoolConfig, ServerConfig
from rrgrpc.errors import BootError
from rrgrpc.pool import Payload, open_pool
from tests.helpers import ROOT, free_port, php_cmd, running_host, section


def rpc_section() -> dict[str, str]:
    return {"listen": f"tcp://127.0.0.1:{free_port()}"}


async def test_on_init_runs_before_workers_and_its_output_is_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "warm"
    raw = {
        "version": "3",
        "server": {
            "command": "php worker.php",
            "on_init": {"command": [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x'); print('warmed up')"]},
        },
        "rpc": rpc_section(),  # something to serve
    }
    async with running_host(raw):
        assert marker.read_text() == "x"
    assert "\twarmed up\t" in capsys.readouterr().err  # logged by rr.server, one record per line


@pytest.mark.parametrize(
    ("command", "timeout", "message"),
    [
        (["sh", "-c", "exit 4"], "10s", "exited with code 4"),
        (["sleep", "30"], "200ms", "killed after exec_timeout"),
        (["/nonexistent/binary"], "10s", "cannot start"),
    ],
)
async def test_on_init_failure_stops_startup_only_with_exit_on_error(
    command: list[str], timeout: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    on_init = {"command": command, "exec_timeout": timeout}
    with pytest.raises(BootError, match=message):
        async with running_host(
            {"version": "3", "server": {"command": "x", "on_init": {**on_init, "exit_on_error": True}}, "rpc": rpc_section()}
        ):
            pass
    async with running_host({"version": "3", "server": {"command": "x", "on_init": on_init}, "rpc": rpc_section()}):
        assert message in capsys.readouterr().err


@pytest.mark.php
@pytest.mark.skipif(os.geteuid() != 0, reason="server.user needs rr to run as root")
async def test_workers_run_as_server_user() -> None:
    nobody = pwd.getpwnam("nobody")
    # the checkout may sit in a 0700 folder (mktemp -d): give nobody a readable copy of the worker
    app = Path(tempfile.mkdtemp(prefix="rrgrpc-user-", dir="/tmp"))
    try:
        shutil.copytree(ROOT / "php", app / "php")
        (app / "tests" / "php").mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "php" / "pid.php", app / "tests" / "php" / "pid.php")
        for path in [app, *app.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        server = section(ServerConfig, command=php_cmd(app / "tests" / "php" / "pid.php"), user="nobody")
        async with open_pool("grpc", section(PoolConfig, num_workers=1, allocate_timeout=10.0), server, mode="grpc") as pool:
            pid = int((await pool.exec(Payload(b"", b"x"))).body.split(b":")[0])
            assert psutil.Process(pid).uids().real == nobody.pw_uid
    finally:
        shutil.rmtree(app)


async def test_cli_runs_in_the_config_directory_and_exports_dotenv(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text("APP_GREETING=hello-from-dotenv\n")
    (app / ".rr.yaml").write_text(textwrap.dedent(f"""
        version: "3"
        server:
          command: "php worker.php"
          on_init:
            command: ["{sys.executable}", "-c", "import os; open('seen', 'w').write(os.getcwd() + ' ' + os.environ['APP_GREETING'])"]
            exit_on_error: true
        rpc:
          listen: tcp://127.0.0.1:{free_port()}
    """))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rrgrpc", "-c", str(app / ".rr.yaml"), "--dotenv", ".env", "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while not (app / "seen").exists():
            line = await proc.stdout.readline()
            assert line, "rr exited early"
    proc.terminate()
    await asyncio.wait_for(proc.wait(), 20)
    assert (app / "seen").read_text() == f"{app} hello-from-dotenv"
