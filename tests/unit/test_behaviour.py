"""Behavioural baselines: habituation, peer baselines, daily roll, sliding windows, first seen."""

from __future__ import annotations

import json
import math

import pytest

from pipeline.contract.records import AccessEvent
from pipeline.detect.behaviour import (
    BASELINE_ALPHA,
    BULK_LEVELS,
    EXPORT_RECORDS_FLOOR,
    FEEDBACK_FACTOR,
    FIRST_SEEN_HORIZON_S,
    HABITUATION_K,
    MIN_DAYS,
    MIN_HISTORY,
    MODEL_EVERY_S,
    ROLE_PRIORS,
    WINDOW_S,
    Behaviour,
    PeerBaselines,
    model_due,
    observe_behaviour,
    window_features,
)
from pipeline.detect.catalogue import spec
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched
from pipeline.timeutil import parse_ts

DAY_S = 86400.0
# Monday 10:00 in Asia/Shanghai: inside the 08:30-17:30 shift used below.
T0 = parse_ts("2026-03-02T10:00:00+08:00")
UNASSIGNED = "unassigned_customer_access"
CREDIT = "credit_report_without_authorization"
SENSITIVE = "sensitive_customer_access"

_seq = 0


def enriched(
    at: float,
    customer: str | None = "C1",
    *,
    staff: str = "S1",
    role: str = "customer_manager",
    assigned: bool = False,
    action: str = "view_profile",
    channel: str = "branch_terminal",
    branch: str = "B1",
    terminal: str | None = "T1",
    ip: str | None = "10.0.0.5",
    home_branch: str | None = "B1",
    sensitivity: str | None = "normal",
    records: int = 1,
    outcome: str = "success",
    shift: tuple[str, str] = ("08:30", "17:30"),
) -> Enriched:
    global _seq
    _seq += 1
    event = AccessEvent(
        event_id=f"e{_seq}",
        occurred_at=at,
        staff_id=staff,
        customer_id=customer,
        action=action,
        channel=channel,
        branch_id=branch,
        terminal_id=terminal,
        source_ip=ip,
        record_count=records,
        outcome=outcome,
    )
    return Enriched(
        event=event,
        known_staff=True,
        role=role,
        staff_branch_id="B1",
        status="active",
        shift_start=shift[0],
        shift_end=shift[1],
        timezone="Asia/Shanghai",
        assigned=assigned,
        relation="relationship_manager" if assigned else None,
        known_customer=customer is not None,
        home_branch_id=home_branch if customer is not None else None,
        segment="retail" if customer is not None else None,
        sensitivity=sensitivity if customer is not None else None,
        related=False,
    )


def signal(code: str) -> Signal:
    return Signal(code, spec(code).weight, code)


def habituated(code: str, usual: float) -> float:
    return spec(code).weight * HABITUATION_K / (HABITUATION_K + usual)


# -- habituation ------------------------------------------------------------


def test_daily_count_habituates_own_ewma_after_min_days_and_peers_before() -> None:
    counts = [3, 5, 1, 6]
    b, peers = Behaviour(), PeerBaselines()
    first_weights: list[float] = []
    for day, c in enumerate([*counts, 1]):
        for i in range(c):
            at = T0 + day * DAY_S + i * 60
            sigs = [signal(UNASSIGNED)]
            observe_behaviour(b, enriched(at, f"D{day}C{i}"), sigs, peers, flagged=False)
            if i == 0:
                first_weights.append(sigs[0].weight)
    a = BASELINE_ALPHA
    own2 = (1 - a) * counts[0] + a * counts[1]
    own3 = (1 - a) * own2 + a * counts[2]
    own4 = (1 - a) * own3 + a * counts[3]
    # Peer means over S1's completed staff-days: running mean (alpha = 1/n).
    peer1 = counts[0]
    peer2 = peer1 + (counts[1] - peer1) / 2
    assert b.days == len(counts)
    assert b.daily_mean[UNASSIGNED] == pytest.approx(own4)
    expected = [
        habituated(UNASSIGNED, ROLE_PRIORS["customer_manager"][UNASSIGNED]),  # no one seen yet
        habituated(UNASSIGNED, peer1),  # days 1 < MIN_DAYS: peers
        habituated(UNASSIGNED, peer2),  # days 2 < MIN_DAYS: peers
        habituated(UNASSIGNED, own3),  # days 3 == MIN_DAYS: own EWMA
        habituated(UNASSIGNED, own4),
    ]
    assert MIN_DAYS == 3
    assert first_weights == pytest.approx(expected)


