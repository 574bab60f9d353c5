# mypy: disable-error-code="import-untyped"
"""schemas/ocsf/compile.py renders the OCSF metaschema as OCSF means it (on a tiny repo)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCRIPT = Path(__file__).resolve().parents[2] / "schemas" / "ocsf" / "compile.py"


@pytest.fixture(scope="module")
def compiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ocsf_compile", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ocsf_compile"] = module
    spec.loader.exec_module(module)
    return module


def write(root: Path, rel: str, data: dict[str, Any]) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def attr(caption: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"caption": caption, "description": caption, "type": type_, **extra}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write(tmp_path, "version.json", {"version": "9.9.9"})
    write(
        tmp_path,
        "dictionary.json",
        {
            "attributes": {
                "activity_id": attr("Activity ID", "integer_t", enum={"0": {"caption": "Unknown"}}),
                "activity_name": attr("Activity", "string_t"),
                "category_uid": attr("Category ID", "integer_t"),
                "class_uid": attr("Class ID", "integer_t"),
                "type_uid": attr("Type ID", "long_t"),
                "time": attr("Time", "timestamp_t"),
                "metadata": attr("Metadata", "metadata"),
                "version": attr("Version", "string_t"),
                "unmapped": attr("Unmapped", "object"),
                "actor": attr("Actor", "actor"),
                "risk_score": attr("Risk", "integer_t"),
                "port": attr("Port", "port_t"),
                "ip": attr("IP", "ip_t"),
                "name": attr("Name", "string_t"),
                "uid": attr("UID", "string_t"),
                "labels": attr("Labels", "string_t", is_array=True),
                "profiles": attr("Profiles", "string_t", is_array=True),
                "old": attr("Old", "string_t", **{"@deprecated": {"message": "x", "since": "1"}}),
            },
            "types": {
                "attributes": {
                    "string_t": {"caption": "String"},
                    "integer_t": {"caption": "Integer"},
                    "long_t": {"caption": "Long"},
                    "timestamp_t": {"caption": "Timestamp", "type": "long_t"},
                    "port_t": {"caption": "Port", "type": "integer_t", "range": [0, 65535]},
                    "ip_t": {
                        "caption": "IP",
                        "type": "string_t",
                        "regex": "^[0-9.]+$",
                        "max_len": 40,
                    },
                }
            },
        },
    )
    write(
        tmp_path, "categories.json", {"attributes": {"findings": {"uid": 2, "caption": "Findings"}}}
    )
    write(
        tmp_path,
        "profiles/host.json",
        {
            "meta": "profile",
            "name": "host",
            "caption": "Host",
            "attributes": {
                "actor": {"requirement": "required"},
                "risk_score": {"requirement": "optional"},
            },
        },
    )
    base = {
        "name": "base_event",
        "caption": "Base Event",
        "category": "other",
        "attributes": {
            "$include": ["profiles/host.json"],
            "activity_id": {"requirement": "required", "enum": {"99": {"caption": "Other"}}},
            "activity_name": {"requirement": "optional"},
            "category_uid": {"requirement": "required"},
            "class_uid": {"requirement": "required"},
            "type_uid": {"requirement": "required"},
            "time": {"requirement": "required"},
            "metadata": {"requirement": "required"},
            "unmapped": {"requirement": "optional"},
        },
    }
    write(tmp_path, "events/base_event.json", base)
    write(
        tmp_path,
        "events/findings/finding.json",
        {
            "name": "finding",
            "caption": "Finding",
            "category": "findings",
            "extends": "base_event",
            "attributes": {"activity_id": {"enum": {"1": {"caption": "Create"}}}},
        },
    )
    write(
        tmp_path,
        "events/findings/thing_found.json",
        {
            "uid": 4,
            "name": "thing_found",
            "caption": "Thing Found",
            "extends": "finding",
            "attributes": {
                "risk_score": {"requirement": "optional", "profile": None},
                "port": {"requirement": "recommended"},
                "old": {"requirement": "optional"},
            },
        },
    )
    write(
        tmp_path, "objects/object.json", {"name": "object", "caption": "Object", "attributes": {}}
    )
    write(
        tmp_path,
        "objects/_entity.json",
        {
            "name": "_entity",
            "caption": "Entity",
            "extends": "object",
            "constraints": {"at_least_one": ["name", "uid"]},
            "attributes": {
                "name": {"requirement": "recommended"},
                "uid": {"requirement": "recommended"},
            },
        },
    )
    write(
        tmp_path,
        "objects/actor.json",
        {
            "name": "actor",
            "caption": "Actor",
            "extends": "_entity",
            "attributes": {
                "ip": {"requirement": "optional"},
                "labels": {"requirement": "optional"},
            },
        },
    )
    write(
        tmp_path,
        "objects/metadata.json",
        {
            "name": "metadata",
            "caption": "Metadata",
            "extends": "object",
            "attributes": {
                "version": {"requirement": "required"},
                "profiles": {"requirement": "optional"},
            },
        },
    )
    write(
        tmp_path,
        "objects/observable.json",
        {
            "name": "observable",
            "caption": "Observable",
            "attributes": {"type_id": {"enum": {"0": {"caption": "Unknown"}}}},
        },
    )
    return tmp_path


def compile_(compiler: ModuleType, repo: Path) -> dict[str, Any]:
    schema: dict[str, Any] = compiler.Compiler(compiler.Repo(repo)).compile_class(
        "thing_found", "abc123"
    )
    return schema


def consts(prop: dict[str, Any]) -> list[Any]:
    return [m["const"] for m in prop["oneOf"]]


def test_structure(compiler: ModuleType, repo: Path) -> None:
    schema = compile_(compiler, repo)
    Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert schema["$id"].endswith("/ocsf/9.9.9/thing_found.schema.json")
    assert "commit abc123" in schema["$comment"]
    assert consts(props["class_uid"]) == [2004]
    assert consts(props["category_uid"]) == [2]
    assert consts(props["type_uid"]) == [200400, 200401, 200499]
    # enum members merge along extends and from the dictionary; the specific caption wins
    assert props["activity_id"]["oneOf"] == [
        {"const": 0, "title": "Unknown"},
        {"const": 1, "title": "Create"},
        {"const": 99, "title": "Other"},
    ]
    assert schema["required"] == [
        "activity_id", "category_uid", "class_uid", "metadata", "time", "type_uid"
    ]  # fmt: skip
    assert props["time"]["type"] == "integer"
    assert props["port"] == {"title": "Port", "type": "integer", "minimum": 0, "maximum": 65535}
    assert props["unmapped"] == {"title": "Unmapped", "type": "object"}
    assert props["old"]["deprecated"] is True
    assert schema["additionalProperties"] is False
    actor = schema["$defs"]["actor"]
    assert actor["anyOf"] == [{"required": ["name"]}, {"required": ["uid"]}]  # from _entity
    assert actor["properties"]["ip"] == {
        "title": "IP", "type": "string", "pattern": "^[0-9.]+$", "maxLength": 40
    }  # fmt: skip
    assert actor["properties"]["labels"] == {
        "title": "Labels", "type": "array", "items": {"type": "string"}
    }  # fmt: skip
    assert set(schema["$defs"]) == {"actor", "metadata"}  # only what the class reaches


def test_profiles(compiler: ModuleType, repo: Path) -> None:
    schema = compile_(compiler, repo)
    validator = Draft202012Validator(schema)
    finding = {
        "activity_id": 1,
        "category_uid": 2,
        "class_uid": 2004,
        "type_uid": 200401,
        "time": 1,
        "metadata": {"version": "9.9.9"},
    }
    assert not list(validator.iter_errors(finding))
    # risk_score left its profile ("profile": null in the class): always allowed
    assert not list(validator.iter_errors({**finding, "risk_score": 5}))
    # actor is the host profile's: only with the profile named, and then required
    with_actor = {**finding, "actor": {"uid": "S1"}}
    assert list(validator.iter_errors(with_actor))
    named = {"version": "9.9.9", "profiles": ["host"]}
    assert not list(validator.iter_errors({**with_actor, "metadata": named}))
    assert list(validator.iter_errors({**finding, "metadata": named}))  # host requires actor
    assert list(validator.iter_errors({**finding, "metadata": named, "actor": {}}))  # anyOf


def test_deterministic_and_cli(
    compiler: ModuleType, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compiler.main([str(repo), "--class", "thing_found", "--commit", "abc123"]) == 0
    first = capsys.readouterr().out
    assert compiler.main([str(repo), "--class", "thing_found", "--commit", "abc123"]) == 0
    assert capsys.readouterr().out == first
    assert json.loads(first) == compile_(compiler, repo)


def test_errors_name_the_problem(
    compiler: ModuleType, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compiler.main([str(repo), "--class", "nothing"]) == 2
    assert "no event named 'nothing'" in capsys.readouterr().err
    dictionary = json.loads((repo / "dictionary.json").read_text())
    dictionary["attributes"]["port"]["type"] = "harbour"
    (repo / "dictionary.json").write_text(json.dumps(dictionary))
    assert compiler.main([str(repo), "--class", "thing_found"]) == 2
    assert "unknown type 'harbour'" in capsys.readouterr().err
