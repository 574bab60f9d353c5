"""Stateless rules over one enriched access, and the reason-code catalogue."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.contract.records import (
    ACTIONS,
    ROLES,
    AccessEvent,
    Assignment,
    CustomerProfile,
    StaffRecord,
)
from pipeline.detect import rules
from pipeline.detect.catalogue import CATALOGUE, spec
from pipeline.detect.rules import RULES, evaluate_rules
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched, ReferenceState
from pipeline.timeutil import parse_ts

DAY = 86400.0
# 09:00 in Asia/Shanghai (the default timezone): inside any default shift.
T0 = parse_ts("2026-03-02T09:00:00+08:00")
Rule = Callable[[Enriched], Signal | None]


def world(
    role: str = "customer_manager",
    status: str = "active",
    shift: tuple[str, str] | None = None,
) -> ReferenceState:
    """S1 of BR1; C-MINE assigned to S1; profiles: own-branch, other-branch, vip, related."""
    state = ReferenceState()
    start, end = shift if shift else (None, None)
    state.apply_staff(StaffRecord("S1", "BR1", role, "active", T0 - 30 * DAY, start, end))
    if status != "active":
        state.apply_staff(StaffRecord("S1", "BR1", role, status, T0 - DAY, start, end))
    state.apply_assignment(Assignment("S1", "C-MINE", "relationship_manager", T0 - DAY, None))
    for cid, branch, sens, related in (
        ("C-MINE", "BR1", "normal", ()),
        ("C-OWN", "BR1", "normal", ()),
        ("C-FAR", "BR2", "normal", ()),
        ("C-VIP", "BR1", "vip", ()),
        ("C-KIN", "BR1", "normal", ("S1",)),
    ):
        state.apply_profile(CustomerProfile(cid, branch, "retail", sens, related, T0 - DAY))
    return state


def enriched(
    state: ReferenceState,
    customer_id: str | None = "C-OWN",
    action: str = "view_profile",
    authorization_ref: str | None = None,
    staff_id: str = "S1",
    at: float = T0,
    outcome: str = "success",
    channel: str = "branch_terminal",
) -> Enriched:
    ev = AccessEvent(
        event_id="e1",
        occurred_at=at,
        staff_id=staff_id,
        customer_id=customer_id,
        action=action,
        channel=channel,
        branch_id="BR1",
        authorization_ref=authorization_ref,
        outcome=outcome,
    )
    return state.enrich(ev)


def codes(e: Enriched) -> set[str]:
    return {s.code for s in evaluate_rules(e)}


# --- catalogue -----------------------------------------------------------------------


def test_catalogue_entries_are_consistent() -> None:
    assert CATALOGUE
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert entry.weight > 0
        assert entry.title
        assert spec(code) is entry


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
    assert len(seen) == len(RULES)


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


def test_assigned_customer_manager_does_not_fire() -> None:
    assert rules.unassigned_customer_access(enriched(world(), customer_id="C-MINE")) is None


def test_assignment_is_judged_at_access_time() -> None:
    state = world()
    revoke = Assignment("S1", "C-MINE", "relationship_manager", T0 - 1, None, "revoke")
    state.apply_assignment(revoke)
    assert rules.unassigned_customer_access(enriched(state, customer_id="C-MINE")) is not None
    assert rules.unassigned_customer_access(enriched(state, "C-MINE", at=T0 - 2)) is None


def test_teller_unassigned_gives_no_customer_manager_signal() -> None:
    e = enriched(world("teller"))
    assert not e.assigned and e.role == "teller"
    assert rules.unassigned_customer_access(e) is None
    assert "unassigned_customer_access" not in codes(e)


@pytest.mark.parametrize("role", sorted(ROLES - {"customer_manager", "loan_officer"}))
def test_non_portfolio_roles_do_not_fire_unassigned(role: str) -> None:
    assert rules.unassigned_customer_access(enriched(world(role))) is None


def test_unknown_staff_does_not_fire_unassigned_rule() -> None:
    e = enriched(world(), staff_id="S-NOBODY")
    assert not e.known_staff
    assert rules.unassigned_customer_access(e) is None


def test_search_without_customer_fires_no_customer_rule() -> None:
    e = enriched(world(), customer_id=None, action="search_customers")
    for rule in (
        rules.unassigned_customer_access,
        rules.other_branch_customer_access,
        rules.related_customer_access,
        rules.sensitive_customer_access,
        rules.statement_export_unassigned,
    ):
        assert rule(e) is None, rule.__name__
    assert codes(e) == set()


def test_other_branch_customer_is_its_own_reason() -> None:
    e = enriched(world(), customer_id="C-FAR")
    assert rules.unassigned_customer_access(e) is None
    sig = rules.other_branch_customer_access(e)
    assert sig is not None and "BR2" in sig.summary
    assert rules.other_branch_customer_access(enriched(world("auditor"), "C-FAR")) is None
    assert rules.other_branch_customer_access(enriched(world(), "C-OWN")) is None


# --- credit reports --------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLES))
def test_credit_report_without_authorization_fires_for_any_role(role: str) -> None:
    e = enriched(world(role), customer_id="C-MINE", action="credit_report_query")
    sig = rules.credit_report_without_authorization(e)
    assert sig is not None and sig.code == "credit_report_without_authorization"


def test_credit_report_with_authorization_does_not_fire() -> None:
    e = enriched(world(), "C-MINE", action="credit_report_query", authorization_ref="AUTH-1")
    assert rules.credit_report_without_authorization(e) is None
    assert evaluate_rules(e) == []


@pytest.mark.parametrize("action", sorted(ACTIONS - {"credit_report_query"}))
def test_other_actions_do_not_fire_credit_rule(action: str) -> None:
    e = enriched(world(), customer_id="C-MINE", action=action)
    assert rules.credit_report_without_authorization(e) is None


# --- staff status ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["terminated", "transferred", "on_leave"])
def test_inactive_staff_fires(status: str) -> None:
    state = world(status=status)
    sig = rules.inactive_staff_activity(enriched(state, customer_id="C-MINE"))
    assert sig is not None and status in sig.summary
    # Before the status change took effect, the same access is fine.
    assert rules.inactive_staff_activity(enriched(state, "C-MINE", at=T0 - 2 * DAY)) is None


def test_active_staff_and_denied_attempts_do_not_fire_inactive() -> None:
    assert rules.inactive_staff_activity(enriched(world(), customer_id="C-MINE")) is None
    denied = enriched(world(status="terminated"), customer_id="C-MINE", outcome="denied")
    assert rules.inactive_staff_activity(denied) is None


def test_unknown_operator_fires_inactive() -> None:
    assert rules.inactive_staff_activity(enriched(world(), staff_id="S-GHOST")) is not None


# --- customers -------------------------------------------------------------------------


def test_related_customer_fires_only_for_the_related_staff() -> None:
    state = world()
    assert rules.related_customer_access(enriched(state, customer_id="C-KIN")) is not None
    assert rules.related_customer_access(enriched(state, customer_id="C-OWN")) is None
    state.apply_staff(StaffRecord("S2", "BR1", "customer_manager", "active", T0 - DAY))
    assert rules.related_customer_access(enriched(state, "C-KIN", staff_id="S2")) is None


def test_sensitive_customer_outside_assignment() -> None:
    state = world()
    assert rules.sensitive_customer_access(enriched(state, customer_id="C-VIP")) is not None
    assert rules.sensitive_customer_access(enriched(state, customer_id="C-OWN")) is None
    assert rules.sensitive_customer_access(enriched(world("auditor"), "C-VIP")) is None
    state.apply_assignment(Assignment("S1", "C-VIP", "backup", T0 - DAY, None))
    assert rules.sensitive_customer_access(enriched(state, customer_id="C-VIP")) is None


@pytest.mark.parametrize("action", ["export_statement", "print_statement"])
def test_statement_export_unassigned(action: str) -> None:
    assert rules.statement_export_unassigned(enriched(world(), action=action)) is not None
    assert rules.statement_export_unassigned(enriched(world(), "C-MINE", action=action)) is None
    assert rules.statement_export_unassigned(enriched(world("teller"), action=action)) is None
    assert rules.statement_export_unassigned(enriched(world(), action="view_balance")) is None


# --- shifts ----------------------------------------------------------------------------


def test_off_shift_access_in_local_time() -> None:
    state = world(shift=("09:00", "17:00"))
    night = parse_ts("2026-03-02T23:30:00+08:00")
    sig = rules.off_shift_access(enriched(state, at=night))
    assert sig is not None and "23:30" in sig.summary
    assert rules.off_shift_access(enriched(state, at=T0)) is None
    # Within the grace period after the shift ends.
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T17:45:00+08:00"))) is None
    # Assigned customers and batch jobs are not off-shift findings.
    assert rules.off_shift_access(enriched(state, customer_id="C-MINE", at=night)) is None
    batch = enriched(state, at=night, channel="back_office_batch")
    assert rules.off_shift_access(batch) is None


def test_off_shift_uses_the_staff_timezone() -> None:
    state = ReferenceState()
    state.apply_staff(
        StaffRecord("S1", "BR1", "teller", "active", T0 - DAY, "09:00", "17:00", "Europe/London")
    )
    # 23:30 in Shanghai is 15:30 in London: inside the shift.
    assert rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T23:30:00+08:00"))) is None
    # 12:00 in Shanghai is 04:00 in London: outside.
    assert (
        rules.off_shift_access(enriched(state, at=parse_ts("2026-03-02T12:00:00+08:00")))
        is not None
    )


def test_rules_fire_together_in_rule_order() -> None:
    e = enriched(world(), action="credit_report_query")
    got = [s.code for s in evaluate_rules(e)]
    assert got == ["unassigned_customer_access", "credit_report_without_authorization"]
    order = [r.__name__ for r in RULES]
    assert order.index("unassigned_customer_access") < order.index(
        "credit_report_without_authorization"
    )