def test_usual_switches_from_peers_to_own_at_min_days() -> None:
    b = Behaviour(days=MIN_DAYS - 1, daily_mean={UNASSIGNED: 10.0})
    peers = {UNASSIGNED: 1.0}
    assert b.usual(UNASSIGNED, peers) == 1.0
    assert b.weight(UNASSIGNED, peers) == pytest.approx(habituated(UNASSIGNED, 1.0))
    b.days = MIN_DAYS
    assert b.usual(UNASSIGNED, peers) == 10.0
    assert b.weight(UNASSIGNED, peers) == pytest.approx(habituated(UNASSIGNED, 10.0))
    assert b.usual("off_shift_access", peers) == 0.0
    assert b.weight("off_shift_access", peers) == spec("off_shift_access").weight


def test_policy_code_keeps_full_weight_however_often() -> None:
    assert spec(CREDIT).habituates is False
    b, peers = Behaviour(), PeerBaselines()
    weights: list[float] = []
    for day in range(MIN_DAYS + 2):
        for i in range(8):
            sigs = [signal(CREDIT), signal(UNASSIGNED)]
            at = T0 + day * DAY_S + i * 60
            e = enriched(at, f"D{day}C{i}", action="credit_report_query")
            observe_behaviour(b, e, sigs, peers, flagged=False)
            weights.append(sigs[0].weight)
    # it was learned as usual (8 a day) ...
    assert b.daily_mean[CREDIT] == pytest.approx(8.0)
    assert b.usual(CREDIT, {}) == pytest.approx(8.0)
    # ... yet weighs fully every time, while the habituating code does not
    assert weights == [spec(CREDIT).weight] * len(weights)
    assert b.weight(UNASSIGNED, {}) == pytest.approx(habituated(UNASSIGNED, 8.0))


def test_feedback_halves_weight_for_that_employee_only() -> None:
    usual = {UNASSIGNED: 4.0}
    hit, other = Behaviour(), Behaviour()
    hit.apply_feedback([UNASSIGNED, CREDIT])
    full = habituated(UNASSIGNED, 4.0)
    assert hit.weight(UNASSIGNED, usual) == pytest.approx(full * FEEDBACK_FACTOR)
    assert other.weight(UNASSIGNED, usual) == pytest.approx(full)
    # policy codes do not habituate, but feedback still applies
    assert hit.weight(CREDIT, {CREDIT: 9.0}) == pytest.approx(spec(CREDIT).weight * FEEDBACK_FACTOR)
    assert hit.weight(SENSITIVE, usual) == spec(SENSITIVE).weight  # not in the verdict
    hit.apply_feedback([UNASSIGNED])
    assert hit.weight(UNASSIGNED, usual) == pytest.approx(full * FEEDBACK_FACTOR**2)


def test_feedback_survives_json_round_trip() -> None:
    b = Behaviour()
    b.apply_feedback([SENSITIVE])
    again = Behaviour.from_json(json.loads(json.dumps(b.to_json())))
    assert again.weight(SENSITIVE, {}) == pytest.approx(spec(SENSITIVE).weight * FEEDBACK_FACTOR)


