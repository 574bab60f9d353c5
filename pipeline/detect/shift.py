"""Local time of an access in the employee's timezone, and whether it is inside their shift."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.contract.records import DEFAULT_TIMEZONE

GRACE_MINUTES = 60


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def local_time(epoch: float, tz: str) -> datetime:
    return datetime.fromtimestamp(epoch, zone(tz))


@lru_cache(maxsize=1024)
def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def outside_shift(
    local: datetime, shift_start: str | None, shift_end: str | None, grace: int = GRACE_MINUTES
) -> bool:
    """True when ``local`` is outside [start - grace, end + grace]; no shift known -> 07:00-20:00.

    Shifts that cross midnight (start > end) are handled.

    >>> from datetime import datetime
    >>> outside_shift(datetime(2026, 3, 2, 23, 30), "08:30", "17:30")
    True
    >>> outside_shift(datetime(2026, 3, 2, 18, 0), "08:30", "17:30")
    False
    >>> outside_shift(datetime(2026, 3, 3, 1, 0), "22:00", "06:00")
    False
    """
    start = _minutes(shift_start) if shift_start else 7 * 60
    end = _minutes(shift_end) if shift_end else 20 * 60
    now = local.hour * 60 + local.minute
    lo, hi = (start - grace) % 1440, (end + grace) % 1440
    if lo <= hi:
        return not lo <= now <= hi
    return hi < now < lo
