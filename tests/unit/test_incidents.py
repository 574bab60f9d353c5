"""Risk, incidents, revisions, closing and calibrated severity."""

from __future__ import annotations

import msgspec

from pipeline.alerts.ids import Pseudonymizer
from pipeline.alerts.incidents import (
    MAX_PENDING,
    Incident,
    IncidentTracker,
    ReasonAcc,
    Risk,
    RiskConfig,
    severity,
)
from pipeline.contract.decode import decode_access_event
from pipeline.contract.records import MAX_EVENT_IDS
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched
from tests.unit.corekit import access, world

CFG = RiskConfig()


def tracker() -> IncidentTracker:
    return IncidentTracker(CFG, Pseudonymizer("k"), "ns")


def enriched(n: int, minutes: float = 0.0, customer: str = "C1") -> Enriched:
    ref = world(customers=[(customer, "BR1", "normal")])
    ev = decode_access_event(msgspec.json.encode(access(n, "S1", customer, minutes=minutes)))
    return ref.enrich(ev, ev.occurred_at.timestamp())


def sig(code: str, weight: float) -> Signal:
    return Signal(code, weight, f"{code} happened")


def test_risk_under_the_threshold_keeps_evidence_pending_then_opens_with_it() -> None:
    t, st = tracker(), Risk()
    assert t.observe(st, "S1", enriched(1), [sig("unassigned_customer_access", 30)], 0, 0) == []
    assert [p.event_id for p in st.pending] == ["ev-S1-1"]
    out = t.observe(st, "S1", enriched(2, 5), [sig("unassigned_customer_access", 30)], 0, 0)
    assert len(out) == 1
    alert = out[0].alert
    assert alert.revision == 1 and alert.event_ids == ["ev-S1-1", "ev-S1-2"]
    assert [e.event_id for e in out[0].evidence] == ["ev-S1-1", "ev-S1-2"]
    assert alert.customer_refs[0].startswith("cref-") and "C1" not in alert.customer_refs
    assert st.pending == []


def test_pending_evidence_is_bounded() -> None:
    t, st = tracker(), Risk()
    for n in range(MAX_PENDING * 3):
        t.observe(st, "S1", enriched(n, n * 600), [sig("first_seen", 1.0)], 0, 0)
    assert len(st.pending) <= MAX_PENDING


def test_alert_ids_are_deterministic_and_namespaced() -> None:
    a = tracker().observe(
        Risk(), "S1", enriched(1), [sig("credit_report_without_authorization", 60)], 0, 0
    )
    b = tracker().observe(
        Risk(), "S1", enriched(1), [sig("credit_report_without_authorization", 60)], 0, 0
    )
    other = IncidentTracker(CFG, Pseudonymizer("k"), "other-deployment")
    c = other.observe(
        Risk(), "S1", enriched(1), [sig("credit_report_without_authorization", 60)], 0, 0
    )
    assert a[0].alert.alert_id == b[0].alert.alert_id != c[0].alert.alert_id


def test_revisions_are_throttled_to_news() -> None:
    t, st = tracker(), Risk()
    t.observe(st, "S1", enriched(0), [sig("credit_report_without_authorization", 60)], 0, 0)
    emitted = 0
    for n in range(1, 5):  # small same-reason evidence, a minute apart: no news
        emitted += len(
            t.observe(
                st, "S1", enriched(n, n), [sig("credit_report_without_authorization", 0.5)], 0, 0
            )
        )
    assert emitted == 0
    new_reason = t.observe(st, "S1", enriched(10, 10), [sig("sensitive_customer_access", 1)], 0, 0)
    assert [o.alert.revision for o in new_reason] == [2], "a new reason is news"


def test_a_redelivered_event_adds_nothing() -> None:
    t, st = tracker(), Risk()
    t.observe(st, "S1", enriched(1), [sig("credit_report_without_authorization", 60)], 0, 0)
    count = st.incident.event_count if st.incident else 0
    assert (
        t.observe(st, "S1", enriched(1), [sig("credit_report_without_authorization", 60)], 0, 0)
        == []
    )
    assert st.incident is not None and st.incident.event_count == count


