"""Event-time calendar arithmetic, fast: local day numbers and minutes of the day.

Every access needs its bank day (daily baselines, peer days) and the local
minute in the employee's zone (shifts). ``datetime.fromtimestamp`` with a
zone costs about a microsecond; here the UTC offset is looked up once per
zone and hour and cached, and the rest is integer arithmetic.

A *day number* is the count of local days since 1970-01-01 in that zone:
``day_number(t, zone)`` of two instants is equal exactly when they fall on
the same local calendar date.

>>> sh = Calendar("Asia/Shanghai")
>>> t = 1772415000.0  # 2026-03-02T09:30:00+08:00
>>> sh.day_label(sh.day(t)), sh.minute(t)
('2026-03-02', 570)
>>> sh.day(t - 9.5 * 3600 - 1) == sh.day(t) - 1  # 23:59:59 the evening before
True
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.contract.records import DEFAULT_TIMEZONE

_EPOCH = date(1970, 1, 1)
_HOUR = 3600


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The zone, or the default zone for a name the tz database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


class Calendar:
    """Day numbers and local minutes in one zone."""

    __slots__ = ("_offsets", "name", "zone")

    def __init__(self, name: str) -> None:
        self.name = name
        self.zone = zone(name)
        self._offsets: dict[int, int] = {}

    def offset(self, t: float) -> int:
        """UTC offset in seconds at instant ``t`` (cached per UTC hour)."""
        hour = int(t // _HOUR)
        off = self._offsets.get(hour)
        if off is None:
            delta = datetime.fromtimestamp(hour * _HOUR, UTC).astimezone(self.zone).utcoffset()
            off = int(delta.total_seconds()) if delta is not None else 0
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            self._offsets[hour] = off
        return off

    # day and minute run for every access: they read the cache themselves, and call
    # offset only for an hour not in it (a method call costs more than the lookup).

    def day(self, t: float) -> int:
        """Local day number of instant ``t``."""
        off = self._offsets.get(int(t // _HOUR))
        if off is None:
            off = self.offset(t)
        return int((t + off) // 86400)

    def minute(self, t: float) -> int:
        """Local minute of the day (0-1439) of instant ``t``."""
        off = self._offsets.get(int(t // _HOUR))
        if off is None:
            off = self.offset(t)
        return int((t + off) % 86400) // 60

    def day_start(self, day: int) -> float:
        """The instant local ``day`` begins (DST-safe to within the hour's offset)."""
        guess = day * 86400.0
        return guess - self.offset(guess - 12 * _HOUR)

    def day_end(self, day: int) -> float:
        return self.day_start(day + 1)

    @staticmethod
    def day_label(day: int) -> str:
        return (_EPOCH + timedelta(days=day)).isoformat()


@lru_cache(maxsize=512)
def calendar(name: str) -> Calendar:
    return Calendar(name)
