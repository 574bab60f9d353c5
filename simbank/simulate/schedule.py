"""Who works when: each employee's working periods on each simulated day. Pure.

Both normal behaviour and incident injection ask the same :class:`Schedule`, so incidents
land on days the employee is really at work (or, for account misuse, when they are not).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from simbank.simulate.bank import Bank, Posting
from simbank.simulate.clock import local_ms

Block = tuple[float, float]  # local minutes after midnight: [start, end)


@dataclass(frozen=True, slots=True)
class DayPlan:
    staff_id: str
    index: int  # day number in the simulation, 0 = start
    day: date
    posting: Posting
    blocks: tuple[Block, ...]  # working periods; the gaps between them are breaks
    weekend: bool

    @property
    def tz(self) -> str:
        return self.posting.timezone

    @property
    def branch_id(self) -> str:
        return self.posting.branch_id

    @property
    def role(self) -> str:
        return self.posting.role

    def ms(self, minute: float) -> int:
        return local_ms(self.tz, self.day, minute)

    @property
    def noon_ms(self) -> int:
        return self.ms(12 * 60)

    @property
    def end_minute(self) -> float:
        return self.blocks[-1][1]


class Schedule:
    def __init__(self, bank: Bank) -> None:
        self.bank = bank
        start = bank.config.start_date
        self.days = [start + timedelta(days=i) for i in range(bank.config.days)]
        self._cache: dict[tuple[str, int], DayPlan | None] = {}

    def posting_on(self, staff_id: str, index: int) -> Posting | None:
        """The staff record in force at local noon of day ``index``."""
        person = self.bank.staff[staff_id]
        return person.posting_at(local_ms(person.first.timezone, self.days[index], 12 * 60))

    def plan(self, staff_id: str, index: int) -> DayPlan | None:
        key = (staff_id, index)
        if key not in self._cache:
            self._cache[key] = self._make(staff_id, index)
        return self._cache[key]

    def workdays(self, staff_id: str, lo: int, hi: int) -> list[DayPlan]:
        """Weekday plans of a staff member for day indexes in ``[lo, hi)``."""
        out: list[DayPlan] = []
        for i in range(max(0, lo), min(hi, len(self.days))):
            p = self.plan(staff_id, i)
            if p is not None and not p.weekend:
                out.append(p)
        return out

    def _make(self, staff_id: str, index: int) -> DayPlan | None:
        person = self.bank.staff[staff_id]
        posting = self.posting_on(staff_id, index)
        if posting is None or posting.status != "active":
            return None
        day = self.days[index]
        rng = random.Random(f"{self.bank.config.seed}|plan|{staff_id}|{index}")
        shift = posting.shift
        weekday = day.weekday()
        rota = self.bank.config.profile.teller_saturday_rota
        off = self.bank.config.profile.shift_offset_min
        if weekday >= 5:
            week = index // 7
            if weekday == 5 and posting.role == "teller" and rota and week % rota == person.rota:
                begin = 9 * 60 + off + rng.uniform(-10, 5)
                return DayPlan(staff_id, index, day, posting, ((begin, 13 * 60 + off),), True)
            if person.weekend_p and rng.random() < person.weekend_p:
                begin = rng.uniform(10 * 60, 19 * 60)
                return DayPlan(
                    staff_id, index, day, posting, ((begin, begin + rng.uniform(20, 60)),), True
                )
            return None
        if rng.random() < 0.03:
            return None  # a personal day off
        begin = shift.start + rng.uniform(-12, 15)
        end = shift.end + rng.uniform(-20, 25)
        if shift.split:  # a long break in the middle of the day
            brk = 12 * 60 + off + rng.uniform(-10, 10)
            back = 16 * 60 + off + rng.uniform(-10, 10)
        elif shift.start < 11 * 60 + off:
            brk = 12 * 60 + off + rng.uniform(-15, 35)
            back = brk + rng.uniform(40, 75)
        else:  # late shift: a short dinner break
            brk = 16 * 60 + 30 + off + rng.uniform(-15, 20)
            back = brk + rng.uniform(25, 45)
        return DayPlan(staff_id, index, day, posting, ((begin, brk), (back, end)), False)
