"""Per-employee behaviour in event time: windows, first-seen memory, daily baselines.

Pure and synchronous. :class:`Behaviour` is part of the per-employee state in
the ``staff-risk`` table (JSON, never pickle); what it costs is bounded:
the 1-hour window holds at most ``WINDOW_CAP`` customers, the first-seen
memory at most ``FIRST_SEEN_CAP`` entries (oldest forgotten first), the
daily baselines a handful of floats per reason code.

* **Sliding window** (1 h, event time): distinct unassigned customers and
  exported records; ``bulk_access`` fires when the count passes a level
  (``BULK_LEVELS``) above the employee's usual hourly peak, once per level.
* **First seen**: a branch, terminal, /24 network, channel or action never
  seen for this employee within ``FIRST_SEEN_HORIZON_S``. Only counted once
  the employee has history (``MIN_HISTORY``), so a new hire is not flooded.
* **Habituation**: every reason code's daily count feeds an exponentially
  weighted mean per employee; the weight of a signal is scaled by
  ``k / (k + usual daily count)``, so what someone does every day weighs
  little and what they never do weighs fully. Until an employee has
  ``MIN_DAYS`` days of history, the usual count is their peer group's
  (:class:`PeerBaselines`, same role). Signals of accesses that joined an
  open incident are not counted (we do not learn from what was flagged).
* **Feedback**: an analyst's ``false_positive`` or ``benign_true_positive``
  halves the weight of the alert's reason codes for that employee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipeline.contract.records import EXPORT_ACTIONS
from pipeline.detect.catalogue import spec
from pipeline.detect.shift import local_time, outside_shift
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched

WINDOW_S = 3600.0
WINDOW_CAP = 2000
FIRST_SEEN_HORIZON_S = 30 * 86400.0
FIRST_SEEN_CAP = 300
MIN_HISTORY = 200
MIN_DAYS = 3
HABITUATION_K = 2.0
BASELINE_ALPHA = 0.2  # weight of the newest day in the daily means
BULK_LEVELS = (15, 30, 60, 120, 240, 480)
EXPORT_RECORDS_FLOOR = 500
FEEDBACK_FACTOR = 0.5
ROLES_EXEMPT_FROM_BULK = frozenset({"operations"})
RECENT_CAP = 1000
RECENT_UNASSIGNED, RECENT_OTHER_BRANCH, RECENT_SENSITIVE, RECENT_OFF_SHIFT, RECENT_DENIED = (
    1,
    2,
    4,
    8,
    16,
)
MODEL_EVERY_S = 600.0  # score an employee's hour at most this often (event time)
# Prior usual daily counts per role, for a deployment that has seen no one yet:
# what the role's work itself implies (tellers serve walk-ins from any branch and
# print statements for them). Learned peer and personal means replace them.
ROLE_PRIORS: dict[str, dict[str, float]] = {
    "teller": {
        "_hourly_peak": 20.0,
        "other_branch_customer_access": 5.0,
        "sensitive_customer_access": 1.0,
        "statement_export_unassigned": 2.0,
    },
    "customer_manager": {"unassigned_customer_access": 2.0},
    "loan_officer": {"unassigned_customer_access": 1.0},
    "branch_manager": {"other_branch_customer_access": 1.0},
}


@dataclass(slots=True)
class Behaviour:
    # 1-hour window of unassigned customers: customer -> last access time
    window: dict[str, float] = field(default_factory=dict)
    window_exports: list[list[float]] = field(default_factory=list)  # [time, records]
    bulk_level: int = 0
    hourly_peak: float = 0.0  # usual peak of distinct unassigned customers per hour
    first_seen: dict[str, float] = field(default_factory=dict)
    events: int = 0
    day: str = ""
    day_counts: dict[str, float] = field(default_factory=dict)
    daily_mean: dict[str, float] = field(default_factory=dict)
    days: int = 0
    feedback_scale: dict[str, float] = field(default_factory=dict)
    # 1-hour window of every access: [time, customer or "", flags (RECENT_*), records]
    recent: list[list[Any]] = field(default_factory=list)
    last_model_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "window_exports": self.window_exports,
            "bulk_level": self.bulk_level,
            "hourly_peak": self.hourly_peak,
            "first_seen": self.first_seen,
            "events": self.events,
            "day": self.day,
            "day_counts": self.day_counts,
            "daily_mean": self.daily_mean,
            "days": self.days,
            "feedback_scale": self.feedback_scale,
            "recent": self.recent,
            "last_model_at": self.last_model_at,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Behaviour:
        return cls(**raw)

    # -- daily baselines ----------------------------------------------------
    def roll_day(self, day: str) -> dict[str, float] | None:
        """Start ``day``; return the completed day's counts when a day was completed.

        A late access of an earlier day changes nothing (the day stays open)."""
        if day <= self.day:
            return None
        completed = None
        if self.day:
            completed = self.day_counts
            codes = set(self.daily_mean) | set(self.day_counts)
            for code in codes:
                prev = self.daily_mean.get(code)
                today = self.day_counts.get(code, 0.0)
                self.daily_mean[code] = (
                    today if prev is None else (1 - BASELINE_ALPHA) * prev + BASELINE_ALPHA * today
                )
            peak = self.day_counts.get("_hourly_peak", 0.0)
            self.hourly_peak = max(
                peak, (1 - BASELINE_ALPHA) * self.hourly_peak + BASELINE_ALPHA * peak
            )
            self.days += 1
        self.day = day
        self.day_counts = {}
        return completed

    def usual(self, code: str, peers: dict[str, float]) -> float:
        if self.days >= MIN_DAYS:
            return self.daily_mean.get(code, 0.0)
        return peers.get(code, 0.0)

    def scale(self, code: str, peers: dict[str, float]) -> float:
        """Habituation times feedback: 1.0 for what this employee never does.

        Policy violations (``ReasonSpec.habituates`` false) do not habituate:
        doing them every day does not make them acceptable.
        """
        feedback = self.feedback_scale.get(code, 1.0)
        if not spec(code).habituates:
            return feedback
        usual = self.usual(code, peers)
        return HABITUATION_K / (HABITUATION_K + usual) * feedback

    def weight(self, code: str, peers: dict[str, float]) -> float:
        """Catalogue weight, scaled by habituation and analyst feedback."""
        return spec(code).weight * self.scale(code, peers)

    def apply_feedback(self, codes: list[str]) -> None:
        for code in codes:
            self.feedback_scale[code] = self.feedback_scale.get(code, 1.0) * FEEDBACK_FACTOR


class PeerBaselines:
    """Usual daily counts per peer group (role): what peers do, per staff-day.

    Two sources, the larger wins: the mean over completed staff-days, and the
    running per-staff average of the current day among active peers (so a new
    deployment, whose employees all lack history, habituates within hours
    instead of days). One per access partition (the peers are the staff of
    that partition), stored in the staff table under a key of that partition
    (:mod:`pipeline.broker.partitioning`), so it survives restarts and rebalances and
    does not depend on how partitions are spread over workers.
    """

    def __init__(self) -> None:
        self.means: dict[str, dict[str, float]] = {}
        self.days: dict[str, int] = {}
        self.today: dict[str, tuple[str, set[str], dict[str, float]]] = {}

    def of(
        self, role: str | None, staff_id: str = "", own: dict[str, float] | None = None
    ) -> dict[str, float]:
        """Usual daily counts of ``role``; ``staff_id``'s own counts of today (``own``)
        are left out, so nobody is their own peer."""
        key = role or ""
        out = {**ROLE_PRIORS.get(key, {}), **self.means.get(key, {})}
        current = self.today.get(key)
        if current is None:
            return out
        _, active, counts = current
        others = len(active) - (1 if staff_id in active else 0)
        if others <= 0:
            return out
        own = own or {}
        for code, total in counts.items():
            mean = (total - (own.get(code, 0.0) if staff_id in active else 0.0)) / others
            out[code] = max(out.get(code, 0.0), mean)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "means": self.means,
            "days": self.days,
            "today": {k: [d, sorted(a), c] for k, (d, a, c) in self.today.items()},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PeerBaselines:
        p = cls()
        p.means = raw["means"]
        p.days = raw["days"]
        p.today = {k: (d, set(a), c) for k, (d, a, c) in raw["today"].items()}
        return p

    def note(self, role: str | None, day: str, staff_id: str, codes: list[str]) -> None:
        """An access of ``staff_id`` on local ``day`` with these (unflagged) signal codes."""
        key = role or ""
        current = self.today.get(key)
        if current is None or current[0] < day:
            current = (day, set(), {})
            self.today[key] = current
        elif current[0] > day:
            return  # a late event of an earlier day
        current[1].add(staff_id)
        for code in codes:
            current[2][code] = current[2].get(code, 0.0) + 1

    def add_day(self, role: str | None, counts: dict[str, float]) -> None:
        key = role or ""
        means = self.means.setdefault(key, {})
        n = self.days.get(key, 0) + 1
        self.days[key] = n
        alpha = max(1.0 / n, 0.02)
        for code in set(means) | set(counts):
            prev = means.get(code, 0.0)
            means[code] = prev + alpha * (counts.get(code, 0.0) - prev)


def _net(ip: str | None) -> str | None:
    if not ip:
        return None
    if ":" in ip:  # IPv6: first four groups
        return ":".join(ip.split(":")[:4])
    return ip.rsplit(".", 1)[0]


def first_seen_keys(e: Enriched) -> list[tuple[str, str]]:
    ev = e.event
    keys = [("branch", ev.branch_id), ("channel", ev.channel), ("action", ev.action)]
    if ev.terminal_id:
        keys.append(("terminal", ev.terminal_id))
    net = _net(ev.source_ip)
    if net:
        keys.append(("network", net))
    return keys


def window_features(b: Behaviour) -> dict[str, float]:
    """The employee's last hour, as the online model's features (pipeline.detect.model)."""
    customers: set[str] = set()
    unassigned: set[str] = set()
    other: set[str] = set()
    sensitive: set[str] = set()
    exported = off_shift = denied = 0.0
    for _, customer, flags, records in b.recent:
        if customer:
            customers.add(customer)
            if flags & RECENT_UNASSIGNED:
                unassigned.add(customer)
            if flags & RECENT_OTHER_BRANCH:
                other.add(customer)
            if flags & RECENT_SENSITIVE:
                sensitive.add(customer)
        exported += records
        off_shift += 1 if flags & RECENT_OFF_SHIFT else 0
        denied += 1 if flags & RECENT_DENIED else 0
    return {
        "events": float(len(b.recent)),
        "distinct_customers": float(len(customers)),
        "unassigned_customers": float(len(unassigned)),
        "other_branch_customers": float(len(other)),
        "sensitive_customers": float(len(sensitive)),
        "exported_records": exported,
        "off_shift_events": off_shift,
        "denied_events": denied,
    }


def model_due(b: Behaviour, e: Enriched) -> bool:
    """Whether to score this access with the online model: a non-routine access
    (unassigned, or an export) at most every MODEL_EVERY_S of event time."""
    ev = e.event
    if ev.occurred_at - b.last_model_at < MODEL_EVERY_S:
        return False
    if (ev.customer_id is not None and not e.assigned) or ev.action in EXPORT_ACTIONS:
        b.last_model_at = ev.occurred_at
        return True
    return False


def _record_recent(b: Behaviour, e: Enriched, local_off_shift: bool) -> None:
    ev = e.event
    at = ev.occurred_at
    flags = 0
    if ev.customer_id is not None and not e.assigned:
        flags |= RECENT_UNASSIGNED
        if e.home_branch_id is not None and e.home_branch_id != e.staff_branch_id:
            flags |= RECENT_OTHER_BRANCH
    if e.sensitivity not in (None, "normal"):
        flags |= RECENT_SENSITIVE
    if local_off_shift:
        flags |= RECENT_OFF_SHIFT
    if ev.outcome == "denied":
        flags |= RECENT_DENIED
    records = float(ev.record_count) if ev.action in EXPORT_ACTIONS else 0.0
    horizon = at - WINDOW_S
    if b.recent and b.recent[0][0] < horizon:
        b.recent = [r for r in b.recent if r[0] >= horizon]
    if len(b.recent) < RECENT_CAP:
        b.recent.append([at, ev.customer_id or "", flags, records])


def observe_behaviour(
    b: Behaviour,
    e: Enriched,
    rule_signals: list[Signal],
    peers: PeerBaselines,
    flagged: bool,
) -> list[Signal]:
    """Update the employee's behaviour with one access; return behaviour signals.

    ``rule_signals`` are the stateless rules' signals for the same access; their
    weights are rescaled here, in place, by habituation and feedback. ``flagged``
    says the employee has an open incident: then nothing is learned from it.
    """
    ev = e.event
    at = ev.occurred_at
    local = local_time(at, e.timezone)
    day = local.strftime("%Y-%m-%d")
    completed = b.roll_day(day)
    if completed is not None:
        peers.add_day(e.role, completed)
    peer_means = peers.of(e.role, ev.staff_id, b.day_counts)
    peers.note(e.role, day, ev.staff_id, [] if flagged else [s.code for s in rule_signals])
    b.events += 1
    out: list[Signal] = []
    _record_recent(b, e, outside_shift(local, e.shift_start, e.shift_end))

    for i, s in enumerate(rule_signals):
        if not flagged:
            b.day_counts[s.code] = b.day_counts.get(s.code, 0.0) + 1
        rule_signals[i] = Signal(s.code, s.weight * b.scale(s.code, peer_means), s.summary)

    # first seen
    fresh = []
    for kind, value in first_seen_keys(e):
        key = f"{kind}:{value}"
        last = b.first_seen.get(key)
        if (last is None or at - last > FIRST_SEEN_HORIZON_S) and b.events > MIN_HISTORY:
            fresh.append(f"{kind} {value}")
        b.first_seen[key] = max(at, last or at)
    if len(b.first_seen) > FIRST_SEEN_CAP:
        for key, _ in sorted(b.first_seen.items(), key=lambda kv: kv[1])[
            : len(b.first_seen) - FIRST_SEEN_CAP
        ]:
            del b.first_seen[key]
    if fresh:
        out.append(
            Signal("first_seen", b.weight("first_seen", peer_means), "first " + ", ".join(fresh))
        )

    # sliding window of unassigned customers
    horizon = at - WINDOW_S
    if b.window and min(b.window.values()) < horizon:
        b.window = {c: t for c, t in b.window.items() if t >= horizon}
    if ev.customer_id is not None and not e.assigned and len(b.window) < WINDOW_CAP:
        b.window[ev.customer_id] = at
    n = len(b.window)
    if not flagged:
        b.day_counts["_hourly_peak"] = max(b.day_counts.get("_hourly_peak", 0.0), float(n))
    usual_peak = b.hourly_peak if b.days >= MIN_DAYS else peer_means.get("_hourly_peak", 0.0)
    level = b.bulk_level
    while level < len(BULK_LEVELS) and n >= max(BULK_LEVELS[level], 3 * usual_peak):
        level += 1
    if n < BULK_LEVELS[0] // 2:
        b.bulk_level = 0
    elif level > b.bulk_level and e.role not in ROLES_EXEMPT_FROM_BULK:
        b.bulk_level = level
        out.append(
            Signal(
                "bulk_access",
                b.weight("bulk_access", peer_means) * math.sqrt(level),
                f"{n} distinct unassigned customers within an hour (usual peak {usual_peak:.0f})",
            )
        )

    # exported records in the window
    if ev.action in EXPORT_ACTIONS and e.role != "operations":
        b.window_exports = [x for x in b.window_exports if x[0] >= horizon]
        b.window_exports.append([at, float(ev.record_count)])
        total = sum(x[1] for x in b.window_exports)
        usual = b.daily_mean.get("_export_records", 0.0)
        if total >= max(EXPORT_RECORDS_FLOOR, 5 * usual) and total - ev.record_count < max(
            EXPORT_RECORDS_FLOOR, 5 * usual
        ):
            out.append(
                Signal(
                    "export_volume",
                    b.weight("export_volume", peer_means),
                    f"{total:.0f} records exported or printed within an hour "
                    f"(usual {usual:.0f}/day)",
                )
            )
        if not flagged:
            b.day_counts["_export_records"] = (
                b.day_counts.get("_export_records", 0.0) + ev.record_count
            )
    return out
