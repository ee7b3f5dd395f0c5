"""The import contracts ([tool.importlinter] in pyproject.toml, a gate in .ci/run) hold on the package,
and an import that breaks one fails with a message naming the importing module and line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # grimp finds rrgrpc by importing it: this copy
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_the_package_keeps_its_contracts() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "imported", "broken"),
    [
        ("pool.payload", "rrgrpc.host", "rrgrpc.pool is not allowed to import rrgrpc.host"),  # L1 reaching L3
        ("metrics.plugin", "rrgrpc.otel", "rrgrpc.metrics is not allowed to import rrgrpc.otel"),  # peers at L2
        ("cli.stop", "rrgrpc.pool.state", "rrgrpc.cli is not allowed to import rrgrpc.pool"),  # an RPC client
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, imported: str, broken: str) -> None:
    shutil.copytree(ROOT / "rrgrpc", tmp_path / "rrgrpc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "rrgrpc" / (module.replace(".", "/") + ".py")
    line = path.read_text().count("\n") + 1
    with path.open("a") as f:
        f.write(f"import {imported}  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 1 kept, 1 broken." in result.stdout  # the other contract still holds
    assert broken in result.stdout
    assert f"rrgrpc.{module} -> {imported} (l.{line})" in result.stdout