def test_event_ids_keep_the_first_and_the_newest_past_the_cap() -> None:
    t, st = tracker(), Risk()
    for n in range(MAX_EVENT_IDS + 100):
        t.observe(
            st, "S1", enriched(n, n * 0.01), [sig("credit_report_without_authorization", 60)], 0, 0
        )
    inc = st.incident
    assert inc is not None
    assert len(inc.event_ids) == MAX_EVENT_IDS and inc.event_count == MAX_EVENT_IDS + 100
    assert inc.event_ids[0] == "ev-S1-0" and inc.event_ids[-1] == f"ev-S1-{MAX_EVENT_IDS + 99}"


def test_a_decayed_incident_closes_with_a_final_revision_and_the_next_crossing_opens_another() -> (
    None
):
    t, st = tracker(), Risk()
    first = t.observe(st, "S1", enriched(1), [sig("credit_report_without_authorization", 60)], 0, 0)
    later = t.observe(
        st, "S1", enriched(2, 3 * 24 * 60), [sig("credit_report_without_authorization", 60)], 3, 0
    )
    assert [o.alert.status for o in later] == ["closed", "open"]
    assert later[0].alert.alert_id == first[0].alert.alert_id
    assert later[0].alert.revision == first[0].alert.revision + 1
    assert later[1].alert.alert_id != first[0].alert.alert_id
    assert later[1].alert.revision == 1


def test_weekly_evidence_opens_an_incident_that_no_single_day_would() -> None:
    t, st = tracker(), Risk()
    # Each day a little, far apart in time; the behaviour's weekly statistic grows.
    opened = []
    for day in range(5):
        out = t.observe(
            st,
            "S1",
            enriched(day, day * 24 * 60),
            [sig("statement_export_unassigned", 5)],
            day,
            0,
            slow=7.0 * (day + 1),
        )
        opened += [o for o in out if o.alert.status == "open"]
    assert opened, "low and slow opens an incident within days"
    assert opened[0].alert.event_ids == [f"ev-S1-{d}" for d in range(len(opened[0].evidence))]
    assert st.fast < CFG.fast_open, "no single day was enough"
    quiet = Risk()
    for day in range(8):
        t.observe(
            quiet,
            "S1",
            enriched(day, day * 24 * 60),
            [sig("statement_export_unassigned", 5)],
            day,
            0,
            slow=CFG.slow_open * 0.8,
        )
    assert quiet.incident is None, "below slow_open the week does not open an incident"


def test_weekly_evidence_is_forgotten_after_a_week_without_accesses() -> None:
    t, st = tracker(), Risk()
    t.observe(st, "S1", enriched(1), [sig("first_seen", 1.0)], 0, 0, slow=20.0)
    assert st.slow == 20.0
    t.observe(st, "S1", enriched(2, 9 * 24 * 60), [], 9, 0)
    assert st.slow == 0.0


def test_a_credit_report_without_authorization_on_an_assigned_customer_is_medium() -> None:
    assigned = _incident(credit_report_without_authorization=50.0)
    assert severity(assigned, CFG) == "medium"
    twice = _incident(credit_report_without_authorization=100.0)
    assert severity(twice, CFG) == "high"


def _incident(**reasons: float) -> Incident:
    inc = Incident("al-1", 1, 0.0, 0.0, "BR1")
    inc.reasons = {code: ReasonAcc(w, 1, "") for code, w in reasons.items()}
    inc.peak_risk = 200.0
    return inc


def test_severity_says_what_the_evidence_is() -> None:
    soft = _incident(unassigned_customer_access=150.0, sensitive_customer_access=90.0)
    assert severity(soft, CFG) == "medium", "soft evidence alone is at most medium"
    volume = _incident(bulk_access=150.0, other_branch_customer_access=60.0)
    assert severity(volume, CFG) == "high"
    mild_volume = _incident(bulk_access=30.0, other_branch_customer_access=60.0)
    assert severity(mild_volume, CFG) == "medium"
    policy = _incident(credit_report_without_authorization=60.0)
    assert severity(policy, CFG) == "high"
    policy_and_volume = _incident(inactive_staff_activity=80.0, bulk_access=40.0)
    assert severity(policy_and_volume, CFG) == "critical"
    low = _incident(first_seen=3.0)
    low.peak_risk = 55.0
    assert severity(low, CFG) == "low"


def test_the_risk_score_stays_inside_its_severity_band() -> None:
    t, st = tracker(), Risk()
    out = t.observe(st, "S1", enriched(1), [sig("unassigned_customer_access", 400.0)], 0, 0)
    alert = out[0].alert
    assert alert.severity == "medium" and alert.risk_score < 80.0
