"""Kafka values (bytes) -> contract records, strictly, with stable error codes.

The types of :mod:`pipeline.contract.records` are the rules; msgspec checks
them in compiled code. On top of the types, the few checks a JSON Schema
cannot express (``schemas/README.md``, "Checks beyond the schema"):

- an access's ``customer_id`` is null only for ``search_customers``;
- an access happened in [2000-01-01, 2100-01-01) UTC;
- ``timezone`` names a zone of the IANA database known to :mod:`zoneinfo`;
- ``record_count`` is a JSON integer (``3.0`` is refused);
- no string holds a NUL character (``\u0000``): Postgres text cannot store one,
  so it would stop the sink rather than the record.

A few more checks keep the decoder to what the schemas say where msgspec
alone would be laxer: the whole value must be UTF-8 (msgspec does not check
the strings of fields it skips); a ``shift_start``/``shift_end`` may not end
with a newline (Python's ``$`` matches before one; ECMA-262's does not); and a
timestamp's offset must be written with its colon (msgspec also reads
``+0800``; see :func:`_check_offsets`).

Every failure raises :class:`DecodeError` with a ``code`` from
:data:`ERROR_CODES` and a message naming the field. A ``DecodeError`` is a
poison record: the caller dead-letters it (:func:`dead_letter`) or, for
``tombstone`` on a compacted topic, treats it as a deletion.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import zoneinfo
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Literal, TypeVar, cast

import msgspec

from pipeline.contract.records import (
    END_EVENT_TIME,
    FIRST_EVENT_TIME,
    MAX_VALUE_BYTES,
    AccessEvent,
    Alert,
    AlertFeedback,
    Assignment,
    CustomerProfile,
    DeadLetter,
    ErrorInfo,
    StaffRecord,
)
from pipeline.errors import PoisonError

# The codes the decoder itself gives (other stages add theirs; all are in DEAD_LETTER_CODES).
ERROR_CODES: Final = (
    "value_too_large",
    "not_utf8",
    "malformed_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "unknown_enum",
    "bad_timestamp",
    "invalid_value",
    "tombstone",
)
# A dead letter carries at most this many bytes of its original value, and of
# its key, so that it fits the producer's 1 MiB limit: base64 adds a third, and
# JSON escaping turns a control character into six bytes (``\u0001``), so text
# is cut further where its JSON string would take more than ``_ESCAPED`` times
# the cap (dead_letter).
DEAD_LETTER_ORIGINAL_MAX: Final = 256 * 1024
DEAD_LETTER_KEY_MAX: Final = 16 * 1024
_ESCAPED: Final = 2

_SNIPPET: Final = 64
_DETAIL_MAX: Final = 200  # msgspec quotes the offending value; long ones are cut
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")

R = TypeVar("R")
Encoding = Literal["utf-8", "base64"]


class DecodeError(PoisonError):
    """A value that does not satisfy the contract. Poison: retrying cannot help.

    ``field`` is the offending field's path (``staff_id``, ``related_staff_ids[0]``),
    or ``None`` when the value as a whole is at fault.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message)
        self.field = field


_DECODERS: dict[type, Any] = {}
_ENCODER = msgspec.json.Encoder()


def _decoder(cls: type[R]) -> msgspec.json.Decoder[R]:
    dec = _DECODERS.get(cls)
    if dec is None:
        dec = _DECODERS[cls] = msgspec.json.Decoder(cls)
    return cast("msgspec.json.Decoder[R]", dec)


def _classify(exc: msgspec.ValidationError) -> DecodeError:
    text = str(exc)
    m = _AT.search(text)
    path = m.group("path").lstrip(".") if m else ""
    detail = text[: m.start()] if m else text
    if len(detail) > _DETAIL_MAX:
        detail = detail[:_DETAIL_MAX] + "..."
    missing = _MISSING.match(detail)
    if missing:
        name = f"{path}.{missing.group('name')}" if path else missing.group("name")
        return DecodeError("missing_field", f"field {name!r} is missing", name)
    if not path:
        if detail.startswith("Expected `object`"):
            return DecodeError("not_an_object", f"value is not a JSON object: {detail}")
        return DecodeError("invalid_value", detail)
    if "RFC3339" in detail or "timezone component" in detail:
        code = "bad_timestamp"
    elif detail.startswith("Invalid enum value"):
        code = "unknown_enum"
    elif detail.startswith("Expected `") and ", got `" in detail:
        code = "wrong_type"
    else:  # lengths, ranges, patterns
        code = "invalid_value"
    return DecodeError(code, f"field {path!r}: {detail}", path)


