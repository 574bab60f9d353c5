"""The simulated bank: branches, staff, customers and who is responsible for whom.

Pure: :func:`build_bank` turns a :class:`SimConfig` into the bank as it stands at the start
of the simulation; :mod:`simbank.simulate.changes` then edits it through the ``Bank``
methods, which also keep the log of reference changes in publication order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Literal

from simbank.simulate.clock import DAY_MS, local_ms
from simbank.simulate.config import ConfigError, SimConfig
from simbank.simulate.profile import HONG_KONG, SHANGHAI, TOKYO, BankProfile


@dataclass(frozen=True, slots=True)
class Branch:
    branch_id: str
    number: int  # also the second octet of the branch subnet 10.<number>.x.y
    timezone: str
    weight: float  # relative size: share of customers and staff


@dataclass(frozen=True, slots=True)
class Shift:
    start: int  # minutes after local midnight
    end: int
    split: bool = False  # a long break in the middle (12:00-16:00 before the offset)


@dataclass(frozen=True, slots=True)
class Posting:
    """One StaffRecord: where and as what an employee works from ``effective_ms`` on."""

    effective_ms: int
    branch_id: str
    role: str
    status: str
    timezone: str
    shift: Shift


@dataclass(frozen=True, slots=True)
class Desk:
    """Where events come from: a workstation, a phone, a VPN client or a batch server."""

    terminal_id: str | None
    source_ip: str | None


@dataclass(slots=True)
class Staff:
    staff_id: str
    volume: float  # personal activity multiplier (busy vs. quiet people)
    weekend_p: float  # chance of a little weekend work on a weekend day
    mobile_p: float  # chance of a client-visit afternoon on mobile_crm (customer managers)
    rota: int  # which Saturday out of the profile's rota a teller works (-1: none)
    postings: list[Posting] = field(default_factory=list)

    @property
    def first(self) -> Posting:
        return self.postings[0]

    def posting_at(self, ms: int) -> Posting | None:
        """The StaffRecord in force at ``ms`` (None before the employee was hired)."""
        found: Posting | None = None
        for p in self.postings:
            if p.effective_ms <= ms:
                found = p
            else:
                break
        return found


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    home_branch_id: str
    segment: str
    sensitivity: str
    related_staff_ids: tuple[str, ...]
    updated_ms: int


@dataclass(frozen=True, slots=True)
class Span:
    """One Assignment record: ``staff_id`` is responsible for ``customer_id`` in
    ``[valid_from, valid_to)``. Spans held in :attr:`Bank.spans` are always ``assign``
    intervals; ``revoke`` spans only appear in the published change log."""

    staff_id: str
    customer_id: str
    relation: str
    valid_from: int
    valid_to: int | None
    op: str = "assign"

    def covers(self, ms: int) -> bool:
        return self.valid_from <= ms and (self.valid_to is None or ms < self.valid_to)


ChangeKind = Literal["staff", "span"]


@dataclass(frozen=True, slots=True)
class Change:
    """A reference record published after the initial state (effective at ``at_ms``)."""

    at_ms: int
    seq: int
    kind: ChangeKind
    staff_id: str
    posting: Posting | None = None
    span: Span | None = None


class Bank:
    """Mutable model of the bank; every edit after :func:`build_bank` is logged as a Change."""

    def __init__(self, config: SimConfig, branches: list[Branch], start_ms: int) -> None:
        self.config = config
        self.start_ms = start_ms
        self.end_ms = start_ms + config.days * DAY_MS
        self.branches = branches
        self.branch = {b.branch_id: b for b in branches}
        self.staff: dict[str, Staff] = {}
        self.customers: list[Customer] = []
        self.customer: dict[str, Customer] = {}
        self.by_branch: dict[str, list[Customer]] = {b.branch_id: [] for b in branches}
        self.related: dict[str, list[str]] = {}  # staff_id -> customers related to them
        self.spans: dict[tuple[str, str], Span] = {}  # latest record per compacted key
        self.by_staff: dict[str, dict[str, Span]] = {}
        self.initial_spans: list[Span] = []
        self.with_rm: set[str] = set()  # customers that have a relationship manager
        self.desks: dict[tuple[str, str], Desk] = {}
        self._terminals: dict[str, int] = {}
        self.changes: list[Change] = []
        self.initial_staff: list[str] = []

    # -- staff -------------------------------------------------------------
    def add_staff(self, person: Staff) -> None:
        self.staff[person.staff_id] = person
        self.by_staff.setdefault(person.staff_id, {})

    def add_posting(self, staff_id: str, posting: Posting) -> None:
        """A later StaffRecord (transfer, leave, return, termination, hire)."""
        person = self.staff[staff_id]
        person.postings.append(posting)
        person.postings.sort(key=lambda p: p.effective_ms)
        self._log(posting.effective_ms, "staff", staff_id, posting=posting)

    def staff_in(self, branch_id: str, role: str) -> list[str]:
        """Initial staff of a branch in a role, by id."""
        return [
            s
            for s in self.initial_staff
            if self.staff[s].first.branch_id == branch_id and self.staff[s].first.role == role
        ]

    def desk(self, staff_id: str, branch_id: str) -> Desk:
        """The staff member's workstation at a branch (created on first use)."""
        key = (staff_id, branch_id)
        d = self.desks.get(key)
        if d is None:
            n = self._terminals.get(branch_id, 0) + 1
            self._terminals[branch_id] = n
            num = self.branch[branch_id].number
            d = Desk(f"{branch_id}-WS{n:03d}", f"10.{num}.{1 + n // 200}.{20 + n % 200}")
            self.desks[key] = d
        return d

    # -- customers -----------------------------------------------------------
    def add_customer(self, c: Customer) -> None:
        self.customers.append(c)
        self.customer[c.customer_id] = c
        self.by_branch[c.home_branch_id].append(c)
        for s in c.related_staff_ids:
            self.related.setdefault(s, []).append(c.customer_id)

    # -- assignments ---------------------------------------------------------
    def assign(self, span: Span, *, initial: bool) -> None:
        key = (span.staff_id, span.customer_id)
        if key in self.spans:
            raise ValueError(f"assignment key {key} already used")
        self._put(span)
        if span.relation == "relationship_manager":
            self.with_rm.add(span.customer_id)
        if initial:
            self.initial_spans.append(span)
        else:
            self._log(span.valid_from, "span", span.staff_id, span=span)

    def end(self, staff_id: str, customer_id: str, at_ms: int, *, revoke: bool) -> None:
        """End an assignment at ``at_ms``: republish it with ``valid_to`` = ``at_ms``, or
        publish ``op = "revoke"`` with ``valid_from`` = ``at_ms`` (a revoke withdraws the
        pair from its ``valid_from`` on; earlier validity stands)."""
        old = self.spans[(staff_id, customer_id)]
        self._put(replace(old, valid_to=at_ms))
        published = (
            Span(staff_id, customer_id, old.relation, at_ms, None, "revoke")
            if revoke
            else replace(old, valid_to=at_ms)
        )
        self._log(at_ms, "span", staff_id, span=published)

    def has_key(self, staff_id: str, customer_id: str) -> bool:
        return (staff_id, customer_id) in self.spans

    def is_assigned(self, staff_id: str, customer_id: str, ms: int) -> bool:
        s = self.spans.get((staff_id, customer_id))
        return s is not None and s.covers(ms)

    def portfolio(
        self, staff_id: str, ms: int, relations: frozenset[str] | None = None
    ) -> list[str]:
        """Customers assigned to the staff member at ``ms`` (in a stable order)."""
        return [
            c
            for c, s in self.by_staff.get(staff_id, {}).items()
            if s.covers(ms) and (relations is None or s.relation in relations)
        ]

    def _put(self, span: Span) -> None:
        self.spans[(span.staff_id, span.customer_id)] = span
        self.by_staff.setdefault(span.staff_id, {})[span.customer_id] = span

    def _log(
        self,
        at_ms: int,
        kind: ChangeKind,
        staff_id: str,
        *,
        posting: Posting | None = None,
        span: Span | None = None,
    ) -> None:
        self.changes.append(Change(at_ms, len(self.changes), kind, staff_id, posting, span))


