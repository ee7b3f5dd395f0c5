"""``rr workers`` and ``rr reset`` against a live RPC endpoint: tables, JSON, resets, and ``-i`` in a
real terminal (tmux: start it, read the screen, press keys)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import rrgrpc.cli.reset  # noqa: F401  (registers `rr reset`)
import rrgrpc.cli.workers  # noqa: F401  (registers `rr workers`)
from rrgrpc.cli import rr
from rrgrpc.cli.keys import parse_keys
from rrgrpc.cli.tables import fmt_bytes, fmt_duration
from rrgrpc.errors import RRError
from tests.helpers import ROOT, eventually
from tests.integration.test_rpc_server import FakePool, FakeService, serving


def write_config(tmp_path: Path, address: str) -> Path:
    path = tmp_path / ".rr.yaml"
    path.write_text(f'version: "3"\nrpc:\n  listen: {address}\n')
    return path


async def invoke(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop while the endpoint serves in ours."""
    result = await asyncio.to_thread(CliRunner().invoke, rr, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


async def test_workers_tables_sorted_by_pid(tmp_path: Path) -> None:
    async with serving(FakePool("grpc", [4243, 4242], {4242: 7}), FakePool("http", [5001])) as rpc:
        cfg = write_config(tmp_path, rpc.address)
        result = await invoke("-c", str(cfg), "workers")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for column in ("PID", "STATUS", "EXECS", "MEMORY", "CPU%", "CREATED"):
        assert column in out
    assert out.index("grpc") < out.index("4242") < out.index("4243") < out.index("http") < out.index("5001")
    row = next(line for line in out.splitlines() if "4242" in line)
    assert "ready" in row and " 7 " in row and "22.0 MiB" in row and "0.5" in row


async def test_workers_of_named_plugins_as_json(tmp_path: Path) -> None:
    async with serving(FakePool("grpc", [4242]), FakePool("http", [5001])) as rpc:
        cfg = write_config(tmp_path, rpc.address)
        result = await invoke("-c", str(cfg), "workers", "http", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["http"]
    assert [w["pid"] for w in data["http"]["workers"]] == [5001]


async def test_workers_and_reset_refuse_an_unknown_plugin_alike(tmp_path: Path) -> None:
    # sent: `rr workers http nope` and `rr reset grpc nope`; both fail the same way, nothing is reset
    grpc, http = FakePool("grpc", [4242]), FakePool("http", [5001])
    async with serving(grpc, http) as rpc:
        cfg = write_config(tmp_path, rpc.address)
        workers = await invoke("-c", str(cfg), "workers", "http", "nope", "--json")
        reset = await invoke("-c", str(cfg), "reset", "grpc", "nope")
    assert (workers.exit_code, workers.output) == (1, "Error: no such plugin: nope (plugins with workers: grpc, http)\n")
    assert (reset.exit_code, reset.output) == (1, "Error: no such plugin: nope (resettable plugins: grpc, http)\n")
    assert (grpc.resets, http.resets) == (0, 0)


async def test_workers_reads_rpc_listen_through_overrides(tmp_path: Path) -> None:
    async with serving(FakePool("grpc", [4242])) as rpc:
        cfg = write_config(tmp_path, "tcp://127.0.0.1:1")
        result = await invoke("-c", str(cfg), "-o", f"rpc.listen={rpc.address}", "workers", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grpc"]["workers"][0]["pid"] == 4242


async def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    no_rpc = tmp_path / "no-rpc.yaml"
    no_rpc.write_text('version: "3"\n')
    result = await invoke("-c", str(no_rpc), "workers")
    assert result.exit_code == 1 and "no rpc section" in result.output
    nobody = write_config(tmp_path, "tcp://127.0.0.1:1")
    result = await invoke("-c", str(nobody), "reset")
    assert result.exit_code == 1
    assert "cannot reach the RPC endpoint tcp://127.0.0.1:1: Connection refused" in result.output
    result = await invoke("-c", str(nobody), "workers", "-i")  # CliRunner's stdin is no terminal
    assert result.exit_code == 1 and "-i needs a terminal" in result.output


async def test_reset_all_concurrently_one_line_each(tmp_path: Path) -> None:
    grpc, http = FakePool("grpc", [1]), FakePool("http", [2])
    async with serving(grpc, http, FakeService()) as rpc:
        cfg = write_config(tmp_path, rpc.address)
        result = await invoke("-c", str(cfg), "reset")
        assert result.exit_code == 0, result.output
        lines = sorted(result.stdout.splitlines())
        assert [line.split()[0] for line in lines] == ["grpc", "http"]
        assert all("reset in" in line for line in lines)
        assert (grpc.resets, http.resets) == (1, 1)
        result = await invoke("-c", str(cfg), "reset", "grpc")
    assert result.exit_code == 0 and result.stdout.startswith("grpc  reset in ")
    assert grpc.resets == 2 and http.resets == 1


def test_formatting_helpers() -> None:
    assert parse_keys("+\x1b[A\x1b[B\t\x1b[Zq") == ["+", "up", "down", "tab", "shift-tab", "q"]
    assert fmt_bytes(512) == "512 B" and fmt_bytes(23068672) == "22.0 MiB"
    assert [fmt_duration(s) for s in (3.25, 42, 65, 3700, 90000)] == [
        "3.2s",
        "42s",
        "1m05s",
        "1h01m",
        "1d01h",
    ]


# --------------------------------------------------------------------------------------------
# rr workers -i in a real terminal

TMUX = shutil.which("tmux")


class Terminal:
    """A tmux session on a private server socket, 140x40, running one command."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        self.exit_file = tmp_path / "exit"
        self.stty_file = tmp_path / "stty"

    async def tmux(self, *args: str, check: bool = True) -> str:
        # COLUMNS/LINES (set under pytest) would override the pane size the program sees.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        proc = await asyncio.create_subprocess_exec(
            TMUX or "tmux",
            "-S",
            self.socket,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        async with asyncio.timeout(10):
            out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {args}: {err.decode()}")
        return out.decode()

    async def start(self, argv: list[str]) -> None:
        # After the program exits, record its exit code and the terminal modes it left behind.
        # `trap : INT` keeps the shell alive on Ctrl-C (the program gets the default disposition).
        script = (
            f"trap : INT; cd {shlex.quote(str(ROOT))} && {shlex.join(argv)}; "
            f"echo $? > {self.exit_file}; stty -a > {self.stty_file}"
        )
        await self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-x", "140", "-y", "40", "-s", "rr", "sh", "-c", script
        )

    async def screen(self) -> str:
        return await self.tmux("capture-pane", "-p", "-t", "rr", check=False)

    async def keys(self, *keys: str) -> None:
        await self.tmux("send-keys", "-t", "rr", *keys)

    async def shows(self, *texts: str) -> str:
        async def check() -> str | None:
            screen = await self.screen()
            return screen if all(t in screen for t in texts) else None

        try:
            result: str = await eventually(check, timeout=30, interval=0.1)
        except AssertionError:
            raise AssertionError(f"screen lacks {texts}:\n{await self.screen()}") from None
        return result

    async def exit_code(self) -> int:
        await eventually(
            lambda: self.exit_file.exists() and self.stty_file.exists() and self.stty_file.read_text(),
            timeout=20,
        )
        return int(self.exit_file.read_text())

    async def close(self) -> None:
        await self.tmux("kill-server", check=False)


def rr_argv(cfg: Path, *args: str) -> list[str]:
    # Register the subcommands explicitly so the test does not depend on cli/__init__ importing them.
    code = "import rrgrpc.cli.workers, rrgrpc.cli.reset; from rrgrpc.cli import rr; rr(prog_name='rr')"
    return [sys.executable, "-c", code, "-c", str(cfg), *args]


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
async def test_interactive_view_in_a_real_terminal(tmp_path: Path) -> None:
    grpc = FakePool("grpc", [4242, 4243], {4242: 3})
    grpc.queue = 2
    grpc.busy = {4243: ("/echo.v1.Echo/Slow", time.time() - 65)}
    http = FakePool("http", [5001])
    term = Terminal(tmp_path)
    async with serving(grpc, http) as rpc:
        try:
            await term.start(rr_argv(write_config(tmp_path, rpc.address), "workers", "-i"))
            screen = await term.shows("4242", "4243", "5001", "/echo.v1.Echo/Slow")
            assert "queue 2" in screen and "1m0" in screen  # busy for 1m05s or so
            assert "3 workers" in screen and "1 busy" in screen  # totals
            await term.keys("+")
            await term.shows("4244")
            assert grpc.pids == [4242, 4243, 4244]
            await term.keys("Down", "+")  # select http, add a worker there
            await term.shows("5002")
            await term.keys("-")
            await eventually(lambda: http.pids == [5001])
            await term.keys("Up", "r")
            await eventually(lambda: grpc.resets == 1)
            await term.shows("resetting grpc: done")
            grpc.down = "front 1 is restarting (pid 4300 was killed by SIGKILL)"
            await term.shows(f"grpc: {grpc.down}")  # the plugin's note, under its table
            grpc.down = ""
            await eventually(lambda: _lacks(term, "is restarting"))
            await term.keys("q")
            assert await term.exit_code() == 0
        finally:
            await term.close()
    modes = term.stty_file.read_text().split()
    assert "icanon" in modes and "echo" in modes  # cbreak mode undone


async def _lacks(term: Terminal, text: str) -> bool:
    return text not in await term.screen()


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
async def test_interactive_view_exits_cleanly_on_ctrl_c_and_survives_server_loss(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    try:
        async with serving(FakePool("grpc", [4242])) as rpc:
            await term.start(rr_argv(write_config(tmp_path, rpc.address), "workers", "-i"))
            await term.shows("4242")
        await term.shows("disconnected")  # the server went away: the view says so and keeps running
        await term.keys("C-c")
        assert await term.exit_code() == 0
        assert "Traceback" not in await term.screen()
    finally:
        await term.close()
    modes = term.stty_file.read_text().split()
    assert "icanon" in modes and "echo" in modes


def test_cli_modules_stay_pure_rpc_clients() -> None:
    """rr workers / rr reset must start fast and never pull in the pool or the plugins."""
    code = (
        "import sys, rrgrpc.cli.workers, rrgrpc.cli.reset; "
        "bad = [m for m in sys.modules if m.startswith(('rrgrpc.pool', 'rrgrpc.grpc', 'rrgrpc.http', 'rrgrpc.rpc.'))]; "
        "print(bad)"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


async def test_reset_errors_always_say_something(tmp_path: Path) -> None:
    # a plugin whose reset raises an exception without text, and an endpoint that hangs up at once
    class Broken(FakePool):
        async def reset(self) -> None:
            raise RRError("")

    async with serving(Broken("grpc", [1])) as rpc:
        result = await invoke("-c", str(write_config(tmp_path, rpc.address)), "reset", "grpc")
    assert result.exit_code == 1
    assert result.output == "grpc  failed: RRError\n", result.output  # the server names the error type

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await invoke("-c", str(write_config(tmp_path, f"tcp://127.0.0.1:{port}")), "reset")
    assert result.exit_code == 1
    assert result.output in (
        f"Error: tcp://127.0.0.1:{port}: resetter.List: {why}\n"
        for why in ("Connection reset by peer", f"rpc server tcp://127.0.0.1:{port} closed the connection")
    ), result.output


def test_reason_is_never_empty() -> None:
    # what a RoadRunner server or a dropped connection may hand the CLI: texts without words
    from rrgrpc.cli.client import reason
    from rrgrpc.goridge.rpc import RpcError

    assert reason(RpcError("resetter.Reset", "")) == "resetter.Reset failed without a message"
    assert reason(ConnectionResetError()) == "the server closed the connection"
    assert reason(ConnectionError("[Errno 104] Connection reset by peer")) == "Connection reset by peer"
    assert reason(TimeoutError()) == "TimeoutError"
