"""Every partition's peer days, and the peer view of a complete day. Pure, no I/O.

Each worker holds one :class:`PeerBook`, fed with the PeerDay and Watermark
records of all partitions (its own at once, the others' from the internal
topic). ``complete_through()`` is the last bank day every partition has
published; :meth:`PeerBook.view` of a day up to it is the same on every
worker. Memory: one PeerDay per partition and day for the last
``WINDOW_DAYS + 3`` days (a few KB to a few hundred KB each).

>>> from pipeline.peers.days import GroupDay, PeerDay
>>> book = PeerBook(partitions=2)
>>> code = "unassigned_customer_access"
>>> g = {"r:teller": GroupDay(2, {code: 6.0}, {code: 20.0})}
>>> book.add(PeerDay(0, 100, g, {}))
True
>>> book.complete_through() is None  # partition 1 has not published day 100 yet
True
>>> book.add(PeerDay(1, 100, {}, {}))
True
>>> v = book.view(100)
>>> v.mean("r:teller", code), v.staff_days("r:teller")
(3.0, 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from pipeline.peers.days import SAMPLES_PER_GROUP, PeerDay, PeerRecord, Watermark

WINDOW_DAYS: Final = 28  # a group's usual daily counts are its means over the last 28 days


@dataclass(slots=True)
class GroupStats:
    staff_days: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    squares: dict[str, float] = field(default_factory=dict)


DaySamples = dict[str, list[tuple[int, list[float]]]]  # role group -> (hash, x), by hash


def day_samples(per_day: list[PeerDay]) -> DaySamples:
    """One day's model samples of every role group: all partitions', sorted by hash, the
    first ``SAMPLES_PER_GROUP``."""
    merged: DaySamples = {}
    for rec in per_day:
        for role, recs in rec.samples.items():
            merged.setdefault(role, []).extend((s.h, s.x) for s in recs)
    for role, pairs in merged.items():
        pairs.sort(key=lambda hx: hx[0])
        merged[role] = pairs[:SAMPLES_PER_GROUP]
    return merged


class PeerView:
    """Per-staff-day means and variances of every group over a window of complete days.

    ``samples_by_day``: :func:`day_samples` of each of ``days`` when the caller has them
    (the book keeps them per day: each view of the window would merge the same days
    again); they are shared, read-only."""

    __slots__ = ("day", "groups", "samples")

    def __init__(
        self,
        day: int,
        days: list[list[PeerDay]],
        samples_by_day: list[DaySamples] | None = None,
    ) -> None:
        self.day = day
        self.groups: dict[str, GroupStats] = {}
        # role group -> per day (oldest first) -> samples sorted by hash (for the models)
        self.samples: dict[str, list[list[tuple[int, list[float]]]]] = {}
        for k, per_day in enumerate(days):
            for rec in per_day:
                for name, g in rec.groups.items():
                    st = self.groups.get(name)
                    if st is None:
                        st = self.groups[name] = GroupStats()
                    st.staff_days += g.staff_days
                    for code, v in g.sums.items():
                        st.sums[code] = st.sums.get(code, 0.0) + v
                    for code, v in g.squares.items():
                        st.squares[code] = st.squares.get(code, 0.0) + v
            merged = day_samples(per_day) if samples_by_day is None else samples_by_day[k]
            for role, pairs in merged.items():
                self.samples.setdefault(role, []).append(pairs)

    def staff_days(self, group: str) -> int:
        st = self.groups.get(group)
        return st.staff_days if st is not None else 0

    def mean(self, group: str, code: str) -> float:
        st = self.groups.get(group)
        if st is None or st.staff_days == 0:
            return 0.0
        return st.sums.get(code, 0.0) / st.staff_days

    def var(self, group: str, code: str) -> float:
        st = self.groups.get(group)
        if st is None or st.staff_days < 2:
            return 0.0
        m = st.sums.get(code, 0.0) / st.staff_days
        return max(0.0, st.squares.get(code, 0.0) / st.staff_days - m * m)


class PeerBook:
    def __init__(self, partitions: int, window_days: int = WINDOW_DAYS) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self.window_days = window_days
        self.days: dict[int, dict[int, PeerDay]] = {}
        self.closed: dict[int, int] = {}  # partition -> last bank day it published
        self.watermarks: dict[int, float] = {}
        self._views: dict[int, PeerView] = {}
        self._samples: dict[int, DaySamples] = {}  # day_samples of each day, until it changes
        self._complete: int | None = None

    def add(self, rec: PeerRecord) -> bool:
        """Apply one record; True when the book changed. Idempotent (replays are harmless).

        A partition's day is taken once: a second record of it (a replay after a crash
        or a handover that closed the day again) is ignored, so every worker's view of
        a day is the one its first publication gave (the engine does not publish a day
        the book has, :meth:`has_day`)."""
        if not 0 <= rec.partition < self.partitions:
            return False  # a record of another partition count: ignored
        if isinstance(rec, Watermark):
            changed = rec.at > self.watermarks.get(rec.partition, float("-inf"))
            if changed:
                self.watermarks[rec.partition] = rec.at
            return self._close(rec.partition, rec.closed_through) or changed
        per_day = self.days.setdefault(rec.day, {})
        if rec.partition not in per_day:  # the first publication of a day stands
            per_day[rec.partition] = rec
            self._samples.pop(rec.day, None)
            self._views.pop(rec.day, None)
            self._close(rec.partition, rec.day)
            return True
        return self._close(rec.partition, rec.day)

    def has_day(self, partition: int, day: int) -> bool:
        """Whether ``partition`` has published bank ``day`` (a replay must not again)."""
        return partition in self.days.get(day, {})

    def _close(self, partition: int, day: int) -> bool:
        if day <= self.closed.get(partition, -(2**31)):
            return False
        self.closed[partition] = day
        if len(self.closed) == self.partitions:
            self._complete = min(self.closed.values())
            self._prune()
        return True

    def complete_through(self) -> int | None:
        """The last bank day every partition has published (None until each has one)."""
        return self._complete

    def global_watermark(self) -> float | None:
        return max(self.watermarks.values()) if self.watermarks else None

    def view(self, day: int) -> PeerView:
        """The peers of the window ending at ``day`` (which must be complete)."""
        v = self._views.get(day)
        if v is None:
            complete = self._complete
            if complete is None or day > complete:
                raise ValueError(f"peer day {day} is not complete (complete through {complete})")
            lo = day - self.window_days
            window = [d for d in sorted(self.days) if lo < d <= day]
            span = [sorted(self.days[d].values(), key=lambda r: r.partition) for d in window]
            samples = []
            for d, per_day in zip(window, span, strict=True):
                merged = self._samples.get(d)
                if merged is None:
                    merged = self._samples[d] = day_samples(per_day)
                samples.append(merged)
            v = self._views[day] = PeerView(day, span, samples)
            if len(self._views) > 8:
                del self._views[min(self._views)]
        return v

    def _prune(self) -> None:
        if self._complete is None:
            return
        horizon = self._complete - self.window_days - 3
        for d in [d for d in self.days if d < horizon]:
            del self.days[d]
            self._samples.pop(d, None)
