"""pytest hooks: the php marker (skipped only where no php binary exists; CI installs it), grpc env,
and a cache directory of the session's own (the proto compile cache never lands in the home)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("php"):
        return
    skip = pytest.mark.skip(reason="php is not installed (bash .ci/run installs it)")
    for item in items:
        if "php" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    # hosts run in-process and spawn PHP workers; grpc-core must not warn about fork on each spawn
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    # rr serve subprocesses inherit it; rrgrpc.grpc.protos caches compiled protos under it
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="rr-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)