def _load(raw: bytes | None, cls: type[R]) -> R:
    if raw is None:
        raise DecodeError("tombstone", "value is null (a tombstone)")
    if len(raw) > MAX_VALUE_BYTES:
        raise DecodeError(
            "value_too_large", f"value is {len(raw)} bytes, more than {MAX_VALUE_BYTES}"
        )
    if not raw.isascii():
        # msgspec checks the UTF-8 of the strings it reads, not of the fields it skips.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise DecodeError(
                "not_utf8", f"value is not valid UTF-8 (bad byte at offset {uexc.start})"
            ) from None
    try:
        rec = _decoder(cls).decode(raw)
    except msgspec.ValidationError as exc:
        raise _classify(exc) from None
    except msgspec.DecodeError as exc:
        raise DecodeError("malformed_json", f"value is not valid JSON: {exc}") from None
    # JSON can only carry NUL escaped; the substring test is cheap, the walk exact.
    if b"\\u0000" in raw and has_nul(msgspec.to_builtins(rec)):
        raise DecodeError("invalid_value", "a string holds a NUL character (\\u0000)")
    return rec


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (builtins: str, dict, list) holds NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def epoch(ts: datetime) -> float:
    """UTC epoch seconds of an aware datetime."""
    return ts.timestamp()


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _snippet(value: str) -> str:
    return repr(value if len(value) <= _SNIPPET else value[:_SNIPPET] + "...")


_OFFSET_TEXT: dict[tzinfo, bytes] = {}
# A zero offset written as +0000 or -0000 at the end of a string (seconds and
# an optional fraction before it).
_UTC_NO_COLON = re.compile(rb'[0-9]:[0-5][0-9](?:\.[0-9]+)?[+-]0000"')


def _offset_text(ts: datetime) -> bytes | None:
    """``±HH:MM"`` of ``ts``'s offset (the end of its JSON string); None for UTC."""
    tz = ts.tzinfo
    if tz is UTC or tz is None:
        return None
    text = _OFFSET_TEXT.get(tz)
    if text is None:
        delta = ts.utcoffset()
        seconds = 0 if delta is None else int(delta.total_seconds())
        sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
        text = f'{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"'.encode()
        if len(_OFFSET_TEXT) < 4096:
            _OFFSET_TEXT[tz] = text
    return text


def _check_offsets(raw: bytes | None, record: Any, *names: str) -> None:
    """Refuse a timestamp whose offset is written ``±HHMM`` (msgspec reads it too).

    msgspec keeps only the parsed value, so the text is looked for in ``raw``:
    each non-zero offset must appear as ``±HH:MM"`` (the end of a string), as
    often as the record's timestamps have it; for a zero offset no string may
    end in ``SS±0000"``. Cheap (substring searches). A timestamp is wrongly
    refused only if its offset is written with JSON escapes, or if it is zero
    and another string of the record ends like a colon-less zero offset
    (``12:30:00+0000``).
    """
    if raw is None:
        return
    wanted: dict[bytes, int] = {}
    for name in names:
        ts = getattr(record, name)
        if ts is None:
            continue
        text = _offset_text(ts)
        if text is None:
            ok = b'0000"' not in raw or _UTC_NO_COLON.search(raw) is None
        else:
            n = wanted[text] = wanted.get(text, 0) + 1
            ok = text in raw if n == 1 else raw.count(text) >= n
        if not ok:
            raise DecodeError(
                "bad_timestamp", f"field {name!r}: the offset must be written +HH:MM", name
            )


# --- records -------------------------------------------------------------------


def decode_access_event(raw: bytes | None) -> AccessEvent:
    """Decode one ``{prefix}access-events`` value; raise :class:`DecodeError` if invalid."""
    return decode_access_event_at(raw)[0]


def decode_access_event_at(raw: bytes | None) -> tuple[AccessEvent, float]:
    """:func:`decode_access_event`, with ``occurred_at`` as UTC epoch seconds (computed
    for the range check anyway; the core needs it for every access)."""
    ev = _load(raw, AccessEvent)
    if ev.customer_id is None and ev.action != "search_customers":
        raise DecodeError(
            "invalid_value",
            f"field 'customer_id' may be null only for search_customers, not {ev.action}",
            "customer_id",
        )
    # _check_offsets, written out for the one timestamp of the hot path.
    data = cast(bytes, raw)  # _load refused None
    if ev.occurred_at.tzinfo is UTC:
        colon = b'0000"' not in data or _UTC_NO_COLON.search(data) is None
    else:
        colon = (_offset_text(ev.occurred_at) or b"") in data
    if not colon:
        _check_offsets(data, ev, "occurred_at")  # raises, with the message
    at = ev.occurred_at.timestamp()
    if not FIRST_EVENT_TIME <= at < END_EVENT_TIME:
        raise DecodeError(
            "bad_timestamp",
            f"field 'occurred_at' is outside 2000-01-01..2099-12-31 UTC: {ev.occurred_at}",
            "occurred_at",
        )
    return ev, at


