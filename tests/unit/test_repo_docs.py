"""The repository's own texts: docs link only inside the repo, ``rr --help`` is plain text, and
the package metadata builds without setuptools' license deprecation banner."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from rrgrpc.cli import rr
from tests.helpers import ROOT

_SKIP = {".venv", ".cache", "node_modules", ".git", "build"}
_LINK = re.compile(r"\]\(([^)#\s]+)")


def markdown_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.md") if not _SKIP & set(p.relative_to(ROOT).parts)]


def test_docs_never_point_outside_the_repository() -> None:
    outside = []
    for path in markdown_files():
        text = path.read_text()
        for target in _LINK.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                outside.append(f"{path.relative_to(ROOT)}: ({target})")
        outside += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"(?:\.\./)+shared/\S*|`shared/\S*`", text)]
    assert outside == []


def test_help_texts_have_no_rest_markup() -> None:
    for args in ([], ["serve"], ["stop"], ["workers"], ["reset"]):
        result = CliRunner().invoke(rr, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "``" not in result.output and ":func:" not in result.output, (args, result.output)


def test_license_is_a_pep639_expression() -> None:
    # a {text = ...} table makes setuptools >= 77 print a deprecation banner on every install
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])
