"""Injected misuse (labelled malicious) and the overtime look-alike (labelled benign). Pure.

Each incident is a run of events by one employee, mixed into that employee's ordinary day
(same desk, same session), except account misuse after a departure (the id has no ordinary
days any more) and night sessions. Incidents start after a warm-up of a quarter of the
simulated days, so per-person baselines exist; at most one incident per staff-day.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simbank.simulate.activity import Recorder, Seat, visit
from simbank.simulate.bank import Bank, Desk
from simbank.simulate.behaviour import CHANNEL, skewed
from simbank.simulate.changes import ChangePlan
from simbank.simulate.clock import local_ms
from simbank.simulate.labels import LabelBook
from simbank.simulate.schedule import DayPlan, Schedule

VIEWS = ("view_profile", "view_balance", "view_transactions")
SENSITIVE = frozenset({"vip", "pep"})
ORDINARY = frozenset({"normal"})
ANYONE = frozenset({"normal", "vip", "pep", "restricted"})
FRONT_OFFICE = ("customer_manager", "teller")


@dataclass(frozen=True, slots=True)
class Pick:
    staff_id: str
    plans: list[DayPlan]


def vpn_desk(rng: random.Random) -> Desk:
    """A remote-access VPN client address; no branch terminal."""
    return Desk(None, f"172.20.{rng.randrange(256)}.{rng.randrange(2, 255)}")


class Injector:
    def __init__(
        self,
        bank: Bank,
        schedule: Schedule,
        book: LabelBook,
        rec: Recorder,
        changes: ChangePlan,
    ) -> None:
        self.bank = bank
        self.schedule = schedule
        self.book = book
        self.rec = rec
        self.changes = changes
        config = bank.config
        self.days = config.days
        self.rng = random.Random(f"{config.seed}|incidents")
        self.per_kind = max(1, round(config.staff / 40))
        self.warm = max(1, self.days // 4)
        self.busy: set[tuple[str, int]] = set()
        self.pool = [s for s in bank.initial_staff if s not in changes.actors]
        self.rng.shuffle(self.pool)
        self.cursor = 0
        self.sensitive = [c.customer_id for c in bank.customers if c.sensitivity in SENSITIVE]

    # -- benign, planned before normal behaviour runs -------------------------------
    def plan_overtime(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for _ in range(self.per_kind):
            pick = self._pick(("customer_manager",), self.warm, self.days)
            if pick is None:
                break
            plan = self.rng.choice(pick.plans)
            self.busy.add((pick.staff_id, plan.index))
            out[(pick.staff_id, plan.index)] = self.book.new(
                "overtime", pick.staff_id, within_session=True
            )
        return out

    # -- malicious, injected after normal behaviour ---------------------------------
    def run(self) -> None:
        kinds: list[Callable[[int], None]] = [
            self._unassigned_lookup,
            self._bulk_harvest,
            self._statement_exfiltration,
            self._unauthorized_credit_query,
            self._inactive_account_use,
            self._sensitive_snooping,
            self._related_customer_access,
            self._low_and_slow,
            self._off_hours_session,
        ]
        for make in kinds:
            for k in range(self.per_kind):
                make(k)

    # -- helpers -------------------------------------------------------------------
    def _pick(
        self,
        roles: Sequence[str],
        lo: int,
        hi: int,
        need: int = 1,
        accept: Callable[[str], bool] | None = None,
    ) -> Pick | None:
        """The next employee in rotation with a role in ``roles`` and at least ``need``
        free working days in ``[lo, hi)``."""
        n = len(self.pool)
        for step in range(n):
            sid = self.pool[(self.cursor + step) % n]
            if self.bank.staff[sid].first.role not in roles:
                continue
            if accept is not None and not accept(sid):
                continue
            plans = [
                p for p in self.schedule.workdays(sid, lo, hi) if (sid, p.index) not in self.busy
            ]
            if len(plans) < need:
                continue
            self.cursor = (self.cursor + step + 1) % n
            return Pick(sid, plans)
        return None

    def _pick_day(
        self, roles: Sequence[str], accept: Callable[[str], bool] | None = None
    ) -> DayPlan | None:
        pick = self._pick(roles, self.warm, self.days, accept=accept)
        if pick is None:
            return None
        plan = self.rng.choice(pick.plans)
        self.busy.add((plan.staff_id, plan.index))
        return plan

    def _seat(self, plan: DayPlan) -> Seat:
        desk = self.bank.desk(plan.staff_id, plan.branch_id)
        return Seat(plan.staff_id, plan.branch_id, plan.tz, desk, CHANNEL[plan.role])

    def _start(self, plan: DayPlan, minutes: float) -> int:
        """A start time inside a working block long enough for ``minutes`` if any."""
        fitting = [b for b in plan.blocks if b[1] - b[0] >= minutes]
        s, e = self.rng.choice(fitting) if fitting else max(plan.blocks, key=lambda b: b[1] - b[0])
        return plan.ms(self.rng.uniform(s, max(s, e - minutes)))

    def _random_time(self, plan: DayPlan) -> int:
        s, e = self.rng.choices(plan.blocks, weights=[e - s for s, e in plan.blocks])[0]
        return plan.ms(self.rng.uniform(s + 5, max(s + 5, e - 5)))

    def _strangers(
        self,
        sid: str,
        k: int,
        sens: frozenset[str],
        branches: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[str]:
        """``k`` distinct customers never assigned to ``sid`` and not related to them."""
        if sens == SENSITIVE:
            lists: list[Sequence[str]] = [self.sensitive]
        elif branches:
            lists = [[c.customer_id for c in self.bank.by_branch[b]] for b in branches]
        else:
            lists = [[c.customer_id for c in self.bank.customers]]
        out: list[str] = []
        seen = set(exclude)
        for _ in range(k * 300):
            if len(out) == k:
                break
            pool = self.rng.choice(lists)
            cid = pool[self.rng.randrange(len(pool))]
            c = self.bank.customer[cid]
            if (
                cid in seen
                or c.sensitivity not in sens
                or sid in c.related_staff_ids
                or self.bank.has_key(sid, cid)
            ):
                continue
            seen.add(cid)
            out.append(cid)
        return out

    def _other_branches(self, branch_id: str) -> list[str]:
        others = [b.branch_id for b in self.bank.branches if b.branch_id != branch_id]
        return others or [branch_id]

    def _views(self) -> list[str]:
        return ["view_profile", *self.rng.sample(VIEWS[1:], self.rng.randint(0, 2))]

    # -- the kinds -----------------------------------------------------------------
    def _unassigned_lookup(self, k: int) -> None:
        """A customer manager looking up a handful of other branches' customers a day."""
        first = self._pick_day(("customer_manager",))
        if first is None:
            return
        sid = first.staff_id
        more = [
            p
            for p in self.schedule.workdays(sid, first.index + 1, first.index + 4)
            if (sid, p.index) not in self.busy
        ][: self.rng.randint(0, 2)]
        label = self.book.new("unassigned_lookup", sid, within_session=False)
        seen: list[str] = []
        for plan in [first, *more]:
            self.busy.add((sid, plan.index))
            seat = self._seat(plan)
            others = self._other_branches(plan.branch_id)
            for c in self._strangers(sid, self.rng.randint(3, 7), ORDINARY, others, seen):
                seen.append(c)
                visit(
                    self.rec,
                    seat,
                    self.rng,
                    self._random_time(plan),
                    c,
                    self._views(),
                    label=label,
                    denied_p=0,
                )

    def _bulk_harvest(self, k: int) -> None:
        """Hundreds of distinct customers in one or two hours (e.g. before leaving)."""
        plan: DayPlan | None = None
        if k == 0:
            for dep in sorted(self.changes.departures.values(), key=lambda d: d.staff_id):
                if dep.status != "terminated" or dep.posting.role not in FRONT_OFFICE:
                    continue
                days = [
                    p
                    for p in self.schedule.workdays(dep.staff_id, dep.index - 5, dep.index)
                    if (dep.staff_id, p.index) not in self.busy
                ]
                if days:
                    plan = days[-1]
                    self.busy.add((plan.staff_id, plan.index))
                    break
        if plan is None:
            plan = self._pick_day(FRONT_OFFICE)
        if plan is None:
            return
        sid = plan.staff_id
        m = self.rng.randint(150, 450)
        label = self.book.new("bulk_harvest", sid, within_session=True)
        seat = self._seat(plan)
        t = self._start(plan, m * 13 / 60)
        for j, c in enumerate(self._strangers(sid, m, ANYONE)):
            if j % 25 == 0:
                self.rec.add(
                    seat, t, None, "search_customers", count=self.rng.randint(50, 200), label=label
                )
                t += int(self.rng.uniform(3, 8) * 1000)
            denied = self.bank.customer[c].sensitivity == "restricted"
            self.rec.add(
                seat,
                t,
                c,
                "view_profile",
                count=0 if denied else 1,
                outcome="denied" if denied else "success",
                label=label,
            )
            t += int(self.rng.uniform(4, 12) * 1000)
            if not denied and self.rng.random() < 0.3:
                self.rec.add(seat, t, c, "view_balance", label=label)
                t += int(self.rng.uniform(3, 8) * 1000)

    def _statement_exfiltration(self, k: int) -> None:
        """Exporting or printing statements of customers one has no business with."""
        plan = self._pick_day(FRONT_OFFICE)
        if plan is None:
            return
        sid = plan.staff_id
        action = "print_statement" if plan.role == "teller" else "export_statement"
        label = self.book.new("statement_exfiltration", sid, within_session=True)
        seat = self._seat(plan)
        t = self._start(plan, 45)
        for c in self._strangers(sid, self.rng.randint(5, 14), ORDINARY):
            t = visit(self.rec, seat, self.rng, t, c, ["view_profile"], label=label, denied_p=0)
            self.rec.add(seat, t, c, action, count=self.rng.randint(30, 300), label=label)
            t += int(self.rng.uniform(60, 240) * 1000)

    def _unauthorized_credit_query(self, k: int) -> None:
        """Credit reports pulled without the customer's signed authorization."""
        roles = ("loan_officer",) if k % 2 == 0 else ("customer_manager",)
        plan = self._pick_day(roles)
        if plan is None:
            return
        sid = plan.staff_id
        m = self.rng.randint(2, 6)
        own = self.bank.portfolio(sid, plan.noon_ms)
        mine = self.rng.sample(own, min(len(own), m // 2))
        customers = mine + self._strangers(sid, m - len(mine), ORDINARY, [plan.branch_id])
        label = self.book.new("unauthorized_credit_query", sid, within_session=True)
        seat = self._seat(plan)
        t = self._start(plan, 40)
        for c in customers:
            t = visit(
                self.rec,
                seat,
                self.rng,
                t,
                c,
                ["view_profile", "credit_report_query"],
                label=label,
                authorized=False,
                denied_p=0,
            )
            t += int(self.rng.uniform(120, 400) * 1000)

    def _inactive_account_use(self, k: int) -> None:
        """Someone using the operator id of a departed employee after the departure."""
        targets = sorted(self.changes.departures)
        if not targets:
            return
        dep = self.changes.departures[targets[k % len(targets)]]
        sid = dep.staff_id
        free = [i for i in range(dep.index, self.days) if (sid, i) not in self.busy]
        if not free:
            return
        index = self.rng.choice(free)
        self.busy.add((sid, index))
        day = self.schedule.days[index]
        posting = dep.posting
        if self.rng.random() < 0.5:
            seat = Seat(
                sid,
                posting.branch_id,
                posting.timezone,
                self.bank.desk(sid, posting.branch_id),
                CHANNEL[posting.role],
            )
        else:
            seat = Seat(sid, posting.branch_id, posting.timezone, vpn_desk(self.rng), "crm_web")
        minute = (
            self.rng.uniform(10 * 60, 16 * 60)
            if self.rng.random() < 0.7
            else self.rng.uniform(19 * 60, 21 * 60 + 30)
        )
        t = local_ms(posting.timezone, day, minute)
        old = list(self.bank.by_staff.get(sid, {}))
        m = self.rng.randint(4, 12)
        customers = self.rng.sample(old, min(len(old), m // 2))
        customers += self._strangers(sid, m - len(customers), ORDINARY, [posting.branch_id])
        label = self.book.new("inactive_account_use", sid, within_session=True)
        for c in customers:
            acts = self._views()
            if self.rng.random() < 0.15:
                acts.append("export_statement")
            t = visit(self.rec, seat, self.rng, t, c, acts, label=label, denied_p=0, gap=(20, 120))
            t += int(self.rng.uniform(30, 180) * 1000)

    def _sensitive_snooping(self, k: int) -> None:
        """Looking at VIPs and politically exposed persons one is not assigned to."""
        plan = self._pick_day(FRONT_OFFICE)
        if plan is None:
            return
        sid = plan.staff_id
        label = self.book.new("sensitive_snooping", sid, within_session=True)
        seat = self._seat(plan)
        t = self._start(plan, 40)
        for c in self._strangers(sid, self.rng.randint(3, 8), SENSITIVE):
            t = visit(self.rec, seat, self.rng, t, c, self._views(), label=label, denied_p=0)
            t += int(self.rng.uniform(60, 300) * 1000)

    def _related_customer_access(self, k: int) -> None:
        """Accessing one's own or a family member's account (a conflict of interest)."""
        plan = self._pick_day(
            ("customer_manager", "teller", "loan_officer", "operations"),
            accept=lambda s: bool(self.bank.related.get(s)),
        )
        if plan is None:
            return
        sid = plan.staff_id
        c = self.rng.choice(self.bank.related[sid])
        acts = [
            "view_profile",
            "view_balance",
            "view_transactions",
            "update_contact_info",
            "print_statement",
        ]
        chosen = self.rng.sample(acts, self.rng.randint(2, 5))
        label = self.book.new("related_customer_access", sid, within_session=True)
        seat = self._seat(plan)
        visit(
            self.rec,
            seat,
            self.rng,
            self._start(plan, 25),
            c,
            chosen,
            label=label,
            denied_p=0,
            gap=(30, 240),
        )

    def _low_and_slow(self, k: int) -> None:
        """A few unassigned customers' statements a day, over one to two weeks."""
        span = min(self.rng.randint(7, 14), self.days - 1)
        lo = max(1, self.warm // 2)
        first = self.rng.randint(lo, max(lo, self.days - span))
        pick = self._pick(("customer_manager", "loan_officer"), first, first + span, need=3)
        if pick is None:
            return
        sid = pick.staff_id
        label = self.book.new("low_and_slow", sid, within_session=False)
        seen: list[str] = []
        for plan in pick.plans:
            self.busy.add((sid, plan.index))
            seat = self._seat(plan)
            here = [plan.branch_id] if self.rng.random() < 0.6 else None
            for c in self._strangers(sid, self.rng.randint(1, 3), ORDINARY, here, seen):
                seen.append(c)
                t = visit(
                    self.rec,
                    seat,
                    self.rng,
                    self._random_time(plan),
                    c,
                    ["view_profile"],
                    label=label,
                    denied_p=0,
                )
                action = self.rng.choice(
                    ("print_statement", "export_statement", "view_transactions")
                )
                self.rec.add(seat, t, c, action, count=self.rng.randint(20, 150), label=label)

    def _off_hours_session(self, k: int) -> None:
        """A session late at night, from home or from the branch, on customer data."""
        pick = self._pick(("customer_manager", "teller", "loan_officer"), self.warm, self.days)
        if pick is None:
            return
        plan = self.rng.choice(pick.plans)
        sid = plan.staff_id
        self.busy.add((sid, plan.index))
        self.busy.add((sid, plan.index + 1))
        late = plan.index == self.days - 1 or self.rng.random() < 0.5
        minute = (
            self.rng.uniform(22 * 60, 23 * 60 + 30)
            if late
            else self.rng.uniform(24 * 60 + 30, 27 * 60)
        )
        if self.rng.random() < 0.6:
            seat = Seat(sid, plan.branch_id, plan.tz, vpn_desk(self.rng), "crm_web")
        else:
            seat = self._seat(plan)
        t = plan.ms(minute)
        own = self.bank.portfolio(sid, plan.noon_ms)
        m = self.rng.randint(8, 20)
        customers = [skewed(own, self.rng) for _ in range(int(m * 0.4))] if own else []
        customers = list(dict.fromkeys(customers))
        customers += self._strangers(sid, m - len(customers), ORDINARY)
        self.rng.shuffle(customers)
        label = self.book.new("off_hours_session", sid, within_session=True)
        for c in customers:
            acts = self._views()
            if self.rng.random() < 0.1:
                acts.append("export_statement")
            t = visit(self.rec, seat, self.rng, t, c, acts, label=label, denied_p=0, gap=(20, 150))
            t += int(self.rng.uniform(30, 120) * 1000)
