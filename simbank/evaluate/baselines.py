"""Two simple detectors, run on the same enriched events as the pipeline.

They show what the pipeline adds over (1) the rule a bank would write first
and (2) an off-the-shelf streaming anomaly model with no domain logic.

- :func:`naive_rules` flags every access to a customer the employee is not
  assigned to, and every access to a non-``normal`` (VIP, PEP, employee,
  restricted) customer.
- :func:`halfspacetrees` scores each access with a plain
  :class:`river.anomaly.HalfSpaceTrees` (10 trees, height 8, window 250) on
  nine per-event features scaled to [0, 1] (:func:`hst_features`), scoring
  before learning; accesses scoring at least ``threshold`` are flagged. River
  returns 0 for every access of the first window (no reference mass yet), so
  nothing is flagged during warm-up.

Both group flagged accesses into one alert per employee and local calendar
day (the employee's time zone, ``Asia/Shanghai`` by default), with
``alert_id`` ``"<prefix>-<staff_id>-<YYYY-MM-DD>"``. To make time-to-detect
honest, an alert is re-emitted as it grows, like the pipeline's: revision *k*
is emitted at the *k*-th flagged access and names that access (so its
``last_event_at`` is when that access could first be seen), and a final
revision names the first 500 flagged accesses of the day with the full
``event_count`` and the reasons of the whole day. The result therefore holds
every revision; count distinct ``alert_id`` values for the number of alerts.

Input must be in event-time order (as the pipeline sees it per employee).
Pure and synchronous; ``python -m simbank.evaluate.baselines`` measures the
cost per event of both on synthetic enriched events.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from simbank.timestamps import DEFAULT_TIMEZONE, format_ts, local_time

MAX_EVENT_IDS: Final = 500
EXPORT_ACTIONS: Final = frozenset({"export_statement", "print_statement"})
_LOG_RECORDS_CAP: Final = math.log1p(10_000)


class AccessLike(Protocol):
    """The AccessEvent fields the baselines read (``occurred_at`` in epoch seconds)."""

    @property
    def event_id(self) -> str: ...
    @property
    def occurred_at(self) -> float: ...
    @property
    def staff_id(self) -> str: ...
    @property
    def customer_id(self) -> str | None: ...
    @property
    def action(self) -> str: ...
    @property
    def branch_id(self) -> str: ...
    @property
    def authorization_ref(self) -> str | None: ...
    @property
    def record_count(self) -> int: ...


class EnrichedLike(Protocol):
    """The fields of :class:`simbank.evaluate.enrich.Enriched` the baselines read."""

    @property
    def event(self) -> AccessLike: ...
    @property
    def staff_branch_id(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def assigned(self) -> bool: ...
    @property
    def home_branch_id(self) -> str | None: ...
    @property
    def sensitivity(self) -> str | None: ...


def _local(e: EnrichedLike) -> datetime:
    return local_time(e.event.occurred_at, e.timezone or DEFAULT_TIMEZONE)


def is_unassigned(e: EnrichedLike) -> bool:
    return e.event.customer_id is not None and not e.assigned


def is_sensitive(e: EnrichedLike) -> bool:
    return e.sensitivity is not None and e.sensitivity != "normal"


@dataclass
class _Group:
    alert_id: str
    staff_id: str
    branch_id: str
    first_at: float
    last_at: float
    event_ids: list[str] = field(default_factory=list)
    count: int = 0
    revision: int = 0
    peak: float = 0.0
    reasons: dict[str, str] = field(default_factory=dict)  # code -> summary


class _StaffDayAlerts:
    """Groups flagged accesses per (staff, local day) and emits alert revisions."""

    def __init__(self, prefix: str, model: str | None, threshold: float | None) -> None:
        self._prefix = prefix
        self._model = model
        self._threshold = threshold
        self._groups: dict[tuple[str, str], _Group] = {}
        self.revisions: list[dict[str, Any]] = []

    def flag(self, e: EnrichedLike, reasons: dict[str, str], score: float) -> None:
        ev = e.event
        day = _local(e).date().isoformat()
        key = (ev.staff_id, day)
        g = self._groups.get(key)
        if g is None:
            g = _Group(
                alert_id=f"{self._prefix}-{ev.staff_id}-{day}",
                staff_id=ev.staff_id,
                branch_id=e.staff_branch_id or ev.branch_id,
                first_at=ev.occurred_at,
                last_at=ev.occurred_at,
            )
            self._groups[key] = g
        g.first_at = min(g.first_at, ev.occurred_at)
        g.last_at = max(g.last_at, ev.occurred_at)
        g.count += 1
        g.peak = max(g.peak, score)
        if len(g.event_ids) < MAX_EVENT_IDS:
            g.event_ids.append(ev.event_id)
        for code, summary in reasons.items():
            g.reasons.setdefault(code, summary)
        self.revisions.append(self._emit(g, [ev.event_id]))

    def finish(self) -> list[dict[str, Any]]:
        for g in self._groups.values():
            if g.count > 1:
                self.revisions.append(self._emit(g, list(g.event_ids)))
        self._groups.clear()
        return self.revisions

    def _emit(self, g: _Group, event_ids: list[str]) -> dict[str, Any]:
        g.revision += 1
        if self._model is None:
            severity, risk = "medium", 50.0
        else:
            severity = "high" if g.peak >= 0.95 else "medium"
            risk = round(100.0 * g.peak, 2)
        model = None
        if self._model is not None:
            model = {
                "name": self._model,
                "version": "baseline",
                "score": round(g.peak, 4),
                "threshold": self._threshold,
                "top_features": [],
            }
        last = format_ts(g.last_at)
        return {
            "alert_id": g.alert_id,
            "revision": g.revision,
            "schema_version": 1,
            "created_at": last,
            "first_event_at": format_ts(g.first_at),
            "last_event_at": last,
            "staff_id": g.staff_id,
            "branch_id": g.branch_id,
            "severity": severity,
            "risk_score": risk,
            "reasons": [{"code": c, "summary": s, "weight": 1.0} for c, s in g.reasons.items()],
            "model": model,
            "event_ids": event_ids,
            "event_count": g.count,
            "customer_refs": [],
        }


def naive_rules(enriched: Iterable[EnrichedLike]) -> list[dict[str, Any]]:
    """Flag unassigned and sensitive-customer accesses; one alert per staff-day."""
    alerts = _StaffDayAlerts("naive", model=None, threshold=None)
    for e in enriched:
        reasons: dict[str, str] = {}
        if is_unassigned(e):
            reasons["unassigned_access"] = "access to a customer not assigned to the employee"
        if is_sensitive(e):
            reasons["sensitive_access"] = f"access to a {e.sensitivity} customer"
        if reasons:
            alerts.flag(e, reasons, 1.0)
    return alerts.finish()


def hst_features(e: EnrichedLike) -> dict[str, float]:
    """The nine per-event features of the HalfSpaceTrees baseline, each in [0, 1]."""
    ev = e.event
    local = _local(e)
    staff_branch = e.staff_branch_id
    other_branch = staff_branch is not None and (
        ev.branch_id != staff_branch
        or (e.home_branch_id is not None and e.home_branch_id != staff_branch)
    )
    no_auth_credit = ev.action == "credit_report_query" and not ev.authorization_ref
    return {
        "hour": (local.hour + local.minute / 60.0) / 24.0,
        "weekend": 1.0 if local.weekday() >= 5 else 0.0,
        "unassigned": 1.0 if is_unassigned(e) else 0.0,
        "sensitive": 1.0 if is_sensitive(e) else 0.0,
        "other_branch": 1.0 if other_branch else 0.0,
        "export_print": 1.0 if ev.action in EXPORT_ACTIONS else 0.0,
        "credit_no_auth": 1.0 if no_auth_credit else 0.0,
        "records": min(1.0, math.log1p(max(0, ev.record_count)) / _LOG_RECORDS_CAP),
        # Unknown staff (status None) count as not active.
        "not_active": 0.0 if e.status == "active" else 1.0,
    }


def halfspacetrees(
    enriched: Iterable[EnrichedLike], threshold: float = 0.8, seed: int = 42
) -> list[dict[str, Any]]:
    """Flag accesses a plain HalfSpaceTrees scores >= ``threshold``; one alert per staff-day."""
    from river.anomaly import HalfSpaceTrees

    model: Any = HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=seed)
    alerts = _StaffDayAlerts("hst", model="river.HalfSpaceTrees", threshold=threshold)
    for e in enriched:
        x = hst_features(e)
        s = float(model.score_one(x))
        model.learn_one(x)
        if s >= threshold:
            alerts.flag(e, {"hst_anomaly": "HalfSpaceTrees anomaly score over threshold"}, s)
    return alerts.finish()


# -- cost measurement -------------------------------------------------------


def synthetic_enriched(n: int, seed: int = 7) -> Iterator[EnrichedLike]:
    """``n`` plausible enriched accesses in time order (for cost measurement only)."""
    from simbank.evaluate.enrich import Access, Enriched

    rng = random.Random(seed)
    actions = ("view_profile", "view_balance", "view_transactions", "export_statement")
    t = 1_772_415_000.0
    for i in range(n):
        t += rng.expovariate(1 / 2.0)
        staff = rng.randrange(500)
        branch = f"B{staff % 20:02d}"
        odd = rng.random() < 0.05
        event = Access(
            event_id=f"e{i}",
            occurred_at=t,
            staff_id=f"S{staff:04d}",
            customer_id=f"C{rng.randrange(50_000):06d}",
            action=rng.choice(actions),
            channel="branch_terminal",
            branch_id=branch,
            record_count=rng.choice((1, 1, 1, 5, 200)) if odd else 1,
        )
        yield Enriched(
            event=event,
            staff_branch_id=branch,
            role="customer_manager",
            status="active",
            timezone=DEFAULT_TIMEZONE,
            assigned=not odd,
            home_branch_id=branch,
            sensitivity="vip" if rng.random() < 0.02 else "normal",
        )


def measure_cost(n: int = 100_000, seed: int = 7) -> dict[str, float]:
    """Microseconds per event of each baseline (wall clock, single thread)."""
    events = list(synthetic_enriched(n, seed))
    out: dict[str, float] = {"events": float(n)}
    for name, fn in (("naive_rules", naive_rules), ("halfspacetrees", halfspacetrees)):
        t0 = time.perf_counter()
        result = fn(events)
        elapsed = time.perf_counter() - t0
        out[f"{name}_us_per_event"] = elapsed / n * 1e6
        out[f"{name}_alerts"] = float(len({a["alert_id"] for a in result}))
    return out


if __name__ == "__main__":
    for key, value in measure_cost().items():
        print(f"{key}: {value:.2f}")
