"""Scoring of alerts against the simulator's labelled incidents. Pure, no I/O.

Inputs are the labelled incidents (anything shaped like the simulator's
``Incident``) and *every* alert record read from the alerts topic, i.e. all
revisions of each ``alert_id``. Definitions:

- **Alert**: a distinct ``alert_id``. Alert counts and ``alerts_by_reason``
  use the highest revision of each alert (what a consumer keeps); an alert
  with several reason codes counts once under each code.
- **Events named by an alert**: the union of ``event_ids`` over all of its
  revisions (a revision carries at most 500 ids, so the union is the best
  record of what the alert covered).
- **True alert**: an alert naming at least one event of a malicious incident.
  Every other alert is a **false alert**. ``false_alerts_on_benign`` counts
  false alerts naming at least one event of a benign look-alike incident, by
  benign kind (an alert touching two benign kinds counts under both).
- **Alert precision** = true alerts / alerts. With no alerts at all there is
  nothing wrong to count, so precision is defined as 1.0; read it together
  with recall (the report shows "n/a" in that case).
- **False alerts per 100 staff-days** = false alerts x 100 / active
  staff-days (staff-days on which the staff member made at least one access).
- **Detected incident**: a malicious incident is detected when any revision
  of any alert names one of its event ids. **Incident recall** = detected
  malicious incidents / malicious incidents; per kind "detected/injected".
- **Time to detect (TTD)**: event time of detection minus the incident's
  ``start``, floored at 0. The detection time is the smallest
  ``last_event_at`` among the revisions naming one of the incident's events:
  an alert revision cannot be emitted before the last event it covers has
  happened, so this is when, in event time, the analyst could first know.
  Medians are taken over detected incidents only (``None`` when none).
  ``median_ttd_within_session_seconds`` covers incidents happening within one
  session (target: at most :data:`TTD_TARGET_SECONDS`);
  ``within_session_on_target`` counts those detected within the target.

Recall is 0.0 when there are no malicious incidents. ``extra`` is free-form
(the caller may attach, e.g., cost per event); it is copied into the JSON.

Benign incidents never count towards recall; their events only matter for
``false_alerts_on_benign``.

**Severity.** An alert's severity is the highest severity of any of its
revisions (an alert that ever paged as ``high`` counts as ``high``).
``by_severity`` gives, per band, alerts, true alerts, false alerts and the
band's precision (None for an empty band); ``false_alerts_above_medium``
counts false alerts of band ``high`` or ``critical``.

**Learning period** (a :class:`Period` with ``learn_days`` D > 0; the
worker's ``PIPELINE_LEARN_UNTIL`` = ``learn_until``, the local midnight that
starts day D of the simulation in the bank's timezone). Everything above is
then computed over the period after learning only:

- incidents: malicious incidents whose ``start`` >= ``learn_until``; an
  incident is detected by any revision of any alert naming one of its events
  (also an alert that opened during learning);
- alerts: alerts whose first event (smallest ``first_event_at`` over the
  revisions) is at or after ``learn_until``;
- staff-days: active staff-days whose local date (the employee's timezone)
  is on or after day D.

What happened during learning is reported separately in ``learning``:
alerts that opened before ``learn_until`` (true, false, by severity), and
the malicious incidents that started before it, split into policy
violations (:data:`~simbank.simulate.labels.POLICY_KINDS`: expected to be
alerted from the first event) and behaviour-only kinds (not expected).
With D = 0 (cold start) there is no learning period and ``learning`` is
empty.

**Weeks.** With a :class:`Period` and staff-days per date, ``weekly`` has one
row per simulated week (days 7k..7k+6 from the start, bank-local): alerts and
false alerts by the bank-local date of their first event, active staff-days
by their local date, false alerts per 100 staff-days, and how many of the
week's days were in the learning period. Every alert counts here, also those
of the learning period.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Protocol

from simbank.simulate.labels import BENIGN_KINDS, MALICIOUS_KINDS, POLICY_KINDS
from simbank.timestamps import DEFAULT_TIMEZONE, local_day, local_midnight, local_time, parse_ts

TTD_TARGET_SECONDS: Final = 300.0
LOW_AND_SLOW: Final = "low_and_slow"
SEVERITIES: Final = ("low", "medium", "high", "critical")
_RANK: Final = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Period:
    """The simulated days, and how many of them are a learning period.

    >>> p = Period(date(2026, 3, 2), 21, learn_days=7)
    >>> p.learn_day, p.learn_until_rfc3339
    (datetime.date(2026, 3, 9), '2026-03-09T00:00:00+08:00')
    """

    start_day: date  # first simulated bank-local day
    days: int
    learn_days: int = 0  # 0: cold start
    timezone: str = DEFAULT_TIMEZONE  # the bank's (settings.bank_timezone)

    def __post_init__(self) -> None:
        if not 0 <= self.learn_days < self.days:
            raise ValueError(f"learn_days must be 0..{self.days - 1}, got {self.learn_days}")

    @property
    def learn_day(self) -> date:
        """The first scored day."""
        return self.start_day + timedelta(days=self.learn_days)

    @property
    def learn_until(self) -> float:
        """Epoch seconds of local midnight starting :attr:`learn_day`."""
        return local_midnight(self.learn_day, self.timezone)

    @property
    def learn_until_rfc3339(self) -> str:
        return local_time(self.learn_until, self.timezone).isoformat()

    def week_of(self, day: date) -> int:
        return (day - self.start_day).days // 7

    @property
    def weeks(self) -> int:
        return (self.days + 6) // 7


class IncidentLike(Protocol):
    """The fields of the simulator's ``Incident`` label that scoring reads."""

    @property
    def incident_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def benign(self) -> bool: ...
    @property
    def event_ids(self) -> tuple[str, ...]: ...
    @property
    def start(self) -> float: ...
    @property
    def within_session(self) -> bool: ...


