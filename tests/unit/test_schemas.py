# mypy: disable-error-code="import-untyped"
"""The JSON Schemas under schemas/ are valid, agree with the code, and judge their examples."""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend

from pipeline.contract import records
from pipeline.contract.decode import ERROR_CODES, encode
from pipeline.contract.schemas import differences, generate, render
from pipeline.timeutil import RFC3339_PATTERN

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"
RECORDS = (
    "access-event",
    "staff-record",
    "assignment",
    "customer-profile",
    "alert-feedback",
    "alert",
    "dead-letter",
)
TIMESTAMP_FIELDS = {
    "access-event": ["occurred_at"],
    "staff-record": ["effective_at"],
    "assignment": ["valid_from", "valid_to"],
    "customer-profile": ["updated_at"],
    "alert-feedback": ["decided_at"],
    "alert": ["created_at", "first_event_at", "last_event_at"],
    "dead-letter": ["received_at"],
}
_END_ANCHOR = re.compile(r"(?<!\\)\$")


def _ecma_pattern(
    validator: Validator, pattern: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """``pattern`` with ECMA-262 semantics, as JSON Schema specifies: ``$`` matches only at
    the very end. (Python's ``$`` also matches before a final newline.)"""
    if isinstance(instance, str) and not re.search(_END_ANCHOR.sub(r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = extend(Draft202012Validator, validators={"pattern": _ecma_pattern})


def load_schema(record: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMAS / f"{record}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def examples(kind: str) -> list[Any]:
    return [
        pytest.param(record, path, id=f"{record}/{kind}/{path.stem}")
        for record in RECORDS
        for path in sorted((EXAMPLES / record / kind).glob("*.json"))
    ]


@pytest.mark.parametrize("record", RECORDS)
def test_schema_is_valid_draft_2020_12(record: str) -> None:
    schema = load_schema(record)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{record}.schema.json")
    assert schema["title"] and schema["description"]
    assert set(schema["required"]) <= set(schema["properties"])
    assert schema.get("additionalProperties", True) is not False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{record}.{name} has no description"


def test_schema_ids_are_unique() -> None:
    ids = [load_schema(r)["$id"] for r in RECORDS]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("record", RECORDS)
def test_every_record_has_enough_examples(record: str) -> None:
    valid = {p.stem for p in (EXAMPLES / record / "valid").glob("*.json")}
    invalid = {p.stem for p in (EXAMPLES / record / "invalid").glob("*.json")}
    assert len(valid) >= 3 and "minimal" in valid
    assert {"every-optional-field", "full-with-unknown-extra-field"} & valid
    assert len(invalid) >= 5


@pytest.mark.parametrize(("record", "path"), examples("valid"))
def test_valid_example_validates(record: str, path: Path) -> None:
    EcmaValidator(load_schema(record)).validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(("record", "path"), examples("invalid"))
def test_invalid_example_fails(record: str, path: Path) -> None:
    errors = list(
        EcmaValidator(load_schema(record)).iter_errors(json.loads(path.read_text(encoding="utf-8")))
    )
    assert errors, f"{path} should not validate"


def test_committed_schemas_equal_the_generated_ones() -> None:
    assert differences(SCHEMAS) == [], "run `pipeline schemas --write`"
    assert sorted(generate()) == sorted(f"{r}.schema.json" for r in RECORDS)


def test_a_stale_schema_is_detected(tmp_path: Path) -> None:
    for name, schema in generate().items():
        (tmp_path / name).write_text(render(schema), encoding="utf-8")
    assert differences(tmp_path) == []
    stale = tmp_path / "alert.schema.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("critical", "severe"))
    assert differences(tmp_path) == ["alert.schema.json"]


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:
        (inner,) = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return dict(inner)
    return prop


@pytest.mark.parametrize("record", RECORDS)
def test_timestamps_use_the_timeutil_pattern(record: str) -> None:
    props = load_schema(record)["properties"]
    for name in TIMESTAMP_FIELDS[record]:
        assert _non_null(props[name])["pattern"] == RFC3339_PATTERN
        assert _non_null(props[name])["format"] == "date-time"


def test_minimal_example_has_only_required_fields() -> None:
    for record in RECORDS:
        minimal = json.loads(
            (EXAMPLES / record / "valid" / "minimal.json").read_text(encoding="utf-8")
        )
        assert set(minimal) == set(load_schema(record)["required"]), record


def test_every_optional_field_example_has_every_field() -> None:
    for record in RECORDS:
        path = EXAMPLES / record / "valid" / "every-optional-field.json"
        if path.exists():
            assert set(json.loads(path.read_text(encoding="utf-8"))) >= set(
                load_schema(record)["properties"]
            )


@pytest.mark.parametrize(
    ("record", "field", "literal"),
    [
        ("access-event", "action", records.Action),
        ("access-event", "channel", records.Channel),
        ("access-event", "outcome", records.Outcome),
        ("staff-record", "role", records.Role),
        ("staff-record", "status", records.StaffStatus),
        ("assignment", "relation", records.Relation),
        ("assignment", "op", records.AssignmentOp),
        ("customer-profile", "segment", records.Segment),
        ("customer-profile", "sensitivity", records.Sensitivity),
        ("alert-feedback", "verdict", records.Verdict),
        ("alert", "severity", records.Severity),
    ],
)
def test_enums_match_records(record: str, field: str, literal: Any) -> None:
    values = load_schema(record)["properties"][field]["enum"]
    assert len(values) == len(set(values))
    assert set(values) == set(get_args(literal))


def test_dead_letter_error_codes_match_the_catalogue() -> None:
    code = load_schema("dead-letter")["$defs"]["ErrorInfo"]["properties"]["code"]
    assert code["examples"] == list(records.DEAD_LETTER_CODES)
    assert set(ERROR_CODES) <= set(records.DEAD_LETTER_CODES)
    assert all(re.search(code["pattern"], c) for c in records.DEAD_LETTER_CODES)


def test_readme_lists_every_error_code() -> None:
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    for code in records.DEAD_LETTER_CODES:
        assert f"`{code}`" in readme, code


def test_every_known_time_zone_fits_the_timezone_pattern() -> None:
    # The decoder accepts exactly the tz database names; none may fail the schema.
    pattern = load_schema("staff-record")["properties"]["timezone"]["pattern"]
    misfits = [z for z in zoneinfo.available_timezones() if not re.search(pattern, z)]
    assert records.DEFAULT_TIMEZONE in zoneinfo.available_timezones()
    assert misfits == []


@pytest.mark.parametrize(
    ("text", "python_re", "ecma"),
    [("2026-03-02T01:30:00Z", True, True), ("2026-03-02T01:30:00Z\n", True, False)],
)
def test_ecma_validator_differs_from_python_re_only_at_final_newline(
    text: str, python_re: bool, ecma: bool
) -> None:
    schema = {"type": "string", "pattern": RFC3339_PATTERN}
    assert Draft202012Validator(schema).is_valid(text) is python_re
    assert EcmaValidator(schema).is_valid(text) is ecma


def test_alert_record_wire_form_validates() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 2, 1, 30, 15, 123000, tzinfo=UTC)
    alert = records.Alert(
        alert_id="al-1",
        revision=2,
        schema_version=1,
        created_at=at,
        first_event_at=at,
        last_event_at=at,
        staff_id="S1",
        branch_id="BR1",
        severity="high",
        risk_score=82.456,
        reasons=[records.Reason("bulk_access", "142 unassigned customers", 45.0)],
        model=None,
        event_ids=["evt-1", "evt-2"],
        event_count=142,
        customer_refs=["cref-9f2b1c0e"],
        summary="S1 viewed 142 unassigned customers",
    )
    validator = EcmaValidator(load_schema("alert"))
    validator.validate(json.loads(encode(alert)))
    assert "status" not in json.loads(encode(alert))  # absent means open
    model = records.ModelInfo(
        "hst", "1", 0.9, 0.8, [records.Feature("events", 1.0, 0.1, 0.7, own_baseline=0.2)]
    )
    closed = msgspec.structs.replace(alert, model=model, status="closed")
    validator.validate(json.loads(encode(closed)))
    assert json.loads(encode(closed))["status"] == "closed"
    assert not validator.is_valid(json.loads(encode(msgspec.structs.replace(alert, event_ids=[]))))
