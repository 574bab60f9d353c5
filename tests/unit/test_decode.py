# mypy: disable-error-code="import-untyped"
"""pipeline.contract.decode: error codes, defaults, timestamps and dead letters."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from jsonschema import Draft202012Validator

from pipeline.contract.decode import (
    DEAD_LETTER_KEY_MAX,
    DEAD_LETTER_ORIGINAL_MAX,
    ERROR_CODES,
    DecodeError,
    dead_letter,
    decode_access_event,
    decode_alert,
    decode_assignment,
    decode_customer_profile,
    decode_feedback,
    decode_staff_record,
    encode,
    epoch,
)
from pipeline.contract.records import (
    DEAD_LETTER_CODES,
    MAX_VALUE_BYTES,
    AccessEvent,
    Assignment,
    CustomerProfile,
    DeadLetter,
    StaffRecord,
)
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
AT_0130Z = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))


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

EVENT_RAW = enc(EVENT)
CASES: list[tuple[str, Callable[[bytes | None], object], bytes | None, str | None]] = [
    ("tombstone", decode_staff_record, None, None),
    ("tombstone", decode_access_event, None, None),
    ("value_too_large", decode_access_event, b" " * (MAX_VALUE_BYTES + 1), None),
    ("not_utf8", decode_access_event, b'{"event_id": "\xff"}', None),
    # Bad UTF-8 in a field the decoder skips is still not a JSON text.
    ("not_utf8", decode_access_event, EVENT_RAW[:-1] + b', "note": "\xc3("}', None),
    ("not_utf8", decode_access_event, EVENT_RAW + b"\xff", None),
    ("malformed_json", decode_access_event, b'{"event_id": ', None),
    ("malformed_json", decode_access_event, b"\xef\xbb\xbf{}", None),
    ("malformed_json", decode_access_event, EVENT_RAW[:-1] + b', "x": "\\ud800"}', None),
    ("malformed_json", decode_access_event, EVENT_RAW[:-1] + b', "x": NaN}', None),
    ("not_an_object", decode_access_event, b"[1, 2]", None),
    ("not_an_object", decode_feedback, b"null", None),
    ("not_an_object", decode_staff_record, b'"S1"', None),
    ("missing_field", decode_access_event, without(EVENT, "staff_id"), "staff_id"),
    ("missing_field", decode_access_event, without(EVENT, "customer_id"), "customer_id"),
    ("missing_field", decode_assignment, without(ASSIGNMENT, "valid_to"), "valid_to"),
    ("missing_field", decode_customer_profile, without(PROFILE, "updated_at"), "updated_at"),
    (
        "missing_field",
        decode_customer_profile,
        without(PROFILE, "related_staff_ids"),
        "related_staff_ids",
    ),
    ("missing_field", decode_feedback, without(FEEDBACK, "verdict"), "verdict"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count=True), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count=1.5), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count=3.0), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, record_count="3"), "record_count"),
    ("wrong_type", decode_access_event, with_(EVENT, staff_id=None), "staff_id"),
    ("wrong_type", decode_access_event, with_(EVENT, outcome=None), "outcome"),
    ("wrong_type", decode_access_event, with_(EVENT, customer_id=42), "customer_id"),
    ("wrong_type", decode_access_event, with_(EVENT, occurred_at=1772415000), "occurred_at"),
    ("wrong_type", decode_access_event, with_(EVENT, session_id=["x"]), "session_id"),
    ("wrong_type", decode_access_event, with_(EVENT, action=7), "action"),
    ("wrong_type", decode_staff_record, with_(STAFF, shift_start=830), "shift_start"),
    ("wrong_type", decode_staff_record, with_(STAFF, timezone=None), "timezone"),
    ("wrong_type", decode_assignment, with_(ASSIGNMENT, valid_to=0), "valid_to"),
    (
        "wrong_type",
        decode_customer_profile,
        with_(PROFILE, related_staff_ids="S2"),
        "related_staff_ids",
    ),
    (
        "wrong_type",
        decode_customer_profile,
        with_(PROFILE, related_staff_ids=None),
        "related_staff_ids",
    ),
    (
        "wrong_type",
        decode_customer_profile,
        with_(PROFILE, related_staff_ids=[7]),
        "related_staff_ids[0]",
    ),
    ("wrong_type", decode_feedback, with_(FEEDBACK, comment=None), "comment"),
    ("unknown_enum", decode_access_event, with_(EVENT, action="delete_all"), "action"),
    ("unknown_enum", decode_access_event, with_(EVENT, outcome="SUCCESS"), "outcome"),
    ("unknown_enum", decode_access_event, with_(EVENT, channel=""), "channel"),
    ("unknown_enum", decode_staff_record, with_(STAFF, status="retired"), "status"),
    ("unknown_enum", decode_assignment, with_(ASSIGNMENT, op="delete"), "op"),
    ("unknown_enum", decode_customer_profile, with_(PROFILE, segment="sme"), "segment"),
    ("unknown_enum", decode_feedback, with_(FEEDBACK, verdict="maybe"), "verdict"),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T09:30:00"),
        "occurred_at",
    ),
    ("bad_timestamp", decode_access_event, with_(EVENT, occurred_at="2026-03-02"), "occurred_at"),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-02-30T00:00:00Z"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T23:59:60Z"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T01:00:00+05:60"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T01:00:00Z\n"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2026-03-02T09:30:00+0800"),
        "occurred_at",
    ),
    # An access outside 2000-01-01..2099-12-31 UTC.
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="1999-12-31T23:59:59Z"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2100-01-01T00:00:00Z"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_access_event,
        with_(EVENT, occurred_at="2000-01-01T07:59:59+08:00"),
        "occurred_at",
    ),
    (
        "bad_timestamp",
        decode_assignment,
        with_(ASSIGNMENT, valid_to="2026-13-01T00:00:00Z"),
        "valid_to",
    ),
    (
        "bad_timestamp",
        decode_assignment,
        with_(
            ASSIGNMENT, valid_from="2026-01-01T00:00:00+08:00", valid_to="2026-02-01T00:00:00+0800"
        ),
        "valid_to",
    ),
    (
        "bad_timestamp",
        decode_staff_record,
        with_(STAFF, effective_at="2026-01-01T00:00:00-0000"),
        "effective_at",
    ),
    (
        "bad_timestamp",
        decode_customer_profile,
        with_(PROFILE, updated_at="2026-01-01T00:00:00.5-0530"),
        "updated_at",
    ),
    (
        "bad_timestamp",
        decode_feedback,
        with_(FEEDBACK, decided_at="9999-12-31T23:59:59.9999995Z"),
        "decided_at",
    ),
    ("invalid_value", decode_access_event, with_(EVENT, event_id=""), "event_id"),
    ("invalid_value", decode_access_event, with_(EVENT, event_id="e" * 129), "event_id"),
    ("invalid_value", decode_access_event, with_(EVENT, staff_id="s" * 65), "staff_id"),
    ("invalid_value", decode_access_event, with_(EVENT, customer_id="c" * 65), "customer_id"),
    ("invalid_value", decode_access_event, with_(EVENT, customer_id=""), "customer_id"),
    ("invalid_value", decode_access_event, with_(EVENT, customer_id=None), "customer_id"),
    ("invalid_value", decode_access_event, with_(EVENT, record_count=-1), "record_count"),
    (
        "invalid_value",
        decode_access_event,
        with_(EVENT, record_count=10_000_001),
        "record_count",
    ),
    ("invalid_value", decode_access_event, with_(EVENT, branch_id=""), "branch_id"),
    ("invalid_value", decode_access_event, with_(EVENT, branch_id="b" * 65), "branch_id"),
    ("invalid_value", decode_access_event, with_(EVENT, terminal_id="t" * 129), "terminal_id"),
    ("invalid_value", decode_access_event, with_(EVENT, session_id="s" * 129), "session_id"),
    (
        "invalid_value",
        decode_access_event,
        with_(EVENT, authorization_ref="a" * 129),
        "authorization_ref",
    ),
    ("invalid_value", decode_access_event, with_(EVENT, source_ip="1" * 65), "source_ip"),
    ("invalid_value", decode_staff_record, with_(STAFF, shift_end="24:00"), "shift_end"),
    ("invalid_value", decode_staff_record, with_(STAFF, shift_start="8:30"), "shift_start"),
    ("invalid_value", decode_staff_record, with_(STAFF, shift_start="08:30\n"), "shift_start"),
    ("invalid_value", decode_staff_record, with_(STAFF, branch_id="b" * 65), "branch_id"),
    ("invalid_value", decode_staff_record, with_(STAFF, timezone="Mars/Olympus"), "timezone"),
    ("invalid_value", decode_staff_record, with_(STAFF, timezone="asia/shanghai"), "timezone"),
    ("invalid_value", decode_staff_record, with_(STAFF, timezone="Asia/Shanghai\n"), "timezone"),
    (
        "invalid_value",
        decode_customer_profile,
        with_(PROFILE, related_staff_ids=["S2", ""]),
        "related_staff_ids[1]",
    ),
    (
        "invalid_value",
        decode_customer_profile,
        with_(PROFILE, related_staff_ids=[f"S{i}" for i in range(101)]),
        "related_staff_ids",
    ),
    (
        "invalid_value",
        decode_customer_profile,
        with_(PROFILE, home_branch_id="b" * 65),
        "home_branch_id",
    ),
    ("invalid_value", decode_feedback, with_(FEEDBACK, analyst_id=""), "analyst_id"),
    ("invalid_value", decode_feedback, with_(FEEDBACK, analyst_id="a" * 129), "analyst_id"),
    ("invalid_value", decode_feedback, with_(FEEDBACK, alert_id="a" * 129), "alert_id"),
    ("invalid_value", decode_feedback, with_(FEEDBACK, comment="c" * 4001), "comment"),
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
    assert error.field == field
    if field is not None:
        assert repr(field) in error.message


def test_every_error_code_is_exercised() -> None:
    assert {case[0] for case in CASES} == set(ERROR_CODES)


def test_decoder_codes_are_dead_letter_codes() -> None:
    assert set(ERROR_CODES) <= set(DEAD_LETTER_CODES)
    assert {"key_mismatch", "clock_skew", "processing_error", "rejected_by_database"} <= set(
        DEAD_LETTER_CODES
    )
    assert all(DEAD_LETTER_CODES.values())


def test_bounds_are_inclusive() -> None:
    """One more than each bound is refused above; the bound itself is read."""
    event = decode_access_event(
        with_(
            EVENT,
            event_id="e" * 128,
            staff_id="s" * 64,
            customer_id="c" * 64,
            branch_id="b" * 64,
            terminal_id="t" * 128,
            session_id="s" * 128,
            authorization_ref="a" * 128,
            source_ip="1" * 64,
            record_count=10_000_000,
        )
    )
    assert event.record_count == 10_000_000 and len(event.terminal_id or "") == 128
    profile = decode_customer_profile(
        with_(PROFILE, related_staff_ids=[f"S{i}" for i in range(100)])
    )
    assert len(profile.related_staff_ids) == 100
    feedback = decode_feedback(with_(FEEDBACK, comment="c" * 4000, analyst_id="a" * 128))
    assert len(feedback.comment) == 4000


def test_value_of_exactly_the_limit_is_read() -> None:
    raw = enc(EVENT)
    padded = raw[:-1] + b" " * (MAX_VALUE_BYTES - len(raw)) + b"}"
    assert len(padded) == MAX_VALUE_BYTES
    assert decode_access_event(padded).event_id == "evt-1"
    assert error_of(decode_access_event, padded + b" ").code == "value_too_large"


def test_first_failure_wins_in_documented_order() -> None:
    # Size before encoding, encoding before syntax and fields.
    assert error_of(decode_access_event, b"\xff" * (MAX_VALUE_BYTES + 1)).code == "value_too_large"
    assert error_of(decode_access_event, b'{"event_id": "\xff"').code == "not_utf8"
    bad_utf8_and_missing = without(EVENT, "staff_id")[:-1] + b', "n": "\xff"}'
    assert error_of(decode_access_event, bad_utf8_and_missing).code == "not_utf8"
    # Among fields, one error is reported: a present field's before a missing one.
    raw = enc({k: v for k, v in EVENT.items() if k != "event_id"} | {"record_count": "x"})
    assert error_of(decode_access_event, raw).field == "record_count"
    # Type errors before the checks beyond the schema.
    raw = with_(EVENT, customer_id=None, action="view_balance", record_count=-1)
    assert error_of(decode_access_event, raw).field == "record_count"


def test_long_values_are_cut_in_messages() -> None:
    error = error_of(decode_access_event, with_(EVENT, action="x" * 5000))
    assert error.code == "unknown_enum" and error.field == "action"
    assert len(error.message) < 300
    error = error_of(decode_staff_record, with_(STAFF, timezone="Z" * 64))
    assert len(error.message) < 200


# --- defaults and values -------------------------------------------------------------


def test_access_event_defaults() -> None:
    event = decode_access_event(enc(EVENT))
    assert event == AccessEvent(
        event_id="evt-1",
        occurred_at=datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI),
        staff_id="S1",
        customer_id="C1",
        action="view_balance",
        channel="crm_web",
        branch_id="BR1",
    )
    assert event.occurred_at == AT_0130Z
    assert (event.record_count, event.outcome) == (1, "success")
    assert (event.terminal_id, event.source_ip, event.session_id) == (None, None, None)
    assert event.authorization_ref is None


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


def test_records_are_frozen() -> None:
    event = decode_access_event(enc(EVENT))
    with pytest.raises(AttributeError):
        event.staff_id = "S2"  # type: ignore[misc]


def test_big_record_count_is_an_int() -> None:
    event = decode_access_event(with_(EVENT, record_count=9_999_999))
    assert event.record_count == 9_999_999 and type(event.record_count) is int


def test_empty_optional_text_is_kept_as_empty() -> None:
    # Not normalised to None any more: code treats "" as absent (the rules do).
    event = decode_access_event(with_(EVENT, authorization_ref="", terminal_id=None))
    assert event.authorization_ref == "" and event.terminal_id is None


def test_search_may_have_null_or_real_customer() -> None:
    assert (
        decode_access_event(with_(EVENT, action="search_customers", customer_id=None)).customer_id
        is None
    )
    assert decode_access_event(with_(EVENT, action="search_customers")).customer_id == "C1"


def test_unknown_fields_are_ignored_and_the_last_duplicate_wins() -> None:
    raw = enc(EVENT)[:-1] + b', "staff_id": "S2", "future_field": 1e999}'
    assert decode_access_event(raw).staff_id == "S2"


def test_staff_record_defaults_and_shift() -> None:
    assert decode_staff_record(enc(STAFF)) == StaffRecord(
        "S1", "BR1", "teller", "active", JAN_1, None, None, "Asia/Shanghai"
    )
    staff = decode_staff_record(
        with_(STAFF, shift_start="22:00", shift_end="06:00", timezone="Europe/London")
    )
    assert (staff.shift_start, staff.shift_end, staff.timezone) == (
        "22:00",
        "06:00",
        "Europe/London",
    )
    # A null shift means "unknown", as when the field is absent.
    unknown = decode_staff_record(with_(STAFF, shift_start=None, shift_end=None))
    assert (unknown.shift_start, unknown.shift_end) == (None, None)


def test_assignment_defaults_and_valid_to() -> None:
    assert decode_assignment(enc(ASSIGNMENT)) == Assignment(
        "S1", "C1", "backup", JAN_1, None, "assign"
    )
    closed = decode_assignment(with_(ASSIGNMENT, valid_to="2026-03-02T09:30:00+08:00", op="revoke"))
    assert (closed.valid_to, closed.op) == (AT_0130Z, "revoke")
    # The same offset twice, written properly, is read.
    both = decode_assignment(
        with_(
            ASSIGNMENT, valid_from="2026-01-01T00:00:00+08:00", valid_to="2026-03-02T09:30:00+08:00"
        )
    )
    assert both.valid_to == AT_0130Z


def test_customer_profile_related_staff_is_a_list() -> None:
    profile = decode_customer_profile(enc(PROFILE))
    assert profile == CustomerProfile("C1", "BR1", "retail", "normal", ["S2", "S3"], JAN_1)
    assert decode_customer_profile(with_(PROFILE, related_staff_ids=[])).related_staff_ids == []


def test_feedback_comment_defaults_to_empty() -> None:
    assert decode_feedback(enc(FEEDBACK)).comment == ""
    assert decode_feedback(with_(FEEDBACK, comment="ok")).comment == "ok"


@pytest.mark.parametrize(
    ("decode", "record", "field", "value"),
    [
        (decode_access_event, EVENT, "branch_id", "BR\x001"),
        (decode_access_event, EVENT, "customer_id", "C\x00"),
        (decode_feedback, FEEDBACK, "comment", "looks fine\x00"),
        (decode_feedback, FEEDBACK, "analyst_id", "\x00"),
        (decode_staff_record, STAFF, "branch_id", "BR1\x00"),
        (decode_customer_profile, PROFILE, "related_staff_ids", ["S2", "S\x003"]),
    ],
)
def test_a_nul_character_in_any_string_is_refused(
    decode: Callable[[bytes], Any], record: dict[str, Any], field: str, value: Any
) -> None:
    raw = with_(record, **{field: value})
    assert b"\\u0000" in raw  # how JSON carries it
    with pytest.raises(DecodeError) as err:
        decode(raw)
    assert err.value.code == "invalid_value" and "NUL" in str(err.value)


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    text = "\\u0000 is how JSON writes NUL"
    assert decode_feedback(with_(FEEDBACK, comment=text)).comment == text


@pytest.mark.parametrize(
    ("text", "expected"),
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
        # Beyond microseconds: rounded to the nearest, a half up.
        ("2026-03-02T01:30:00.0000015Z", T_0130Z + 0.000002),
        ("2026-03-02T01:30:00.0000014999Z", T_0130Z + 0.000001),
        ("2026-03-02T01:30:00.9999999Z", T_0130Z + 1),
        ("2024-02-29T00:00:00Z", 1709164800.0),
        ("2000-01-01T00:00:00Z", 946684800.0),
        ("2000-01-01T08:00:00+08:00", 946684800.0),
        ("1999-12-31T23:59:59.9999995Z", 946684800.0),
        ("2099-12-31T23:59:59.999999Z", 4102444799.999999),
        ("2100-01-01T07:59:59+08:00", 4102444799.0),
    ],
)
def test_access_timestamps_become_aware_datetimes(text: str, expected: float) -> None:
    occurred_at = decode_access_event(with_(EVENT, occurred_at=text)).occurred_at
    assert occurred_at.tzinfo is not None
    assert epoch(occurred_at) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T08:00:00+08:00", 0.0),
        ("0001-01-01T00:00:00Z", -62135596800.0),
        ("0001-01-01T00:00:00+00:01", -62135596860.0),  # a real local time, before year 1 UTC
        ("9999-12-31T23:59:59Z", 253402300799.0),
        ("9999-12-31T23:59:59-00:01", 253402300859.0),
    ],
)
def test_reference_timestamps_span_years_1_to_9999(text: str, expected: float) -> None:
    assert epoch(decode_assignment(with_(ASSIGNMENT, valid_from=text)).valid_from) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025-02-29T00:00:00Z",  # not a leap year
        "2026-04-31T00:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T01:60:00Z",
        "2026-03-02T01:30:00+24:00",
        "0000-06-01T00:00:00Z",
        "9999-12-31T23:59:59.9999995Z",
        "2026-03-02T01:30Z",
        "2026-03-02T01:30:00 +08:00",
        "2026-03-02T01:30:00+0800",
        "2026-03-02T01:30:00+0000",
        "2026-03-02T01:30:00+08",
        "2026-03-02T01:30:00,5Z",
        "",
    ],
)
def test_impossible_or_malformed_timestamps(text: str) -> None:
    for decode, base, name in (
        (decode_access_event, EVENT, "occurred_at"),
        (decode_staff_record, STAFF, "effective_at"),
        (decode_feedback, FEEDBACK, "decided_at"),
    ):
        error = error_of(decode, with_(base, **{name: text}))
        assert (error.code, error.field) == ("bad_timestamp", name)


def test_a_colonless_offset_elsewhere_does_not_hide_a_bad_one() -> None:
    # Another string carrying "+08:00" does not excuse valid_to's "+0800" (counted).
    raw = with_(
        ASSIGNMENT, valid_from="2026-01-01T00:00:00+08:00", valid_to="2026-02-01T00:00:00+0800"
    )
    assert error_of(decode_assignment, raw).field == "valid_to"
    # A plain "+0800" in another field is no timestamp and harmless.
    assert decode_access_event(with_(EVENT, session_id="+0800")).session_id == "+0800"


def test_alert_round_trip() -> None:
    raw = (SCHEMAS / "examples" / "alert" / "valid" / "minimal.json").read_bytes()
    alert = decode_alert(raw)
    assert decode_alert(encode(alert)) == alert
    assert error_of(decode_alert, with_(orjson.loads(raw), revision=0)).code == "invalid_value"


# --- dead letters ------------------------------------------------------------------

DLQ_VALIDATOR = Draft202012Validator(
    json.loads((SCHEMAS / "dead-letter.schema.json").read_text(encoding="utf-8"))
)
MIB = 1024 * 1024


def as_json(letter: DeadLetter) -> dict[str, Any]:
    """The letter as it goes on the topic, checked against the schema and decodable."""
    raw = encode(letter)
    obj: dict[str, Any] = orjson.loads(raw)
    DLQ_VALIDATOR.validate(obj)
    assert msgspec.json.decode(raw, type=DeadLetter) == letter
    return obj


def make_dead_letter(raw: bytes | None, key: bytes | None) -> dict[str, Any]:
    try:
        decode_access_event(raw)
    except DecodeError as error:
        letter = dead_letter(raw, key, "bank.access-events", 5, 1234, error, T_0130Z + 0.0625)
    else:  # pragma: no cover - every input below is invalid
        pytest.fail("expected a DecodeError")
    return as_json(letter)


def test_dead_letter_utf8() -> None:
    raw = with_(EVENT, action="delete_all", note="é 中文")
    letter = make_dead_letter(raw, b"S1")
    assert letter["original"] == raw.decode("utf-8")
    assert letter.get("encoding", "utf-8") == "utf-8"  # utf-8 is the default
    assert (letter["key"], letter["key_encoding"]) == ("S1", "utf-8")
    assert (letter["topic"], letter["partition"], letter["offset"]) == (
        "bank.access-events",
        5,
        1234,
    )
    assert letter["error"] == {
        "code": "unknown_enum",
        "message": "field 'action': Invalid enum value 'delete_all'",
    }
    assert datetime.fromisoformat(letter["received_at"]) == AT_0130Z + timedelta(microseconds=62500)
    assert not {"truncated", "original_bytes", "original_sha256"} & set(letter)


def test_dead_letter_not_utf8_is_base64() -> None:
    raw = b'{"event_id": "\xff\xfe"}'
    key = b"\x80S1"
    letter = make_dead_letter(raw, key)
    assert letter["encoding"] == "base64" and letter["key_encoding"] == "base64"
    assert base64.b64decode(letter["original"], validate=True) == raw
    assert base64.b64decode(letter["key"], validate=True) == key
    assert letter["error"] == {
        "code": "not_utf8",
        "message": "value is not valid UTF-8 (bad byte at offset 14)",
    }


def test_dead_letter_without_key_and_for_tombstone() -> None:
    letter = make_dead_letter(None, None)
    assert (letter["original"], letter["key"]) == ("", None)
    assert "key_encoding" not in letter and "truncated" not in letter
    assert letter["error"] == {"code": "tombstone", "message": "value is null (a tombstone)"}


def test_dead_letter_keeps_a_value_up_to_the_cap_whole() -> None:
    raw = b'{"pad": "' + b"x" * (DEAD_LETTER_ORIGINAL_MAX - 11) + b'"}'
    assert len(raw) == DEAD_LETTER_ORIGINAL_MAX
    letter = make_dead_letter(raw, b"S1")
    assert letter["original"] == raw.decode("utf-8")
    assert "truncated" not in letter
    assert letter["error"] == {
        "code": "value_too_large",
        "message": f"value is {len(raw)} bytes, more than {MAX_VALUE_BYTES}",
    }


def test_dead_letter_truncates_an_over_large_value_with_size_and_digest() -> None:
    raw = b'{"pad": "' + b"x" * (300 * 1024) + b'"}'
    letter = make_dead_letter(raw, b"S1")
    assert letter["truncated"] is True
    assert letter["original"] == raw[:DEAD_LETTER_ORIGINAL_MAX].decode("utf-8")
    assert letter["original_bytes"] == len(raw)
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()


def test_dead_letter_cut_ends_before_a_split_character() -> None:
    # 3-byte characters: the cap falls inside one; the text stays text.
    raw = "中".encode() * (DEAD_LETTER_ORIGINAL_MAX // 3 + 10)
    letter = make_dead_letter(raw, b"S1")
    assert letter.get("encoding", "utf-8") == "utf-8" and letter["truncated"] is True
    kept = letter["original"].encode("utf-8")
    assert raw.startswith(kept) and DEAD_LETTER_ORIGINAL_MAX - 3 < len(kept) <= (
        DEAD_LETTER_ORIGINAL_MAX
    )
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()


def test_dead_letter_truncated_binary_is_base64_of_the_first_bytes() -> None:
    raw = os.urandom(MIB)
    letter = make_dead_letter(raw, b"S1")
    assert letter["encoding"] == "base64" and letter["truncated"] is True
    assert base64.b64decode(letter["original"]) == raw[:DEAD_LETTER_ORIGINAL_MAX]
    assert (letter["original_bytes"], letter["original_sha256"]) == (
        MIB,
        hashlib.sha256(raw).hexdigest(),
    )


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("binary", os.urandom(MIB), os.urandom(MIB)),
        ("control characters", b"\x01" * MIB, b"\x01" * MIB),  # six bytes each in JSON
        ("quotes", b'"' * MIB, b'"' * MIB),
        ("backslashes, not UTF-8 at the end", b"\\" * (MIB - 1) + b"\xff", None),
        ("control characters under 256 KiB", b"\x1f" * (200 * 1024), b"k"),
    ],
)
def test_dead_letter_of_a_1_mib_value_fits_under_1_mib(
    name: str, value: bytes, key: bytes | None
) -> None:
    error = PoisonError("value_too_large", "x" * 5000)
    letter = dead_letter(value, key, "bank.access-events", 0, 0, error, T_0130Z)
    raw = encode(letter)
    assert len(raw) < MIB, name
    obj = as_json(letter)
    assert obj["truncated"] is True and obj["original_bytes"] == len(value)
    if letter.encoding == "utf-8":
        assert value.startswith(letter.original.encode("utf-8")) and letter.original
    else:
        assert value.startswith(base64.b64decode(letter.original))
    if key is not None:
        assert letter.key is not None
        kept = (
            letter.key.encode("utf-8")
            if letter.key_encoding == "utf-8"
            else base64.b64decode(letter.key)
        )
        assert key.startswith(kept) and 0 < len(kept) <= DEAD_LETTER_KEY_MAX
    assert len(letter.error.message) == 1003 and letter.error.message.endswith("...")


def test_dead_letter_for_another_stage_poison_error() -> None:
    assert issubclass(DecodeError, PoisonError)
    error = PoisonError("rejected_by_database", "revision must be >= 1")
    letter = dead_letter(b'{"alert_id": "a"}', b"S1", "bank.alerts", 0, 0, error, T_0130Z)
    obj = as_json(letter)
    assert obj["error"] == {"code": "rejected_by_database", "message": "revision must be >= 1"}
    assert obj["topic"] == "bank.alerts"


def test_dead_letter_clamps_negative_positions() -> None:
    error = PoisonError("processing_error", "boom")
    letter = dead_letter(b"{}", None, "bank.access-events", -1, -1, error, T_0130Z)
    assert (letter.partition, letter.offset) == (0, 0)
    as_json(letter)
