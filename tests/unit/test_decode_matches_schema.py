# mypy: disable-error-code="import-untyped"
"""Property: the decoder accepts exactly what the JSON Schema accepts.

For each input record type, hypothesis builds JSON objects from valid values and
applies a few mutations (missing fields, wrong types, bad enums, impossible or
offset-less timestamps, over-long strings, null ``customer_id`` with other actions,
unknown extra fields). The oracle is the schema (validated with ECMA-262 regex
semantics, as JSON Schema specifies) plus the decoder's documented extra checks
(``schemas/README.md``, "Checks beyond the schema"), written here independently.
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
from typing import Any

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
_FIRST = -62135596800.0  # 0001-01-01T00:00:00Z
_END = 253402300800.0  # 10000-01-01T00:00:00Z
ZONES = frozenset(zoneinfo.available_timezones())


def real_instant(text: str) -> bool:
    """Extra check 1: a real calendar date and time, offset < 24h, and the instant as
    UTC epoch seconds in a float (microseconds truncated) in [0001-01-01Z, 10000-01-01Z)."""
    m = _TS_PARTS.fullmatch(text)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (year >= 1 and 1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 59):
        return False
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return False
    micros = int(((m.group(7) or "") + "000000")[:6])
    sign, off_h, off_m = m.group(8), int(m.group(9) or 0), int(m.group(10) or 0)
    if off_h > 23 or off_m > 59:
        return False
    offset = (off_h * 3600 + off_m * 60) * (-1 if sign == "-" else 1)
    utc = calendar.timegm((year, month, day, hour, minute, second)) - offset
    # int / int is correctly rounded, as is datetime.timestamp().
    return _FIRST <= (utc * 1_000_000 + micros) / 1_000_000 < _END


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
        for name in self.timestamps:
            if isinstance(obj.get(name), str) and not real_instant(obj[name]):
                return False
        tz = obj.get("timezone") if self.schema == "staff-record" else None
        return tz is None or tz in ZONES

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


def ids(max_len: int | None) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    top = max_len or 80
    good = st.text(min_size=1, max_size=top) | st.sampled_from(["S1", "x" * top])
    bad_strings = ["", " " * 0] + ([] if max_len is None else ["x" * (max_len + 1)])
    bad = st.sampled_from(bad_strings) | wrong_types
    if max_len is not None:
        bad = bad | st.text(min_size=max_len + 1, max_size=max_len + 20)
    return good, bad


def nullable_text() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    return st.none() | st.text(max_size=20), wrong_types.filter(lambda v: v is not None)


def enum(
    values: frozenset[str] | tuple[str, ...],
) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    ordered = sorted(values)
    near_misses = [v.upper() for v in ordered[:2]] + [ordered[0] + " ", "", "unknown"]
    return st.sampled_from(ordered), st.sampled_from(near_misses) | wrong_types


@st.composite
def good_timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
    minutes = draw(st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
    aware = moment.replace(tzinfo=UTC if minutes == 0 else timezone(timedelta(minutes=minutes)))
    sep = draw(st.sampled_from("Tt "))
    text = aware.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    digits = draw(st.integers(min_value=0, max_value=9))
    if digits:
        text += "." + f"{moment.microsecond:06d}{draw(st.integers(0, 999))}"[:digits]
    if minutes == 0 and draw(st.booleans()):
        return text + draw(st.sampled_from("Zz"))
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-01:00",
    "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC
    "2024-02-29T12:00:00Z",
]
BAD_TIMESTAMPS = [
    "2026-03-02T09:30:00",
    "2026-03-02",
    "2026-03-02T09:30Z",
    "2026-03-02T09:30:00+0800",
    "2026-03-02T09:30:00 +08:00",
    "2026-03-02T09:30:00Z\n",
    " 2026-03-02T09:30:00Z",
    "2026-03-02T09:30:00.Z",
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


def timestamps() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    good = good_timestamps() | st.sampled_from(EDGE_TIMESTAMPS)
    bad = st.sampled_from(BAD_TIMESTAMPS) | wrong_types | st.integers(0, 2**40)
    return good, bad


def nullable_timestamps() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    good, bad = timestamps()
    return good | st.none(), bad.filter(lambda v: v is not None)


def counts() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    good = st.integers(min_value=0, max_value=2**70) | st.sampled_from([0, 1, 3.0, 1e20, -0.0])
    bad = st.integers(max_value=-1, min_value=-(2**70)) | st.sampled_from(
        [1.5, -1.0, True, False, "3", None, [1]]
    )
    return good, bad


def shift_times() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    good = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
    bad = (
        st.sampled_from(
            ["24:00", "23:60", "8:30", "08:30:00", "0830", "08:30\n", " 08:30", "", "٠٨:٣٠"]
        )
        | wrong_types
    )
    return good, bad


def zones() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
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
                "",
                "UTC+8",
            ]
        )
        | wrong_types
    )
    return good, bad


def staff_id_lists() -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    good_id, bad_id = ids(64)
    good = st.lists(good_id, max_size=4)
    bad: st.SearchStrategy[Any] = st.lists(good_id | bad_id, min_size=1, max_size=4)
    bad |= st.sampled_from(["S1", None, {}])
    return good, bad


SPECS = {
    "access-event": Spec(
        "access-event",
        decode_access_event,
        ("occurred_at",),
        {
            "event_id": ids(128),
            "occurred_at": timestamps(),
            "staff_id": ids(64),
            # Null customer ids often meet actions other than search_customers here.
            "customer_id": (ids(64)[0] | st.none(), ids(64)[1]),
            "action": enum(records.ACTIONS),
            "channel": enum(records.CHANNELS),
            "branch_id": ids(None),
            "terminal_id": nullable_text(),
            "source_ip": nullable_text(),
            "session_id": nullable_text(),
            "authorization_ref": nullable_text(),
            "record_count": counts(),
            "outcome": enum(records.OUTCOMES),
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
            "staff_id": ids(64),
            "branch_id": ids(None),
            "role": enum(records.ROLES),
            "status": enum(records.STAFF_STATUSES),
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
            "staff_id": ids(64),
            "customer_id": ids(64),
            "relation": enum(records.RELATIONS),
            "valid_from": timestamps(),
            "valid_to": nullable_timestamps(),
            "op": enum(records.ASSIGNMENT_OPS),
        },
        frozenset(["staff_id", "customer_id", "relation", "valid_from", "valid_to"]),
    ),
    "customer-profile": Spec(
        "customer-profile",
        decode_customer_profile,
        ("updated_at",),
        {
            "customer_id": ids(64),
            "home_branch_id": ids(None),
            "segment": enum(records.SEGMENTS),
            "sensitivity": enum(records.SENSITIVITIES),
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
            "alert_id": ids(None),
            "verdict": enum(records.VERDICTS),
            "analyst_id": ids(None),
            "comment": (st.text(max_size=40), wrong_types),
            "decided_at": timestamps(),
        },
        frozenset(["alert_id", "verdict", "analyst_id", "decided_at"]),
    ),
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
    ("text", "real"),
    [
        ("2024-02-29T00:00:00Z", True),
        ("2023-02-29T00:00:00Z", False),
        ("2026-03-02T09:30:00+05:60", False),
        ("0001-01-01T00:00:00-00:01", True),
        ("0001-01-01T00:00:00+00:01", False),
        ("9999-12-31T23:59:59.9+00:00", True),
        ("9999-12-31T23:59:59.99999+00:00", False),  # rounds to 10000-01-01 as a float
        ("0001-01-01T00:00:59.9999999+00:01", True),  # rounds up to 0001-01-01 as a float
        ("9999-12-31T23:59:59-00:01", False),
    ],
)
def test_oracle_extra_check_itself(text: str, real: bool) -> None:
    assert real_instant(text) is real
