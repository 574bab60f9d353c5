# mypy: disable-error-code="import-untyped"
"""Property: the decoder accepts exactly what the generated JSON Schema accepts.

For each input record type, hypothesis builds JSON objects from valid values and
applies a few mutations (missing fields, wrong types, bad enums, impossible or
offset-less timestamps, strings and lists one past their bounds, null
``customer_id`` with other actions, unknown extra fields). The oracle is the
schema (validated with ECMA-262 regex semantics, as JSON Schema specifies) plus
the decoder's documented extra checks (``schemas/README.md``, "Checks beyond
the schema", and how a timestamp is read), written here independently of the
decoder: exact integer arithmetic instead of datetimes.
"""

from __future__ import annotations

import calendar
import json
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend

from pipeline.contract import records
from pipeline.contract.decode import (
    DecodeError,
    decode_access_event,
    decode_assignment,
    decode_customer_profile,
    decode_feedback,
    decode_staff_record,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- the oracle --------------------------------------------------------------------

_END_ANCHOR = re.compile(r"(?<!\\)\$")


def _ecma_pattern(
    validator: Validator, pattern: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # Same as in test_schemas.py: ``$`` matches only at the very end (ECMA-262).
    if isinstance(instance, str) and not re.search(_END_ANCHOR.sub(r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = extend(Draft202012Validator, validators={"pattern": _ecma_pattern})

_TS_PARTS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_US = 1_000_000
_YEAR_10000 = (calendar.timegm((9999, 12, 31, 0, 0, 0)) + 86400) * _US
# An access happens in [2000-01-01T00:00Z, 2100-01-01T00:00Z) (extra check 2).
ACCESS_FIRST = calendar.timegm((2000, 1, 1, 0, 0, 0)) * _US
ACCESS_END = calendar.timegm((2100, 1, 1, 0, 0, 0)) * _US
ZONES = frozenset(zoneinfo.available_timezones())


def instant_us(text: str) -> int | None:
    """Extra check 1 and how a timestamp is read: a real calendar date and time with
    an offset under 24 h, the fraction rounded to the microsecond (a half up), and
    the local time still in the years 0001-9999. Returns UTC epoch microseconds, or
    None when the text names no instant."""
    m = _TS_PARTS.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (year >= 1 and 1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 59):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    digits = m.group(7) or ""
    micros = int((digits + "000000")[:6]) + (1 if digits[6:7] >= "5" else 0)
    sign, off_h, off_m = m.group(8), int(m.group(9) or 0), int(m.group(10) or 0)
    if off_h > 23 or off_m > 59:
        return None
    local = calendar.timegm((year, month, day, hour, minute, second)) * _US + micros
    if local >= _YEAR_10000:
        return None
    offset = (off_h * 3600 + off_m * 60) * (-1 if sign == "-" else 1)
    return local - offset * _US


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


@dataclass(frozen=True)
class Spec:
    schema: str
    decode: Callable[[bytes | None], object]
    timestamps: tuple[str, ...]
    fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]  # good, bad
    required: frozenset[str]

    def validator(self) -> Draft202012Validator:
        return _validators[self.schema]

    def oracle(self, obj: Any) -> bool:
        if not self.validator().is_valid(obj):
            return False
        known = self.required | self.fields.keys()
        if _has_nul({k: v for k, v in obj.items() if k in known}):  # extra check 5
            return False
        for name in self.timestamps:
            if isinstance(obj.get(name), str) and instant_us(obj[name]) is None:
                return False
        if self.schema == "access-event":
            at = instant_us(obj["occurred_at"])
            assert at is not None
            if not ACCESS_FIRST <= at < ACCESS_END:
                return False
            # Extra check 4: a JSON integer, not 3.0 (json.loads keeps the distinction).
            if isinstance(obj.get("record_count"), float):
                return False
        if self.schema == "staff-record":
            return obj.get("timezone", "Asia/Shanghai") in ZONES  # extra check 3
        return True

    def accepts(self, raw: bytes) -> bool:
        try:
            self.decode(raw)
        except DecodeError:
            return False
        return True


def _load_validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    validator: Draft202012Validator = EcmaValidator(schema)
    return validator


_validators = {
    name: _load_validator(name)
    for name in ("access-event", "staff-record", "assignment", "customer-profile", "alert-feedback")
}

# --- value strategies ------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(min_value=-5, max_value=5),
    st.just([]),
    st.just({"a": 1}),
)

Pair = tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]


def ids(max_len: int) -> Pair:
    """Non-empty strings of at most ``max_len`` characters (exactly that many often)."""
    good = st.text(min_size=1, max_size=min(max_len, 80)) | st.sampled_from(["S1", "x" * max_len])
    bad = (
        st.sampled_from(["", "x" * (max_len + 1), "中" * (max_len + 1)])
        | st.text(min_size=max_len + 1, max_size=max_len + 20)
        | wrong_types
    )
    return good, bad


def nullable_text(max_len: int) -> Pair:
    """Optional strings: null, empty (means none) or at most ``max_len`` characters."""
    good = st.none() | st.text(max_size=20) | st.just("x" * max_len)
    bad = st.just("x" * (max_len + 1)) | wrong_types.filter(lambda v: v is not None)
    return good, bad


def enum(literal: Any) -> Pair:
    """A Literal's values, and near misses."""
    ordered = sorted(get_args(literal))
    near_misses = [v.upper() for v in ordered[:2]] + [ordered[0] + " ", "", "unknown"]
    return st.sampled_from(ordered), st.sampled_from(near_misses) | wrong_types


@st.composite
def good_timestamps(draw: st.DrawFn, lo: int = 1900, hi: int = 2200) -> str:
    moment = draw(st.datetimes(min_value=datetime(lo, 1, 1), max_value=datetime(hi, 1, 1)))
    minutes = draw(st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
    aware = moment.replace(tzinfo=UTC if minutes == 0 else timezone(timedelta(minutes=minutes)))
    sep = draw(st.sampled_from("Tt "))
    text = aware.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    digits = draw(st.integers(min_value=0, max_value=9))
    if digits:
        text += "." + f"{moment.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
    if minutes == 0 and draw(st.booleans()):
        return text + draw(st.sampled_from("Zz"))
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-01:00",
    "0001-01-01T00:00:00+00:01",  # before year 1 in UTC, but a real local time
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59.9999994Z",  # rounds down
    "9999-12-31T23:59:59.9999995Z",  # rounds up into year 10000: refused
    "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC, but a real local time
    "2024-02-29T12:00:00Z",
    "2026-03-02T09:30:00.0000005+08:00",
    "2026-03-02T09:30:00.99999999999999999999+08:00",
    # the access range, at its edges
    "1999-12-31T23:59:59.999999Z",
    "1999-12-31T23:59:59.9999995Z",  # rounds up to 2000-01-01T00:00:00Z
    "2000-01-01T00:00:00Z",
    "2000-01-01T07:59:59+08:00",
    "2000-01-01T08:00:00+08:00",
    "2099-12-31T23:59:59.999999Z",
    "2099-12-31T23:59:59.9999995Z",  # rounds up to 2100
    "2099-12-31T19:00:00-05:00",
    "2100-01-01T00:00:00Z",
    "2100-01-01T07:59:59+08:00",
]
BAD_TIMESTAMPS = [
    "2026-03-02T09:30:00",
    "2026-03-02",
    "2026-03-02T09:30Z",
    "2026-03-02T09:30:00+0800",
    "2026-03-02T09:30:00.5-0530",
    "2026-03-02T09:30:00+0000",
    "2026-03-02T09:30:00-0000",
    "2026-03-02T09:30:00+08",
    "2026-03-02T09:30:00 +08:00",
    "2026-03-02T09:30:00Z\n",
    " 2026-03-02T09:30:00Z",
    "2026-03-02T09:30:00.Z",
    "2026-03-02T09:30:00,5Z",
    "2025-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-03-00T00:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T23:60:00Z",
    "2026-03-02T23:59:60Z",
    "2026-03-02T09:30:00+24:00",
    "2026-03-02T09:30:00+05:60",
    "2026-03-02T09:30:00-00:99",
    "0000-06-01T00:00:00Z",
    "",
]


def timestamps(lo: int = 1900, hi: int = 2200) -> Pair:
    good = good_timestamps(lo, hi) | st.sampled_from(EDGE_TIMESTAMPS)
    bad = st.sampled_from(BAD_TIMESTAMPS) | wrong_types | st.integers(0, 2**40)
    return good, bad


def nullable_timestamps() -> Pair:
    good, bad = timestamps()
    return good | st.none(), bad.filter(lambda v: v is not None)


def counts() -> Pair:
    top = records.MAX_RECORD_COUNT
    good = st.integers(min_value=0, max_value=top) | st.sampled_from([0, 1, top])
    bad = (
        st.integers(max_value=-1, min_value=-(2**70))
        | st.integers(min_value=top + 1, max_value=2**70)
        | st.sampled_from([3.0, -0.0, 1e20, 1.5, -1.0, True, False, "3", None, [1]])
    )
    return good, bad


def shift_times() -> Pair:
    good = (
        st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
        | st.none()
    )
    bad = st.sampled_from(
        ["24:00", "23:60", "8:30", "08:30:00", "0830", "08:30\n", " 08:30", "", "٠٨:٣٠"]
    ) | wrong_types.filter(lambda v: v is not None)
    return good, bad


def zones() -> Pair:
    good = st.sampled_from(sorted(ZONES))
    bad = (
        st.sampled_from(
            [
                "Mars/Olympus",
                "asia/shanghai",
                "Asia/Shanghai\n",
                "Asia/ Shanghai",
                "America",
                "../etc/passwd",
                "/etc/localtime",
                "posixrules",
                "",
                "UTC+8",
                "x" * 65,
            ]
        )
        | wrong_types
    )
    return good, bad


def staff_id_lists() -> Pair:
    good_id, bad_id = ids(records.ID_MAX)
    most = records.MAX_RELATED_STAFF
    good = st.lists(good_id, max_size=4) | st.just([f"S{i}" for i in range(most)])
    bad: st.SearchStrategy[Any] = st.lists(good_id | bad_id, min_size=1, max_size=4)
    bad |= st.sampled_from(["S1", None, {}, [f"S{i}" for i in range(most + 1)]])
    return good, bad


def comments() -> Pair:
    top = records.COMMENT_MAX
    good = st.text(max_size=40) | st.just("x" * top)
    bad = st.just("x" * (top + 1)) | wrong_types
    return good, bad


SPECS = {
    "access-event": Spec(
        "access-event",
        decode_access_event,
        ("occurred_at",),
        {
            "event_id": ids(records.EVENT_ID_MAX),
            # Mostly inside the access range, so that both sides are exercised.
            "occurred_at": timestamps(1995, 2105),
            "staff_id": ids(records.ID_MAX),
            # Null customer ids often meet actions other than search_customers here.
            "customer_id": (ids(records.ID_MAX)[0] | st.none(), ids(records.ID_MAX)[1]),
            "action": enum(records.Action),
            "channel": enum(records.Channel),
            "branch_id": ids(records.ID_MAX),
            "terminal_id": nullable_text(records.TEXT_MAX),
            "source_ip": nullable_text(64),
            "session_id": nullable_text(records.TEXT_MAX),
            "authorization_ref": nullable_text(records.TEXT_MAX),
            "record_count": counts(),
            "outcome": enum(records.Outcome),
        },
        frozenset(
            ["event_id", "occurred_at", "staff_id", "customer_id", "action", "channel", "branch_id"]
        ),
    ),
    "staff-record": Spec(
        "staff-record",
        decode_staff_record,
        ("effective_at",),
        {
            "staff_id": ids(records.ID_MAX),
            "branch_id": ids(records.ID_MAX),
            "role": enum(records.Role),
            "status": enum(records.StaffStatus),
            "effective_at": timestamps(),
            "shift_start": shift_times(),
            "shift_end": shift_times(),
            "timezone": zones(),
        },
        frozenset(["staff_id", "branch_id", "role", "status", "effective_at"]),
    ),
    "assignment": Spec(
        "assignment",
        decode_assignment,
        ("valid_from", "valid_to"),
        {
            "staff_id": ids(records.ID_MAX),
            "customer_id": ids(records.ID_MAX),
            "relation": enum(records.Relation),
            "valid_from": timestamps(),
            "valid_to": nullable_timestamps(),
            "op": enum(records.AssignmentOp),
        },
        frozenset(["staff_id", "customer_id", "relation", "valid_from", "valid_to"]),
    ),
    "customer-profile": Spec(
        "customer-profile",
        decode_customer_profile,
        ("updated_at",),
        {
            "customer_id": ids(records.ID_MAX),
            "home_branch_id": ids(records.ID_MAX),
            "segment": enum(records.Segment),
            "sensitivity": enum(records.Sensitivity),
            "related_staff_ids": staff_id_lists(),
            "updated_at": timestamps(),
        },
        frozenset(
            [
                "customer_id",
                "home_branch_id",
                "segment",
                "sensitivity",
                "related_staff_ids",
                "updated_at",
            ]
        ),
    ),
    "alert-feedback": Spec(
        "alert-feedback",
        decode_feedback,
        ("decided_at",),
        {
            "alert_id": ids(records.EVENT_ID_MAX),
            "verdict": enum(records.Verdict),
            "analyst_id": ids(records.TEXT_MAX),
            "comment": comments(),
            "decided_at": timestamps(),
        },
        frozenset(["alert_id", "verdict", "analyst_id", "decided_at"]),
    ),
}


# One valid object per record (the examples' "minimal" ones), for the table tests.
VALID: dict[str, dict[str, Any]] = {
    record: json.loads((SCHEMAS / "examples" / record / "valid" / "minimal.json").read_text())
    for record in SPECS
}


@st.composite
def candidates(draw: st.DrawFn, spec: Spec) -> dict[str, Any]:
    """A valid object, then 0-3 mutations; sometimes an unknown extra field."""
    obj: dict[str, Any] = {}
    for name, (good, _) in spec.fields.items():
        if name in spec.required or draw(st.booleans()):
            obj[name] = draw(good)
    names = sorted(spec.fields)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        name = draw(st.sampled_from(names))
        how = draw(st.sampled_from(["drop", "bad", "bad", "good", "anything"]))
        if how == "drop":
            obj.pop(name, None)
        elif how == "anything":
            obj[name] = draw(json_values)
        else:
            obj[name] = draw(spec.fields[name][0 if how == "good" else 1])
    if draw(st.booleans()):
        extra = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in spec.fields))
        obj[extra] = draw(json_values)
    return obj


