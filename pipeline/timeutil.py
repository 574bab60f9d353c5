"""RFC 3339 timestamps <-> UTC epoch seconds. Pure, no I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Date, 'T' (or space), time with optional fraction, and a mandatory offset.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)


class TimestampError(ValueError):
    """A timestamp that is not RFC 3339 with an explicit offset."""


def parse_ts(text: str) -> float:
    """Parse an RFC 3339 timestamp with offset into UTC epoch seconds.

    >>> parse_ts("2026-03-02T09:30:00+08:00")
    1772415000.0
    >>> parse_ts("2026-03-02T01:30:00Z")
    1772415000.0
    """
    if not _RFC3339.match(text):
        raise TimestampError(f"not an RFC 3339 timestamp with offset: {text[:64]!r}")
    norm = text.replace("z", "Z").replace("t", "T").replace(" ", "T")
    if norm.endswith("Z"):
        norm = norm[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(norm).timestamp()
    except ValueError as exc:
        raise TimestampError(f"invalid date or time in {text[:64]!r}: {exc}") from None


def format_ts(epoch: float) -> str:
    """Format UTC epoch seconds as RFC 3339 (UTC, millisecond precision).

    >>> format_ts(1772415000.0)
    '2026-03-02T01:30:00.000Z'
    """
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return f"{dt.year:04d}-" + dt.strftime("%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