# -- building the initial bank ------------------------------------------------

# Day shifts of each role, with relative weights.
_DAY_SHIFTS: dict[str, list[tuple[float, Shift]]] = {
    "teller": [(1.0, Shift(8 * 60 + 30, 17 * 60 + 30))],
    "customer_manager": [(0.6, Shift(8 * 60 + 30, 17 * 60 + 30)), (0.4, Shift(9 * 60, 18 * 60))],
    "loan_officer": [(1.0, Shift(9 * 60, 18 * 60))],
    "operations": [(1.0, Shift(8 * 60, 17 * 60))],
    "branch_manager": [(1.0, Shift(8 * 60 + 30, 18 * 60))],
    "auditor": [(1.0, Shift(9 * 60, 17 * 60 + 30))],
    "it_support": [(0.7, Shift(9 * 60, 18 * 60)), (0.3, Shift(10 * 60, 19 * 60))],
}
LATE_SHIFT = Shift(11 * 60 + 30, 20 * 60)
EARLY_SHIFT = Shift(7 * 60, 15 * 60 + 30)
SPLIT_SHIFT = Shift(8 * 60, 20 * 60, split=True)
FRONT_DESK = frozenset({"teller", "customer_manager"})


def shift_options(profile: BankProfile, role: str) -> list[tuple[float, Shift]]:
    """The shifts of a role in a bank, with their shares (late, early and split shifts
    for tellers and customer managers), moved by the profile's opening-hours offset."""
    day = _DAY_SHIFTS[role]
    extra: list[tuple[float, Shift]] = []
    if role in FRONT_DESK:
        late = profile.teller_late_share if role == "teller" else profile.cm_late_share
        extra = [
            (late, LATE_SHIFT),
            (profile.early_share, EARLY_SHIFT),
            (profile.split_share, SPLIT_SHIFT),
        ]
    rest = 1.0 - sum(w for w, _ in extra)
    off = profile.shift_offset_min
    return [
        (w, Shift(s.start + off, s.end + off, s.split) if off else s)
        for w, s in [(w * rest, s) for w, s in day] + extra
        if w > 0
    ]


