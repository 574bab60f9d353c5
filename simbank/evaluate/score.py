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
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from pipeline.timeutil import parse_ts
from simbank.simulate.labels import BENIGN_KINDS, MALICIOUS_KINDS

TTD_TARGET_SECONDS: Final = 300.0
LOW_AND_SLOW: Final = "low_and_slow"


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_kind"] = {
            kind: {**asdict(res), "recall": res.recall} for kind, res in self.per_kind.items()
        }
        return out


@dataclass
class _AlertView:
    """What scoring needs of one alert: its top revision and every revision."""

    top: Mapping[str, Any]
    named: set[str] = field(default_factory=set)


def _revision(alert: Mapping[str, Any]) -> int:
    return int(alert.get("revision", 1))


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _kind_order(kinds: Iterable[str], canonical: Sequence[str]) -> list[str]:
    present = set(kinds)
    return [k for k in canonical if k in present] + sorted(present - set(canonical))


def score(
    name: str,
    incidents: Sequence[IncidentLike],
    alerts: Iterable[Mapping[str, Any]],
    active_staff_days: int,
) -> Scorecard:
    """Score every revision of every alert against the labelled incidents."""
    if active_staff_days <= 0:
        raise ValueError(f"active_staff_days must be positive, got {active_staff_days}")

    by_event: dict[str, list[int]] = {}
    for idx, inc in enumerate(incidents):
        for eid in inc.event_ids:
            by_event.setdefault(eid, []).append(idx)

    views: dict[str, _AlertView] = {}
    # incident index -> earliest event time at which some revision named it
    detected_at: dict[int, float] = {}
    for alert in alerts:
        alert_id = str(alert["alert_id"])
        view = views.get(alert_id)
        if view is None:
            view = views[alert_id] = _AlertView(top=alert)
        elif _revision(alert) > _revision(view.top):
            view.top = alert
        event_ids = [str(e) for e in alert.get("event_ids") or ()]
        view.named.update(event_ids)
        hit = {idx for eid in event_ids for idx in by_event.get(eid, ())}
        if not hit:
            continue
        at = parse_ts(str(alert["last_event_at"]))
        for idx in hit:
            if idx not in detected_at or at < detected_at[idx]:
                detected_at[idx] = at

    true_alerts = 0
    on_benign: dict[str, int] = {
        k: 0 for k in _kind_order((i.kind for i in incidents if i.benign), BENIGN_KINDS)
    }
    by_reason: dict[str, int] = {}
    for view in views.values():
        touched = [incidents[idx] for eid in view.named for idx in by_event.get(eid, ())]
        if any(not inc.benign for inc in touched):
            true_alerts += 1
        else:
            for kind in {inc.kind for inc in touched}:
                on_benign[kind] = on_benign.get(kind, 0) + 1
        codes = {str(r["code"]) for r in view.top.get("reasons") or () if "code" in r}
        for code in codes:
            by_reason[code] = by_reason.get(code, 0) + 1

    malicious = [(idx, inc) for idx, inc in enumerate(incidents) if not inc.benign]
    ttd: dict[int, float] = {
        idx: max(0.0, detected_at[idx] - inc.start) for idx, inc in malicious if idx in detected_at
    }
    per_kind: dict[str, KindResult] = {}
    for kind in _kind_order((inc.kind for _, inc in malicious), MALICIOUS_KINDS):
        members = [idx for idx, inc in malicious if inc.kind == kind]
        times = [ttd[idx] for idx in members if idx in ttd]
        per_kind[kind] = KindResult(kind, len(members), len(times), _median(times))

    session = [idx for idx, inc in malicious if inc.within_session]
    session_ttd = [ttd[idx] for idx in session if idx in ttd]
    slow_ttd = [ttd[idx] for idx, inc in malicious if inc.kind == LOW_AND_SLOW and idx in ttd]
    n_alerts = len(views)
    false_alerts = n_alerts - true_alerts
    return Scorecard(
        name=name,
        per_kind=per_kind,
        incident_recall=len(ttd) / len(malicious) if malicious else 0.0,
        alerts=n_alerts,
        true_alerts=true_alerts,
        alert_precision=true_alerts / n_alerts if n_alerts else 1.0,
        false_alerts=false_alerts,
        false_alerts_per_100_staff_days=false_alerts * 100.0 / active_staff_days,
        false_alerts_on_benign=on_benign,
        alerts_by_reason=dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        median_ttd_within_session_seconds=_median(session_ttd),
        median_ttd_low_and_slow_seconds=_median(slow_ttd),
        malicious_incidents=len(malicious),
        detected_incidents=len(ttd),
        within_session_incidents=len(session),
        within_session_on_target=sum(1 for t in session_ttd if t <= TTD_TARGET_SECONDS),
        active_staff_days=active_staff_days,
    )