@dataclass
class KindResult:
    kind: str
    injected: int
    detected: int
    median_ttd_seconds: float | None

    @property
    def recall(self) -> float | None:
        return self.detected / self.injected if self.injected else None


@dataclass
class SeverityBand:
    alerts: int = 0
    true_alerts: int = 0
    false_alerts: int = 0

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None


@dataclass
class WeekRow:
    week: int
    first_day: str
    learning_days: int
    alerts: int
    false_alerts: int
    staff_days: int

    @property
    def false_per_100_staff_days(self) -> float | None:
        return self.false_alerts * 100.0 / self.staff_days if self.staff_days else None


@dataclass
class Scorecard:
    name: str
    per_kind: dict[str, KindResult]
    incident_recall: float
    alerts: int
    true_alerts: int
    alert_precision: float
    false_alerts: int
    false_alerts_per_100_staff_days: float
    false_alerts_on_benign: dict[str, int]
    alerts_by_reason: dict[str, int]
    median_ttd_within_session_seconds: float | None
    median_ttd_low_and_slow_seconds: float | None
    malicious_incidents: int = 0
    detected_incidents: int = 0
    within_session_incidents: int = 0
    within_session_on_target: int = 0
    active_staff_days: int = 0
    by_severity: dict[str, SeverityBand] = field(default_factory=dict)
    false_alerts_above_medium: int = 0
    weekly: list[WeekRow] = field(default_factory=list)
    learn_days: int = 0
    learn_until: str | None = None
    learning: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds_found(self) -> int:
        """Kinds with at least one detected incident (of those scored)."""
        return sum(1 for r in self.per_kind.values() if r.injected and r.detected)

    @property
    def kinds_scored(self) -> int:
        """Kinds with at least one scored incident."""
        return sum(1 for r in self.per_kind.values() if r.injected)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_kind"] = {
            kind: {**asdict(res), "recall": res.recall} for kind, res in self.per_kind.items()
        }
        out["by_severity"] = {
            band: {**asdict(b), "precision": b.precision} for band, b in self.by_severity.items()
        }
        out["weekly"] = [
            {**asdict(w), "false_per_100_staff_days": w.false_per_100_staff_days}
            for w in self.weekly
        ]
        out["kinds_found"] = self.kinds_found
        out["kinds_scored"] = self.kinds_scored
        return out


@dataclass
class _AlertView:
    """What scoring needs of one alert: its top revision and every revision."""

    alert_id: str
    top: Mapping[str, Any]
    first_at: float
    severity: str
    named: set[str] = field(default_factory=set)


def _revision(alert: Mapping[str, Any]) -> int:
    return int(alert.get("revision", 1))