def test_feedback_halves_bulk_access() -> None:
    b, peers = Behaviour(), PeerBaselines()
    b.apply_feedback(["bulk_access"])
    out: list[Signal] = []
    for i in range(BULK_LEVELS[0]):
        out += observe_behaviour(b, enriched(T0 + i * 60, f"C{i}"), [], peers, flagged=False)
    assert [s.weight for s in out] == [spec("bulk_access").weight * FEEDBACK_FACTOR]


# -- peer baselines ---------------------------------------------------------


def _noted_day(day: str = "2026-03-02") -> PeerBaselines:
    p = PeerBaselines()
    for staff, n in (("A", 3), ("B", 1), ("C", 0)):
        for _ in range(n):
            p.note("customer_manager", day, staff, [SENSITIVE])
        p.note("customer_manager", day, staff, [])  # every one of them is active
    return p


def test_peer_today_mean_leaves_out_the_asker() -> None:
    p = _noted_day()
    role = "customer_manager"
    assert p.of(role, "A", {SENSITIVE: 3.0})[SENSITIVE] == pytest.approx((4 - 3) / 2)
    assert p.of(role, "B", {SENSITIVE: 1.0})[SENSITIVE] == pytest.approx((4 - 1) / 2)
    assert p.of(role, "C", {})[SENSITIVE] == pytest.approx(4 / 2)
    assert p.of(role, "Z", {})[SENSITIVE] == pytest.approx(4 / 3)  # not active: all three count
    # role priors stay when today's mean is below them
    assert p.of(role, "A", {SENSITIVE: 3.0})[UNASSIGNED] == ROLE_PRIORS[role][UNASSIGNED]
    assert p.of("teller", "A")[SENSITIVE] == ROLE_PRIORS["teller"][SENSITIVE]  # other role


def test_peer_today_mean_wins_over_priors_when_larger() -> None:
    p = PeerBaselines()
    for staff, n in (("A", 5), ("B", 9)):
        for _ in range(n):
            p.note("customer_manager", "2026-03-02", staff, [UNASSIGNED])
    assert p.of("customer_manager", "X")[UNASSIGNED] == pytest.approx(7.0)
    assert p.of("customer_manager", "A", {UNASSIGNED: 5.0})[UNASSIGNED] == pytest.approx(9.0)


def test_only_active_employee_gets_priors_and_history() -> None:
    p = PeerBaselines()
    for _ in range(50):
        p.note("customer_manager", "2026-03-02", "A", [UNASSIGNED, SENSITIVE])
    assert (
        p.of("customer_manager", "A", {UNASSIGNED: 50.0, SENSITIVE: 50.0})
        == (ROLE_PRIORS["customer_manager"])
    )
    p.add_day("customer_manager", {SENSITIVE: 4.0})
    assert p.of("customer_manager", "A", {UNASSIGNED: 50.0, SENSITIVE: 50.0}) == {
        **ROLE_PRIORS["customer_manager"],
        SENSITIVE: 4.0,
    }


def test_add_day_running_mean_over_staff_days() -> None:
    p = PeerBaselines()
    p.add_day("loan_officer", {SENSITIVE: 4.0})
    p.add_day("loan_officer", {SENSITIVE: 2.0})
    p.add_day("loan_officer", {CREDIT: 3.0})
    assert p.days["loan_officer"] == 3
    assert p.means["loan_officer"][SENSITIVE] == pytest.approx((4 + 2 + 0) / 3)
    assert p.means["loan_officer"][CREDIT] == pytest.approx((0 + 0 + 3) / 3)
    # learned means replace the role's prior, up or down
    p.add_day("loan_officer", {UNASSIGNED: 0.4})
    assert p.of("loan_officer")[UNASSIGNED] == pytest.approx(0.4 / 4)
    assert p.of(None) == {}


def test_note_ignores_late_day_and_resets_on_new_day() -> None:
    p = _noted_day("2026-03-02")
    p.note("customer_manager", "2026-03-01", "D", [SENSITIVE] * 10)  # late: ignored
    assert p.of("customer_manager", "Z")[SENSITIVE] == pytest.approx(4 / 3)
    p.note("customer_manager", "2026-03-03", "D", [SENSITIVE])
    assert p.today["customer_manager"][1] == {"D"}
    assert p.of("customer_manager", "Z")[SENSITIVE] == pytest.approx(1.0)


