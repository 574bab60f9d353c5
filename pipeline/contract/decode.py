"""Kafka values (bytes) -> contract records, strictly, with stable error codes.

The types of :mod:`pipeline.contract.records` are the rules; msgspec checks
them in compiled code. On top of the types, the few checks a JSON Schema
cannot express (``schemas/README.md``, "Checks beyond the schema"):

- an access's ``customer_id`` is null only for ``search_customers``;
- an access happened in [2000-01-01, 2100-01-01) UTC;
- ``timezone`` names a zone of the IANA database known to :mod:`zoneinfo`.

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
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

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
# A dead letter carries at most this many bytes of its original value (the
# producer's limit is 1 MiB; base64 and JSON escaping can double the size).
DEAD_LETTER_ORIGINAL_MAX: Final = 256 * 1024

_SNIPPET: Final = 64
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")

R = TypeVar("R")


class DecodeError(PoisonError):
    """A value that does not satisfy the contract. Poison: retrying cannot help.

    ``field`` is the offending field's path (``staff_id``, ``related_staff_ids[0]``),
    or ``None`` when the value as a whole is at fault.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message)
        self.field = field


_DECODERS: dict[type, Any] = {}


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
    try:
        return _decoder(cls).decode(raw)
    except msgspec.ValidationError as exc:
        raise _classify(exc) from None
    except msgspec.DecodeError as exc:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise DecodeError(
                "not_utf8", f"value is not valid UTF-8 (bad byte at offset {uexc.start})"
            ) from None
        raise DecodeError("malformed_json", f"value is not valid JSON: {exc}") from None


def epoch(ts: datetime) -> float:
    """UTC epoch seconds of an aware datetime."""
    return ts.timestamp()


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _snippet(value: str) -> str:
    return repr(value if len(value) <= _SNIPPET else value[:_SNIPPET] + "...")


# --- records -------------------------------------------------------------------


def decode_access_event(raw: bytes | None) -> AccessEvent:
    """Decode one ``{prefix}access-events`` value; raise :class:`DecodeError` if invalid."""
    ev = _load(raw, AccessEvent)
    if ev.customer_id is None and ev.action != "search_customers":
        raise DecodeError(
            "invalid_value",
            f"field 'customer_id' may be null only for search_customers, not {ev.action}",
            "customer_id",
        )
    at = ev.occurred_at.timestamp()
    if not FIRST_EVENT_TIME <= at < END_EVENT_TIME:
        raise DecodeError(
            "bad_timestamp",
            f"field 'occurred_at' is outside 2000-01-01..2099-12-31 UTC: {ev.occurred_at}",
            "occurred_at",
        )
    return ev


def decode_staff_record(raw: bytes | None) -> StaffRecord:
    """Decode one ``{prefix}staff-directory`` value; ``tombstone`` means deleted."""
    rec = _load(raw, StaffRecord)
    if rec.timezone not in _zone_names():
        raise DecodeError(
            "invalid_value",
            f"field 'timezone' is not an IANA time zone name: {_snippet(rec.timezone)}",
            "timezone",
        )
    return rec


def decode_assignment(raw: bytes | None) -> Assignment:
    """Decode one ``{prefix}staff-assignments`` value; ``tombstone`` means deleted."""
    return _load(raw, Assignment)


def decode_customer_profile(raw: bytes | None) -> CustomerProfile:
    """Decode one ``{prefix}customer-profiles`` value; ``tombstone`` means deleted."""
    return _load(raw, CustomerProfile)


def decode_feedback(raw: bytes | None) -> AlertFeedback:
    """Decode one ``{prefix}alert-feedback`` value."""
    return _load(raw, AlertFeedback)


def decode_alert(raw: bytes | None) -> Alert:
    """Decode one ``{prefix}alerts`` value (the alert store re-validates what it stores)."""
    return _load(raw, Alert)


# --- dead letters --------------------------------------------------------------


def _text_or_base64(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


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
    :data:`DEAD_LETTER_ORIGINAL_MAX` bytes is cut to that many, with
    ``truncated``, ``original_bytes`` and ``original_sha256`` set, so that a
    dead letter always fits the producer's size limit. A key longer than that
    is cut the same way (its digest is not kept).
    """
    truncated = False
    size = digest = None
    data = b"" if raw is None else bytes(raw)
    if len(data) > DEAD_LETTER_ORIGINAL_MAX:
        truncated, size = True, len(data)
        digest = hashlib.sha256(data).hexdigest()
        data = data[:DEAD_LETTER_ORIGINAL_MAX]
    original, encoding = _text_or_base64(data) if data else ("", "utf-8")
    if truncated and encoding == "utf-8":
        # a cut may split a character; re-check as text
        original, encoding = _text_or_base64(data)
    key_text: str | None = None
    key_encoding: str | None = None
    if key is not None:
        key_text, key_encoding = _text_or_base64(bytes(key)[:DEAD_LETTER_ORIGINAL_MAX])
    message = error.message if len(error.message) <= 1000 else error.message[:1000] + "..."
    return DeadLetter(
        original=original,
        encoding=encoding,  # type: ignore[arg-type]
        key=key_text,
        key_encoding=key_encoding,  # type: ignore[arg-type]
        topic=topic,
        partition=max(0, partition),
        offset=max(0, offset),
        error=ErrorInfo(error.code, message),
        received_at=datetime.fromtimestamp(received_at, UTC),
        truncated=truncated,
        original_bytes=size,
        original_sha256=digest,
    )


_ENCODER = msgspec.json.Encoder()


def encode(record: Any) -> bytes:
    """JSON bytes of a contract record (or any msgspec-encodable value)."""
    return _ENCODER.encode(record)