def _severity(alert: Mapping[str, Any]) -> str:
    sev = str(alert.get("severity", "low"))
    if sev not in _RANK:
        raise ValueError(f"alert {alert.get('alert_id')!r} has an unknown severity {sev!r}")
    return sev


def _bands(views: Iterable[_AlertView], true_ids: set[str]) -> dict[str, SeverityBand]:
    bands = {s: SeverityBand() for s in SEVERITIES}
    for v in views:
        b = bands[v.severity]
        b.alerts += 1
        if v.alert_id in true_ids:
            b.true_alerts += 1
        else:
            b.false_alerts += 1
    return bands


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _kind_order(kinds: Iterable[str], canonical: Sequence[str]) -> list[str]:
    present = set(kinds)
    return [k for k in canonical if k in present] + sorted(present - set(canonical))


def score(
    name: str,
    incidents: Sequence[IncidentLike],
    alerts: Iterable[Mapping[str, Any]],
    active_staff_days: int | Mapping[date, int],
    period: Period | None = None,
) -> Scorecard:
    """Score every revision of every alert against the labelled incidents.

    ``active_staff_days`` is a total, or a count per local date (needed with a
    ``period``: the learning window and the weekly rows use the dates).
    """
    if isinstance(active_staff_days, int):
        if period is not None:
            raise ValueError("a period needs active staff-days per date")
        by_date: dict[date, int] = {}
        total_days = active_staff_days
    else:
        by_date = dict(active_staff_days)
        total_days = sum(by_date.values())
    learning = period is not None and period.learn_days > 0
    cut = period.learn_until if period is not None and learning else float("-inf")
    scored_days = (
        sum(n for d, n in by_date.items() if d >= period.learn_day)
        if period is not None and learning
        else total_days
    )
    if scored_days <= 0:
        raise ValueError(f"active_staff_days must be positive, got {scored_days}")

    by_event: dict[str, list[int]] = {}
    for idx, inc in enumerate(incidents):
        for eid in inc.event_ids:
            by_event.setdefault(eid, []).append(idx)

    views: dict[str, _AlertView] = {}
    # incident index -> earliest event time at which some revision named it
    detected_at: dict[int, float] = {}
    for alert in alerts:
        alert_id = str(alert["alert_id"])
        first_at = parse_ts(str(alert.get("first_event_at") or alert["last_event_at"]))
        sev = _severity(alert)
        view = views.get(alert_id)
        if view is None:
            view = views[alert_id] = _AlertView(alert_id, alert, first_at, sev)
        else:
            if _revision(alert) > _revision(view.top):
                view.top = alert
            view.first_at = min(view.first_at, first_at)
            if _RANK[sev] > _RANK[view.severity]:
                view.severity = sev
        event_ids = [str(e) for e in alert.get("event_ids") or ()]
        view.named.update(event_ids)
        hit = {idx for eid in event_ids for idx in by_event.get(eid, ())}
        if not hit:
            continue
        at = parse_ts(str(alert["last_event_at"]))
        for idx in hit:
            if idx not in detected_at or at < detected_at[idx]:
                detected_at[idx] = at

    true_ids: set[str] = set()
    benign_kinds: dict[str, set[str]] = {}
    for view in views.values():
        touched = [incidents[idx] for eid in view.named for idx in by_event.get(eid, ())]
        if any(not inc.benign for inc in touched):
            true_ids.add(view.alert_id)
        else:
            benign_kinds[view.alert_id] = {inc.kind for inc in touched}

    scored = [v for v in views.values() if v.first_at >= cut]
    early = [v for v in views.values() if v.first_at < cut]
    on_benign: dict[str, int] = {
        k: 0 for k in _kind_order((i.kind for i in incidents if i.benign), BENIGN_KINDS)
    }
    by_reason: dict[str, int] = {}
    for view in scored:
        for kind in benign_kinds.get(view.alert_id, ()):
            on_benign[kind] = on_benign.get(kind, 0) + 1
        codes = {str(r["code"]) for r in view.top.get("reasons") or () if "code" in r}
        for code in codes:
            by_reason[code] = by_reason.get(code, 0) + 1

    all_malicious = [(idx, inc) for idx, inc in enumerate(incidents) if not inc.benign]
    malicious = [(idx, inc) for idx, inc in all_malicious if inc.start >= cut]
    ttd: dict[int, float] = {
        idx: max(0.0, detected_at[idx] - inc.start) for idx, inc in malicious if idx in detected_at
    }
    per_kind: dict[str, KindResult] = {}
    for kind in _kind_order((inc.kind for _, inc in all_malicious), MALICIOUS_KINDS):
        members = [idx for idx, inc in malicious if inc.kind == kind]
        times = [ttd[idx] for idx in members if idx in ttd]
        per_kind[kind] = KindResult(kind, len(members), len(times), _median(times))

    session = [idx for idx, inc in malicious if inc.within_session]
    session_ttd = [ttd[idx] for idx in session if idx in ttd]
    slow_ttd = [ttd[idx] for idx, inc in malicious if inc.kind == LOW_AND_SLOW and idx in ttd]
    n_alerts = len(scored)
    true_alerts = sum(1 for v in scored if v.alert_id in true_ids)
    false_alerts = n_alerts - true_alerts
    bands = _bands(scored, true_ids)
    card = Scorecard(
        name=name,
        per_kind=per_kind,
        incident_recall=len(ttd) / len(malicious) if malicious else 0.0,
        alerts=n_alerts,
        true_alerts=true_alerts,
        alert_precision=true_alerts / n_alerts if n_alerts else 1.0,
        false_alerts=false_alerts,
        false_alerts_per_100_staff_days=false_alerts * 100.0 / scored_days,
        false_alerts_on_benign=on_benign,
        alerts_by_reason=dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        median_ttd_within_session_seconds=_median(session_ttd),
        median_ttd_low_and_slow_seconds=_median(slow_ttd),
        malicious_incidents=len(malicious),
        detected_incidents=len(ttd),
        within_session_incidents=len(session),
        within_session_on_target=sum(1 for t in session_ttd if t <= TTD_TARGET_SECONDS),
        active_staff_days=scored_days,
        by_severity=bands,
        false_alerts_above_medium=bands["high"].false_alerts + bands["critical"].false_alerts,
    )
    if period is not None:
        card.learn_days = period.learn_days
        card.learn_until = period.learn_until_rfc3339 if learning else None
        card.weekly = _weekly(period, views.values(), true_ids, by_date)
        if learning:
            before = [(idx, inc) for idx, inc in all_malicious if inc.start < cut]
            card.learning = _learning(early, true_ids, before, detected_at)
    return card