def test_peer_baselines_json_round_trip_preserves_of() -> None:
    p = _noted_day()
    p.add_day("customer_manager", {CREDIT: 2.0, UNASSIGNED: 5.0})
    p.add_day("teller", {SENSITIVE: 0.5})
    raw = json.loads(json.dumps(p.to_json()))
    q = PeerBaselines.from_json(raw)
    for role in ("customer_manager", "teller", "auditor"):
        for staff, own in (("A", {SENSITIVE: 3.0}), ("B", {SENSITIVE: 1.0}), ("Z", {})):
            assert q.of(role, staff, own) == p.of(role, staff, own)
    q.note("customer_manager", "2026-03-02", "A", [SENSITIVE])  # the active set is a set again
    assert q.of("customer_manager", "Z")[SENSITIVE] == pytest.approx(5 / 3)


# -- roll_day ---------------------------------------------------------------


def test_roll_day_returns_completed_counts_once_per_day_change() -> None:
    b = Behaviour()
    assert b.roll_day("2026-03-02") is None
    assert (b.day, b.days) == ("2026-03-02", 0)
    b.day_counts = {UNASSIGNED: 4.0, "_hourly_peak": 10.0}
    assert b.roll_day("2026-03-02") is None
    assert b.day_counts == {UNASSIGNED: 4.0, "_hourly_peak": 10.0}
    assert b.roll_day("2026-03-03") == {UNASSIGNED: 4.0, "_hourly_peak": 10.0}
    assert (b.day, b.days, b.day_counts) == ("2026-03-03", 1, {})
    assert b.daily_mean == {UNASSIGNED: 4.0, "_hourly_peak": 10.0}
    assert b.hourly_peak == 10.0
    b.day_counts = {SENSITIVE: 1.0, "_hourly_peak": 5.0}
    assert b.roll_day("2026-03-04") == {SENSITIVE: 1.0, "_hourly_peak": 5.0}
    a = BASELINE_ALPHA
    assert b.days == 2
    assert b.daily_mean[UNASSIGNED] == pytest.approx((1 - a) * 4.0)  # absent: decays
    assert b.daily_mean[SENSITIVE] == 1.0  # first day seen: starts at the count
    # the usual peak decays by the EWMA but never below the latest day's peak
    assert b.hourly_peak == pytest.approx(max(5.0, (1 - a) * 10.0 + a * 5.0))
    b.day_counts = {"_hourly_peak": 30.0}
    b.roll_day("2026-03-05")
    assert b.hourly_peak == 30.0
    assert b.roll_day("2026-03-05") is None
    assert b.days == 3


def test_observe_rolls_on_local_day_and_feeds_peers() -> None:
    b, peers = Behaviour(), PeerBaselines()
    late = parse_ts("2026-03-02T23:30:00+08:00")
    early = parse_ts("2026-03-03T00:30:00+08:00")  # same UTC day, next local day
    observe_behaviour(b, enriched(late, "C1"), [signal(UNASSIGNED)], peers, flagged=False)
    observe_behaviour(b, enriched(late + 60, "C2"), [signal(UNASSIGNED)], peers, flagged=False)
    assert (b.day, b.days, b.day_counts[UNASSIGNED]) == ("2026-03-02", 0, 2.0)
    observe_behaviour(b, enriched(early, "C3"), [signal(SENSITIVE)], peers, flagged=False)
    assert (b.day, b.days) == ("2026-03-03", 1)
    assert b.daily_mean[UNASSIGNED] == 2.0
    assert peers.means["customer_manager"][UNASSIGNED] == 2.0
    assert b.day_counts[SENSITIVE] == 1.0
    assert UNASSIGNED not in b.day_counts


