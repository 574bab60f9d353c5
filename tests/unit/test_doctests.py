"""Docstring examples in pipeline and simbank modules run as tests."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import pipeline
import simbank

PACKAGES = [Path(pkg.__file__).resolve().parent for pkg in (pipeline, simbank)]


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((root.name, *parts))


MODULES = sorted(
    _module_name(root, path)
    for root in PACKAGES
    for path in root.rglob("*.py")
    if ">>> " in path.read_text(encoding="utf-8")
)


def test_modules_with_examples_were_found() -> None:
    assert "pipeline.timeutil" in MODULES
    assert "pipeline.alerts.ids" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted > 0, f"{name} has '>>> ' but no doctest ran"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
