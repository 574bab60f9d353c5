"""What differs between banks: a :class:`BankProfile`, and random plausible ones. Pure.

The simulator's own numbers are :data:`DEFAULT_PROFILE` (the simulation of a default
profile is byte-identical to the simulator's output before profiles existed).
:func:`draw_profile` draws a bank from the ranges in :data:`RANGES` (documented in
``docs/evaluation.md``): wide on purpose, so that a detector cannot fit one bank.

Rates are shares of a role's *interactions* (one customer served, a few actions each) unless
named otherwise; a customer manager has about 24 interactions a day at volume 1, so
``cm_unassigned_share`` 0.04 is about one legitimate look-up of an unassigned customer of
the branch a day, and the range 0.02-0.33 is about 0.5 to 8 a day.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TOKYO: Final = "Asia/Tokyo"
HONG_KONG: Final = "Asia/Hong_Kong"
SHANGHAI: Final = "Asia/Shanghai"
# Zones a branch abroad may be in (drawn profiles pick from these).
FOREIGN_ZONES: Final = (
    HONG_KONG,
    TOKYO,
    "Asia/Singapore",
    "Asia/Seoul",
    "Europe/London",
    "America/New_York",
)


class ProfileError(ValueError):
    """A profile parameter outside what the simulator can honour."""


@dataclass(frozen=True)
class BankProfile:
    """The parameters that differ between banks. Defaults are the ``default`` profile."""

    name: str = "default"

    # -- shape: branches, people, customers ------------------------------------------
    branches: int = 8  # used when the size flags do not name a branch count
    customers_per_staff: int = 100  # used when the size flags do not name a customer count
    head_branch_weight: float = 1.6  # relative size of BR01 (the head branch)
    branch_weight_spread: float = 0.3  # other branches: uniform(1 - s, 1 + s)
    # Zones of the last branches, in order (BR01, the head branch, is always Asia/Shanghai).
    foreign_timezones: tuple[str, ...] = (HONG_KONG, TOKYO)
    # Customer-facing staff (after managers, auditors, IT, operations): shares of customer
    # managers and tellers; loan officers get the rest.
    cm_share: float = 0.4
    teller_share: float = 0.4

    # -- portfolios ------------------------------------------------------------------
    rm_share: float = 0.55  # ordinary retail customers with a relationship manager
    loan_share_retail: float = 0.11  # retail customers with a loan officer
    loan_share_corporate: float = 0.4

    # -- volume ----------------------------------------------------------------------
    volume_factor: float = 1.0  # interactions per day of every role, x
    volume_sigma: float = 0.3  # personal multiplier: lognormal(0, sigma) ...
    volume_min: float = 0.5  # ... clipped to [volume_min, volume_max]
    volume_max: float = 1.8

    # -- legitimate look-ups of customers not assigned to the employee ---------------
    cm_unassigned_share: float = 0.04  # a branch customer, not in the portfolio
    cm_search_share: float = 0.05  # a customer search (then, mostly, an own customer)
    new_hire_unassigned_share: float = 0.10  # a new customer manager's first weeks
    new_hire_search_share: float = 0.15
    lo_unassigned_share: float = 0.15  # loan enquiries of branch customers
    bm_unassigned_share: float = 0.35  # branch managers outside their service team
    it_lookup_share: float = 0.25  # IT tickets that open a customer's screen

    # -- walk-in service ---------------------------------------------------------------
    cm_walk_in_share: float = 0.0  # customer managers covering the counter
    lo_walk_in_share: float = 0.0  # walk-in loan applicants (credit query with consent)
    walk_in_own_branch: float = 0.88  # share of walk-ins who bank at that branch

    # -- statements and credit reports (weights of the action, x) --------------------
    teller_statement_factor: float = 1.0  # print_statement at the counter
    cm_statement_factor: float = 1.0  # print_statement and export_statement
    lo_statement_factor: float = 1.0  # export_statement
    cm_credit_factor: float = 1.0
    lo_credit_factor: float = 1.0
    # Share of ordinary credit-report queries carrying the authorization reference; the
    # others (the signed form is on file, the reference not typed in) are labelled benign
    # ``authorization_on_file``.
    credit_authorized_share: float = 1.0

    # -- shifts ----------------------------------------------------------------------
    shift_offset_min: int = 0  # opening hours earlier (<0) or later (>0), every role
    teller_late_share: float = 0.3  # 11:30-20:00
    cm_late_share: float = 0.0
    early_share: float = 0.0  # tellers and customer managers on 07:00-15:30
    split_share: float = 0.0  # tellers and customer managers on 08:00-12:00 + 16:00-20:00
    cm_weekend_share: float = 0.15  # customer managers who do a little weekend work ...
    cm_weekend_p: float = 0.35  # ... on this share of weekend days
    teller_saturday_rota: int = 3  # a teller works one Saturday morning in N; 0 = never

    # -- turnover: one change of each kind per N initial staff (at least one each) ----
    staff_per_leave: float = 60.0  # leave with a colleague covering
    staff_per_move: float = 60.0  # transfers between branches
    staff_per_leaver: float = 100.0  # terminations
    staff_per_transfer_out: float = 200.0  # transfers out of customer-facing work
    staff_per_hire: float = 60.0

    def __post_init__(self) -> None:
        problems = _check(self)
        if problems:
            raise ProfileError(f"profile {self.name!r}: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["foreign_timezones"] = list(self.foreign_timezones)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BankProfile:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProfileError(f"unknown profile parameters: {', '.join(unknown)}")
        values = dict(data)
        if "foreign_timezones" in values:
            values["foreign_timezones"] = tuple(values["foreign_timezones"])
        return replace(DEFAULT_PROFILE, **values)


def _check(p: BankProfile) -> list[str]:
    out: list[str] = []
    shares = {
        f.name: getattr(p, f.name)
        for f in fields(p)
        if f.name.endswith("_share") or f.name in ("walk_in_own_branch", "cm_weekend_p")
    }
    out += [f"{k} must be in [0, 1], got {v}" for k, v in shares.items() if not 0.0 <= v <= 1.0]
    if not 1 <= p.branches <= 99:
        out.append(f"branches must be 1..99, got {p.branches}")
    if p.customers_per_staff < 20:
        out.append(f"customers_per_staff must be at least 20, got {p.customers_per_staff}")
    if p.cm_share + p.teller_share >= 1.0:
        out.append("cm_share + teller_share must leave room for loan officers")
    if p.teller_late_share + p.early_share + p.split_share > 0.9:
        out.append("teller_late_share + early_share + split_share must be at most 0.9")
    if p.cm_late_share + p.early_share + p.split_share > 0.9:
        out.append("cm_late_share + early_share + split_share must be at most 0.9")
    if p.cm_search_share + p.cm_unassigned_share + p.cm_walk_in_share > 0.95:
        out.append("cm_search_share + cm_unassigned_share + cm_walk_in_share must be <= 0.95")
    if p.new_hire_search_share + p.new_hire_unassigned_share > 0.95:
        out.append("new_hire_search_share + new_hire_unassigned_share must be <= 0.95")
    if not 0.0 < p.volume_min <= 1.0 <= p.volume_max:
        out.append("volume_min <= 1 <= volume_max, volume_min > 0")
    positive = (
        "head_branch_weight",
        "volume_factor",
        "teller_statement_factor",
        "cm_statement_factor",
        "lo_statement_factor",
        "cm_credit_factor",
        "lo_credit_factor",
    )
    out += [f"{k} must be positive" for k in positive if not getattr(p, k) > 0]
    if not 0.0 <= p.branch_weight_spread < 1.0:
        out.append(f"branch_weight_spread must be in [0, 1), got {p.branch_weight_spread}")
    if not p.volume_sigma >= 0:
        out.append("volume_sigma must not be negative")
    if not -180 <= p.shift_offset_min <= 180:
        out.append(f"shift_offset_min must be -180..180, got {p.shift_offset_min}")
    if not 0 <= p.teller_saturday_rota <= 8:
        out.append(f"teller_saturday_rota must be 0..8, got {p.teller_saturday_rota}")
    turnover = (
        "staff_per_leave",
        "staff_per_move",
        "staff_per_leaver",
        "staff_per_transfer_out",
        "staff_per_hire",
    )
    out += [f"{k} must be at least 10" for k in turnover if not getattr(p, k) >= 10]
    if len(set(p.foreign_timezones)) != len(p.foreign_timezones):
        out.append("foreign_timezones must not repeat a zone")
    for tz in p.foreign_timezones:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(f"{tz!r} is not an IANA time zone")
    return out


DEFAULT_PROFILE: Final = BankProfile()

# Documented ranges of draw_profile: parameter -> (low, high, how it is drawn).
# "log" draws log-uniformly (factors and rates spanning an order of magnitude), "lin"
# uniformly, "int" a uniform integer.
RANGES: Final[dict[str, tuple[float, float, str]]] = {
    "branches": (3, 16, "int"),
    "customers_per_staff": (40, 200, "int"),
    "head_branch_weight": (1.0, 3.0, "lin"),
    "branch_weight_spread": (0.05, 0.6, "lin"),
    "foreign_branches": (0, 3, "int"),  # how many of FOREIGN_ZONES
    "cm_share": (0.25, 0.5, "lin"),
    "teller_share": (0.2, 0.5, "lin"),
    "rm_share": (0.3, 0.9, "lin"),
    "loan_share_retail": (0.05, 0.25, "lin"),
    "loan_share_corporate": (0.2, 0.6, "lin"),
    "volume_factor": (0.6, 1.5, "log"),
    "volume_sigma": (0.15, 0.6, "lin"),
    "cm_unassigned_per_day": (0.5, 8.0, "log"),  # / 24 -> cm_unassigned_share
    "cm_search_share": (0.02, 0.15, "log"),
    "lo_unassigned_share": (0.05, 0.4, "log"),
    "bm_unassigned_share": (0.15, 0.6, "lin"),
    "it_lookup_share": (0.1, 0.6, "lin"),
    "cm_walk_in_share": (0.0, 0.6, "lin"),
    "lo_walk_in_share": (0.0, 0.3, "lin"),
    "walk_in_own_branch": (0.6, 0.97, "lin"),
    "teller_statement_factor": (0.3, 3.0, "log"),
    "cm_statement_factor": (0.3, 3.0, "log"),
    "lo_statement_factor": (0.3, 3.0, "log"),
    "cm_credit_factor": (0.5, 2.0, "log"),
    "lo_credit_factor": (0.5, 2.0, "log"),
    "credit_authorized_share": (0.998, 1.0, "lin"),  # exactly 1.0 for half the banks
    "shift_offset_min": (-60, 60, "int"),  # in steps of 15 minutes
    "teller_late_share": (0.0, 0.5, "lin"),
    "cm_late_share": (0.0, 0.3, "lin"),
    "early_share": (0.0, 0.2, "lin"),
    "split_share": (0.0, 0.2, "lin"),
    "cm_weekend_share": (0.0, 0.4, "lin"),
    "cm_weekend_p": (0.2, 0.5, "lin"),
    "teller_saturday_rota": (0, 4, "int"),
    "staff_per_leave": (30.0, 150.0, "log"),
    "staff_per_move": (30.0, 150.0, "log"),
    "staff_per_leaver": (40.0, 250.0, "log"),
    "staff_per_transfer_out": (60.0, 400.0, "log"),
    "staff_per_hire": (30.0, 150.0, "log"),
}


def _draw(rng: random.Random, name: str) -> float:
    lo, hi, how = RANGES[name]
    if how == "int":
        return float(rng.randint(int(lo), int(hi)))
    if how == "log":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return rng.uniform(lo, hi)


def draw_profile(seed: int) -> BankProfile:
    """A random, plausible bank (same seed -> same profile), from :data:`RANGES`."""
    rng = random.Random(f"bank-profile|{seed}")

    def d(name: str, digits: int = 4) -> float:
        return round(_draw(rng, name), digits)

    cm_unassigned = min(0.4, d("cm_unassigned_per_day") / 24)
    cm_search = d("cm_search_share")
    sigma = d("volume_sigma", 3)
    late_t, late_c = d("teller_late_share", 3), d("cm_late_share", 3)
    early, split = d("early_share", 3), d("split_share", 3)
    zones = rng.sample(FOREIGN_ZONES, int(_draw(rng, "foreign_branches")))
    authorized = 1.0 if rng.random() < 0.5 else d("credit_authorized_share", 5)
    return BankProfile(
        name=f"random-{seed}",
        branches=int(_draw(rng, "branches")),
        customers_per_staff=int(_draw(rng, "customers_per_staff")),
        head_branch_weight=d("head_branch_weight", 3),
        branch_weight_spread=d("branch_weight_spread", 3),
        foreign_timezones=tuple(zones),
        cm_share=d("cm_share", 3),
        teller_share=d("teller_share", 3),
        rm_share=d("rm_share", 3),
        loan_share_retail=d("loan_share_retail", 3),
        loan_share_corporate=d("loan_share_corporate", 3),
        volume_factor=d("volume_factor", 3),
        volume_sigma=sigma,
        volume_min=round(math.exp(-2.3 * sigma), 3),
        volume_max=round(math.exp(2.0 * sigma), 3),
        cm_unassigned_share=round(cm_unassigned, 4),
        cm_search_share=cm_search,
        new_hire_unassigned_share=round(min(0.45, 2.5 * cm_unassigned), 4),
        new_hire_search_share=round(min(0.45, 3 * cm_search), 4),
        lo_unassigned_share=d("lo_unassigned_share"),
        bm_unassigned_share=d("bm_unassigned_share", 3),
        it_lookup_share=d("it_lookup_share", 3),
        cm_walk_in_share=min(d("cm_walk_in_share", 3), round(0.9 - cm_unassigned - cm_search, 3)),
        lo_walk_in_share=d("lo_walk_in_share", 3),
        walk_in_own_branch=d("walk_in_own_branch", 3),
        teller_statement_factor=d("teller_statement_factor", 3),
        cm_statement_factor=d("cm_statement_factor", 3),
        lo_statement_factor=d("lo_statement_factor", 3),
        cm_credit_factor=d("cm_credit_factor", 3),
        lo_credit_factor=d("lo_credit_factor", 3),
        credit_authorized_share=authorized,
        shift_offset_min=15 * round(_draw(rng, "shift_offset_min") / 15),
        teller_late_share=late_t,
        cm_late_share=late_c,
        early_share=early,
        split_share=split,
        cm_weekend_share=d("cm_weekend_share", 3),
        cm_weekend_p=d("cm_weekend_p", 3),
        teller_saturday_rota=int(_draw(rng, "teller_saturday_rota")),
        staff_per_leave=d("staff_per_leave", 1),
        staff_per_move=d("staff_per_move", 1),
        staff_per_leaver=d("staff_per_leaver", 1),
        staff_per_transfer_out=d("staff_per_transfer_out", 1),
        staff_per_hire=d("staff_per_hire", 1),
    )


def profile_named(name: str, seed: int | None = None) -> BankProfile:
    """``default``, or ``random`` drawn with ``seed`` (required)."""
    if name == "default":
        return DEFAULT_PROFILE
    if name == "random":
        if seed is None:
            raise ProfileError("--profile random needs --profile-seed")
        return draw_profile(seed)
    raise ProfileError(f"unknown profile {name!r} (default or random)")
