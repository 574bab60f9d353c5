"""Risk with decay in event time, incidents, revisions, dedupe, JSON state, ids."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from pipeline.alerts.ids import Pseudonymizer, alert_id_for
from pipeline.alerts.incidents import (
    MAX_EVENT_IDS,
    IncidentTracker,
    RiskConfig,
    StaffRisk,
)
from pipeline.detect.catalogue import CATALOGUE
from pipeline.detect.rules import evaluate_rules
from pipeline.records import SEVERITIES, AccessEvent, Alert, StaffRecord
from pipeline.reference.state import ReferenceState
from pipeline.timeutil import format_ts, parse_ts

T0 = parse_ts("2026-03-02T09:00:00+08:00")
MINUTE = 60.0
HOUR = 3600.0
NOW = parse_ts("2026-04-01T00:00:00Z")
UNASSIGNED = CATALOGUE["unassigned_customer_access"].weight
CREDIT = CATALOGUE["credit_report_without_authorization"].weight
CONFIG = RiskConfig()


def reference() -> ReferenceState:
    state = ReferenceState()
    state.apply_staff(StaffRecord("CM", "BR-CM", "customer_manager", "active", T0 - 90 * 86400))
    state.apply_staff(StaffRecord("TL", "BR-TL", "teller", "active", T0 - 90 * 86400))
    return state


REF = reference()


def ev(
    n: int,
    at: float,
    staff_id: str = "CM",
    action: str = "view_profile",
    customer_id: str | None = None,
) -> AccessEvent:
    return AccessEvent(
        event_id=f"{staff_id}-{n}",
        occurred_at=at,
        staff_id=staff_id,
        customer_id=customer_id if customer_id is not None else f"CUST-{n}",
        action=action,
        channel="crm_web",
        branch_id="BR-TERM",
    )


def tracker(key: str = "secret", raw: bool = False) -> IncidentTracker:
    return IncidentTracker(CONFIG, Pseudonymizer(key, raw=raw))


def feed(t: IncidentTracker, st: StaffRisk, event: AccessEvent) -> Alert | None:
    e = REF.enrich(event)
    return t.observe(st, e, evaluate_rules(e), NOW)


def feed_all(t: IncidentTracker, st: StaffRisk, events: list[AccessEvent]) -> list[Alert | None]:
    return [feed(t, st, x) for x in events]


def test_weights_assumed_by_these_tests() -> None:
    # One unassigned access stays below the threshold, two cross it; one credit query crosses.
    assert UNASSIGNED < CONFIG.open_threshold <= 2 * UNASSIGNED
    assert CREDIT >= CONFIG.open_threshold
    assert CONFIG.close_below < UNASSIGNED


def test_no_signal_no_state_change() -> None:
    t, st = tracker(), StaffRisk()
    e = REF.enrich(ev(1, T0, staff_id="TL"))
    assert t.observe(st, e, [], NOW) is None
    assert st.risk == 0.0 and st.pending == [] and st.incident is None


def test_below_threshold_no_alert_but_evidence_pending() -> None:
    t, st = tracker(), StaffRisk()
    assert feed(t, st, ev(1, T0)) is None
    assert st.incident is None
    assert [p.event_id for p in st.pending] == ["CM-1"]
    assert st.risk == pytest.approx(UNASSIGNED)


def test_crossing_opens_incident_with_pending_evidence() -> None:
    t, st = tracker(), StaffRisk()
    first, second = ev(1, T0), ev(2, T0 + 10 * MINUTE)
    assert feed(t, st, first) is None
    alert = feed(t, st, second)
    assert alert is not None
    assert alert.revision == 1
    assert alert.alert_id == alert_id_for("CM", "CM-1")
    assert alert.event_ids == ["CM-1", "CM-2"]
    assert alert.event_count == 2
    assert alert.first_event_at == format_ts(T0)
    assert alert.last_event_at == format_ts(T0 + 10 * MINUTE)
    assert alert.staff_id == "CM"
    assert alert.branch_id == "BR-CM"  # the staff record's branch, not the terminal's
    assert [r.code for r in alert.reasons] == ["unassigned_customer_access"]
    assert alert.reasons[0].weight == pytest.approx(2 * UNASSIGNED)
    assert alert.created_at == format_ts(NOW)
    assert len(alert.customer_refs) == 2
    assert st.pending == []
    expected_risk = UNASSIGNED * 0.5 ** (10 * MINUTE / CONFIG.half_life_s) + UNASSIGNED
    assert alert.risk_score == pytest.approx(expected_risk)


def test_later_signal_revises_the_same_alert() -> None:
    t, st = tracker(), StaffRisk()
    alerts = feed_all(t, st, [ev(i, T0 + i * MINUTE) for i in range(1, 6)])
    assert alerts[0] is None
    opened = [a for a in alerts if a is not None]
    assert len({a.alert_id for a in opened}) == 1
    assert [a.revision for a in opened] == [1, 2, 3, 4]
    assert [a.event_count for a in opened] == [2, 3, 4, 5]
    assert opened[-1].event_ids == [f"CM-{i}" for i in range(1, 6)]
    assert len(opened[-1].customer_refs) == 5
    # Risk only grows while events come minutes apart.
    scores = [a.risk_score for a in opened]
    assert scores == sorted(scores) and scores[0] < scores[-1]


def test_event_without_signal_does_not_revise() -> None:
    t, st = tracker(), StaffRisk()
    feed_all(t, st, [ev(1, T0), ev(2, T0 + MINUTE)])
    assert st.incident is not None
    # An access whose rules gave no signal is not evidence.
    e = REF.enrich(ev(3, T0 + 2 * MINUTE, staff_id="CM"))
    assert t.observe(st, e, [], NOW) is None
    assert st.incident.revision == 1 and st.incident.event_count == 2


def test_decay_closes_incident_and_next_one_gets_new_id() -> None:
    t, st = tracker(), StaffRisk()
    first = [a for a in feed_all(t, st, [ev(1, T0), ev(2, T0 + MINUTE)]) if a]
    assert len(first) == 1
    quiet = T0 + 3 * 86400.0  # twelve half-lives: risk ~ 50 / 4096
    assert feed(t, st, ev(3, quiet)) is None  # a single signal after the quiet is below threshold
    assert st.incident is None
    assert [p.event_id for p in st.pending] == ["CM-3"]
    second = feed(t, st, ev(4, quiet + MINUTE))
    assert second is not None
    assert second.alert_id != first[0].alert_id
    assert second.alert_id == alert_id_for("CM", "CM-3")
    assert second.revision == 1
    assert second.event_ids == ["CM-3", "CM-4"]


def test_decay_lets_sparse_signals_stay_below_threshold() -> None:
    t, st = tracker(), StaffRisk()
    # Two unassigned accesses a week apart never add up to an incident.
    assert feed_all(t, st, [ev(1, T0), ev(2, T0 + 7 * 86400.0)]) == [None, None]
    assert st.risk < CONFIG.open_threshold


def test_incident_stays_open_while_risk_above_close_threshold() -> None:
    t, st = tracker(), StaffRisk()
    opened = [a for a in feed_all(t, st, [ev(1, T0), ev(2, T0 + MINUTE)]) if a]
    later = feed(t, st, ev(3, T0 + CONFIG.half_life_s))  # risk ~ 25 before this one
    assert later is not None
    assert later.alert_id == opened[0].alert_id and later.revision == 2


def test_redelivered_event_gives_no_new_revision() -> None:
    t, st = tracker(), StaffRisk()
    events = [ev(i, T0 + i * MINUTE) for i in range(1, 4)]
    alerts = feed_all(t, st, events)
    last = alerts[-1]
    assert last is not None and last.revision == 2
    risk_before = st.risk
    for again in events:
        assert feed(t, st, again) is None
    assert st.risk == risk_before
    assert st.incident is not None
    assert st.incident.revision == 2 and st.incident.event_count == 3


def test_redelivered_pending_event_does_not_add_risk() -> None:
    t, st = tracker(), StaffRisk()
    first = ev(1, T0)
    assert feed(t, st, first) is None
    assert feed(t, st, first) is None  # would cross the threshold if counted twice
    assert st.incident is None
    assert st.risk == pytest.approx(UNASSIGNED)
    assert len(st.pending) == 1


@pytest.mark.xfail(
    strict=True,
    reason="dedupe looks only at the first 500 event_ids kept in the incident: a redelivered "
    "event beyond the cap is counted again (new revision, event_count and risk inflated)",
)
def test_redelivered_event_beyond_event_id_cap_gives_no_new_revision() -> None:
    t, st = tracker(), StaffRisk()
    events = [ev(i, T0 + i, staff_id="TL", action="credit_report_query") for i in range(600)]
    feed_all(t, st, events)
    assert st.incident is not None and st.incident.event_count == 600
    assert feed(t, st, events[550]) is None
    assert st.incident.event_count == 600


def test_event_ids_capped_while_event_count_keeps_counting() -> None:
    t, st = tracker(), StaffRisk()
    n = MAX_EVENT_IDS + 100
    alerts = feed_all(
        t, st, [ev(i, T0 + i, staff_id="TL", action="credit_report_query") for i in range(n)]
    )
    last = alerts[-1]
    assert last is not None
    assert MAX_EVENT_IDS == 500
    assert len(last.event_ids) == 500
    assert last.event_ids == [f"TL-{i}" for i in range(500)]
    assert last.event_count == n
    assert last.revision == n
    assert last.to_json()["event_count"] == n


def test_alert_id_deterministic_across_fresh_trackers() -> None:
    events = [ev(i, T0 + i * 7 * MINUTE) for i in range(1, 8)]
    runs = []
    for _ in range(2):
        t, st = tracker(), StaffRisk()
        runs.append([a.to_json() if a else None for a in feed_all(t, st, events)])
    assert runs[0] == runs[1]
    assert runs[0][1] is not None
    assert runs[0][1]["alert_id"] == alert_id_for("CM", "CM-1")


def test_alert_id_depends_on_staff_and_first_event() -> None:
    ids = {alert_id_for(s, e) for s in ("S1", "S2") for e in ("e1", "e2")}
    assert len(ids) == 4
    # No ambiguity from simple concatenation.
    assert alert_id_for("S1", "1e") != alert_id_for("S11", "e")


def test_staff_risk_json_round_trip_preserves_behaviour() -> None:
    events = [ev(i, T0 + i * 13 * MINUTE, customer_id=f"C{i % 3}") for i in range(1, 11)]
    credit = ev(99, T0 + 200 * MINUTE, action="credit_report_query")
    events.insert(5, credit)
    for split in range(len(events) + 1):
        t = tracker()
        live = StaffRisk()
        feed_all(t, live, events[:split])
        raw = orjson.dumps(live.to_json())
        restored = StaffRisk.from_json(orjson.loads(raw))
        assert orjson.dumps(restored.to_json()) == raw
        rest_live = [a.to_json() if a else None for a in feed_all(t, live, events[split:])]
        rest_restored = [a.to_json() if a else None for a in feed_all(t, restored, events[split:])]
        assert rest_live == rest_restored
        # Dedupe survives the round trip too.
        for x in events[:split]:
            assert feed(t, restored, x) is None


def test_customer_refs_are_keyed_pseudonyms() -> None:
    events = [ev(1, T0, customer_id="CID-1"), ev(2, T0 + MINUTE, customer_id="CID-2")]
    a1 = feed_all(tracker("k1"), StaffRisk(), events)[-1]
    a1_again = feed_all(tracker("k1"), StaffRisk(), events)[-1]
    a2 = feed_all(tracker("k2"), StaffRisk(), events)[-1]
    raw = feed_all(tracker("k1", raw=True), StaffRisk(), events)[-1]
    assert a1 is not None and a1_again is not None and a2 is not None and raw is not None
    assert a1.customer_refs == a1_again.customer_refs
    assert len(set(a1.customer_refs)) == 2
    assert set(a1.customer_refs).isdisjoint(a2.customer_refs)
    for ref in a1.customer_refs:
        assert "CID" not in ref
    expected = [hmac.new(b"k1", c.encode(), hashlib.sha256).hexdigest()[:20] for c in ("CID-1", "CID-2")]
    assert all(h in r for h, r in zip(expected, a1.customer_refs, strict=True))
    assert raw.customer_refs == ["CID-1", "CID-2"]
    assert "CID-1" not in str(a1.to_json())


def test_customers_listed_once() -> None:
    events = [ev(i, T0 + i * MINUTE, customer_id="SAME") for i in range(1, 5)]
    last = feed_all(tracker(), StaffRisk(), events)[-1]
    assert last is not None
    assert last.event_count == 4 and len(last.customer_refs) == 1


def test_severity_grows_with_risk_and_score_is_capped() -> None:
    t, st = tracker(), StaffRisk()
    events = [ev(i, T0 + i, staff_id="TL", action="credit_report_query") for i in range(6)]
    alerts = [a for a in feed_all(t, st, events) if a is not None]
    order = {s: i for i, s in enumerate(SEVERITIES)}
    ranks = [order[a.severity] for a in alerts]
    assert ranks == sorted(ranks)
    assert alerts[0].severity != "critical"
    assert alerts[-1].severity == "critical"
    for a in alerts:
        assert 0.0 <= a.risk_score <= 100.0
        assert 0.0 <= a.to_json()["risk_score"] <= 100.0
    assert alerts[-1].risk_score == 100.0
    assert st.risk > 100.0


@pytest.mark.parametrize(
    ("risk", "severity"),
    [(0.0, "low"), (59.9, "low"), (60.0, "medium"), (100.0, "high"), (150.0, "critical")],
)
def test_severity_bands(risk: float, severity: str) -> None:
    assert CONFIG.severity(risk) == severity


def test_peak_risk_keeps_severity_when_risk_decays() -> None:
    t, st = tracker(), StaffRisk()
    burst = [ev(i, T0 + i, staff_id="TL", action="credit_report_query") for i in range(3)]
    peak = [a for a in feed_all(t, st, burst) if a][-1]
    later = feed(t, st, ev(10, T0 + 2 * CONFIG.half_life_s, staff_id="TL", action="credit_report_query"))
    assert later is not None and later.alert_id == peak.alert_id
    assert later.severity == peak.severity
    assert later.risk_score == peak.risk_score


def test_alert_json_shape() -> None:
    a = feed_all(tracker(), StaffRisk(), [ev(1, T0), ev(2, T0 + MINUTE)])[-1]
    assert a is not None
    out = orjson.loads(orjson.dumps(a.to_json()))
    assert out["schema_version"] == 1
    assert out["model"] is None
    assert out["event_ids"] and out["revision"] >= 1
    assert {r["code"] for r in out["reasons"]} <= set(CATALOGUE)
    assert "summary" in out and "CM" in out["summary"]
    for key in ("created_at", "first_event_at", "last_event_at"):
        assert parse_ts(out[key]) > 0