def branch_timezone(number: int, total: int, foreign: tuple[str, ...] = (HONG_KONG, TOKYO)) -> str:
    """Most branches are in Shanghai; the last ones are abroad, in the zones ``foreign`` in
    order (by default Hong Kong, then Tokyo for the last branch), so timezone handling is
    exercised. The head branch (number 1) is always in Shanghai.

    >>> [branch_timezone(n, 4) for n in range(1, 5)]
    ['Asia/Shanghai', 'Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Tokyo']
    >>> [branch_timezone(n, 2) for n in (1, 2)]
    ['Asia/Shanghai', 'Asia/Tokyo']
    """
    from_end = total - number  # 0 for the last branch
    if number > 1 and from_end < len(foreign):
        return foreign[len(foreign) - 1 - from_end]
    return SHANGHAI


def pick_shift(role: str, rng: random.Random, profile: BankProfile) -> Shift:
    options = shift_options(profile, role)
    return rng.choices([s for _, s in options], weights=[w for w, _ in options])[0]


def spread(total: int, weights: list[float], minimum: int) -> list[int]:
    """Split ``total`` over ``weights`` (largest remainder), each part at least ``minimum``.

    >>> spread(10, [2.0, 1.0, 1.0], 1)
    [4, 3, 3]
    """
    n = len(weights)
    base = [minimum] * n
    rest = total - minimum * n
    if rest < 0:
        raise ValueError(f"cannot give {minimum} each to {n} parts out of {total}")
    wsum = sum(weights)
    quotas = [rest * w / wsum for w in weights]
    parts = [int(q) for q in quotas]
    order = sorted(range(n), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in order[: rest - sum(parts)]:
        parts[i] += 1
    return [b + p for b, p in zip(base, parts, strict=True)]


def _role_plan(config: SimConfig, branches: list[Branch]) -> list[tuple[str, str]]:
    """(role, branch_id) for every initial employee."""
    nb = len(branches)
    weights = [b.weight for b in branches]
    ids = [b.branch_id for b in branches]
    head = ids[0]
    auditors = max(2, round(0.03 * config.staff))
    it = max(2, round(0.03 * config.staff))
    ops = max(nb, round(0.10 * config.staff))
    rest = config.staff - nb - auditors - it - ops
    cms = max(2 * nb, round(rest * config.profile.cm_share))
    tellers = max(2 * nb, round(rest * config.profile.teller_share))
    if rest - cms - tellers < nb:
        raise ConfigError(
            f"{config.staff} staff leave too few loan officers for {nb} branches with "
            f"cm_share {config.profile.cm_share} and teller_share {config.profile.teller_share}"
        )
    los = rest - cms - tellers
    out: list[tuple[str, str]] = []
    out += [("branch_manager", b) for b in ids]
    out += [("auditor", head)] * auditors + [("it_support", head)] * it
    for role, total, minimum in (
        ("operations", ops, 1),
        ("customer_manager", cms, 2),
        ("teller", tellers, 2),
        ("loan_officer", los, 1),
    ):
        for b, k in zip(ids, spread(total, weights, minimum), strict=True):
            out += [(role, b)] * k
    return out


def build_bank(config: SimConfig) -> Bank:
    """The bank at the start of the simulation (deterministic for the config)."""
    rng = random.Random(f"{config.seed}|bank")
    start = config.start_date
    nb = config.branches
    prof = config.profile
    spread_w = prof.branch_weight_spread
    branches = [
        Branch(
            f"BR{i:02d}",
            i,
            branch_timezone(i, nb, prof.foreign_timezones),
            prof.head_branch_weight
            if i == 1
            else round(rng.uniform(1 - spread_w, 1 + spread_w), 3),
        )
        for i in range(1, nb + 1)
    ]
    bank = Bank(config, branches, local_ms(SHANGHAI, start, 0))

    # Staff: ids are not grouped by role, as in a real HR system.
    plan = _role_plan(config, branches)
    numbers = sorted(rng.sample(range(10_000, 10_000 + 3 * config.staff), config.staff))
    rng.shuffle(plan)
    people: list[tuple[str, str, str]] = [
        (f"S{n}", role, b) for n, (role, b) in zip(numbers, plan, strict=True)
    ]
    for k, (sid, role, b) in enumerate(people):
        tz = bank.branch[b].timezone
        hired = start - timedelta(days=rng.randint(60, 3000))
        person = Staff(
            staff_id=sid,
            volume=min(
                prof.volume_max,
                max(prof.volume_min, rng.lognormvariate(0.0, prof.volume_sigma)),
            ),
            weekend_p=prof.cm_weekend_p
            if role == "customer_manager" and rng.random() < prof.cm_weekend_share
            else 0.0,
            mobile_p=rng.uniform(0.0, 0.3) if role == "customer_manager" else 0.0,
            rota=k % prof.teller_saturday_rota if prof.teller_saturday_rota else -1,
        )
        person.postings.append(
            Posting(local_ms(tz, hired, 0), b, role, "active", tz, pick_shift(role, rng, prof))
        )
        bank.add_staff(person)
        bank.initial_staff.append(sid)
        bank.desk(sid, b)

    _build_customers(bank, rng)
    _build_assignments(bank, rng)
    return bank


def _build_customers(bank: Bank, rng: random.Random) -> None:
    config = bank.config
    start = config.start_date
    specs: list[tuple[str, str, str, tuple[str, ...]]] = []
    # Employees bank where they work; some of their family do too (a conflict of interest).
    for sid in bank.initial_staff:
        b = bank.staff[sid].first.branch_id
        if rng.random() < 0.7:
            specs.append((b, "retail", "employee", (sid,)))
        if rng.random() < 0.3:
            sens = "employee" if rng.random() < 0.65 else "normal"
            specs.append((b, "retail", sens, (sid,)))
    ids = [b.branch_id for b in bank.branches]
    weights = [b.weight for b in bank.branches]
    for _ in range(config.customers - len(specs)):
        b = rng.choices(ids, weights=weights)[0]
        r = rng.random()
        segment = "retail" if r < 0.90 else ("private" if r < 0.96 else "corporate")
        r = rng.random()
        if segment == "private":
            sens = "vip" if r < 0.30 else ("pep" if r < 0.34 else "normal")
        elif segment == "corporate":
            sens = "vip" if r < 0.05 else ("restricted" if r < 0.08 else "normal")
        else:
            sens = (
                "vip"
                if r < 0.006
                else ("pep" if r < 0.009 else ("restricted" if r < 0.015 else "normal"))
            )
        specs.append((b, segment, sens, ()))
    rng.shuffle(specs)
    for i, (b, segment, sens, related) in enumerate(specs):
        updated = start - timedelta(days=rng.randint(1, 900))
        tz = bank.branch[b].timezone
        minute = rng.randint(8 * 60, 20 * 60)
        bank.add_customer(
            Customer(f"C{1_000_001 + i}", b, segment, sens, related, local_ms(tz, updated, minute))
        )


def _since(rng: random.Random, tz: str, start: date) -> int:
    """A plausible start of an assignment that predates the simulation."""
    return local_ms(tz, start - timedelta(days=rng.randint(20, 1500)), 0)


def _build_assignments(bank: Bank, rng: random.Random) -> None:
    start = bank.config.start_date
    prof = bank.config.profile
    for br in bank.branches:
        b = br.branch_id
        tz = br.timezone
        cms = bank.staff_in(b, "customer_manager")
        los = bank.staff_in(b, "loan_officer")
        bms = bank.staff_in(b, "branch_manager")
        cm_w = [bank.staff[s].volume for s in cms]
        buddy = {s: cms[(i + 1) % len(cms)] for i, s in enumerate(cms)}

        for c in bank.by_branch[b]:
            if c.sensitivity == "employee":
                continue  # staff accounts are serviced by tellers, never by a named manager
            premium = c.segment != "retail" or c.sensitivity in ("vip", "pep", "restricted")
            if premium or rng.random() < prof.rm_share:
                rm = rng.choices(cms, weights=cm_w)[0]
                if rm in c.related_staff_ids:
                    rm = buddy[rm]
                bank.assign(
                    Span(rm, c.customer_id, "relationship_manager", _since(rng, tz, start), None),
                    initial=True,
                )
                bk = buddy[rm]
                if premium and bk != rm and bk not in c.related_staff_ids:
                    bank.assign(
                        Span(bk, c.customer_id, "backup", _since(rng, tz, start), None),
                        initial=True,
                    )
            loan_p = (
                prof.loan_share_corporate if c.segment == "corporate" else prof.loan_share_retail
            )
            if rng.random() < loan_p:
                lo = rng.choice(los)
                if lo not in c.related_staff_ids:
                    bank.assign(
                        Span(lo, c.customer_id, "loan_officer", _since(rng, tz, start), None),
                        initial=True,
                    )
            if bms and (c.sensitivity in ("vip", "pep") or c.segment == "private"):
                bm = bms[0]
                if bm not in c.related_staff_ids:
                    bank.assign(
                        Span(bm, c.customer_id, "service_team", _since(rng, tz, start), None),
                        initial=True,
                    )