def decode_staff_record(raw: bytes | None) -> StaffRecord:
    """Decode one ``{prefix}staff-directory`` value; ``tombstone`` means deleted."""
    rec = _load(raw, StaffRecord)
    _check_offsets(raw, rec, "effective_at")
    for name in ("shift_start", "shift_end"):
        value = getattr(rec, name)
        if value is not None and value.endswith("\n"):
            raise DecodeError(
                "invalid_value", f"field {name!r} is not HH:MM: {_snippet(value)}", name
            )
    if rec.timezone not in _zone_names():
        raise DecodeError(
            "invalid_value",
            f"field 'timezone' is not an IANA time zone name: {_snippet(rec.timezone)}",
            "timezone",
        )
    return rec


def decode_assignment(raw: bytes | None) -> Assignment:
    """Decode one ``{prefix}staff-assignments`` value; ``tombstone`` means deleted."""
    rec = _load(raw, Assignment)
    _check_offsets(raw, rec, "valid_from", "valid_to")
    return rec


def decode_customer_profile(raw: bytes | None) -> CustomerProfile:
    """Decode one ``{prefix}customer-profiles`` value; ``tombstone`` means deleted."""
    rec = _load(raw, CustomerProfile)
    _check_offsets(raw, rec, "updated_at")
    return rec


def decode_feedback(raw: bytes | None) -> AlertFeedback:
    """Decode one ``{prefix}alert-feedback`` value."""
    rec = _load(raw, AlertFeedback)
    _check_offsets(raw, rec, "decided_at")
    return rec


def decode_alert(raw: bytes | None) -> Alert:
    """Decode one ``{prefix}alerts`` value (the alert store re-validates what it stores)."""
    return _load(raw, Alert)


# --- dead letters --------------------------------------------------------------


def _carry(data: bytes, cap: int) -> tuple[str, Encoding, bool]:
    """(``data`` as text, or base64 if not UTF-8; its encoding; whether it was cut).

    At most ``cap`` bytes are kept; a cut that splits a character ends before
    it, so UTF-8 stays text. Text whose JSON string would be longer than
    ``_ESCAPED * cap`` bytes (control characters escape to six) is cut further.
    """
    cut = len(data) > cap
    if cut:
        data = data[:cap]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (cut and exc.reason == "unexpected end of data" and exc.end == len(data)):
            return base64.b64encode(data).decode("ascii"), "base64", cut
        text = data[: exc.start].decode("utf-8")
    budget = _ESCAPED * cap + 2  # the JSON string's quotes
    if len(text) * 6 + 2 > budget and len(_ENCODER.encode(text)) > budget:
        lo, hi = 0, len(text)  # the longest prefix whose JSON string fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(_ENCODER.encode(text[:mid])) <= budget:
                lo = mid
            else:
                hi = mid - 1
        text, cut = text[:lo], True
    return text, "utf-8", cut


def dead_letter(
    raw: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    error: PoisonError,
    received_at: float,
) -> DeadLetter:
    """The DeadLetter record for an unusable value.

    ``original`` holds the value as text when it is valid UTF-8, else base64;
    a null value gives ``""`` (code ``tombstone``). A value longer than
    :data:`DEAD_LETTER_ORIGINAL_MAX` bytes is cut to at most that many (ending
    on a whole character), and text whose JSON string would take more than
    twice that (control characters) is cut further; a cut sets ``truncated``,
    ``original_bytes`` and ``original_sha256``, so that a dead letter always
    fits the producer's size limit. The key is cut the same way at
    :data:`DEAD_LETTER_KEY_MAX` bytes (its digest is not kept).
    """
    data = b"" if raw is None else bytes(raw)
    original, encoding, truncated = _carry(data, DEAD_LETTER_ORIGINAL_MAX)
    key_text: str | None = None
    key_encoding: Encoding | None = None
    if key is not None:
        key_text, key_encoding, _ = _carry(bytes(key), DEAD_LETTER_KEY_MAX)
    message = error.message if len(error.message) <= 1000 else error.message[:1000] + "..."
    return DeadLetter(
        original=original,
        encoding=encoding,
        key=key_text,
        key_encoding=key_encoding,
        topic=topic,
        partition=max(0, partition),
        offset=max(0, offset),
        error=ErrorInfo(error.code, message),
        received_at=datetime.fromtimestamp(received_at, UTC),
        truncated=truncated,
        original_bytes=len(data) if truncated else None,
        original_sha256=hashlib.sha256(data).hexdigest() if truncated else None,
    )


def encode(record: Any) -> bytes:
    """JSON bytes of a contract record (or any msgspec-encodable value)."""
    return _ENCODER.encode(record)
