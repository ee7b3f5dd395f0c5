"""The layers contract ([tool.importlinter] in pyproject.toml, a gate in .ci/run) holds on the package,
and an import that points up breaks it with a message naming the importing module and line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # grimp finds rrgrpc by importing it: this copy
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_an_import_pointing_up_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rrgrpc", tmp_path / "rrgrpc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    payload = tmp_path / "rrgrpc" / "pool" / "payload.py"
    lines = payload.read_text().count("\n")
    with payload.open("a") as f:  # the pool (L1) reaching up into the host (L3)
        f.write("from rrgrpc import host  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    assert "rrgrpc.pool is not allowed to import rrgrpc.host" in result.stdout
    assert f"rrgrpc.pool.payload -> rrgrpc.host (l.{lines + 1})" in result.stdout
