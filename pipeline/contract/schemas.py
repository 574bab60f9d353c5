"""``schemas/*.schema.json``, generated from the records of :mod:`pipeline.contract.records`.

The records are the one declaration; the JSON Schemas (draft 2020-12) are
what other teams read. ``pipeline schemas --write`` regenerates them and
``pipeline schemas --check`` (and ``tests/unit/test_schemas.py``) fails when
the committed files differ from what the records say.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

import msgspec

from pipeline.contract.records import (
    AccessEvent,
    Alert,
    AlertFeedback,
    Assignment,
    CustomerProfile,
    DeadLetter,
    StaffRecord,
)

BASE_ID: Final = "https://schemas.access-watch.internal/v1/"
FILES: Final[dict[str, type[msgspec.Struct]]] = {
    "access-event.schema.json": AccessEvent,
    "staff-record.schema.json": StaffRecord,
    "assignment.schema.json": Assignment,
    "customer-profile.schema.json": CustomerProfile,
    "alert-feedback.schema.json": AlertFeedback,
    "alert.schema.json": Alert,
    "dead-letter.schema.json": DeadLetter,
}
_BASE64: Final = "^[A-Za-z0-9+/]*={0,2}$"
# Rules across fields, which a type cannot say.
EXTRA: Final[dict[type[msgspec.Struct], dict[str, Any]]] = {
    AccessEvent: {
        "if": {"properties": {"customer_id": {"type": "null"}}, "required": ["customer_id"]},
        "then": {"properties": {"action": {"const": "search_customers"}}},
        "$comment": "customer_id may be null only for search_customers",
    },
    DeadLetter: {
        "allOf": [
            {
                "$comment": "A base64 original holds only base64 characters.",
                "if": {"required": ["encoding"], "properties": {"encoding": {"const": "base64"}}},
                "then": {"properties": {"original": {"pattern": _BASE64}}},
            },
            {
                "$comment": "A base64 key holds only base64 characters.",
                "if": {
                    "required": ["key_encoding"],
                    "properties": {"key_encoding": {"const": "base64"}},
                },
                "then": {"properties": {"key": {"pattern": _BASE64}}},
            },
        ]
    },
}


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def generate() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every record of the contract."""
    out: dict[str, dict[str, Any]] = {}
    for name, cls in FILES.items():
        (_,), components = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
        body = dict(components.pop(cls.__name__))
        doc = " ".join((cls.__doc__ or "").split())
        body.pop("title", None)
        body.pop("description", None)
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": BASE_ID + name,
            "title": cls.__name__,
            "description": doc,
            **_strip_titles(body),
            **EXTRA.get(cls, {}),
        }
        if components:
            schema["$defs"] = {k: _strip_titles(v) for k, v in sorted(components.items())}
        out[name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def differences(folder: Path) -> list[str]:
    """Files of ``folder`` that differ from the generated schemas (or are missing)."""
    return [
        name
        for name, schema in generate().items()
        if not (folder / name).is_file()
        or (folder / name).read_text(encoding="utf-8") != render(schema)
    ]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("schemas"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="regenerate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 if a file differs")


def run(args: argparse.Namespace) -> int:
    if args.write:
        for name, schema in generate().items():
            (args.dir / name).write_text(render(schema), encoding="utf-8")
        print(f"wrote {len(FILES)} schemas to {args.dir}")
        return 0
    stale = differences(args.dir)
    if stale:
        print("out of date (run `pipeline schemas --write`): " + ", ".join(stale))
        return 1
    print(f"{len(FILES)} schemas up to date")
    return 0