def to_bytes(obj: object) -> bytes:
    # The stdlib writes ints beyond 64 bits too (orjson.dumps refuses them).
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def check(spec: Spec, raw: bytes) -> bool:
    expected = spec.oracle(json.loads(raw))
    assert spec.accepts(raw) == expected, (
        f"schema{'+extra checks' if expected else ''} says {'valid' if expected else 'invalid'}, "
        f"decoder disagrees: {raw.decode('utf-8', 'replace')}"
    )
    return expected


# --- properties -------------------------------------------------------------------


@pytest.mark.parametrize("record", sorted(SPECS))
def test_decoder_accepts_exactly_what_the_schema_accepts(record: str) -> None:
    spec = SPECS[record]
    seen = {True: 0, False: 0}

    @PROPERTY
    @given(candidates(spec))
    def run(obj: dict[str, Any]) -> None:
        seen[check(spec, to_bytes(obj))] += 1

    run()
    # The generator must exercise both sides, or the property says little.
    assert seen[True] > 20 and seen[False] > 20, seen


@PROPERTY
@given(st.sampled_from(sorted(SPECS)), json_values.filter(lambda v: not isinstance(v, dict)))
def test_non_objects_are_rejected_by_both(record: str, value: Any) -> None:
    assert check(SPECS[record], to_bytes(value)) is False


