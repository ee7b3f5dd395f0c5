"""What each ``rr`` command loads: the startup cuts stay cut.

Each case runs the real command line in a fresh interpreter (``rrgrpc.cli.main`` with real
arguments) and reads ``sys.modules`` once it returned: ``rr serve`` must not pay for the client
commands' rich tables and jobs protobufs, and the RPC clients (``rr workers``, ``rr reset``) must
not load grpc.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import free_port

_RUN = textwrap.dedent("""
    import json, sys
    from rrgrpc.cli import main
    sys.argv = ["rr", *sys.argv[1:]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
""")


def loaded(tmp_path: Path, *args: str) -> tuple[object, set[str]]:
    """(exit code, modules loaded) of ``rr ARGS`` run to its end in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _RUN, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"])


def rpc_config(tmp_path: Path) -> Path:
    cfg = tmp_path / ".rr.yaml"
    cfg.write_text(f'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:{free_port()}\n')  # nobody listens there
    return cfg


def test_serve_loads_neither_the_client_tables_nor_the_jobs_protobufs(tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, "serve", "--help")
    assert code == 0
    assert "rrgrpc.cli.serve" in modules
    assert not {"rich", "rrgrpc.cli.jobs", "rrgrpc.cli.workers", "rrgrpc.jobs.jobs_pb2", "grpc"} & modules


@pytest.mark.parametrize("command", [["workers"], ["reset"], ["jobs", "--list"]])
def test_the_rpc_clients_load_no_grpc(tmp_path: Path, command: list[str]) -> None:
    code, modules = loaded(tmp_path, "-c", str(rpc_config(tmp_path)), *command)
    assert code == 1  # nothing listens: the one-line error, exit code 1
    assert f"rrgrpc.cli.{command[0]}" in modules
    assert "grpc" not in modules and "grpc_tools" not in modules


def test_rr_help_still_lists_every_command(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rrgrpc", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    rows = proc.stdout.split("Commands:")[1].splitlines()
    names = [row.split()[0] for row in rows if row.startswith("  ") and not row.startswith("   ")]
    assert names == ["jobs", "reset", "serve", "stop", "workers"]

