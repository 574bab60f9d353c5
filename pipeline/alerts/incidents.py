"""Risk per employee and the incident it opens: one alert per incident, revised as it grows.

Pure and synchronous. :class:`Risk` is part of the per-employee state
(msgpack via ``pipeline.core.state``); every list in it is bounded.

**Risk.** Two accumulators of the weighted evidence (``pipeline.detect``):
``fast`` decays with a half-life of ``fast_half_life_s`` (what happens within
a session); ``slow`` is the employee's weekly evidence, computed by the behaviour
(how improbable each soft code's count over the last seven active days is):
what is spread over days (low-and-slow misuse), or today's most improbable soft
code when that is stronger (what is spread over one day). Risk, on a 0-100+ scale, is
``50 x max(fast / fast_open, slow / slow_open)``: an incident opens at 50.

**Incidents.** Crossing ``open_at`` opens an incident that takes along the
recent evidence (at most ``MAX_PENDING`` accesses); later evidence joins it,
and news an analyst cares about (a new reason, a higher severity, 25 % and at
least 5 more events, enough new weight, or an hour of event time with new
evidence)
re-emits the alert with the same ``alert_id`` and ``revision + 1``. Once risk
has decayed below ``close_below``, or nothing new came for ``quiet_close_s``
(two days) of event time, the incident closes, its evidence is spent (the
accumulators restart from zero), and a last revision with ``status: closed``
is emitted (contract v1.1).

**Severity** says what kind of evidence there is, not only how much
(:func:`severity`): soft evidence alone is at most ``medium``; volume against
the usual peak reaches ``high`` only when extreme; ``high`` and ``critical``
otherwise need a policy violation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from msgspec import Struct, field

from pipeline.alerts.ids import Pseudonymizer, alert_id_for
from pipeline.contract.records import MAX_EVENT_IDS, Alert, ModelInfo, Reason, Role, Severity
from pipeline.detect.catalogue import CATALOGUE
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched

KEEP_FIRST_EVENT_IDS: Final = 50  # past MAX_EVENT_IDS: the opening evidence and the newest
MAX_CUSTOMERS: Final = 200
MAX_PENDING: Final = 20
MAX_FRESH: Final = 100  # evidence accesses held for the evidence store between revisions
MAX_EVIDENCE: Final = MAX_EVENT_IDS  # evidence accesses stored per incident in all
RECENTLY_CLOSED_IDS: Final = 100
HIGH_POLICY: Final = 60.0  # policy points that make an alert "high" (one full violation)
EXTREME_VOLUME: Final = 100.0  # risk points of volume evidence that make it "high" on its own


@dataclass(frozen=True, slots=True)
class RiskConfig:
    fast_half_life_s: float = 2 * 3600.0
    fast_open: float = 50.0
    slow_open: float = 25.0
    pending_horizon_s: float = 8 * 86400.0  # evidence kept for an incident to open with
    open_at: float = 50.0
    close_below: float = 10.0
    quiet_close_s: float = 2 * 86400.0  # an incident without new evidence this long has ended
    reemit_growth: float = 1.25  # re-emit on 25 % more events ...
    reemit_min_events: int = 5  # ... and at least this many more
    reemit_weight: float = 25.0  # ... or this much new weight (and 25 % of the total)
    reemit_after_s: float = 3600.0

    def risk(self, fast: float, slow: float) -> float:
        return 50.0 * max(fast / self.fast_open, slow / self.slow_open)


class SignalRec(Struct, array_like=True, gc=False):
    code: str
    weight: float
    summary: str


class Evidence(Struct, gc=False):
    """One access that contributed evidence (raw customer id: internal state only)."""

    event_id: str
    at: float
    customer_id: str | None
    action: str
    channel: str
    branch_id: str
    record_count: int
    outcome: str
    signals: list[SignalRec]


class ReasonAcc(Struct, array_like=True, gc=False):
    weight: float
    count: int
    summary: str


class Incident(Struct, gc=False):
    alert_id: str
    revision: int
    first_at: float
    last_at: float
    branch_id: str
    role: Role | None = None
    event_ids: list[str] = field(default_factory=list)
    event_count: int = 0
    customers: list[str] = field(default_factory=list)
    reasons: dict[str, ReasonAcc] = field(default_factory=dict)
    peak_risk: float = 0.0
    emitted_count: int = 0
    emitted_at: float = 0.0
    emitted_codes: list[str] = field(default_factory=list)
    emitted_severity: str = ""
    unemitted_weight: float = 0.0
    model: ModelInfo | None = None
    fresh: list[Evidence] = field(default_factory=list)
    evidence_sent: int = 0
    verdict: str | None = None  # the analyst's latest, carried to the SIEM's later revisions

    def add(self, ev: Evidence) -> None:
        if ev.at < self.first_at:
            self.first_at = ev.at
        if ev.at > self.last_at:
            self.last_at = ev.at
        self.event_count += 1
        self.event_ids.append(ev.event_id)
        if len(self.event_ids) > MAX_EVENT_IDS:
            del self.event_ids[KEEP_FIRST_EVENT_IDS]
        c = ev.customer_id
        if c is not None and len(self.customers) < MAX_CUSTOMERS and c not in self.customers:
            self.customers.append(c)
        for s in ev.signals:
            slot = self.reasons.get(s.code)
            if slot is None:
                self.reasons[s.code] = ReasonAcc(s.weight, 1, s.summary)
            else:
                slot.weight += s.weight
                slot.count += 1
                slot.summary = s.summary
        if self.evidence_sent + len(self.fresh) < MAX_EVIDENCE and len(self.fresh) < MAX_FRESH:
            self.fresh.append(ev)

    def total_weight(self) -> float:
        return sum(slot.weight for slot in self.reasons.values())


class Risk(Struct, gc=False):
    fast: float = 0.0
    slow: float = 0.0  # the weekly evidence at the last access
    day: int = -1
    at: float = 0.0
    incident: Incident | None = None
    pending: list[Evidence] = field(default_factory=list)
    closed_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Emitted:
    """An alert revision and the evidence accesses new in it (for the evidence store)."""

    alert: Alert
    evidence: list[Evidence]
    verdict: str | None = None  # an analyst's verdict already given on this alert


def severity(inc: Incident, cfg: RiskConfig) -> Severity:
    """What the evidence is, as much as how much of it (module docstring)."""
    risk = inc.peak_risk
    policy = volume = 0.0
    for code, slot in inc.reasons.items():
        family = CATALOGUE[code].family if code in CATALOGUE else "soft"
        if family == "policy":
            policy += slot.weight
        elif family == "volume":
            volume += slot.weight
    if policy >= HIGH_POLICY:
        return "critical" if risk >= 100.0 and (volume > 0.0 or policy >= 120.0) else "high"
    if policy > 0.0:
        return "medium"
    if volume >= EXTREME_VOLUME and risk >= 80.0:
        return "high"
    return "medium" if risk >= 65.0 else "low"


_BAND_TOP: Final[dict[str, float]] = {"low": 64.9, "medium": 79.9, "high": 99.9, "critical": 100.0}


class IncidentTracker:
    def __init__(
        self, config: RiskConfig, pseudonymizer: Pseudonymizer, namespace: str = ""
    ) -> None:
        self.config = config
        self.pseudo = pseudonymizer
        self.namespace = namespace

    # -- accumulators -------------------------------------------------------
    def advance(self, st: Risk, at: float, day: int) -> None:
        """Decay to event time ``at`` (bank day ``day``); late events change nothing."""
        if at > st.at:
            if st.fast:
                st.fast *= 0.5 ** ((at - st.at) / self.config.fast_half_life_s)
            st.at = at
        if day > st.day:
            if st.day >= 0 and day > st.day + 7:
                st.slow = 0.0  # nothing of the last week is left
            st.day = day

    def current(self, st: Risk) -> float:
        return self.config.risk(st.fast, st.slow)

    @staticmethod
    def _seen(st: Risk, event_id: str) -> bool:
        if st.incident is not None and event_id in st.incident.event_ids:
            return True
        return event_id in st.closed_ids or any(p.event_id == event_id for p in st.pending)

    # -- one access -------------------------------------------------------------
    def settle(self, st: Risk, at: float, day: int, slow: float | None) -> None:
        """What any access does to the accumulators: decay to its time, and the weekly
        evidence now (None: unchanged). For an access with no signal by an employee with
        no open incident it is all :meth:`observe` would do."""
        self.advance(st, at, day)
        if slow is not None:
            st.slow = slow

    def observe(
        self,
        st: Risk,
        staff_id: str,
        e: Enriched,
        signals: list[Signal],
        day: int,
        now: float,
        model: ModelInfo | None = None,
        slow: float | None = None,
    ) -> list[Emitted]:
        """Fold one access's weighted signals in; return the revisions to emit (a closing
        revision of an ended incident, and/or a revision of the open one). ``slow`` is the
        employee's weekly evidence now (None: unchanged)."""
        out: list[Emitted] = []
        self.settle(st, e.at, day, slow)
        closing = self.close_if_ended(st, staff_id, now)
        if closing is not None:
            out.append(closing)
        if not signals or self._seen(st, e.event.event_id):
            return out
        ev = e.event
        evidence = Evidence(
            ev.event_id,
            e.at,
            ev.customer_id,
            ev.action,
            ev.channel,
            ev.branch_id,
            ev.record_count,
            ev.outcome,
            [SignalRec(s.code, s.weight + s.slow, s.summary) for s in signals],
        )
        added = 0.0
        for s in signals:
            added += s.weight + s.slow
            st.fast += s.weight
        cfg = self.config
        risk = self.current(st)
        inc = st.incident
        if inc is None:
            horizon = e.at - cfg.pending_horizon_s
            pending = [p for p in st.pending if p.at >= horizon][-(MAX_PENDING - 1) :]
            pending.append(evidence)
            st.pending = pending
            if risk < cfg.open_at:
                return out
            first = pending[0]
            inc = Incident(
                alert_id=alert_id_for(staff_id, first.event_id, self.namespace),
                revision=0,
                first_at=first.at,
                last_at=first.at,
                branch_id=e.staff_branch_id or ev.branch_id,
                role=e.role,  # type: ignore[arg-type]
            )
            for p in pending:
                inc.add(p)
            st.pending = []
            st.incident = inc
        else:
            inc.add(evidence)
        inc.unemitted_weight += added
        if model is not None:
            inc.model = model
        if risk > inc.peak_risk:
            inc.peak_risk = risk
        if not self._should_emit(inc, e.at):
            return out
        out.append(self._emit(staff_id, inc, now, "open"))
        return out

    def close_if_ended(self, st: Risk, staff_id: str, now: float) -> Emitted | None:
        """Close the open incident once risk has decayed below ``close_below``, or once it
        had no new evidence for ``quiet_close_s`` of event time. The evidence it used is
        spent: the accumulators start again from zero."""
        inc = st.incident
        if inc is None:
            return None
        quiet = st.at - inc.last_at >= self.config.quiet_close_s
        if not quiet and self.current(st) >= self.config.close_below:
            return None
        st.closed_ids = inc.event_ids[-RECENTLY_CLOSED_IDS:]
        st.incident = None
        st.fast = st.slow = 0.0
        return self._emit(staff_id, inc, now, "closed")

    def _should_emit(self, inc: Incident, at: float) -> bool:
        cfg = self.config
        return (
            inc.revision == 0
            or sorted(inc.reasons) != inc.emitted_codes
            or severity(inc, cfg) != inc.emitted_severity
            or inc.event_count
            >= inc.emitted_count
            + max(cfg.reemit_min_events, (cfg.reemit_growth - 1) * inc.emitted_count)
            or inc.unemitted_weight
            >= max(cfg.reemit_weight, (cfg.reemit_growth - 1) * inc.total_weight())
            or at - inc.emitted_at >= cfg.reemit_after_s
        )

    def _emit(self, staff_id: str, inc: Incident, now: float, status: str) -> Emitted:
        inc.revision += 1
        inc.emitted_count = inc.event_count
        inc.emitted_at = inc.last_at
        inc.emitted_codes = sorted(inc.reasons)
        inc.emitted_severity = severity(inc, self.config)
        inc.unemitted_weight = 0.0
        fresh = inc.fresh
        inc.fresh = []
        inc.evidence_sent += len(fresh)
        return Emitted(self.alert(staff_id, inc, now, status), fresh, inc.verdict)

    def alert(self, staff_id: str, inc: Incident, now: float, status: str = "open") -> Alert:
        reasons = sorted(
            (
                Reason(code, slot.summary, round(slot.weight, 4))
                for code, slot in inc.reasons.items()
            ),
            key=lambda r: (-r.weight, r.code),
        )
        parts = ", ".join(f"{code} x{slot.count}" for code, slot in sorted(inc.reasons.items()))
        minutes = (inc.last_at - inc.first_at) / 60.0
        sev = severity(inc, self.config)
        summary = (
            f"{staff_id} ({inc.role or 'unknown role'}, {inc.branch_id}): {inc.event_count} "
            f"suspicious accesses to {len(inc.customers)} customers over {minutes:.0f} min "
            f"({parts})"
        )
        return Alert(
            alert_id=inc.alert_id,
            revision=inc.revision,
            schema_version=1,
            created_at=datetime.fromtimestamp(now, UTC),
            first_event_at=datetime.fromtimestamp(inc.first_at, UTC),
            last_event_at=datetime.fromtimestamp(inc.last_at, UTC),
            staff_id=staff_id,
            branch_id=inc.branch_id,
            severity=sev,
            risk_score=round(min(inc.peak_risk, _BAND_TOP[sev]), 2),
            reasons=reasons,
            model=inc.model,
            event_ids=list(inc.event_ids),
            event_count=inc.event_count,
            customer_refs=[self.pseudo.ref(c) for c in inc.customers],
            summary=summary,
            status=status,  # type: ignore[arg-type]
            staff_role=inc.role,
        )
