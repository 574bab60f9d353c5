"""RFC 3339 timestamps <-> UTC epoch seconds, and local calendar days. Pure, no I/O.

simbank's own small helpers (it talks to the pipeline through the contract only, so it
reads the contract's timestamps itself): an RFC 3339 timestamp with a mandatory offset.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"  # the contract's default StaffRecord.timezone

_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


class TimestampError(ValueError):
    """Not an RFC 3339 timestamp with an explicit offset."""


def parse_ts(text: str) -> float:
    """UTC epoch seconds of an RFC 3339 timestamp with offset.

    >>> parse_ts("2026-03-02T09:30:00+08:00"), parse_ts("2026-03-02T01:30:00.000Z")
    (1772415000.0, 1772415000.0)
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
    """RFC 3339 in UTC with millisecond precision.

    >>> format_ts(1772415000.0)
    '2026-03-02T01:30:00.000Z'
    """
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return f"{dt.year:04d}-" + dt.strftime("%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(epoch: float, tz: str) -> datetime:
    """The wall-clock time of an instant in a zone."""
    return datetime.fromtimestamp(epoch, zone(tz))


def local_day(epoch: float, tz: str) -> date:
    """The local calendar date of an instant in a zone.

    >>> local_day(parse_ts("2026-03-02T16:30:00Z"), "Asia/Shanghai")
    datetime.date(2026, 3, 3)
    """
    return local_time(epoch, tz).date()


def local_midnight(day: date, tz: str) -> float:
    """Epoch seconds of 00:00 local time on ``day`` in ``tz``.

    >>> format_ts(local_midnight(date(2026, 3, 9), "Asia/Shanghai"))
    '2026-03-08T16:00:00.000Z'
    """
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz)).timestamp()


def day_after(day: date, n: int = 1) -> date:
    return day + timedelta(days=n)