def test_roll_day_ignores_a_late_event_of_an_earlier_day() -> None:
    b = Behaviour()
    b.roll_day("2026-03-02")
    b.day_counts = {UNASSIGNED: 2.0}
    b.roll_day("2026-03-03")
    b.day_counts = {UNASSIGNED: 1.0}
    assert b.roll_day("2026-03-02") is None
    assert (b.day, b.days, b.day_counts) == ("2026-03-03", 1, {UNASSIGNED: 1.0})


def test_flagged_accesses_do_not_feed_counts_but_are_still_weighed() -> None:
    b, peers = Behaviour(), PeerBaselines()
    sigs = [signal(SENSITIVE)]
    observe_behaviour(b, enriched(T0, "C1"), sigs, peers, flagged=True)
    assert SENSITIVE not in b.day_counts
    assert peers.today["customer_manager"][2] == {}
    assert sigs[0].weight == spec(SENSITIVE).weight  # never seen: full weight
    for i in range(3):
        observe_behaviour(b, enriched(T0 + 60 + i, "C1"), [signal(SENSITIVE)], peers, False)
    observe_behaviour(b, enriched(T0 + 120, "C1"), [signal(SENSITIVE)], peers, flagged=True)
    assert b.day_counts[SENSITIVE] == 3.0
    assert peers.today["customer_manager"][2] == {SENSITIVE: 3.0}
    assert b.events == 5


def test_flagged_bulk_hour_does_not_raise_the_usual_peak() -> None:
    b, peers = Behaviour(), PeerBaselines()
    for i in range(40):
        observe_behaviour(b, enriched(T0 + i * 30, f"C{i}"), [], peers, flagged=True)
    observe_behaviour(b, enriched(T0 + DAY_S, "C0"), [], peers, flagged=False)
    assert b.hourly_peak == 0.0


# -- bulk access ------------------------------------------------------------


def _bulk(
    b: Behaviour, peers: PeerBaselines, start: float, customers: list[str], role: str
) -> list[list[Signal]]:
    return [
        observe_behaviour(b, enriched(start + i * 60, c, role=role), [], peers, flagged=False)
        for i, c in enumerate(customers)
    ]


def _bulk_signals(outs: list[list[Signal]]) -> list[tuple[int, float]]:
    return [(i, s.weight) for i, out in enumerate(outs) for s in out if s.code == "bulk_access"]


def assert_bulk(outs: list[list[Signal]], expected: list[tuple[int, float]]) -> None:
    got = _bulk_signals(outs)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_bulk_access_fires_per_level_for_customer_manager() -> None:
    b, peers = Behaviour(), PeerBaselines()
    names = []
    for i in range(BULK_LEVELS[1]):
        names += [f"C{i}", f"C{i}"]  # repeats count once
    outs = _bulk(b, peers, T0, names, "customer_manager")
    w = spec("bulk_access").weight
    # the 15th distinct customer is access index 28, the 30th is 58
    assert_bulk(
        outs,
        [(2 * BULK_LEVELS[0] - 2, w * math.sqrt(1)), (2 * BULK_LEVELS[1] - 2, w * math.sqrt(2))],
    )
    first = next(s for s in outs[2 * BULK_LEVELS[0] - 2] if s.code == "bulk_access")
    assert first.summary.startswith(f"{BULK_LEVELS[0]} distinct unassigned customers")
    assert b.day_counts["_hourly_peak"] == BULK_LEVELS[1]


def test_bulk_access_ignores_operations_and_assigned_customers() -> None:
    b, peers = Behaviour(), PeerBaselines()
    outs = _bulk(b, peers, T0, [f"C{i}" for i in range(40)], "operations")
    assert _bulk_signals(outs) == []
    assert len(b.window) == 40
    b2 = Behaviour()
    for i in range(40):
        e = enriched(T0 + i * 60, f"C{i}", assigned=True)
        assert observe_behaviour(b2, e, [], peers, flagged=False) == []
    assert b2.window == {}


