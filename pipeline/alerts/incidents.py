"""Risk per employee and the incident it opens: one alert per incident, revised as it grows.

Pure and synchronous. :class:`StaffRisk` is the whole per-employee state; it
serializes to plain JSON (never pickle) so it can travel through a changelog.

Risk accumulates the weights of every signal and decays exponentially in
event time, on two timescales (:class:`RiskConfig`). When it crosses
``open_at`` an incident opens, taking along the recent evidence that built
the risk up; later evidence joins the same incident, and news an analyst
cares about (a new reason, a higher severity, 25% more events, 25 more
risk points of evidence and 25% more in all, or an hour of event time)
re-emits the alert with the same ``alert_id`` and
``revision + 1``. The incident closes once risk has decayed below
``close_below``; the next crossing opens a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.alerts.ids import Pseudonymizer, alert_id_for
from pipeline.contract.records import Alert, Reason
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched
from pipeline.timeutil import format_ts

MAX_EVENT_IDS = 500
KEEP_FIRST_EVENT_IDS = 50  # past MAX_EVENT_IDS: the opening evidence and the newest
MAX_CUSTOMERS = 200
MAX_PENDING = 20
RECENTLY_CLOSED_IDS = 100  # event ids of the last closed incident, against redelivery


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Two accumulators of the same evidence, on two timescales.

    ``fast`` (half-life ``fast_half_life_s``) catches what happens within a
    session; ``slow`` (half-life ``slow_half_life_s``) catches the same kind of
    evidence spread over days (low-and-slow). Risk, on a 0-100+ scale, is
    ``50 * max(fast / fast_open, slow / slow_open)``: an incident opens at 50.
    """

    fast_half_life_s: float = 2 * 3600.0
    fast_open: float = 50.0
    slow_half_life_s: float = 3 * 86400.0
    slow_open: float = 100.0
    open_at: float = 50.0
    close_below: float = 10.0
    reemit_growth: float = 1.25  # re-emit when the event count grows by this factor
    reemit_weight: float = 25.0  # ... or this much new evidence weight arrived
    reemit_after_s: float = 3600.0  # ... or after this much event time with new evidence

    def risk(self, fast: float, slow: float) -> float:
        return 50.0 * max(fast / self.fast_open, slow / self.slow_open)

    def severity(self, risk: float) -> str:
        if risk >= 100:
            return "critical"
        if risk >= 80:
            return "high"
        if risk >= 65:
            return "medium"
        return "low"


@dataclass(slots=True)
class Evidence:
    event_id: str
    at: float
    customer_id: str | None
    signals: list[tuple[str, float, str]]  # (code, weight, summary)

    def to_json(self) -> list[Any]:
        return [self.event_id, self.at, self.customer_id, [list(s) for s in self.signals]]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Evidence:
        return cls(raw[0], raw[1], raw[2], [(s[0], s[1], s[2]) for s in raw[3]])


@dataclass(slots=True)
class Incident:
    alert_id: str
    revision: int
    first_event_at: float
    last_event_at: float
    branch_id: str
    event_ids: list[str] = field(default_factory=list)
    event_count: int = 0
    customers: list[str] = field(default_factory=list)
    # code -> [total weight, occurrences, latest summary]
    reasons: dict[str, list[Any]] = field(default_factory=dict)
    peak_risk: float = 0.0
    emitted_count: int = 0
    emitted_at: float = 0.0
    emitted_codes: list[str] = field(default_factory=list)
    emitted_severity: str = ""
    unemitted_weight: float = 0.0
    model: dict[str, Any] | None = None  # the latest anomalous model result

    def add(self, ev: Evidence) -> None:
        self.first_event_at = min(self.first_event_at, ev.at)
        self.last_event_at = max(self.last_event_at, ev.at)
        self.event_count += 1
        self.event_ids.append(ev.event_id)
        if len(self.event_ids) > MAX_EVENT_IDS:
            del self.event_ids[KEEP_FIRST_EVENT_IDS]
        if (
            ev.customer_id is not None
            and len(self.customers) < MAX_CUSTOMERS
            and ev.customer_id not in self.customers
        ):
            self.customers.append(ev.customer_id)
        for code, weight, summary in ev.signals:
            slot = self.reasons.setdefault(code, [0.0, 0, summary])
            slot[0] += weight
            slot[1] += 1
            slot[2] = summary

    def total_weight(self) -> float:
        return float(sum(slot[0] for slot in self.reasons.values()))

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "revision": self.revision,
            "first_event_at": self.first_event_at,
            "last_event_at": self.last_event_at,
            "branch_id": self.branch_id,
            "event_ids": self.event_ids,
            "event_count": self.event_count,
            "customers": self.customers,
            "reasons": self.reasons,
            "peak_risk": self.peak_risk,
            "emitted_count": self.emitted_count,
            "emitted_at": self.emitted_at,
            "emitted_codes": self.emitted_codes,
            "emitted_severity": self.emitted_severity,
            "unemitted_weight": self.unemitted_weight,
            "model": self.model,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Incident:
        return cls(**raw)


@dataclass(slots=True)
class StaffRisk:
    risk: float = 0.0  # fast accumulator
    slow: float = 0.0  # slow accumulator
    risk_at: float = 0.0
    incident: Incident | None = None
    pending: list[Evidence] = field(default_factory=list)
    closed_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "closed_ids": self.closed_ids,
            "risk": self.risk,
            "slow": self.slow,
            "risk_at": self.risk_at,
            "incident": self.incident.to_json() if self.incident else None,
            "pending": [p.to_json() for p in self.pending],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StaffRisk:
        inc = raw.get("incident")
        return cls(
            risk=raw["risk"],
            slow=raw.get("slow", 0.0),
            risk_at=raw["risk_at"],
            incident=Incident.from_json(inc) if inc else None,
            pending=[Evidence.from_json(p) for p in raw.get("pending", [])],
            closed_ids=raw.get("closed_ids", []),
        )


