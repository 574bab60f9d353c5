"""Whether a local minute of the day is inside an employee's shift. Pure."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pipeline.core.calendar import calendar

if TYPE_CHECKING:
    from pipeline.reference.state import Enriched

GRACE_MINUTES = 60
DEFAULT_SHIFT = (7 * 60, 20 * 60)  # when HR gives no shift: 07:00-20:00


@lru_cache(maxsize=1024)
def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def outside_shift(
    minute: int, shift_start: str | None, shift_end: str | None, grace: int = GRACE_MINUTES
) -> bool:
    """True when local ``minute`` (0-1439) is outside [start - grace, end + grace].

    No shift known: 07:00-20:00. Shifts that cross midnight (start > end) are handled.

    >>> outside_shift(23 * 60 + 30, "08:30", "17:30")
    True
    >>> outside_shift(18 * 60, "08:30", "17:30")
    False
    >>> outside_shift(60, "22:00", "06:00")
    False
    """
    lo, hi = _bounds(shift_start, shift_end, grace)
    if lo <= hi:
        return not lo <= minute <= hi
    return hi < minute < lo


@lru_cache(maxsize=1024)
def _bounds(shift_start: str | None, shift_end: str | None, grace: int) -> tuple[int, int]:
    """The first and last minute of the day inside the shift with its grace (cached: one
    lookup per access instead of two and the arithmetic)."""
    start = _minutes(shift_start) if shift_start else DEFAULT_SHIFT[0]
    end = _minutes(shift_end) if shift_end else DEFAULT_SHIFT[1]
    return (start - grace) % 1440, (end + grace) % 1440


def local_minute(e: Enriched) -> int:
    """The access's local minute of the day in the employee's time zone, computed once
    per access (the engine, the off-shift rule and the night test all ask)."""
    m = e.minute
    if m < 0:
        m = e.minute = calendar(e.timezone).minute(e.at)
    return m
