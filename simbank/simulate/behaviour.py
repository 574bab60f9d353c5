"""Normal activity of every employee, by role and by person. Pure.

Volumes are interactions (one customer served, a few actions each) per 8-hour day before
the personal multiplier; the working-day rhythm comes from the :class:`Schedule` blocks
(lunch dip between them) and a triangular density peaking mid-morning and mid-afternoon.
Benign look-alikes that arise from ordinary work (covering a colleague, a new hire's first
days, a transfer's first days at the new branch, month-end batches, overtime) are labelled
here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from simbank.simulate.activity import Recorder, Seat, pick_actions, visit
from simbank.simulate.bank import Bank, Desk
from simbank.simulate.changes import ChangePlan, Cover
from simbank.simulate.labels import NORMAL, LabelBook
from simbank.simulate.schedule import DayPlan, Schedule

BASE_INTERACTIONS: dict[str, float] = {
    "teller": 38,
    "customer_manager": 24,
    "loan_officer": 13,
    "operations": 26,
    "branch_manager": 12,
    "auditor": 22,
    "it_support": 3,
}
CHANNEL: dict[str, str] = {
    "teller": "branch_terminal",
    "customer_manager": "crm_web",
    "loan_officer": "crm_web",
    "operations": "crm_web",
    "branch_manager": "crm_web",
    "auditor": "crm_web",
    "it_support": "crm_web",
}
WEEKDAY_FACTOR = (1.15, 1.0, 1.0, 1.0, 1.1, 1.0, 1.0)
API_DESK = Desk(None, "10.0.0.21")  # the audit sampling service behind the API gateway

TELLER_FIRST = (("view_profile", 0.85), ("view_id_document", 0.2))
TELLER_MORE = (
    ("view_balance", 0.45),
    ("view_transactions", 0.25),
    ("update_contact_info", 0.08),
    ("print_statement", 0.12),
)
CM_FIRST = (("view_profile", 0.7),)
CM_MORE = (
    ("view_balance", 0.3),
    ("view_transactions", 0.3),
    ("update_contact_info", 0.06),
    ("view_id_document", 0.06),
    ("view_loan_file", 0.05),
    ("print_statement", 0.04),
    ("export_statement", 0.04),
    ("credit_report_query", 0.015),
)
LO_FIRST = (("view_loan_file", 1.0), ("view_profile", 0.6))
LO_MORE = (
    ("view_transactions", 0.4),
    ("credit_report_query", 0.25),
    ("view_id_document", 0.15),
    ("export_statement", 0.03),
)
OPS_MORE = (
    ("view_transactions", 0.35),
    ("update_contact_info", 0.25),
    ("view_profile", 0.25),
    ("view_id_document", 0.15),
)
BM_FIRST = (("view_profile", 0.8),)
BM_MORE = (("view_balance", 0.35), ("view_loan_file", 0.35), ("view_transactions", 0.3))
AUDIT_FIRST = (("view_profile", 0.8),)
AUDIT_MORE = (
    ("view_transactions", 0.4),
    ("view_loan_file", 0.2),
    ("view_id_document", 0.2),
    ("view_balance", 0.15),
)


ActionTable = tuple[tuple[str, float], ...]


def scaled(table: ActionTable, factors: Mapping[str, float]) -> ActionTable:
    """``table`` with the weights of the actions in ``factors`` multiplied.

    >>> scaled((("view_balance", 0.3), ("print_statement", 0.04)), {"print_statement": 2.0})
    (('view_balance', 0.3), ('print_statement', 0.08))
    """
    return tuple((a, w * factors.get(a, 1.0)) for a, w in table)


def is_month_end(day: date) -> bool:
    """Month-end processing days: the last business day (Mon-Fri) of a month and the first
    two of the next, when statement runs are larger.

    >>> [d for d in range(1, 6) if is_month_end(date(2026, 3, d))]
    [2, 3]
    >>> is_month_end(date(2026, 3, 31)), is_month_end(date(2026, 3, 30))
    (True, False)
    """
    if day.weekday() >= 5:
        return False
    nxt = day + timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += timedelta(days=1)
    if nxt.month != day.month:
        return True
    before = 0  # business days earlier in the same month
    prev = day - timedelta(days=1)
    while prev.month == day.month and before < 2:
        if prev.weekday() < 5:
            before += 1
        prev -= timedelta(days=1)
    return before < 2


def skewed(items: list[str], rng: random.Random) -> str:
    """Pick from ``items`` favouring the front: a few clients take most of the time."""
    return items[int(len(items) * rng.random() ** 2)]


def mobile_desk(rng: random.Random) -> Desk:
    """A phone on a carrier network (CGNAT range); no terminal."""
    return Desk(None, f"100.{64 + rng.randrange(64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")


class Behaviour:
    def __init__(
        self,
        bank: Bank,
        schedule: Schedule,
        book: LabelBook,
        rec: Recorder,
        changes: ChangePlan,
        overtime: dict[tuple[str, int], int],
    ) -> None:
        self.bank = bank
        self.schedule = schedule
        self.book = book
        self.rec = rec
        self.changes = changes
        self.overtime = overtime
        self.seed = bank.config.seed
        p = self.profile = bank.config.profile
        self.teller_more = scaled(TELLER_MORE, {"print_statement": p.teller_statement_factor})
        statements = {"print_statement": p.cm_statement_factor}
        statements["export_statement"] = p.cm_statement_factor
        self.cm_more = scaled(CM_MORE, {**statements, "credit_report_query": p.cm_credit_factor})
        self.lo_more = scaled(
            LO_MORE,
            {"export_statement": p.lo_statement_factor, "credit_report_query": p.lo_credit_factor},
        )
        self._missing_auth: dict[tuple[str, int], int] = {}
        self._workdays: dict[str, int] = {}
        self._batch_pool = {
            b.branch_id: [
                c.customer_id
                for c in bank.by_branch[b.branch_id]
                if c.segment != "retail" and c.sensitivity != "employee"
            ]
            for b in bank.branches
        }
        self._batch_owners = {
            ops[0] for b in bank.branches if (ops := bank.staff_in(b.branch_id, "operations"))
        }
        self._handlers: dict[str, Callable[[DayPlan, random.Random, Seat, int, int], None]] = {
            "teller": self._teller,
            "customer_manager": self._customer_manager,
            "loan_officer": self._loan_officer,
            "operations": self._operations,
            "branch_manager": self._branch_manager,
            "auditor": self._auditor,
            "it_support": self._it_support,
        }

    def run(self) -> None:
        for sid in self.bank.staff:
            for i in range(len(self.schedule.days)):
                plan = self.schedule.plan(sid, i)
                if plan is not None:
                    self._day(plan)

    # -- one staff-day -----------------------------------------------------------
    def _day(self, plan: DayPlan) -> None:
        sid = plan.staff_id
        rng = random.Random(f"{self.seed}|act|{sid}|{plan.index}")
        volume = self.bank.staff[sid].volume
        label = NORMAL
        hire = self.changes.hires.get(sid)
        if hire is not None and not plan.weekend:
            k = self._workday_no(sid)
            volume *= min(1.0, 0.45 + 0.15 * k)
            if k < 3:
                label = hire
        move = self.changes.moves.get(sid)
        moved = move is not None and plan.noon_ms >= move.at_ms and not plan.weekend
        if move is not None and moved and self._workday_no(sid) < 5:
            label = move.label
        seat = Seat(
            sid, plan.branch_id, plan.tz, self.bank.desk(sid, plan.branch_id), CHANNEL[plan.role]
        )
        n = self._count(
            BASE_INTERACTIONS[plan.role] * self.profile.volume_factor * volume, plan, rng
        )
        self._handlers[plan.role](plan, rng, seat, n, label)
        ot = self.overtime.get((sid, plan.index))
        if ot is not None:
            self._overtime(plan, rng, seat, ot)

    def _auth(self, plan: DayPlan) -> dict[str, Any]:
        """Keyword arguments of :func:`visit` for the profile's share of ordinary credit
        queries without the authorization reference (benign: the form is on file)."""
        share = self.profile.credit_authorized_share
        if share >= 1.0:
            return {}

        def label() -> int:
            key = (plan.staff_id, plan.index)
            got = self._missing_auth.get(key)
            if got is None:
                got = self._missing_auth[key] = self.book.new(
                    "authorization_on_file", plan.staff_id, within_session=True
                )
            return got

        return {"auth_share": share, "on_missing_auth": label}

    def _workday_no(self, sid: str) -> int:
        k = self._workdays.get(sid, 0)
        self._workdays[sid] = k + 1
        return k

    def _count(self, base: float, plan: DayPlan, rng: random.Random) -> int:
        hours = sum(e - s for s, e in plan.blocks) / 60
        factor = WEEKDAY_FACTOR[plan.day.weekday()] * max(0.3, rng.gauss(1.0, 0.15))
        return max(0, round(base * factor * hours / 8))

    def _slots(self, plan: DayPlan, rng: random.Random, n: int) -> list[int]:
        """``n`` interaction start times within the day's working blocks."""
        blocks = plan.blocks
        lengths = [e - s for s, e in blocks]
        minutes: list[float] = []
        for _ in range(n):
            s, e = rng.choices(blocks, weights=lengths)[0]
            if rng.random() < 0.5:
                minutes.append(rng.uniform(s, e))
            else:
                minutes.append(rng.triangular(s, e, s + 0.4 * (e - s)))
        if not plan.weekend and len(blocks) > 1 and rng.random() < 0.1:
            minutes.append(rng.uniform(blocks[0][1], blocks[1][0]))  # a client over lunch
        minutes.sort()
        return [plan.ms(m) for m in minutes]

    def _sequence(
        self,
        plan: DayPlan,
        rng: random.Random,
        n: int,
        one: Callable[[int], int],
    ) -> None:
        """Run ``one(start_ms) -> end_ms`` for ``n`` interactions, one after another."""
        busy_until = 0
        for slot in self._slots(plan, rng, n):
            start = max(slot, busy_until + int(rng.uniform(5, 40) * 1000))
            busy_until = one(start)

    # -- customer choice ---------------------------------------------------------
    def _walk_in(self, plan: DayPlan, rng: random.Random) -> str:
        """A customer at the counter: mostly of this branch, never restricted or related."""
        own = self.bank.by_branch[plan.branch_id]
        everyone = self.bank.customers
        for _ in range(50):
            pool = own if rng.random() < self.profile.walk_in_own_branch else everyone
            c = pool[rng.randrange(len(pool))]
            if c.sensitivity == "restricted" or plan.staff_id in c.related_staff_ids:
                continue
            if c.sensitivity in ("vip", "pep") and rng.random() < 0.6:
                continue
            return c.customer_id
        raise RuntimeError(f"no walk-in customer found at {plan.branch_id}")

    def _unassigned_here(self, plan: DayPlan, rng: random.Random, ms: int) -> str | None:
        """An ordinary customer of the branch not assigned to the staff member."""
        own = self.bank.by_branch[plan.branch_id]
        for _ in range(30):
            c = own[rng.randrange(len(own))]
            if (
                c.sensitivity == "normal"
                and plan.staff_id not in c.related_staff_ids
                and not self.bank.is_assigned(plan.staff_id, c.customer_id, ms)
            ):
                return c.customer_id
        return None

    # -- roles -------------------------------------------------------------------
    def _teller(self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int) -> None:
        def one(t: int) -> int:
            acts = pick_actions(rng, TELLER_FIRST, self.teller_more, (1, 2))
            return visit(self.rec, seat, rng, t, self._walk_in(plan, rng), acts, label=label)

        self._sequence(plan, rng, n, one)

    def _customer_manager(
        self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int
    ) -> None:
        sid = plan.staff_id
        person = self.bank.staff[sid]
        covers = [
            c for c in self.changes.covers.get(sid, []) if c.start_ms <= plan.noon_ms < c.end_ms
        ]
        covered = {cid for c in covers for cid in c.customers}
        port = [c for c in self.bank.portfolio(sid, plan.noon_ms) if c not in covered]
        new_hire = sid in self.changes.hires
        p = self.profile
        search_p, stranger_p = (
            (p.new_hire_search_share, p.new_hire_unassigned_share)
            if new_hire
            else (p.cm_search_share, p.cm_unassigned_share)
        )
        walk_in = p.cm_walk_in_share
        auth = self._auth(plan)
        visit_window = (0.0, 0.0)
        phone = seat
        if plan.weekend:
            phone = Seat(sid, seat.branch_id, seat.tz, mobile_desk(rng), "mobile_crm")
            visit_window = (0.0, 2e13)
        elif rng.random() < person.mobile_p:
            begin = plan.ms(rng.uniform(14 * 60, 15 * 60))
            visit_window = (begin, begin + rng.uniform(60, 120) * 60_000)
            phone = Seat(sid, seat.branch_id, seat.tz, mobile_desk(rng), "mobile_crm")

        def one(t: int) -> int:
            here = phone if visit_window[0] <= t < visit_window[1] else seat
            if walk_in and here is seat and rng.random() < walk_in:  # covering the counter
                acts = pick_actions(rng, TELLER_FIRST, self.teller_more, (1, 2))
                return visit(self.rec, seat, rng, t, self._walk_in(plan, rng), acts, label=label)
            r = rng.random()
            if not port or (r < search_p and here is seat):
                t = visit(self.rec, here, rng, t, None, ["search_customers"], label=label)
                if port and rng.random() < 0.7:
                    return visit(
                        self.rec, here, rng, t, skewed(port, rng), ["view_profile"], label=label
                    )
                return t
            if r < search_p + stranger_p and here is seat:
                c = self._unassigned_here(plan, rng, t)
                if c is not None:
                    acts = (
                        ["view_profile", "view_balance"] if rng.random() < 0.5 else ["view_profile"]
                    )
                    return visit(self.rec, here, rng, t, c, acts, label=label)
            acts = pick_actions(rng, CM_FIRST, self.cm_more, (1, 3))
            return visit(self.rec, here, rng, t, skewed(port, rng), acts, label=label, **auth)

        self._sequence(plan, rng, n, one)
        for cover in covers:
            self._cover(plan, rng, seat, cover)

    def _cover(self, plan: DayPlan, rng: random.Random, seat: Seat, cover: Cover) -> None:
        """Extra work on an absent colleague's clients (assigned through backup records)."""
        customers = list(cover.customers)
        if not customers:
            return
        m = self._count(12 * self.bank.staff[plan.staff_id].volume, plan, rng)
        auth = self._auth(plan)

        def one(t: int) -> int:
            acts = pick_actions(rng, CM_FIRST, self.cm_more, (1, 3))
            return visit(
                self.rec, seat, rng, t, skewed(customers, rng), acts, label=cover.label, **auth
            )

        self._sequence(plan, rng, m, one)

    def _loan_officer(
        self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int
    ) -> None:
        loans = self.bank.portfolio(plan.staff_id, plan.noon_ms, frozenset({"loan_officer"}))
        walk_in = self.profile.lo_walk_in_share
        stranger_p = self.profile.lo_unassigned_share
        auth = self._auth(plan)

        def one(t: int) -> int:
            if walk_in and rng.random() < walk_in:  # a walk-in loan applicant, with consent
                acts = ["view_profile", "view_id_document", "credit_report_query"]
                applicant = self._walk_in(plan, rng)
                return visit(self.rec, seat, rng, t, applicant, acts, label=label, **auth)
            if not loans or rng.random() < stranger_p:
                c = self._unassigned_here(plan, rng, t)
                if c is not None:
                    acts = ["view_profile"] + (["view_id_document"] if rng.random() < 0.4 else [])
                    return visit(self.rec, seat, rng, t, c, acts, label=label)
                if not loans:
                    return t
            acts = pick_actions(rng, LO_FIRST, self.lo_more, (0, 2))
            return visit(self.rec, seat, rng, t, skewed(loans, rng), acts, label=label, **auth)

        self._sequence(plan, rng, n, one)

    def _operations(
        self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int
    ) -> None:
        if plan.staff_id in self._batch_owners and not plan.weekend:
            self._batches(plan, rng)

        def one(t: int) -> int:
            c = self._unassigned_here(plan, rng, t)
            if c is None:
                return t
            acts = pick_actions(rng, (), OPS_MORE, (1, 2))
            return visit(self.rec, seat, rng, t, c, acts, label=label)

        self._sequence(plan, rng, n, one)

    def _batches(self, plan: DayPlan, rng: random.Random) -> None:
        """Statement export jobs: every weekday at 07:30 local; bigger, and a second run in
        the evening, on the first and last business day of a month."""
        month_end = is_month_end(plan.day)
        label = (
            self.book.new("month_end_batch", plan.staff_id, within_session=False)
            if month_end
            else NORMAL
        )
        pool = self._batch_pool[plan.branch_id] or [
            c.customer_id for c in self.bank.by_branch[plan.branch_id]
        ]
        runs = [7 * 60 + 30, 18 * 60 + 30] if month_end else [7 * 60 + 30]
        num = self.bank.branch[plan.branch_id].number
        for nominal in runs:
            minute = nominal + rng.uniform(-3, 3)
            k = rng.randint(40, 90) if month_end else rng.randint(6, 18)
            scale = rng.uniform(1.5, 3.0) if month_end else 1.0
            t = plan.ms(minute)
            stamp = f"{plan.day:%Y%m%d}-{int(minute) // 60:02d}{int(minute) % 60:02d}"
            seat = Seat(
                plan.staff_id,
                plan.branch_id,
                plan.tz,
                Desk(f"{plan.branch_id}-BATCH01", f"10.{num}.250.10"),
                "back_office_batch",
                utc=True,
                session_id=f"job-{plan.branch_id}-{stamp}",
            )
            for c in rng.sample(pool, min(k, len(pool))):
                count = int(rng.randint(200, 3000) * scale)
                self.rec.add(seat, t, c, "export_statement", count=count, label=label)
                t += int(rng.uniform(2, 9) * 1000)

    def _branch_manager(
        self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int
    ) -> None:
        team = self.bank.portfolio(plan.staff_id, plan.noon_ms, frozenset({"service_team"}))
        own_p = 1.0 - self.profile.bm_unassigned_share

        def one(t: int) -> int:
            c = (
                skewed(team, rng)
                if team and rng.random() < own_p
                else self._unassigned_here(plan, rng, t)
            )
            if c is None:
                return t
            acts = pick_actions(rng, BM_FIRST, BM_MORE, (1, 1))
            return visit(self.rec, seat, rng, t, c, acts, label=label)

        self._sequence(plan, rng, n, one)

    def _auditor(self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int) -> None:
        api = Seat(seat.staff_id, seat.branch_id, seat.tz, API_DESK, "api", utc=True)
        everyone = self.bank.customers

        def one(t: int) -> int:
            c = everyone[rng.randrange(len(everyone))]
            if plan.staff_id in c.related_staff_ids:
                return t
            if rng.random() < 0.25:
                count = rng.randint(50, 500)
                self.rec.add(api, t, c.customer_id, "view_transactions", count=count, label=label)
                return t + int(rng.uniform(1, 5) * 1000)
            acts = pick_actions(rng, AUDIT_FIRST, AUDIT_MORE, (1, 2))
            return visit(self.rec, seat, rng, t, c.customer_id, acts, label=label, gap=(30, 240))

        self._sequence(plan, rng, n, one)

    def _it_support(
        self, plan: DayPlan, rng: random.Random, seat: Seat, n: int, label: int
    ) -> None:
        everyone = self.bank.customers
        lookup_p = self.profile.it_lookup_share

        def one(t: int) -> int:
            self.rec.add(seat, t, None, "search_customers", count=rng.randint(0, 25), label=label)
            t += int(rng.uniform(20, 120) * 1000)
            if rng.random() < lookup_p:  # checking a screen a ticket complains about
                c = everyone[rng.randrange(len(everyone))]
                if plan.staff_id not in c.related_staff_ids:
                    return visit(
                        self.rec, seat, rng, t, c.customer_id, ["view_profile"], label=label
                    )
            return t

        self._sequence(plan, rng, max(1, n), one)

    def _overtime(self, plan: DayPlan, rng: random.Random, seat: Seat, label: int) -> None:
        """Staying on after the shift to finish one's own clients' paperwork."""
        port = self.bank.portfolio(plan.staff_id, plan.noon_ms)
        if not port:
            return
        minute = plan.end_minute + rng.uniform(0, 10)
        stop = minute + rng.uniform(90, 180)
        auth = self._auth(plan)
        while minute < stop:
            acts = pick_actions(rng, CM_FIRST, self.cm_more, (1, 3))
            visit(
                self.rec, seat, rng, plan.ms(minute), skewed(port, rng), acts, label=label, **auth
            )
            minute += rng.uniform(6, 15)