class IncidentTracker:
    def __init__(
        self, config: RiskConfig, pseudonymizer: Pseudonymizer, namespace: str = ""
    ) -> None:
        self.config = config
        self.pseudo = pseudonymizer
        self.namespace = namespace

    def _decay_to(self, st: StaffRisk, at: float) -> None:
        if at > st.risk_at:
            dt = at - st.risk_at
            if st.risk:
                st.risk *= 0.5 ** (dt / self.config.fast_half_life_s)
            if st.slow:
                st.slow *= 0.5 ** (dt / self.config.slow_half_life_s)
            st.risk_at = at

    def current_risk(self, st: StaffRisk) -> float:
        return self.config.risk(st.risk, st.slow)

    @staticmethod
    def _seen(st: StaffRisk, event_id: str) -> bool:
        if st.incident is not None and event_id in st.incident.event_ids:
            return True
        return event_id in st.closed_ids or any(p.event_id == event_id for p in st.pending)

    def observe(
        self,
        st: StaffRisk,
        e: Enriched,
        signals: list[Signal],
        now: float,
        model: dict[str, Any] | None = None,
    ) -> Alert | None:
        """Fold one access's signals into the state; return the alert to emit, if any."""
        ev = e.event
        self._decay_to(st, ev.occurred_at)
        cfg = self.config
        if st.incident is not None and self.current_risk(st) < cfg.close_below:
            st.closed_ids = st.incident.event_ids[-RECENTLY_CLOSED_IDS:]
            st.incident = None
        if not signals or self._seen(st, ev.event_id):
            return None  # no evidence, or a redelivered event (at-least-once input)
        evidence = Evidence(
            ev.event_id,
            ev.occurred_at,
            ev.customer_id,
            [(s.code, s.weight, s.summary) for s in signals],
        )
        added = sum(s.weight for s in signals)
        st.risk += added
        st.slow += added
        risk = self.current_risk(st)
        inc = st.incident
        if inc is None:
            horizon = ev.occurred_at - 2 * cfg.slow_half_life_s
            st.pending = [p for p in st.pending if p.at >= horizon][-(MAX_PENDING - 1) :]
            st.pending.append(evidence)
            if risk < cfg.open_at:
                return None
            first = st.pending[0]
            inc = Incident(
                alert_id=alert_id_for(ev.staff_id, first.event_id, self.namespace),
                revision=0,
                first_event_at=first.at,
                last_event_at=first.at,
                branch_id=e.staff_branch_id or ev.branch_id,
            )
            for p in st.pending:
                inc.add(p)
            st.pending = []
            st.incident = inc
        else:
            inc.add(evidence)
        inc.unemitted_weight += added
        if model is not None:
            inc.model = model
        inc.peak_risk = max(inc.peak_risk, risk)
        if not self._should_emit(inc, ev.occurred_at):
            return None
        inc.revision += 1
        inc.emitted_count = inc.event_count
        inc.emitted_at = ev.occurred_at
        inc.emitted_codes = sorted(inc.reasons)
        inc.emitted_severity = cfg.severity(inc.peak_risk)
        inc.unemitted_weight = 0.0
        return self.alert(ev.staff_id, inc, e.role, now)

    def _should_emit(self, inc: Incident, at: float) -> bool:
        """Re-emit on news an analyst cares about, not on every event."""
        cfg = self.config
        return (
            inc.revision == 0
            or sorted(inc.reasons) != inc.emitted_codes
            or cfg.severity(inc.peak_risk) != inc.emitted_severity
            or inc.event_count >= inc.emitted_count * cfg.reemit_growth
            or inc.unemitted_weight
            >= max(cfg.reemit_weight, (cfg.reemit_growth - 1) * inc.total_weight())
            or at - inc.emitted_at >= cfg.reemit_after_s
        )

    def alert(self, staff_id: str, inc: Incident, role: str | None, now: float) -> Alert:
        reasons = sorted(
            (Reason(code, slot[2], slot[0]) for code, slot in inc.reasons.items()),
            key=lambda r: -r.weight,
        )
        parts = ", ".join(f"{code} x{slot[1]}" for code, slot in inc.reasons.items())
        minutes = (inc.last_event_at - inc.first_event_at) / 60.0
        summary = (
            f"{staff_id} ({role or 'unknown role'}, {inc.branch_id}): {inc.event_count} suspicious "
            f"accesses to {len(inc.customers)} customers over {minutes:.0f} min ({parts})"
        )
        return Alert(
            alert_id=inc.alert_id,
            revision=inc.revision,
            created_at=format_ts(now),
            first_event_at=format_ts(inc.first_event_at),
            last_event_at=format_ts(inc.last_event_at),
            staff_id=staff_id,
            branch_id=inc.branch_id,
            severity=self.config.severity(inc.peak_risk),
            risk_score=min(100.0, inc.peak_risk),
            reasons=reasons,
            event_ids=list(inc.event_ids),
            event_count=inc.event_count,
            customer_refs=[self.pseudo.ref(c) for c in inc.customers],
            model=inc.model,
            summary=summary,
        )
