"""Docstring examples in pipeline modules run as tests."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import pipeline

PACKAGE_DIR = Path(pipeline.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("pipeline", *parts))


MODULES = sorted(
    _module_name(path)
    for path in PACKAGE_DIR.rglob("*.py")
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