@pytest.mark.parametrize("record", sorted(SPECS))
@pytest.mark.parametrize("text", EDGE_TIMESTAMPS + BAD_TIMESTAMPS)
def test_every_listed_timestamp_in_every_timestamp_field(record: str, text: str) -> None:
    """The edge and bad timestamps, each in each timestamp field of a valid record."""
    spec = SPECS[record]
    base = VALID[record]
    for name in spec.timestamps:
        check(spec, to_bytes({**base, name: text}))


def _examples(kind: str) -> list[Any]:
    return [
        pytest.param(record, path, id=f"{record}/{kind}/{path.stem}")
        for record in sorted(SPECS)
        for path in sorted((SCHEMAS / "examples" / record / kind).glob("*.json"))
    ]


@pytest.mark.parametrize(("record", "path"), _examples("valid") + _examples("invalid"))
def test_schema_examples_agree_with_decoder(record: str, path: Path) -> None:
    raw = path.read_bytes()
    assert check(SPECS[record], raw) is (path.parent.name == "valid")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00+00:00"),
        ("2023-02-29T00:00:00Z", None),
        ("2026-03-02T09:30:00+05:60", None),
        ("2026-03-02T09:30:00+0800", None),
        ("2026-03-02T09:30:00.25+08:00", "2026-03-02T01:30:00.250000+00:00"),
        ("0001-01-01T00:00:00-00:01", "0001-01-01T00:01:00+00:00"),
        ("9999-12-31T23:59:59.9999994+00:00", "9999-12-31T23:59:59.999999+00:00"),
        ("9999-12-31T23:59:59.9999995+00:00", None),  # rounds into year 10000
        ("2026-03-02T01:30:00.0000015Z", "2026-03-02T01:30:00.000002+00:00"),
        ("2026-03-02T01:30:00.00000149Z", "2026-03-02T01:30:00.000001+00:00"),
        ("1999-12-31T23:59:59.9999995Z", "2000-01-01T00:00:00+00:00"),
    ],
)
def test_oracle_extra_check_itself(text: str, expected: str | None) -> None:
    got = instant_us(text)
    if expected is None:
        assert got is None
    else:
        want = datetime.fromisoformat(expected)
        assert got == (want - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_oracle_access_range_edges() -> None:
    assert instant_us("2000-01-01T00:00:00Z") == ACCESS_FIRST
    assert instant_us("2100-01-01T00:00:00Z") == ACCESS_END
    assert records.FIRST_EVENT_TIME * _US == ACCESS_FIRST
    assert records.END_EVENT_TIME * _US == ACCESS_END
