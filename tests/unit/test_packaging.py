"""Packaging: every dependency pinned in constraints.txt, the installs use it, the license."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def pins() -> dict[str, Version]:
    out: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"constraints.txt: not an exact pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in out, f"{name} pinned twice"
        out[name] = Version(m.group(2))
    return out


def requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    reqs = requirements()
    assert len(reqs) >= 10
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in constraints.txt: run make constraints"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{req.name}: pinned {pinned[name]} is outside {req.specifier}: run make constraints"
        )
    assert canonicalize_name(PYPROJECT["project"]["name"]) not in pinned  # not the project itself


def test_the_installed_direct_dependencies_are_the_pinned_versions() -> None:
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        installed = Version(metadata.version(req.name))
        assert installed == pinned[name], (
            f"{req.name} {installed} installed, {pinned[name]} pinned: run make install"
        )


def test_installs_use_the_constraints() -> None:
    header = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()[:3]
    assert any("make constraints" in line for line in header), "says how to regenerate it"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install -q -c constraints.txt -e '.[test,report]'" in makefile
    assert re.search(r"^constraints:", makefile, re.M)
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install -c constraints.txt ." in dockerfile
    copied = " ".join(line for line in dockerfile.splitlines() if line.startswith("COPY"))
    for name in ("constraints.txt", "LICENSE", "NOTICE", "pyproject.toml"):
        assert name in copied, name


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "the access-watch authors" in (ROOT / "NOTICE").read_text(encoding="utf-8")
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert set(PYPROJECT["project"]["license-files"]) == {"LICENSE", "NOTICE"}


def test_console_scripts() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["pipeline"] == "pipeline.cli:main"
    entry = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert entry.get("pipeline") == "pipeline.cli:main", "installed with make install"
