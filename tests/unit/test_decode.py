# mypy: disable-error-code="import-untyped"
"""pipeline.contract.decode: error codes, defaults, timestamps and dead letters."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from pipeline.contract.decode import (
    ERROR_CODES,
    MAX_VALUE_BYTES,
    DecodeError,
    dead_letter,
    decode_access_event,
    decode_assignment,
    decode_customer_profile,
    decode_feedback,
    decode_staff_record,
)
from pipeline.contract.records import AccessEvent, Assignment, StaffRecord
from pipeline.errors import PoisonError

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

EVENT: dict[str, Any] = {
    "event_id": "evt-1",
    "occurred_at": "2026-03-02T09:30:00+08:00",
    "staff_id": "S1",
    "customer_id": "C1",
    "action": "view_balance",
    "channel": "crm_web",
    "branch_id": "BR1",
}
STAFF: dict[str, Any] = {
    "staff_id": "S1",
    "branch_id": "BR1",
    "role": "teller",
    "status": "active",
    "effective_at": "2026-01-01T00:00:00Z",
}
ASSIGNMENT: dict[str, Any] = {
    "staff_id": "S1",
    "customer_id": "C1",
    "relation": "backup",
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_to": None,
}
PROFILE: dict[str, Any] = {
    "customer_id": "C1",
    "home_branch_id": "BR1",
    "segment": "retail",
    "sensitivity": "normal",
    "related_staff_ids": ["S2", "S3"],
    "updated_at": "2026-01-01T00:00:00Z",
}
FEEDBACK: dict[str, Any] = {
    "alert_id": "al-1",
    "verdict": "false_positive",
    "analyst_id": "A1",
    "decided_at": "2026-01-01T00:00:00Z",
}
T_0130Z = 1772415000.0  # 2026-03-02T01:30:00Z


def enc(obj: object) -> bytes:
    return orjson.dumps(obj)


def with_(base: dict[str, Any], **changes: Any) -> bytes:
    return enc({**base, **changes})


def without(base: dict[str, Any], name: str) -> bytes:
    return enc({k: v for k, v in base.items() if k != name})


def error_of(decode: Callable[[bytes | None], object], raw: bytes | None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(raw)
    assert info.value.code in ERROR_CODES
    return info.value


# --- error codes -----------------------------------------------------------------

CASES: list[tuple[str, Callable[[bytes | None], object], bytes | None, str | None]] = [
    ("tombstone", decode_staff_record, None, None),
    ("value_too_large", decode_access_event, b" " * (MAX_VALUE_BYTES + 1), None),
    ("not_utf8", decode_access_event, b'{"event_id": "\xff"}', None),
    ("malformed_json", decode_access_event, b'{"event_id": ', None),
    ("malformed_json", decode_access_event, b"\xef\xbb\xbf{}", None),
    ("not_an_object", decode_access_event, b"[1, 2]", None),
    ("not_an_object", decode_feedback, b"null", None),
    ("missing_field", decode_access_event, without(EVENT, "staff_id"), "staff_id"),
    ("missing_field", decode_access_event, without(EVENT, "customer_id"), "customer_id"),
    ("missing_field", decode_assignment, without(ASSIGNMENT, "valid_to"), "valid_to"),
    ("missing_field", decode_customer_profile, without(PROFILE, "updated_at"), "updated_at"),
    ("missing_field", decode_feedback, without(FEEDBACK, "verdict"), "verdict"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count=True), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count=1.5), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count="3"), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, staff_id=None), "staff_id"),
    ("wrong_type", decode_access_event, with_(EVENT, outcome=None), "outcome"),
    ("wrong_type", decode_access_event, with_(EVENT, customer_id=42), "customer_id"),
    ("wrong_type", decode_access_event, with_(EVENT, occurred_at=1772415000), "occurred_at"),
    ("wrong_type", decode_access_event, with_(EVENT, session_id=["x"]), "session_id"),
    ("wrong_type", decode_staff_record, with_(STAFF, shift_start=None), "shift_start"),
    ("wrong_type", decode_staff_record, with_(STAFF, timezone=None), "timezone"),
    ("wrong_type", decode_assignment, with_(ASSIGNMENT, valid_to=0), "valid_to"),
    ("wrong_type", decode_customer_profile, with_(PROFILE, related_staff_ids="S2"), None),
    ("wrong_type", decode_customer_profile, with_(PROFILE, related_staff_ids=[7]), None),
    ("wrong_type", decode_feedback, with_(FEEDBACK, comment=None), "comment"),
    ("unknown_enum", decode_access_event, with_(EVENT, action="delete_all"), "action"),
    ("unknown_enum", decode_access_event, with_(EVENT, outcome="SUCCESS"), "outcome"),
    ("unknown_enum", decode_staff_record, with_(STAFF, status="retired"), "status"),
    ("unknown_enum", decode_assignment, with_(ASSIGNMENT, op="delete"), "op"),
    ("unknown_enum", decode_customer_profile, with_(PROFILE, segment="sme"), "segment"),
    ("unknown_enum", decode_feedback, with_(FEEDBACK, verdict="maybe"), "verdict"),
    ("bad_timestamp", decode_access_event, with_(EVENT, occurred_at="2026-03-02T09:30:00"), None),
    ("bad_timestamp", decode_access_event, with_(EVENT, occurred_at="2026-03-02"), None),
    ("bad_timestamp", decode_access_event, with_(EVENT, occurred_at="2026-02-30T00:00:00Z"), None),
    ("bad_timestamp", decode_access_event, with_(EVENT, occurred_at="2026-03-02T23:59:60Z"), None),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T01:00:00+05:60"),
        None,
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T01:00:00Z\n"),
        None,
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="0001-01-01T00:00:00+00:01"),
        None,
    ),
    ("bad_timestamp", decode_assignment, with_(ASSIGNMENT, valid_to="2026-13-01T00:00:00Z"), None),
    ("invalid_value", decode_access_event, with_(EVENT, event_id=""), "event_id"),
    ("invalid_value", decode_access_event, with_(EVENT, event_id="e" * 129), "event_id"),
    ("invalid_value", decode_access_event, with_(EVENT, staff_id="s" * 65), "staff_id"),
    ("invalid_value", decode_access_event, with_(EVENT, customer_id="c" * 65), "customer_id"),
    ("invalid_value", decode_access_event, with_(EVENT, customer_id=""), "customer_id"),
    ("invalid_value", decode_access_event, with_(EVENT, customer_id=None), "customer_id"),
    ("invalid_value", decode_access_event, with_(EVENT, record_count=-1), "record_count"),
    ("invalid_value", decode_access_event, with_(EVENT, branch_id=""), "branch_id"),
    ("invalid_value", decode_staff_record, with_(STAFF, shift_end="24:00"), "shift_end"),
    ("invalid_value", decode_staff_record, with_(STAFF, shift_start="8:30"), "shift_start"),
    ("invalid_value", decode_staff_record, with_(STAFF, timezone="Mars/Olympus"), "timezone"),
    ("invalid_value", decode_staff_record, with_(STAFF, timezone="asia/shanghai"), "timezone"),
    ("invalid_value", decode_customer_profile, with_(PROFILE, related_staff_ids=["S2", ""]), None),
    ("invalid_value", decode_feedback, with_(FEEDBACK, analyst_id=""), "analyst_id"),
]


@pytest.mark.parametrize(
    ("code", "decode", "raw", "field"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_error_code(
    code: str, decode: Callable[[bytes | None], object], raw: bytes | None, field: str | None
) -> None:
    error = error_of(decode, raw)
    assert error.code == code, error.message
    assert str(error).startswith(f"{code}: ")
    if field is not None:
        assert error.field == field
        assert repr(field) in error.message


def test_every_error_code_is_exercised() -> None:
    assert {case[0] for case in CASES} == set(ERROR_CODES)


def test_nested_field_is_named() -> None:
    error = error_of(decode_customer_profile, with_(PROFILE, related_staff_ids=["S2", 3]))
    assert error.field == "related_staff_ids[1]"


def test_value_of_exactly_the_limit_is_read() -> None:
    raw = enc(EVENT)
    padded = raw[:-1] + b" " * (MAX_VALUE_BYTES - len(raw)) + b"}"
    assert len(padded) == MAX_VALUE_BYTES
    assert decode_access_event(padded).event_id == "evt-1"
    assert error_of(decode_access_event, padded + b" ").code == "value_too_large"


def test_first_failure_wins_in_documented_order() -> None:
    # Over-large beats not-UTF-8; missing beats a later field's wrong type.
    assert error_of(decode_access_event, b"\xff" * (MAX_VALUE_BYTES + 1)).code == "value_too_large"
    raw = enc({k: v for k, v in EVENT.items() if k != "event_id"} | {"record_count": "x"})
    assert error_of(decode_access_event, raw).field == "event_id"


def test_long_values_are_cut_in_messages() -> None:
    error = error_of(decode_access_event, with_(EVENT, action="x" * 5000))
    assert error.code == "unknown_enum"
    assert len(error.message) < 200


# --- defaults and values -------------------------------------------------------------


def test_access_event_defaults() -> None:
    event = decode_access_event(enc(EVENT))
    assert event == AccessEvent(
        event_id="evt-1",
        occurred_at=T_0130Z,
        staff_id="S1",
        customer_id="C1",
        action="view_balance",
        channel="crm_web",
        branch_id="BR1",
    )
    assert (event.record_count, event.outcome, event.terminal_id) == (1, "success", None)


def test_access_event_every_field() -> None:
    raw = with_(
        EVENT,
        terminal_id="T1",
        source_ip="::1",
        session_id="sess",
        authorization_ref="AUTH-9",
        record_count=40,
        outcome="denied",
        unknown_extra={"nested": [1, 2]},
    )
    event = decode_access_event(raw)
    assert (event.terminal_id, event.source_ip, event.session_id) == ("T1", "::1", "sess")
    assert (event.authorization_ref, event.record_count, event.outcome) == ("AUTH-9", 40, "denied")


def test_integral_float_record_count_becomes_int() -> None:
    event = decode_access_event(with_(EVENT, record_count=3.0))
    assert event.record_count == 3 and type(event.record_count) is int


def test_empty_optional_text_reads_as_absent() -> None:
    event = decode_access_event(with_(EVENT, authorization_ref="", terminal_id=None))
    assert event.authorization_ref is None and event.terminal_id is None


def test_search_may_have_null_or_real_customer() -> None:
    assert (
        decode_access_event(with_(EVENT, action="search_customers", customer_id=None)).customer_id
        is None
    )
    assert decode_access_event(with_(EVENT, action="search_customers")).customer_id == "C1"


def test_staff_record_defaults_and_shift() -> None:
    assert decode_staff_record(enc(STAFF)) == StaffRecord(
        "S1", "BR1", "teller", "active", 1767225600.0, None, None, "Asia/Shanghai"
    )
    staff = decode_staff_record(
        with_(STAFF, shift_start="22:00", shift_end="06:00", timezone="Europe/London")
    )
    assert (staff.shift_start, staff.shift_end, staff.timezone) == (
        "22:00",
        "06:00",
        "Europe/London",
    )


def test_assignment_defaults_and_valid_to() -> None:
    assert decode_assignment(enc(ASSIGNMENT)) == Assignment(
        "S1", "C1", "backup", 1767225600.0, None, "assign"
    )
    closed = decode_assignment(with_(ASSIGNMENT, valid_to="2026-03-02T09:30:00+08:00", op="revoke"))
    assert (closed.valid_to, closed.op) == (T_0130Z, "revoke")


def test_customer_profile_related_staff_is_a_tuple() -> None:
    profile = decode_customer_profile(enc(PROFILE))
    assert profile.related_staff_ids == ("S2", "S3")
    assert decode_customer_profile(with_(PROFILE, related_staff_ids=[])).related_staff_ids == ()


def test_feedback_comment_optional() -> None:
    assert decode_feedback(enc(FEEDBACK)).comment is None
    assert decode_feedback(with_(FEEDBACK, comment="ok")).comment == "ok"


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-03-02T01:30:00Z", T_0130Z),
        ("2026-03-02T01:30:00z", T_0130Z),
        ("2026-03-02t01:30:00+00:00", T_0130Z),
        ("2026-03-02T01:30:00-00:00", T_0130Z),
        ("2026-03-02 09:30:00+08:00", T_0130Z),
        ("2026-03-01T20:00:00-05:30", T_0130Z),
        ("2026-03-02T07:15:00+05:45", T_0130Z),
        ("2026-03-02T01:30:00.250Z", T_0130Z + 0.25),
        ("2026-03-02T09:30:00.5+08:00", T_0130Z + 0.5),
        ("2024-02-29T00:00:00Z", 1709164800.0),
        ("1970-01-01T08:00:00+08:00", 0.0),
        ("0001-01-01T00:00:00Z", -62135596800.0),
        ("9999-12-31T23:59:59Z", 253402300799.0),
    ],
)
def test_timestamps_become_utc_epoch_seconds(text: str, epoch: float) -> None:
    assert decode_access_event(with_(EVENT, occurred_at=text)).occurred_at == pytest.approx(
        epoch, abs=1e-6
    )


@pytest.mark.parametrize(
    "text",
    [
        "2025-02-29T00:00:00Z",  # not a leap year
        "2026-04-31T00:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T01:60:00Z",
        "2026-03-02T01:30:00+24:00",
        "0000-06-01T00:00:00Z",
        "9999-12-31T23:59:59-00:01",
        "2026-03-02T01:30Z",
        "2026-03-02T01:30:00 +08:00",
        "2026-03-02T01:30:00+0800",
        "",
    ],
)
def test_impossible_or_malformed_timestamps(text: str) -> None:
    error = error_of(decode_access_event, with_(EVENT, occurred_at=text))
    assert (error.code, error.field) == ("bad_timestamp", "occurred_at")


# --- dead letters ------------------------------------------------------------------

DLQ_VALIDATOR = Draft202012Validator(
    json.loads((SCHEMAS / "dead-letter.schema.json").read_text(encoding="utf-8"))
)


def make_dead_letter(raw: bytes | None, key: bytes | None) -> dict[str, object]:
    try:
        decode_access_event(raw)
    except DecodeError as error:
        letter = dead_letter(raw, key, "bank.access-events", 5, 1234, error, T_0130Z + 0.0625)
    else:  # pragma: no cover - every input below is invalid
        pytest.fail("expected a DecodeError")
    DLQ_VALIDATOR.validate(letter)
    # JSON-ready: survives a round trip unchanged.
    assert orjson.loads(orjson.dumps(letter)) == letter
    return letter


def test_dead_letter_utf8() -> None:
    raw = with_(EVENT, action="delete_all", note="é 中文")
    letter = make_dead_letter(raw, b"S1")
    assert letter["original"] == raw.decode("utf-8")
    assert (letter["encoding"], letter["key"], letter["key_encoding"]) == ("utf-8", "S1", "utf-8")
    assert (letter["topic"], letter["partition"], letter["offset"]) == (
        "bank.access-events",
        5,
        1234,
    )
    assert letter["error"] == {
        "code": "unknown_enum",
        "message": "field 'action' has unknown value 'delete_all'",
    }
    assert letter["received_at"] == "2026-03-02T01:30:00.062Z"


def test_dead_letter_not_utf8_is_base64() -> None:
    raw = b'{"event_id": "\xff\xfe"}'
    key = b"\x80S1"
    letter = make_dead_letter(raw, key)
    assert letter["encoding"] == "base64" and letter["key_encoding"] == "base64"
    assert base64.b64decode(str(letter["original"]), validate=True) == raw
    assert base64.b64decode(str(letter["key"]), validate=True) == key
    assert letter["error"] == {
        "code": "not_utf8",
        "message": "value is not valid UTF-8 (bad byte at offset 14)",
    }


def test_dead_letter_without_key_and_for_tombstone() -> None:
    letter = make_dead_letter(None, None)
    assert (letter["original"], letter["key"]) == ("", None)
    assert "key_encoding" not in letter
    assert letter["error"] == {"code": "tombstone", "message": "value is null (a tombstone)"}


def test_dead_letter_keeps_over_large_value_whole() -> None:
    raw = b'{"pad": "' + b"x" * MAX_VALUE_BYTES + b'"}'
    letter = make_dead_letter(raw, b"S1")
    assert letter["original"] == raw.decode("utf-8")
    assert "truncated" not in letter
    assert letter["error"] == {
        "code": "value_too_large",
        "message": f"value is {len(raw)} bytes, more than {MAX_VALUE_BYTES}",
    }


def test_dead_letter_for_another_stage_poison_error() -> None:
    assert issubclass(DecodeError, PoisonError)
    error = PoisonError("rejected_by_database", "revision must be >= 1")
    letter = dead_letter(b'{"alert_id": "a"}', b"S1", "bank.alerts", 0, 0, error, T_0130Z)
    DLQ_VALIDATOR.validate(letter)
    assert letter["error"] == {"code": "rejected_by_database", "message": "revision must be >= 1"}
