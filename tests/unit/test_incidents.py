"""Risk with decay in event time, incidents, revisions, dedupe, JSON state, ids.

The tracker is fed signals directly, with weights stated relative to the
configured thresholds, so these tests judge the incident logic and not the
rules' weights.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from pipeline.alerts.ids import Pseudonymizer, alert_id_for
from pipeline.alerts.incidents import (
    KEEP_FIRST_EVENT_IDS,
    MAX_EVENT_IDS,
    IncidentTracker,
    RiskConfig,
    StaffRisk,
)
from pipeline.contract.records import SEVERITIES, AccessEvent, Alert, StaffRecord
from pipeline.detect.signals import Signal
from pipeline.reference.state import ReferenceState
from pipeline.timeutil import format_ts, parse_ts

CFG = RiskConfig()
T0 = parse_ts("2026-03-02T09:00:00+08:00")
NOW = parse_ts("2026-04-01T00:00:00Z")
MINUTE = 60.0
DAY = 86400.0
# Spacing that always allows a re-emission (news after this much event time).
STEP = CFG.reemit_after_s
# One HALF signal stays below the threshold; two close together cross it.
HALF = 0.6 * CFG.fast_open
BIG = 1.2 * CFG.fast_open

REF = ReferenceState()
REF.apply_staff(StaffRecord("S1", "BR-HR", "customer_manager", "active", T0 - 90 * DAY))


def ev(n: int, at: float, customer_id: str | None = None, staff_id: str = "S1") -> AccessEvent:
    return AccessEvent(
        event_id=f"{staff_id}-{n}",
        occurred_at=at,
        staff_id=staff_id,
        customer_id=customer_id if customer_id is not None else f"CUST-{n}",
        action="view_profile",
        channel="crm_web",
        branch_id="BR-TERMINAL",
    )


def sig(weight: float, code: str = "unassigned_customer_access") -> list[Signal]:
    return [Signal(code, weight, f"{code} happened")]


def tracker(key: str = "secret", raw: bool = False, cfg: RiskConfig = CFG) -> IncidentTracker:
    return IncidentTracker(cfg, Pseudonymizer(key, raw=raw))


def feed(
    t: IncidentTracker, st: StaffRisk, event: AccessEvent, signals: list[Signal]
) -> Alert | None:
    return t.observe(st, REF.enrich(event), signals, NOW)


def feed_all(
    t: IncidentTracker, st: StaffRisk, items: list[tuple[AccessEvent, list[Signal]]]
) -> list[Alert | None]:
    return [feed(t, st, e, s) for e, s in items]


def emitted(alerts: list[Alert | None]) -> list[Alert]:
    return [a for a in alerts if a is not None]


def test_thresholds_are_ordered() -> None:
    assert 0 < CFG.close_below < CFG.open_at
    assert CFG.fast_half_life_s < CFG.slow_half_life_s
    assert CFG.risk(0.0, 0.0) == 0.0
    assert CFG.risk(CFG.fast_open, 0.0) == CFG.open_at
    assert CFG.risk(0.0, CFG.slow_open) == CFG.open_at


def test_no_signal_no_change() -> None:
    t, st = tracker(), StaffRisk()
    assert feed(t, st, ev(1, T0), []) is None
    assert st.risk == 0.0 and st.slow == 0.0 and st.pending == [] and st.incident is None


def test_below_threshold_no_alert_but_evidence_pending() -> None:
    t, st = tracker(), StaffRisk()
    assert feed(t, st, ev(1, T0), sig(HALF)) is None
    assert st.incident is None
    assert [p.event_id for p in st.pending] == ["S1-1"]
    assert t.current_risk(st) == pytest.approx(CFG.risk(HALF, HALF))
    assert t.current_risk(st) < CFG.open_at


def test_crossing_opens_incident_with_pending_evidence() -> None:
    t, st = tracker(), StaffRisk()
    assert feed(t, st, ev(1, T0), sig(HALF)) is None
    alert = feed(t, st, ev(2, T0 + 10 * MINUTE), sig(HALF, "off_shift_access"))
    assert alert is not None
    assert alert.revision == 1
    assert alert.alert_id == alert_id_for("S1", "S1-1")
    assert alert.event_ids == ["S1-1", "S1-2"]
    assert alert.event_count == 2
    assert alert.first_event_at == format_ts(T0)
    assert alert.last_event_at == format_ts(T0 + 10 * MINUTE)
    assert alert.created_at == format_ts(NOW)
    assert alert.staff_id == "S1"
    assert alert.branch_id == "BR-HR"  # the employee's branch, not the terminal's
    assert {r.code for r in alert.reasons} == {"unassigned_customer_access", "off_shift_access"}
    assert all(r.weight == pytest.approx(HALF) for r in alert.reasons)
    assert len(alert.customer_refs) == 2
    assert st.pending == []
    fast = HALF * 0.5 ** (10 * MINUTE / CFG.fast_half_life_s) + HALF
    slow = HALF * 0.5 ** (10 * MINUTE / CFG.slow_half_life_s) + HALF
    assert alert.risk_score == pytest.approx(min(100.0, CFG.risk(fast, slow)))


def test_branch_falls_back_to_the_terminal_for_unknown_staff() -> None:
    t, st = tracker(), StaffRisk()
    alert = feed(t, st, ev(1, T0, staff_id="GHOST"), sig(BIG))
    assert alert is not None and alert.branch_id == "BR-TERMINAL"


def test_later_signals_revise_the_same_alert() -> None:
    t, st = tracker(), StaffRisk()
    items = [(ev(i, T0 + i * STEP), sig(HALF)) for i in range(1, 6)]
    alerts = feed_all(t, st, items)
    assert alerts[0] is None
    opened = emitted(alerts)
    assert len(opened) == 4
    assert len({a.alert_id for a in opened}) == 1
    assert [a.revision for a in opened] == [1, 2, 3, 4]
    assert [a.event_count for a in opened] == [2, 3, 4, 5]
    assert opened[-1].event_ids == [f"S1-{i}" for i in range(1, 6)]
    assert opened[-1].first_event_at == format_ts(T0 + STEP)


def test_small_growth_soon_after_is_not_re_emitted_but_still_counted() -> None:
    t, st = tracker(), StaffRisk()
    # Open with many events at once, then add one more a second later (< 25% growth).
    items = [(ev(i, T0 + i), sig(BIG / 8)) for i in range(1, 41)]
    opened = emitted(feed_all(t, st, items))
    assert opened
    last = opened[-1]
    assert st.incident is not None
    count_before = st.incident.event_count
    assert st.incident.emitted_count * CFG.reemit_growth > count_before + 1
    assert st.incident.emitted_severity == "critical"
    assert feed(t, st, ev(100, T0 + 41), sig(BIG / 8)) is None
    assert st.incident.event_count == count_before + 1
    assert st.incident.revision == last.revision
    # A new kind of reason is news: re-emitted at once.
    news = feed(t, st, ev(101, T0 + 42), sig(1.0, "related_customer_access"))
    assert news is not None
    assert news.alert_id == last.alert_id and news.revision > last.revision
    assert "related_customer_access" in {r.code for r in news.reasons}
    assert news.event_count == count_before + 2


def test_decay_closes_incident_and_next_one_gets_new_id() -> None:
    t, st = tracker(), StaffRisk()
    first = emitted(feed_all(t, st, [(ev(1, T0), sig(HALF)), (ev(2, T0 + MINUTE), sig(HALF))]))
    assert len(first) == 1
    quiet = T0 + 10 * CFG.slow_half_life_s
    assert feed(t, st, ev(3, quiet), sig(HALF)) is None
    assert st.incident is None
    assert [p.event_id for p in st.pending] == ["S1-3"]
    second = feed(t, st, ev(4, quiet + MINUTE), sig(HALF))
    assert second is not None
    assert second.alert_id != first[0].alert_id
    assert second.alert_id == alert_id_for("S1", "S1-3")
    assert second.revision == 1
    assert second.event_ids == ["S1-3", "S1-4"]


def test_decay_keeps_sparse_signals_below_threshold() -> None:
    t, st = tracker(), StaffRisk()
    items = [(ev(i, T0 + i * 2 * CFG.slow_half_life_s), sig(HALF)) for i in range(5)]
    assert feed_all(t, st, items) == [None] * 5
    assert t.current_risk(st) < CFG.open_at


def test_low_and_slow_evidence_opens_on_the_slow_timescale() -> None:
    t, st = tracker(), StaffRisk()
    # Each step is many fast half-lives but a small part of a slow one.
    gap = 6 * CFG.fast_half_life_s
    assert gap < CFG.slow_half_life_s / 2
    items = [(ev(i, T0 + i * gap), sig(HALF)) for i in range(12)]
    alerts = feed_all(t, st, items)
    assert alerts[0] is None
    opened = emitted(alerts)
    assert opened, "evidence spread over days never opened an incident"
    assert st.risk < CFG.fast_open  # the fast accumulator alone would not have
    assert opened[0].event_count >= 2


def test_late_event_adds_its_weight_without_moving_time_back() -> None:
    t, st = tracker(), StaffRisk()
    later = T0 + CFG.fast_half_life_s
    assert feed(t, st, ev(1, later), sig(HALF)) is None
    # An event that happened an hour earlier arrives late: nothing decays backwards.
    feed(t, st, ev(2, T0), sig(HALF))
    assert st.risk_at == later
    assert st.risk == pytest.approx(2 * HALF)
    assert st.slow == pytest.approx(2 * HALF)
    # Time then moves on from the newest event seen.
    feed(t, st, ev(3, later + CFG.fast_half_life_s), sig(1.0, "first_seen"))
    assert st.risk == pytest.approx(HALF + 1.0)


def test_incident_stays_open_while_risk_above_close_threshold() -> None:
    t, st = tracker(), StaffRisk()
    opened = emitted(feed_all(t, st, [(ev(1, T0), sig(BIG))]))
    later = feed(t, st, ev(2, T0 + CFG.fast_half_life_s), sig(HALF))
    assert later is not None
    assert later.alert_id == opened[0].alert_id and later.revision == 2


def test_redelivered_event_gives_no_new_revision() -> None:
    t, st = tracker(), StaffRisk()
    items = [(ev(i, T0 + i * STEP), sig(HALF)) for i in range(1, 4)]
    last = emitted(feed_all(t, st, items))[-1]
    assert last.revision == 2
    fast, slow = st.risk, st.slow
    for event, signals in items:
        assert feed(t, st, event, signals) is None
    assert (st.risk, st.slow) == (fast, slow)
    assert st.incident is not None
    assert st.incident.revision == 2 and st.incident.event_count == 3


def test_redelivered_pending_event_does_not_add_risk() -> None:
    t, st = tracker(), StaffRisk()
    first = (ev(1, T0), sig(HALF))
    assert feed_all(t, st, [first, first]) == [None, None]  # would cross if counted twice
    assert st.incident is None
    assert len(st.pending) == 1
    assert st.risk == pytest.approx(HALF)


def test_redelivered_event_beyond_event_id_cap_is_ignored() -> None:
    t, st = tracker(), StaffRisk()
    items = [(ev(i, T0 + i), sig(BIG)) for i in range(600)]
    feed_all(t, st, items)
    assert st.incident is not None and st.incident.event_count == 600
    fast = st.risk
    feed(t, st, *items[550])
    assert st.incident.event_count == 600
    assert st.risk == fast


def test_redelivered_events_of_a_closed_incident_open_nothing() -> None:
    t, st = tracker(), StaffRisk()
    first = [(ev(1, T0), sig(HALF)), (ev(2, T0 + MINUTE), sig(HALF))]
    assert len(emitted(feed_all(t, st, first))) == 1
    # Much later, one more signal: the first incident closes, the signal waits in pending.
    assert feed(t, st, ev(3, T0 + 10 * CFG.slow_half_life_s), sig(HALF)) is None
    assert st.incident is None
    # At-least-once: the earlier events are delivered again.
    assert feed_all(t, st, first) == [None, None]
    assert st.incident is None


def test_event_ids_capped_while_event_count_keeps_counting() -> None:
    t, st = tracker(), StaffRisk()
    n = MAX_EVENT_IDS + 100
    # Every event at least STEP apart, so every one is re-emitted.
    alerts = feed_all(t, st, [(ev(i, T0 + i * STEP), sig(BIG)) for i in range(n)])
    last = alerts[-1]
    assert last is not None
    assert MAX_EVENT_IDS == 500
    # the opening evidence and the newest ones
    keep = KEEP_FIRST_EVENT_IDS
    assert last.event_ids == [f"S1-{i}" for i in range(keep)] + [
        f"S1-{i}" for i in range(n - (MAX_EVENT_IDS - keep), n)
    ]
    assert last.event_count == n
    assert last.revision == n
    assert last.to_json()["event_count"] == n


def test_alert_ids_deterministic_across_fresh_trackers() -> None:
    items = [(ev(i, T0 + i * 7 * MINUTE), sig(HALF)) for i in range(1, 12)]
    runs = []
    for _ in range(2):
        t, st = tracker(), StaffRisk()
        runs.append([a.to_json() if a else None for a in feed_all(t, st, items)])
    assert runs[0] == runs[1]
    ids = {a["alert_id"] for a in runs[0] if a}
    assert ids == {alert_id_for("S1", "S1-1")}


def test_alert_id_depends_on_staff_and_first_event() -> None:
    ids = {alert_id_for(s, e) for s in ("S1", "S2") for e in ("e1", "e2")}
    assert len(ids) == 4
    assert alert_id_for("S1", "1e") != alert_id_for("S11", "e")
    assert alert_id_for("S1", "e1") == alert_id_for("S1", "e1")


def test_staff_risk_json_round_trip_preserves_behaviour() -> None:
    items = [
        (ev(i, T0 + i * 13 * MINUTE, customer_id=f"C{i % 3}"), sig(HALF if i % 4 else BIG))
        for i in range(1, 13)
    ]
    # One event out of order, with a second reason.
    items.insert(5, (ev(99, T0 + 2 * MINUTE), sig(HALF, "credit_report_without_authorization")))
    emitting_splits = 0
    for split in range(len(items) + 1):
        t = tracker()
        live = StaffRisk()
        feed_all(t, live, items[:split])
        raw = orjson.dumps(live.to_json())
        restored = StaffRisk.from_json(orjson.loads(raw))
        assert orjson.dumps(restored.to_json()) == raw
        rest_live = [a.to_json() if a else None for a in feed_all(t, live, items[split:])]
        rest_restored = [a.to_json() if a else None for a in feed_all(t, restored, items[split:])]
        assert rest_live == rest_restored
        emitting_splits += any(rest_live)
        for event, signals in items[:split]:
            assert feed(t, restored, event, signals) is None
    assert emitting_splits >= len(items) // 2


def test_customer_refs_are_keyed_pseudonyms() -> None:
    items = [
        (ev(1, T0, customer_id="CID-1"), sig(HALF)),
        (ev(2, T0 + MINUTE, customer_id="CID-2"), sig(HALF)),
    ]
    a1 = feed_all(tracker("k1"), StaffRisk(), items)[-1]
    a1_again = feed_all(tracker("k1"), StaffRisk(), items)[-1]
    a2 = feed_all(tracker("k2"), StaffRisk(), items)[-1]
    raw = feed_all(tracker("k1", raw=True), StaffRisk(), items)[-1]
    assert a1 is not None and a1_again is not None and a2 is not None and raw is not None
    assert a1.customer_refs == a1_again.customer_refs
    assert len(set(a1.customer_refs)) == 2
    assert set(a1.customer_refs).isdisjoint(a2.customer_refs)
    macs = [hmac.new(b"k1", c.encode(), hashlib.sha256).hexdigest() for c in ("CID-1", "CID-2")]
    for mac, ref in zip(macs, a1.customer_refs, strict=True):
        assert "CID" not in ref
        assert mac[:16] in ref
    assert raw.customer_refs == ["CID-1", "CID-2"]
    assert "CID-1" not in orjson.dumps(a1.to_json()).decode()


def test_pseudonymizer_is_stable_and_keyed() -> None:
    p, q = Pseudonymizer("k"), Pseudonymizer("k")
    refs = [p.ref(f"C{i}") for i in range(50)]
    assert refs == [q.ref(f"C{i}") for i in range(50)]
    assert refs == [p.ref(f"C{i}") for i in range(50)]  # cached answers agree
    assert len(set(refs)) == 50
    assert Pseudonymizer("other").ref("C1") != p.ref("C1")
    assert Pseudonymizer("k", raw=True).ref("C1") == "C1"


def test_customers_listed_once() -> None:
    items = [(ev(i, T0 + i * STEP, customer_id="SAME"), sig(HALF)) for i in range(1, 5)]
    last = feed_all(tracker(), StaffRisk(), items)[-1]
    assert last is not None
    assert last.event_count == 4 and len(last.customer_refs) == 1


def test_severity_grows_with_risk_and_score_is_bounded() -> None:
    t, st = tracker(), StaffRisk()
    items = [(ev(i, T0 + i), sig(CFG.fast_open / 5)) for i in range(20)]
    alerts = emitted(feed_all(t, st, items))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    ranks = [order[a.severity] for a in alerts]
    assert ranks == sorted(ranks)
    assert alerts[0].severity != "critical"
    assert alerts[-1].severity == "critical"
    scores = [a.risk_score for a in alerts]
    assert scores == sorted(scores)
    for a in alerts:
        assert 0.0 <= a.risk_score <= 100.0
        assert 0.0 <= a.to_json()["risk_score"] <= 100.0
    assert alerts[-1].risk_score == 100.0
    assert t.current_risk(st) > 100.0


def test_severity_bands_are_monotonic() -> None:
    order = {s: i for i, s in enumerate(SEVERITIES)}
    ranks = [order[CFG.severity(r / 2)] for r in range(0, 400)]
    assert ranks == sorted(ranks)
    assert CFG.severity(0.0) == "low"
    assert CFG.severity(CFG.open_at) in SEVERITIES
    assert CFG.severity(1000.0) == "critical"


def test_peak_risk_keeps_severity_when_risk_decays() -> None:
    t, st = tracker(), StaffRisk()
    peak = emitted(feed_all(t, st, [(ev(i, T0 + i), sig(BIG)) for i in range(3)]))[-1]
    later = feed(t, st, ev(10, T0 + 2 * CFG.fast_half_life_s), sig(1.0, "first_seen"))
    assert later is not None and later.alert_id == peak.alert_id
    assert later.severity == peak.severity
    assert later.risk_score == peak.risk_score


def test_alert_json_shape() -> None:
    a = feed_all(tracker(), StaffRisk(), [(ev(1, T0), sig(HALF)), (ev(2, T0 + 1), sig(HALF))])[-1]
    assert a is not None
    out = orjson.loads(orjson.dumps(a.to_json()))
    assert out["schema_version"] == 1
    assert out["model"] is None
    assert out["event_ids"] and out["revision"] >= 1
    assert "S1" in out["summary"]
    for key in ("created_at", "first_event_at", "last_event_at"):
        assert format_ts(parse_ts(out[key])) == out[key]
    assert [r["code"] for r in out["reasons"]] == ["unassigned_customer_access"]
