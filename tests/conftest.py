"""pytest hooks: tests marked ``php`` are skipped only where no php binary exists (CI installs it)."""

from __future__ import annotations

import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("php"):
        return
    skip = pytest.mark.skip(reason="php is not installed (bash .ci/run installs it)")
    for item in items:
        if "php" in item.keywords:
            item.add_marker(skip)