def test_bulk_window_forgets_customers_older_than_an_hour() -> None:
    b, peers = Behaviour(), PeerBaselines()
    n = BULK_LEVELS[0] - 1
    outs = _bulk(b, peers, T0, [f"C{i}" for i in range(n)], "customer_manager")
    assert _bulk_signals(outs) == []
    # an hour and 30 s after the first: C0 has left the window, so n is still 14
    at = T0 + WINDOW_S + 30
    out = observe_behaviour(b, enriched(at, "NEW1"), [], peers, flagged=False)
    assert out == []
    assert "C0" not in b.window and len(b.window) == n
    out = observe_behaviour(b, enriched(at + 1, "NEW2"), [], peers, flagged=False)
    assert [s.code for s in out] == ["bulk_access"]


def _levels(n: int, usual_peak: float) -> int:
    return sum(1 for lv in BULK_LEVELS if n >= max(lv, 3 * usual_peak))


def test_bulk_threshold_rises_with_own_usual_peak() -> None:
    b, peers = Behaviour(days=MIN_DAYS, hourly_peak=10.0), PeerBaselines()
    outs = _bulk(b, peers, T0, [f"C{i}" for i in range(30)], "customer_manager")
    level = _levels(30, 10.0)
    assert_bulk(outs, [(29, spec("bulk_access").weight * math.sqrt(level))])


def test_bulk_threshold_uses_peers_peak_before_min_days() -> None:
    teller_peak = ROLE_PRIORS["teller"]["_hourly_peak"]
    threshold = int(3 * teller_peak)
    b = Behaviour(days=MIN_DAYS - 1)
    outs = _bulk(b, PeerBaselines(), T0, [f"C{i}" for i in range(threshold)], "teller")
    level = _levels(threshold, teller_peak)
    assert_bulk(outs, [(threshold - 1, spec("bulk_access").weight * math.sqrt(level))])
    # with MIN_DAYS of own history (peak 0) the plain levels apply
    own = Behaviour(days=MIN_DAYS)
    outs = _bulk(own, PeerBaselines(), T0, [f"C{i}" for i in range(BULK_LEVELS[0])], "teller")
    assert [i for i, _ in _bulk_signals(outs)] == [BULK_LEVELS[0] - 1]


# -- export volume ----------------------------------------------------------


def test_export_volume_fires_once_when_the_hour_crosses_the_floor() -> None:
    b, peers = Behaviour(), PeerBaselines()
    first = EXPORT_RECORDS_FLOOR - 200
    sizes = [first, 199, 1, 100]  # crosses the floor exactly at the third
    outs = [
        observe_behaviour(
            b,
            enriched(T0 + i * 60, f"C{i}", assigned=True, action="export_statement", records=r),
            [],
            peers,
            flagged=False,
        )
        for i, r in enumerate(sizes)
    ]
    assert [[s.code for s in out] for out in outs] == [[], [], ["export_volume"], []]
    assert outs[2][0].weight == spec("export_volume").weight
    assert b.day_counts["_export_records"] == sum(sizes)
    ops = Behaviour()
    for i, r in enumerate(sizes):
        e = enriched(T0 + i * 60, f"C{i}", role="operations", action="export_statement", records=r)
        assert observe_behaviour(ops, e, [], peers, flagged=False) == []


# -- first seen -------------------------------------------------------------


def _first_seen(out: list[Signal]) -> list[str]:
    return [s.summary for s in out if s.code == "first_seen"]


