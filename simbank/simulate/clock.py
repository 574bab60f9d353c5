"""Local wall-clock time <-> epoch milliseconds, and RFC 3339 formatting. Pure, no I/O.

The simulator keeps every instant as integer epoch milliseconds, so output is exact and
deterministic; a local time is a (timezone, date, minutes after local midnight) triple.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_BUCKET_MS = 900_000  # UTC offsets only change on quarter-hour boundaries

_zones: dict[str, ZoneInfo] = {}
_offsets: dict[tuple[str, int], tuple[int, str]] = {}


def zone(name: str) -> ZoneInfo:
    """The (cached) IANA zone called ``name``."""
    z = _zones.get(name)
    if z is None:
        z = _zones[name] = ZoneInfo(name)
    return z


def local_ms(tz: str, day: date, minutes: float) -> int:
    """Epoch ms of the wall-clock time ``minutes`` after local midnight of ``day``.

    ``minutes`` may exceed 1440 (a night session running past midnight).

    >>> local_ms("Asia/Shanghai", date(2026, 3, 2), 9 * 60 + 30)
    1772415000000
    """
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)
    return round(wall.replace(tzinfo=zone(tz)).timestamp() * 1000)


def _offset(tz: str, ms: int) -> tuple[int, str]:
    key = (tz, ms // _BUCKET_MS)
    hit = _offsets.get(key)
    if hit is None:
        at = datetime.fromtimestamp(key[1] * _BUCKET_MS / 1000, UTC)
        delta = zone(tz).utcoffset(at) or timedelta(0)
        off = int(delta.total_seconds() * 1000)
        sign = "+" if off >= 0 else "-"
        mins = abs(off) // MINUTE_MS
        hit = _offsets[key] = (off, f"{sign}{mins // 60:02d}:{mins % 60:02d}")
    return hit


def _stamp(ms: int, suffix: str) -> str:
    secs, milli = divmod(ms, 1000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{milli:03d}{suffix}"
    )


def format_local(ms: int, tz: str) -> str:
    """RFC 3339 in the zone's local time with its explicit offset.

    >>> format_local(1772415000123, "Asia/Shanghai")
    '2026-03-02T09:30:00.123+08:00'
    >>> format_local(1772415000000, "Asia/Tokyo")
    '2026-03-02T10:30:00.000+09:00'
    """
    off, suffix = _offset(tz, ms)
    return _stamp(ms + off, suffix)


def format_utc(ms: int) -> str:
    """RFC 3339 in UTC with a ``Z``.

    >>> format_utc(1772415000000)
    '2026-03-02T01:30:00.000Z'
    """
    return _stamp(ms, "Z")


def local_date(ms: int, tz: str) -> date:
    """The local calendar date of an instant in a zone."""
    off, _ = _offset(tz, ms)
    return (datetime(1970, 1, 1) + timedelta(milliseconds=ms + off)).date()


def hhmm(minutes: int) -> str:
    """``'HH:MM'`` for minutes after local midnight.

    >>> hhmm(510)
    '08:30'
    """
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
