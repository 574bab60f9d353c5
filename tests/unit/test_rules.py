"""Stateless rules over one enriched access, and the reason-code catalogue."""

from __future__ import annotations

import pytest

from pipeline.detect.catalogue import CATALOGUE, spec
from pipeline.detect.rules import (
    RULES,
    credit_report_without_authorization,
    evaluate_rules,
    unassigned_customer_access,
)
from pipeline.records import ACTIONS, ROLES, AccessEvent, Assignment, StaffRecord
from pipeline.reference.state import Enriched, ReferenceState
from pipeline.timeutil import parse_ts

T0 = parse_ts("2026-03-02T09:00:00+08:00")
DAY = 86400.0


def world(role: str = "customer_manager") -> ReferenceState:
    state = ReferenceState()
    state.apply_staff(StaffRecord("S1", "BR1", role, "active", T0 - 30 * DAY))
    state.apply_assignment(Assignment("S1", "C-MINE", "relationship_manager", T0 - DAY, None))
    return state


def enriched(
    state: ReferenceState,
    customer_id: str | None = "C-OTHER",
    action: str = "view_profile",
    authorization_ref: str | None = None,
    staff_id: str = "S1",
) -> Enriched:
    ev = AccessEvent(
        event_id="e1",
        occurred_at=T0,
        staff_id=staff_id,
        customer_id=customer_id,
        action=action,
        channel="branch_terminal",
        branch_id="BR1",
        authorization_ref=authorization_ref,
    )
    return state.enrich(ev)


def test_catalogue_holds_every_rule_code() -> None:
    state = world()
    sig_codes = {s.code for s in evaluate_rules(enriched(state, action="credit_report_query"))}
    assert sig_codes == set(CATALOGUE)
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert entry.weight > 0
        assert spec(code) is entry
    assert len(RULES) == len(CATALOGUE)


def test_unknown_code_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="no_such_code"):
        spec("no_such_code")


def test_unassigned_customer_manager_fires() -> None:
    sig = unassigned_customer_access(enriched(world()))
    assert sig is not None
    assert sig.code == "unassigned_customer_access"
    assert sig.weight == CATALOGUE["unassigned_customer_access"].weight
    assert "S1" in sig.summary and "view_profile" in sig.summary


def test_assigned_customer_manager_does_not_fire() -> None:
    assert unassigned_customer_access(enriched(world(), customer_id="C-MINE")) is None


def test_assignment_is_judged_at_access_time() -> None:
    state = world()
    state.apply_assignment(Assignment("S1", "C-MINE", "relationship_manager", T0 - 1, None, "revoke"))
    assert unassigned_customer_access(enriched(state, customer_id="C-MINE")) is not None


@pytest.mark.parametrize("role", sorted(ROLES - {"customer_manager"}))
def test_other_roles_unassigned_do_not_fire(role: str) -> None:
    e = enriched(world(role))
    assert not e.assigned and e.role == role
    assert unassigned_customer_access(e) is None


def test_unknown_staff_does_not_fire_unassigned_rule() -> None:
    e = enriched(world(), staff_id="S-NOBODY")
    assert not e.known_staff
    assert unassigned_customer_access(e) is None


def test_search_without_customer_does_not_fire_unassigned_rule() -> None:
    e = enriched(world(), customer_id=None, action="search_customers")
    assert unassigned_customer_access(e) is None
    assert evaluate_rules(e) == []


@pytest.mark.parametrize("role", sorted(ROLES))
def test_credit_report_without_authorization_fires_for_any_role(role: str) -> None:
    e = enriched(world(role), customer_id="C-MINE", action="credit_report_query")
    sig = credit_report_without_authorization(e)
    assert sig is not None
    assert sig.code == "credit_report_without_authorization"
    assert sig.weight == CATALOGUE["credit_report_without_authorization"].weight


def test_credit_report_with_authorization_does_not_fire() -> None:
    e = enriched(world(), customer_id="C-MINE", action="credit_report_query", authorization_ref="A1")
    assert credit_report_without_authorization(e) is None
    assert evaluate_rules(e) == []


@pytest.mark.parametrize("action", sorted(ACTIONS - {"credit_report_query", "search_customers"}))
def test_other_actions_do_not_fire_credit_rule(action: str) -> None:
    e = enriched(world(), customer_id="C-MINE", action=action)
    assert credit_report_without_authorization(e) is None
    assert evaluate_rules(e) == []


def test_both_rules_fire_together_in_rule_order() -> None:
    e = enriched(world(), action="credit_report_query")
    codes = [s.code for s in evaluate_rules(e)]
    assert codes == ["unassigned_customer_access", "credit_report_without_authorization"]
