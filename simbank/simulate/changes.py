"""Changes to the bank during the simulation: leave, transfers, departures and new hires.

Each change edits the :class:`~simbank.simulate.bank.Bank` (new staff records, assignments
that start or end) and is logged for publication ahead of when it takes effect. The
returned :class:`ChangePlan` tells behaviour and incident injection who is affected.

Assignments that end are republished with ``valid_to`` = the change time (transfers, leave
cover); a terminated employee's assignments are withdrawn by ``op = "revoke"`` records with
``valid_from`` = the termination time. Both mean: assigned before, not after.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import timedelta

from simbank.simulate.bank import Bank, Posting, Span, Staff, pick_shift
from simbank.simulate.clock import local_ms
from simbank.simulate.labels import LabelBook

MOVABLE_RELATIONS = frozenset({"relationship_manager", "loan_officer"})


@dataclass(frozen=True, slots=True)
class Cover:
    """A colleague's portfolio covered while they are on leave."""

    absent_id: str
    start_ms: int
    end_ms: int
    customers: tuple[str, ...]
    label: int


@dataclass(frozen=True, slots=True)
class Move:
    """A transfer between branches (same operator id, new branch from ``at_ms``)."""

    staff_id: str
    at_ms: int
    from_branch: str
    to_branch: str
    label: int


@dataclass(frozen=True, slots=True)
class Departure:
    """A termination, or a transfer out of customer-facing work: the id must go quiet."""

    staff_id: str
    at_ms: int
    index: int  # first day index on which the id is no longer active
    status: str  # "terminated" | "transferred"
    posting: Posting  # the last active staff record


@dataclass(slots=True)
class ChangePlan:
    covers: dict[str, list[Cover]] = field(default_factory=dict)  # by covering colleague
    moves: dict[str, Move] = field(default_factory=dict)
    departures: dict[str, Departure] = field(default_factory=dict)
    hires: dict[str, int] = field(default_factory=dict)  # new hire -> label
    actors: set[str] = field(default_factory=set)  # everyone a change touches


def plan_changes(bank: Bank, book: LabelBook) -> ChangePlan:
    """Apply leave, transfers, departures and hires to ``bank`` (deterministic)."""
    rng = random.Random(f"{bank.config.seed}|changes")
    plan = ChangePlan()
    n = bank.config.staff
    p = bank.config.profile

    def count(per: float) -> int:
        return max(1, int(n / per))

    _leaves(bank, book, rng, plan, count(p.staff_per_leave))
    _moves(bank, book, rng, plan, count(p.staff_per_move))
    _departures(
        bank, rng, plan, count(p.staff_per_leaver), "terminated", ("customer_manager", "teller")
    )
    _departures(
        bank,
        rng,
        plan,
        count(p.staff_per_transfer_out),
        "transferred",
        ("teller", "customer_manager"),
    )
    _hires(bank, book, rng, plan, count(p.staff_per_hire))
    return plan


def _monday_from(bank: Bank, index: int, hi: int) -> int:
    """The first Monday at or after day ``index`` if it is before ``hi``, else ``index``."""
    start = bank.config.start_date
    for i in range(index, hi):
        if (start + timedelta(days=i)).weekday() == 0:
            return i
    return index


def _midnight(bank: Bank, tz: str, index: int) -> int:
    return local_ms(tz, bank.config.start_date + timedelta(days=index), 0)


def _free(bank: Bank, plan: ChangePlan, branch_id: str, role: str) -> list[str]:
    return [s for s in bank.staff_in(branch_id, role) if s not in plan.actors]


def _branch_order(bank: Bank, rng: random.Random) -> list[str]:
    ids = [b.branch_id for b in bank.branches]
    rng.shuffle(ids)
    return ids