def test_first_seen_only_after_history() -> None:
    b, peers = Behaviour(), PeerBaselines()
    for i in range(MIN_HISTORY - 1):
        out = observe_behaviour(b, enriched(T0 + i * 10, "C1", assigned=True), [], peers, False)
        assert _first_seen(out) == []
    # access number MIN_HISTORY from a new terminal: still no history
    at = T0 + MIN_HISTORY * 10
    out = observe_behaviour(b, enriched(at, "C1", assigned=True, terminal="T2"), [], peers, False)
    assert _first_seen(out) == []
    assert b.events == MIN_HISTORY
    out = observe_behaviour(
        b, enriched(at + 10, "C1", assigned=True, terminal="T3"), [], peers, False
    )
    fs = [s for s in out if s.code == "first_seen"]
    assert len(fs) == 1
    assert fs[0].summary == "first terminal T3"
    assert fs[0].weight == spec("first_seen").weight
    # the same terminal again within the horizon: nothing
    out = observe_behaviour(
        b, enriched(at + 20, "C1", assigned=True, terminal="T3"), [], peers, False
    )
    assert _first_seen(out) == []
    out = observe_behaviour(
        b, enriched(at + 30, "C1", assigned=True, ip="192.168.7.9", branch="B9"), [], peers, False
    )
    assert _first_seen(out) == ["first branch B9, network 192.168.7"]
    out = observe_behaviour(
        b, enriched(at + 40, "C1", assigned=True, ip="192.168.7.200"), [], peers, False
    )
    assert _first_seen(out) == []  # same /24
    out = observe_behaviour(b, enriched(at + 50, "C1", assigned=True), [], peers, False)
    assert _first_seen(out) == []  # everything of this one was seen before
    # past the horizon, T3 is new again
    late = at + 20 + FIRST_SEEN_HORIZON_S + 1
    out = observe_behaviour(b, enriched(late, "C1", assigned=True, terminal="T3"), [], peers, False)
    assert _first_seen(out) == ["first terminal T3"]


# -- window features and model cadence ----------------------------------------


def test_window_features_count_the_last_hour() -> None:
    b, peers = Behaviour(), PeerBaselines()
    t = T0 + 200
    events = [
        enriched(T0, "OLD"),  # leaves the window
        enriched(t + 3600, "C1", assigned=True),
        enriched(t + 3610, "C2"),  # unassigned, own branch
        enriched(t + 3620, "C3", home_branch="B2", sensitivity="vip"),
        enriched(
            t + 3630,
            "C3",
            home_branch="B2",
            sensitivity="vip",
            action="export_statement",
            records=40,
        ),
        enriched(t + 3640, None, action="search_customers", outcome="denied"),
        enriched(
            t + 3650,
            "C4",
            assigned=True,
            sensitivity="pep",
            action="print_statement",
            records=10,
            shift=("20:00", "23:00"),  # 11:00 is outside 19:00-24:00
        ),
        enriched(t + 3660, "C1", assigned=True, records=999),  # not an export: 0 records
    ]
    for e in events:
        observe_behaviour(b, e, [], peers, flagged=False)
    assert window_features(b) == {
        "events": 7.0,
        "distinct_customers": 4.0,  # C1..C4
        "unassigned_customers": 2.0,  # C2, C3
        "other_branch_customers": 1.0,  # C3
        "sensitive_customers": 2.0,  # C3, C4
        "exported_records": 50.0,
        "off_shift_events": 1.0,
        "denied_events": 1.0,
    }


def test_model_due_on_non_routine_access_at_most_every_interval() -> None:
    b = Behaviour()
    assert model_due(b, enriched(T0, "C1")) is True  # unassigned
    assert b.last_model_at == T0
    assert model_due(b, enriched(T0 + MODEL_EVERY_S - 1, "C2")) is False
    assert model_due(b, enriched(T0 + MODEL_EVERY_S, "C1", assigned=True)) is False  # routine
    assert model_due(b, enriched(T0 + MODEL_EVERY_S + 1, None, action="search_customers")) is False
    assert b.last_model_at == T0
    assert model_due(b, enriched(T0 + MODEL_EVERY_S + 2, "C2")) is True
    later = T0 + 2 * MODEL_EVERY_S + 2
    assert model_due(b, enriched(later, "C1", assigned=True, action="print_statement")) is True
    assert b.last_model_at == later