def _weekly(
    period: Period,
    views: Iterable[_AlertView],
    true_ids: set[str],
    by_date: Mapping[date, int],
) -> list[WeekRow]:
    rows = [
        WeekRow(
            week=w,
            first_day=(period.start_day + timedelta(days=7 * w)).isoformat(),
            learning_days=max(0, min(7, period.learn_days - 7 * w)),
            alerts=0,
            false_alerts=0,
            staff_days=0,
        )
        for w in range(period.weeks)
    ]
    for d, n in by_date.items():
        w = period.week_of(d)
        if 0 <= w < len(rows):
            rows[w].staff_days += n
    for v in views:
        w = period.week_of(local_day(v.first_at, period.timezone))
        if 0 <= w < len(rows):
            rows[w].alerts += 1
            if v.alert_id not in true_ids:
                rows[w].false_alerts += 1
    return rows


def _learning(
    early: list[_AlertView],
    true_ids: set[str],
    incidents: list[tuple[int, IncidentLike]],
    detected_at: Mapping[int, float],
) -> dict[str, Any]:
    """What happened during the learning period (reported beside the scored figures)."""

    policy = [idx for idx, i in incidents if i.kind in POLICY_KINDS]
    behaviour = [idx for idx, i in incidents if i.kind not in POLICY_KINDS]
    policy_found = sum(1 for idx in policy if idx in detected_at)
    bands = _bands(early, true_ids)
    n_true = sum(1 for v in early if v.alert_id in true_ids)
    return {
        "alerts": len(early),
        "true_alerts": n_true,
        "false_alerts": len(early) - n_true,
        "false_alerts_above_medium": bands["high"].false_alerts + bands["critical"].false_alerts,
        "by_severity": {b: asdict(v) for b, v in bands.items()},
        "policy_incidents": len(policy),
        "policy_detected": policy_found,
        "policy_recall": policy_found / len(policy) if policy else None,
        "behaviour_incidents": len(behaviour),
        "behaviour_detected": sum(1 for idx in behaviour if idx in detected_at),
    }