def _leaves(bank: Bank, book: LabelBook, rng: random.Random, plan: ChangePlan, count: int) -> None:
    days = bank.config.days
    order = _branch_order(bank, rng)
    made = 0
    for k in range(len(order) * 2):
        if made == count:
            break
        b = order[k % len(order)]
        cms = bank.staff_in(b, "customer_manager")
        free = [s for s in cms if s not in plan.actors]
        if len(free) < 2:
            continue
        absent = rng.choice(free)
        buddy = cms[(cms.index(absent) + 1) % len(cms)]
        if buddy in plan.actors or buddy == absent:
            continue
        first = _monday_from(bank, rng.randint(2, max(2, days // 2)), days - 3)
        last = min(first + rng.randint(5, 9), days - 1)
        if last - first < 3:
            continue
        posting = bank.staff[absent].first
        start_ms = _midnight(bank, posting.timezone, first)
        end_ms = _midnight(bank, posting.timezone, last)
        bank.add_posting(absent, replace(posting, effective_ms=start_ms, status="on_leave"))
        bank.add_posting(absent, replace(posting, effective_ms=end_ms))
        customers = bank.portfolio(absent, start_ms, frozenset({"relationship_manager"}))
        for c in customers:
            if not bank.has_key(buddy, c):
                bank.assign(Span(buddy, c, "backup", start_ms, end_ms), initial=False)
        label = book.new("covering_colleague", buddy, within_session=False)
        plan.covers.setdefault(buddy, []).append(
            Cover(absent, start_ms, end_ms, tuple(customers), label)
        )
        plan.actors |= {absent, buddy}
        made += 1


def _reassign(bank: Bank, plan: ChangePlan, staff_id: str, at_ms: int, *, revoke: bool) -> None:
    """End every open assignment of ``staff_id`` at ``at_ms``; hand its customers to
    colleagues of the same role at the same branch."""
    posting = bank.staff[staff_id].posting_at(at_ms - 1)
    assert posting is not None
    colleagues = [s for s in _free(bank, plan, posting.branch_id, posting.role) if s != staff_id]
    k = 0
    for c, span in list(bank.by_staff.get(staff_id, {}).items()):
        if span.valid_to is not None or not span.covers(at_ms):
            continue
        bank.end(staff_id, c, at_ms, revoke=revoke)
        if span.relation not in MOVABLE_RELATIONS or not colleagues:
            continue
        related = bank.customer[c].related_staff_ids
        for _ in range(len(colleagues)):
            heir = colleagues[k % len(colleagues)]
            k += 1
            if not bank.has_key(heir, c) and heir not in related:
                bank.assign(Span(heir, c, span.relation, at_ms, None), initial=False)
                break


def _new_portfolio(
    bank: Bank,
    rng: random.Random,
    staff_id: str,
    branch_id: str,
    relation: str,
    size: int,
    at_ms: int,
) -> None:
    """Give a (moved or new) employee customers of the branch who had no manager."""
    pool = [
        c.customer_id
        for c in bank.by_branch[branch_id]
        if c.segment == "retail"
        and c.sensitivity == "normal"
        and c.customer_id not in bank.with_rm
        and staff_id not in c.related_staff_ids
        and not bank.has_key(staff_id, c.customer_id)
    ]
    for c in rng.sample(pool, min(size, len(pool))):
        bank.assign(Span(staff_id, c, relation, at_ms, None), initial=False)


def _moves(bank: Bank, book: LabelBook, rng: random.Random, plan: ChangePlan, count: int) -> None:
    days = bank.config.days
    if len(bank.branches) < 2:
        return
    order = _branch_order(bank, rng)
    made = 0
    # Small branches (two customer managers) only when the larger ones are used up.
    tries = [(k, need) for need in (3, 2) for k in range(len(order) * 3)]
    for k, need in tries:
        if made == count:
            break
        role = "loan_officer" if made % 3 == 2 else "customer_manager"
        src = order[k % len(order)]
        free = _free(bank, plan, src, role)
        if len(bank.staff_in(src, role)) < (2 if role == "loan_officer" else need) or not free:
            continue
        mover = rng.choice(free)
        old = bank.staff[mover].first
        others = [b for b in bank.branches if b.branch_id != src]
        other_zone = [b for b in others if b.timezone != old.timezone]
        dst = (other_zone[-1] if made == 0 and other_zone else rng.choice(others)).branch_id
        index = _monday_from(bank, rng.randint(max(1, days // 4), max(1, days // 2)), days - 2)
        at_ms = _midnight(bank, old.timezone, index)
        _reassign(bank, plan, mover, at_ms, revoke=False)
        tz = bank.branch[dst].timezone
        bank.add_posting(
            mover, replace(old, effective_ms=at_ms, branch_id=dst, timezone=tz, status="active")
        )
        bank.desk(mover, dst)
        if role == "customer_manager":
            _new_portfolio(
                bank, rng, mover, dst, "relationship_manager", rng.randint(40, 80), at_ms
            )
        else:
            _new_portfolio(bank, rng, mover, dst, "loan_officer", rng.randint(15, 30), at_ms)
        label = book.new("transfer", mover, within_session=False)
        plan.moves[mover] = Move(mover, at_ms, src, dst, label)
        plan.actors.add(mover)
        made += 1


def _departures(
    bank: Bank,
    rng: random.Random,
    plan: ChangePlan,
    count: int,
    status: str,
    roles: tuple[str, str],
) -> None:
    days = bank.config.days
    order = _branch_order(bank, rng)
    made = 0
    tries = [(k, need) for need in (3, 2) for k in range(len(order) * 3)]
    for k, need in tries:
        if made == count:
            break
        role = roles[made % 2]
        b = order[k % len(order)]
        free = _free(bank, plan, b, role)
        if len(bank.staff_in(b, role)) < need or not free:
            continue
        sid = rng.choice(free)
        old = bank.staff[sid].first
        lo = max(2, days // 2)
        index = rng.randint(lo, max(lo, days - 4))
        at_ms = _midnight(bank, old.timezone, index)
        _reassign(bank, plan, sid, at_ms, revoke=status == "terminated")
        bank.add_posting(sid, replace(old, effective_ms=at_ms, status=status))
        plan.departures[sid] = Departure(sid, at_ms, index, status, old)
        plan.actors.add(sid)
        made += 1


def _hires(bank: Bank, book: LabelBook, rng: random.Random, plan: ChangePlan, count: int) -> None:
    days = bank.config.days
    order = _branch_order(bank, rng)
    base = 10_000 + 3 * bank.config.staff
    for k in range(count):
        role = "teller" if k % 3 == 2 else "customer_manager"
        b = order[k % len(order)]
        tz = bank.branch[b].timezone
        index = _monday_from(bank, rng.randint(max(1, days // 5), max(1, days // 2)), days - 2)
        at_ms = _midnight(bank, tz, index)
        sid = f"S{base + 1 + 7 * k}"
        rota = bank.config.profile.teller_saturday_rota
        bank.add_staff(Staff(sid, rng.uniform(0.7, 1.1), 0.0, 0.0, k % rota if rota else -1))
        shift = pick_shift(role, rng, bank.config.profile)
        bank.add_posting(sid, Posting(at_ms, b, role, "active", tz, shift))
        bank.desk(sid, b)
        if role == "customer_manager":
            _new_portfolio(bank, rng, sid, b, "relationship_manager", rng.randint(20, 35), at_ms)
        plan.hires[sid] = book.new("new_hire", sid, within_session=False)
        plan.actors.add(sid)
