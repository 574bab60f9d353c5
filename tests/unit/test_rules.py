"""Stateless rules over one enriched access, the shift test, and the reason-code catalogue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import get_args

import pytest

from pipeline.alerts.incidents import RiskConfig
from pipeline.contract.records import (
    ACTIONS,
    ROLES,
    AccessEvent,
    Action,
    Assignment,
    Channel,
    CustomerProfile,
    Outcome,
    Role,
    Sensitivity,
    StaffRecord,
    StaffStatus,
)
from pipeline.detect import rules
from pipeline.detect.catalogue import CATALOGUE, POLICY_CODES, SOFT_CODES, Family, spec
from pipeline.detect.rules import RULES, evaluate_rules
from pipeline.detect.shift import DEFAULT_SHIFT, GRACE_MINUTES, local_minute, outside_shift
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched, ReferenceState
from pipeline.timeutil import parse_ts

DAY = 86400.0
# 09:00 in Asia/Shanghai (the default timezone): inside any default shift.
T0 = parse_ts("2026-03-02T09:00:00+08:00")
Rule = Callable[[Enriched], Signal | None]


def ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def world(
    role: Role = "customer_manager",
    status: StaffStatus = "active",
    shift: tuple[str, str] | None = None,
    timezone: str = "Asia/Shanghai",
) -> ReferenceState:
    """S1 of BR1; C-MINE assigned to S1; profiles: own-branch, other-branch, vip, related."""
    state = ReferenceState()
    start, end = shift if shift else (None, None)
    state.apply_staff(
        StaffRecord("S1", "BR1", role, "active", ts(T0 - 30 * DAY), start, end, timezone)
    )
    if status != "active":
        state.apply_staff(
            StaffRecord("S1", "BR1", role, status, ts(T0 - DAY), start, end, timezone)
        )
    state.apply_assignment(Assignment("S1", "C-MINE", "relationship_manager", ts(T0 - DAY), None))
    profiles: list[tuple[str, str, Sensitivity, list[str]]] = [
        ("C-MINE", "BR1", "normal", []),
        ("C-OWN", "BR1", "normal", []),
        ("C-FAR", "BR2", "normal", []),
        ("C-VIP", "BR1", "vip", []),
        ("C-FARVIP", "BR2", "pep", []),
        ("C-KIN", "BR1", "normal", ["S1"]),
    ]
    for cid, branch, sens, related in profiles:
        state.apply_profile(CustomerProfile(cid, branch, "retail", sens, related, ts(T0 - DAY)))
    return state


def enriched(
    state: ReferenceState,
    customer_id: str | None = "C-OWN",
    action: Action = "view_profile",
    authorization_ref: str | None = None,
    staff_id: str = "S1",
    at: float = T0,
    outcome: Outcome = "success",
    channel: Channel = "branch_terminal",
    event_id: str = "e1",
) -> Enriched:
    ev = AccessEvent(
        event_id=event_id,
        occurred_at=ts(at),
        staff_id=staff_id,
        customer_id=customer_id,
        action=action,
        channel=channel,
        branch_id="BR1",
        authorization_ref=authorization_ref,
        outcome=outcome,
    )
    return state.enrich(ev, ev.occurred_at.timestamp())


def codes(e: Enriched) -> set[str]:
    return {s.code for s in evaluate_rules(e)}


# --- catalogue -----------------------------------------------------------------------


def test_catalogue_entries_are_consistent() -> None:
    assert CATALOGUE
    families = set(get_args(Family))
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert entry.weight > 0
        assert entry.title
        assert entry.family in families
        assert entry.prior > 0
        assert spec(code) is entry


def test_catalogue_families() -> None:
    assert {
        "credit_report_without_authorization",
        "inactive_staff_activity",
        "related_customer_access",
    } == POLICY_CODES
    assert set(SOFT_CODES) == {
        "unassigned_customer_access",
        "other_branch_customer_access",
        "sensitive_customer_access",
        "statement_export_unassigned",
        "off_shift_access",
        "first_seen",
    }
    by_family = {f: {c for c, s in CATALOGUE.items() if s.family == f} for f in get_args(Family)}
    assert by_family["volume"] == {"bulk_access", "export_volume"}
    assert by_family["model"] == {"behaviour_anomaly"}
    assert by_family["policy"] == POLICY_CODES
    # Every code is in exactly one family.
    assert sum(len(v) for v in by_family.values()) == len(CATALOGUE)
    # A policy violation outweighs any one piece of soft evidence.
    assert min(CATALOGUE[c].weight for c in POLICY_CODES) > max(
        CATALOGUE[c].weight for c in SOFT_CODES
    )


def test_every_rule_code_is_in_the_catalogue_and_the_rule_order_is_stable() -> None:
    assert [r.__name__ for r in RULES] == [
        "unassigned_customer_access",
        "other_branch_customer_access",
        "credit_report_without_authorization",
        "inactive_staff_activity",
        "related_customer_access",
        "sensitive_customer_access",
        "statement_export_unassigned",
        "off_shift_access",
    ]
    for rule in RULES:
        assert rule.__name__ in CATALOGUE


def test_unknown_code_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="no_such_code"):
        spec("no_such_code")


def test_every_signal_carries_its_catalogue_weight() -> None:
    state = world(status="terminated", shift=("09:00", "10:00"))
    probes = [
        enriched(state, customer_id=c, action=a, at=T0 + h * 3600.0)
        for c in ("C-OWN", "C-FAR", "C-VIP", "C-KIN", "C-MINE", "C-NOPROFILE")
        for a in ("credit_report_query", "export_statement", "view_profile")
        for h in (0, 8)
    ]
    seen: set[str] = set()
    for e in probes:
        for sig in evaluate_rules(e):
            assert sig.weight == CATALOGUE[sig.code].weight
            assert sig.summary
            seen.add(sig.code)
    # Every rule fired at least once over these probes.
    assert seen == {r.__name__ for r in RULES}


def test_no_signal_for_normal_work() -> None:
    e = enriched(world(), customer_id="C-MINE", action="view_balance")
    assert evaluate_rules(e) == []


# --- unassigned access (the customer-manager rule) -------------------------------------


def test_unassigned_customer_manager_fires() -> None:
    e = enriched(world())
    sig = rules.unassigned_customer_access(e)
    assert sig is not None and sig.code == "unassigned_customer_access"
    assert "view_profile" in sig.summary
    assert "unassigned_customer_access" in codes(e)


def test_loan_officer_is_a_portfolio_role_too() -> None:
    assert rules.unassigned_customer_access(enriched(world("loan_officer"))) is not None


def test_unassigned_customer_without_a_profile_is_still_unassigned() -> None:
    e = enriched(world(), customer_id="C-NOPROFILE")
    assert not e.known_customer
    assert rules.unassigned_customer_access(e) is not None
    assert rules.other_branch_customer_access(e) is None


def test_assigned_customer_manager_does_not_fire() -> None:
    assert rules.unassigned_customer_access(enriched(world(), customer_id="C-MINE")) is None


def test_assignment_is_judged_at_access_time() -> None:
    state = world()
    revoke = Assignment("S1", "C-MINE", "relationship_manager", ts(T0 - 1), None, "revoke")
    state.apply_assignment(revoke)
    assert rules.unassigned_customer_access(enriched(state, customer_id="C-MINE")) is not None
    assert rules.unassigned_customer_access(enriched(state, "C-MINE", at=T0 - 2)) is None


def test_teller_unassigned_gives_no_customer_manager_signal() -> None:
    e = enriched(world("teller"))
    assert not e.assigned and e.role == "teller"
    assert rules.unassigned_customer_access(e) is None
    assert "unassigned_customer_access" not in codes(e)


@pytest.mark.parametrize("role", sorted(ROLES - {"customer_manager", "loan_officer"}))
def test_non_portfolio_roles_do_not_fire_unassigned(role: Role) -> None:
    assert rules.unassigned_customer_access(enriched(world(role))) is None


def test_unknown_staff_does_not_fire_unassigned_rule() -> None:
    e = enriched(world(), staff_id="S-NOBODY")
    assert not e.known_staff
    assert rules.unassigned_customer_access(e) is None
    assert rules.other_branch_customer_access(enriched(world(), "C-FAR", staff_id="S-X")) is None


def test_search_without_customer_fires_no_customer_rule() -> None:
    e = enriched(world(), customer_id=None, action="search_customers", at=T0 + 14 * 3600)
    for rule in (
        rules.unassigned_customer_access,
        rules.other_branch_customer_access,
        rules.related_customer_access,
        rules.sensitive_customer_access,
        rules.statement_export_unassigned,
        rules.off_shift_access,
    ):
        assert rule(e) is None, rule.__name__
    assert codes(e) == set()


def test_other_branch_customer_is_its_own_reason() -> None:
    e = enriched(world(), customer_id="C-FAR")
    assert rules.unassigned_customer_access(e) is None
    sig = rules.other_branch_customer_access(e)
    assert sig is not None and "BR2" in sig.summary and "BR1" in sig.summary
    assert rules.other_branch_customer_access(enriched(world(), "C-OWN")) is None
    assert rules.other_branch_customer_access(enriched(world(), "C-MINE")) is None


@pytest.mark.parametrize("role", ["auditor", "operations", "it_support"])
def test_cross_branch_roles_do_not_fire_other_branch(role: Role) -> None:
    assert rules.other_branch_customer_access(enriched(world(role), "C-FAR")) is None


def test_teller_other_branch_walk_in_has_full_catalogue_weight() -> None:
    # Habituation is statistical now (behaviour.py); the rule no longer scales tellers down.
    sig = rules.other_branch_customer_access(enriched(world("teller"), "C-FAR"))
    assert sig is not None
    assert sig.weight == CATALOGUE["other_branch_customer_access"].weight


# --- credit reports --------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLES))
def test_credit_report_without_authorization_fires_for_any_role(role: Role) -> None:
    e = enriched(world(role), customer_id="C-MINE", action="credit_report_query")
    sig = rules.credit_report_without_authorization(e)
    assert sig is not None and sig.code == "credit_report_without_authorization"


def test_one_credit_report_without_authorization_opens_a_medium_alert_a_second_a_high_one() -> None:
    from pipeline.alerts.ids import Pseudonymizer
    from pipeline.alerts.incidents import IncidentTracker, Risk

    def query(customer: str, at: float) -> tuple[Enriched, Signal]:
        e = enriched(
            world(), customer_id=customer, action="credit_report_query", at=at, event_id=customer
        )
        s = rules.credit_report_without_authorization(e)
        assert s is not None
        return e, s

    (e1, mine), (e2, stranger) = query("C-MINE", T0), query("C-OWN", T0 + 60.0)
    assert mine.weight == stranger.weight >= RiskConfig().open_at, "an alert from the first"
    assert "assigned customer" in mine.summary and "unassigned customer" in stranger.summary
    tracker, st = IncidentTracker(RiskConfig(), Pseudonymizer("k")), Risk()
    first = tracker.observe(st, "S1", e2, [stranger], 0, 0.0)
    assert [r.alert.severity for r in first] == ["medium"], "the form may be on file"
    second = tracker.observe(st, "S1", e1, [mine], 0, 0.0)
    assert [r.alert.severity for r in second] == ["high"]


def test_credit_report_with_authorization_does_not_fire() -> None:
    e = enriched(world(), "C-MINE", action="credit_report_query", authorization_ref="AUTH-1")
    assert rules.credit_report_without_authorization(e) is None
    assert evaluate_rules(e) == []


def test_empty_authorization_ref_counts_as_none() -> None:
    e = enriched(world(), "C-MINE", action="credit_report_query", authorization_ref="")
    assert rules.credit_report_without_authorization(e) is not None


@pytest.mark.parametrize("action", sorted(ACTIONS - {"credit_report_query"}))
def test_other_actions_do_not_fire_credit_rule(action: Action) -> None:
    e = enriched(world(), customer_id="C-MINE", action=action)
    assert rules.credit_report_without_authorization(e) is None


# --- staff status ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["terminated", "transferred", "on_leave"])
def test_inactive_staff_fires(status: StaffStatus) -> None:
    state = world(status=status)
    sig = rules.inactive_staff_activity(enriched(state, customer_id="C-MINE"))
    assert sig is not None and status in sig.summary
    # Before the status change took effect, the same access is fine.
    assert rules.inactive_staff_activity(enriched(state, "C-MINE", at=T0 - 2 * DAY)) is None


def test_active_staff_and_denied_attempts_do_not_fire_inactive() -> None:
    assert rules.inactive_staff_activity(enriched(world(), customer_id="C-MINE")) is None
    denied = enriched(world(status="terminated"), customer_id="C-MINE", outcome="denied")
    assert rules.inactive_staff_activity(denied) is None
    ghost = enriched(world(), staff_id="S-GHOST", outcome="denied")
    assert rules.inactive_staff_activity(ghost) is None


def test_unknown_operator_fires_inactive() -> None:
    sig = rules.inactive_staff_activity(enriched(world(), staff_id="S-GHOST"))
    assert sig is not None and "unknown" in sig.summary
    # Known to HR only from a later date: unknown at the time of the access.
    state = world()
    early = enriched(state, customer_id="C-MINE", at=T0 - 31 * DAY)
    assert not early.known_staff
    assert rules.inactive_staff_activity(early) is not None


# --- customers -------------------------------------------------------------------------


def test_related_customer_fires_only_for_the_related_staff() -> None:
    state = world()
    assert rules.related_customer_access(enriched(state, customer_id="C-KIN")) is not None
    assert rules.related_customer_access(enriched(state, customer_id="C-OWN")) is None
    state.apply_staff(StaffRecord("S2", "BR1", "customer_manager", "active", ts(T0 - DAY)))
    assert rules.related_customer_access(enriched(state, "C-KIN", staff_id="S2")) is None


def test_related_customer_fires_even_when_assigned() -> None:
    state = world()
    state.apply_assignment(Assignment("S1", "C-KIN", "backup", ts(T0 - DAY), None))
    e = enriched(state, customer_id="C-KIN")
    assert e.assigned
    assert rules.related_customer_access(e) is not None


def test_sensitive_customer_outside_assignment() -> None:
    state = world()
    sig = rules.sensitive_customer_access(enriched(state, customer_id="C-VIP"))
    assert sig is not None and "vip" in sig.summary
    assert rules.sensitive_customer_access(enriched(state, customer_id="C-OWN")) is None
    assert rules.sensitive_customer_access(enriched(world("auditor"), "C-VIP")) is None
    state.apply_assignment(Assignment("S1", "C-VIP", "backup", ts(T0 - DAY), None))
    assert rules.sensitive_customer_access(enriched(state, customer_id="C-VIP")) is None


def test_sensitive_customer_exceptions_by_role_and_channel() -> None:
    # A teller's walk-in at their own branch, whoever the customer is...
    assert rules.sensitive_customer_access(enriched(world("teller"), "C-VIP")) is None
    # ...but not another branch's sensitive customer.
    assert rules.sensitive_customer_access(enriched(world("teller"), "C-FARVIP")) is not None
    # Batch runs by operations cover everyone; the same person online does not.
    ops = world("operations")
    batch = enriched(ops, "C-VIP", channel="back_office_batch")
    assert rules.sensitive_customer_access(batch) is None
    assert rules.sensitive_customer_access(enriched(ops, "C-VIP", channel="crm_web")) is not None


def test_sensitive_related_customer_is_the_related_reason_only() -> None:
    state = world()
    state.apply_profile(CustomerProfile("C-KIN", "BR1", "retail", "employee", ["S1"], ts(T0)))
    e = enriched(state, customer_id="C-KIN")
    assert e.sensitivity == "employee" and e.related
    assert rules.sensitive_customer_access(e) is None
    assert "related_customer_access" in codes(e)


@pytest.mark.parametrize("action", ["export_statement", "print_statement"])
def test_statement_export_unassigned(action: Action) -> None:
    sig = rules.statement_export_unassigned(enriched(world(), action=action))
    assert sig is not None and "1 records" in sig.summary
    assert rules.statement_export_unassigned(enriched(world(), "C-MINE", action=action)) is None
    assert rules.statement_export_unassigned(enriched(world("teller"), action=action)) is None
    assert rules.statement_export_unassigned(enriched(world("operations"), action=action)) is None
    assert rules.statement_export_unassigned(enriched(world(), action="view_balance")) is None
    # A teller printing for another branch's customer is a finding.
    far = enriched(world("teller"), "C-FAR", action=action)
    assert rules.statement_export_unassigned(far) is not None


# --- shifts ----------------------------------------------------------------------------


def test_off_shift_access_in_local_time() -> None:
    state = world(shift=("09:00", "17:00"))
    night = parse_ts("2026-03-02T23:30:00+08:00")
    sig = rules.off_shift_access(enriched(state, at=night))
    assert sig is not None and "23:30" in sig.summary
    assert rules.off_shift_access(enriched(state, at=T0)) is None
    # Within the grace period after the shift ends, and just past it.
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T17:45:00+08:00"))) is None
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T18:01:00+08:00")))
    # Assigned customers and batch jobs are not off-shift findings.
    assert rules.off_shift_access(enriched(state, customer_id="C-MINE", at=night)) is None
    batch = enriched(state, at=night, channel="back_office_batch")
    assert rules.off_shift_access(batch) is None


def test_off_shift_without_a_shift_uses_the_default_day() -> None:
    state = world()  # no shift: 07:00-20:00, with an hour's grace
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T20:59:00+08:00"))) is None
    late = rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T21:01:00+08:00")))
    assert late is not None and "21:01" in late.summary


def test_off_shift_uses_the_staff_timezone() -> None:
    state = world("teller", shift=("09:00", "17:00"), timezone="Europe/London")
    # 23:30 in Shanghai is 15:30 in London: inside the shift.
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T23:30:00+08:00"))) is None
    # 12:00 in Shanghai is 04:00 in London: outside.
    sig = rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T12:00:00+08:00")))
    assert sig is not None and "04:00" in sig.summary


def test_off_shift_follows_daylight_saving_time() -> None:
    state = world(shift=("09:00", "17:00"), timezone="Europe/London")
    # 07:30 UTC is 07:30 in London in winter (outside 08:00-18:00) and 08:30 in summer.
    winter = enriched(state, at=parse_ts("2026-03-20T07:30:00Z"))
    summer = enriched(state, at=parse_ts("2026-07-01T07:30:00Z"))
    assert rules.off_shift_access(winter) is not None
    assert rules.off_shift_access(summer) is None


def test_off_shift_across_midnight() -> None:
    state = world(shift=("22:00", "06:00"))
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T02:00:00+08:00"))) is None
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T12:00:00+08:00")))


def test_rules_fire_together_in_rule_order() -> None:
    e = enriched(world(), action="credit_report_query")
    got = [s.code for s in evaluate_rules(e)]
    assert got == ["unassigned_customer_access", "credit_report_without_authorization"]
    e = enriched(world(status="terminated"), "C-FARVIP", action="export_statement")
    assert [s.code for s in evaluate_rules(e)] == [
        "other_branch_customer_access",
        "inactive_staff_activity",
        "sensitive_customer_access",
        "statement_export_unassigned",
    ]


# --- outside_shift ---------------------------------------------------------------------


def hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


@pytest.mark.parametrize(
    ("minute", "start", "end", "outside"),
    [
        ("07:59", "09:00", "17:00", True),
        ("08:00", "09:00", "17:00", False),  # the grace edges are inside
        ("18:00", "09:00", "17:00", False),
        ("18:01", "09:00", "17:00", True),
        ("00:00", "09:00", "17:00", True),
        ("23:59", "09:00", "17:00", True),
        ("21:00", "22:00", "06:00", False),  # across midnight
        ("03:00", "22:00", "06:00", False),
        ("07:00", "22:00", "06:00", False),
        ("07:01", "22:00", "06:00", True),
        ("20:59", "22:00", "06:00", True),
        ("00:30", "23:30", "23:50", False),  # the grace wraps past midnight
        ("01:00", "23:30", "23:50", True),
    ],
)
def test_outside_shift(minute: str, start: str, end: str, outside: bool) -> None:
    assert outside_shift(hm(minute), start, end) is outside


def test_outside_shift_defaults_and_grace() -> None:
    lo, hi = DEFAULT_SHIFT[0] - GRACE_MINUTES, DEFAULT_SHIFT[1] + GRACE_MINUTES
    assert not outside_shift(lo, None, None) and outside_shift(lo - 1, None, None)
    assert not outside_shift(hi, None, None) and outside_shift(hi + 1, None, None)
    # An empty shift reads as unknown, and either end may be missing alone.
    assert outside_shift(hm("22:00"), "", "") is outside_shift(hm("22:00"), None, None)
    assert not outside_shift(hm("20:30"), "09:00", None)
    assert outside_shift(hm("21:30"), "09:00", None)
    assert outside_shift(hm("05:30"), None, "17:00")
    assert not outside_shift(hm("06:30"), None, "17:00")
    assert outside_shift(hm("08:30"), "09:00", "17:00", grace=0)


@pytest.mark.parametrize("timezone", ["Asia/Shanghai", "America/New_York", "UTC"])
def test_the_local_minute_is_the_employees_and_is_computed_once(timezone: str) -> None:
    from pipeline.core.calendar import calendar

    e = enriched(world(timezone=timezone))
    assert e.minute == -1
    assert local_minute(e) == calendar(timezone).minute(e.at)
    assert e.minute == local_minute(e), "kept on the access for the other tests of it"
