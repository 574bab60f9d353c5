"""ReferenceState: everything judged at the access's own occurred_at; apply_reference_record."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
import pytest

from pipeline.contract.decode import DecodeError
from pipeline.contract.records import (
    AccessEvent,
    Action,
    Assignment,
    AssignmentOp,
    CustomerProfile,
    Relation,
    Role,
    Segment,
    Sensitivity,
    StaffStatus,
)
from pipeline.contract.records import StaffRecord as Staff
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import Enriched, ReferenceState
from pipeline.timeutil import format_ts, parse_ts

DAY = 86400.0
T0 = parse_ts("2026-03-01T00:00:00Z")
SEGMENTS = get_args(Segment)
SENSITIVITIES = get_args(Sensitivity)


def ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def access(
    at: float,
    staff_id: str = "S1",
    customer_id: str | None = "C1",
    action: Action = "view_balance",
) -> AccessEvent:
    return AccessEvent(
        event_id=f"ev-{staff_id}-{customer_id}-{at}",
        occurred_at=ts(at),
        staff_id=staff_id,
        customer_id=customer_id,
        action=action,
        channel="crm_web",
        branch_id="BR-T",
    )


def look(state: ReferenceState, at: float, **kw: Any) -> Enriched:
    """Enrich an access at ``at``, as the engine does (with its epoch seconds)."""
    event = access(at, **kw)
    e = state.enrich(event, event.occurred_at.timestamp())
    assert e.event is event and e.at == at
    return e


def staff(
    effective_at: float,
    staff_id: str = "S1",
    branch_id: str = "BR1",
    role: Role = "customer_manager",
    status: StaffStatus = "active",
) -> Staff:
    return Staff(staff_id, branch_id, role, status, ts(effective_at))


def assign(
    valid_from: float,
    valid_to: float | None = None,
    staff_id: str = "S1",
    customer_id: str = "C1",
    op: AssignmentOp = "assign",
    relation: Relation = "relationship_manager",
) -> Assignment:
    return Assignment(
        staff_id,
        customer_id,
        relation,
        ts(valid_from),
        None if valid_to is None else ts(valid_to),
        op,
    )


def profile(
    customer_id: str = "C1",
    home_branch_id: str = "BR1",
    segment: Segment = "retail",
    sensitivity: Sensitivity = "normal",
    related: tuple[str, ...] = (),
    updated_at: float = T0,
) -> CustomerProfile:
    return CustomerProfile(
        customer_id, home_branch_id, segment, sensitivity, list(related), ts(updated_at)
    )


# --- staff history -------------------------------------------------------------------


def test_unknown_staff_and_unknown_customer() -> None:
    state = ReferenceState()
    e = look(state, T0)
    assert not e.known_staff
    assert e.role is None and e.staff_branch_id is None and e.status is None
    assert e.shift_start is None and e.shift_end is None
    assert e.timezone == "Asia/Shanghai"
    assert not e.known_customer
    assert e.home_branch_id is None and e.segment is None and e.sensitivity is None
    assert not e.assigned and e.relation is None and not e.related


def test_enrich_judges_at_the_time_it_is_given() -> None:
    """``at`` is the access's time for every lookup (the engine passes occurred_at)."""
    state = ReferenceState()
    state.apply_staff(staff(T0))
    state.apply_assignment(assign(T0 + DAY))
    event = access(T0 + 2 * DAY)
    late = state.enrich(event, T0 + 2 * DAY)
    early = state.enrich(event, T0 - 1)
    assert late.known_staff and late.assigned and late.at == T0 + 2 * DAY
    assert not early.known_staff and not early.assigned and early.at == T0 - 1


def test_access_before_the_first_staff_record_sees_no_staff() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    assert not look(state, T0 - 1).known_staff
    assert look(state, T0).known_staff
    assert state.staff_at("S1", T0 - 1) is None
    found = state.staff_at("S1", T0)
    assert found is not None and found.effective_at == T0


def test_transfer_splits_history_at_its_effective_time() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0, branch_id="BR-OLD"))
    transfer = T0 + 10 * DAY
    state.apply_staff(staff(transfer, branch_id="BR-NEW"))
    assert look(state, transfer - 1).staff_branch_id == "BR-OLD"
    assert look(state, transfer).staff_branch_id == "BR-NEW"
    assert look(state, transfer + DAY).staff_branch_id == "BR-NEW"
    assert not look(state, T0 - 1).known_staff


def test_future_termination_does_not_change_an_earlier_access() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    leaves = T0 + 30 * DAY
    state.apply_staff(staff(leaves, status="terminated"))
    earlier = look(state, T0 + 5 * DAY)
    assert earlier.status == "active"
    assert earlier.role == "customer_manager"
    assert look(state, leaves + 1).status == "terminated"


def test_past_termination_applies_to_an_access_arriving_now() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    now = T0 + 20 * DAY
    # HR publishes late: the termination took effect a week before the access.
    state.apply_staff(staff(now - 7 * DAY, status="terminated"))
    assert look(state, now).status == "terminated"
    assert look(state, now - 8 * DAY).status == "active"


def test_staff_versions_arriving_out_of_order_give_the_same_history() -> None:
    in_order = ReferenceState()
    reversed_ = ReferenceState()
    versions = [
        staff(T0, branch_id="BR1"),
        staff(T0 + 5 * DAY, branch_id="BR2", role="teller"),
        staff(T0 + 9 * DAY, branch_id="BR2", status="terminated"),
    ]
    for v in versions:
        in_order.apply_staff(v)
    for v in reversed(versions):
        reversed_.apply_staff(v)
    probes = [T0 - 1, T0, T0 + DAY, T0 + 5 * DAY, T0 + 6 * DAY, T0 + 9 * DAY, T0 + 99 * DAY]
    seen = []
    for at in probes:
        a, b = look(in_order, at), look(reversed_, at)
        assert a == b
        seen.append((a.staff_branch_id, a.role, a.status))
    assert seen == [
        (None, None, None),
        ("BR1", "customer_manager", "active"),
        ("BR1", "customer_manager", "active"),
        ("BR2", "teller", "active"),
        ("BR2", "teller", "active"),
        ("BR2", "customer_manager", "terminated"),
        ("BR2", "customer_manager", "terminated"),
    ]


def test_same_effective_at_replayed_is_idempotent_and_last_write_wins() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0, branch_id="BR1"))
    state.apply_staff(staff(T0 + DAY, branch_id="BR2"))
    snapshot = [look(state, T0 + d * DAY / 2) for d in range(4)]
    state.apply_staff(staff(T0, branch_id="BR1"))
    state.apply_staff(staff(T0 + DAY, branch_id="BR2"))
    assert [look(state, T0 + d * DAY / 2) for d in range(4)] == snapshot
    assert state.counts()["staff"] == 1
    # A correction with the same effective_at replaces the version instead of adding one.
    state.apply_staff(staff(T0, branch_id="BR9"))
    assert look(state, T0 + 1).staff_branch_id == "BR9"
    assert look(state, T0 + DAY + 1).staff_branch_id == "BR2"


def test_staff_tombstone_forgets_the_employee() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    state.apply_staff(staff(T0 + DAY, status="on_leave"))
    state.apply_staff(staff(T0, staff_id="S2"))
    state.delete_staff("S1")
    assert not look(state, T0 + 1).known_staff
    assert not look(state, T0 + 2 * DAY).known_staff
    assert look(state, T0 + 1, staff_id="S2").known_staff
    state.delete_staff("never-existed")
    assert state.counts()["staff"] == 1
    # A new record after the tombstone starts a fresh history.
    state.apply_staff(staff(T0 + 5 * DAY, branch_id="BR7"))
    assert not look(state, T0 + 2 * DAY).known_staff
    assert look(state, T0 + 6 * DAY).staff_branch_id == "BR7"


def test_shift_and_timezone_are_carried() -> None:
    state = ReferenceState()
    state.apply_staff(
        Staff("S1", "BR1", "teller", "active", ts(T0), "09:00", "17:30", "Europe/Paris")
    )
    e = look(state, T0 + 1)
    assert (e.shift_start, e.shift_end, e.timezone) == ("09:00", "17:30", "Europe/Paris")


def test_staff_timezone_defaults_to_shanghai() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    assert look(state, T0 + 1).timezone == "Asia/Shanghai"


# --- assignments ---------------------------------------------------------------------


def test_assignment_valid_only_inside_half_open_interval() -> None:
    state = ReferenceState()
    start, end = T0 + DAY, T0 + 3 * DAY
    state.apply_assignment(assign(start, end, relation="backup"))
    assert not look(state, start - 1).assigned
    inside = look(state, start)
    assert inside.assigned and inside.relation == "backup"
    assert look(state, end - 0.001).assigned
    assert not look(state, end).assigned
    assert not look(state, end + DAY).assigned
    found = state.assignment_at("S1", "C1", start)
    assert found is not None and (found.valid_from, found.valid_to) == (start, end)
    assert state.assignment_at("S1", "C1", end) is None


def test_open_ended_assignment_is_valid_forever_and_only_for_its_pair() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0))
    assert look(state, T0 + 1000 * DAY).assigned
    assert not look(state, T0 + 1, customer_id="C2").assigned
    assert not look(state, T0 + 1, staff_id="S2").assigned
    assert state.assigned_customers("S1", T0 + 1) == ["C1"]
    assert state.assigned_customers("S1", T0 - 1) == []
    assert state.assigned_customers("S2", T0 + 1) == []


def test_revoke_then_reassign() -> None:
    state = ReferenceState()
    revoked, reassigned = T0 + 2 * DAY, T0 + 5 * DAY
    state.apply_assignment(assign(T0))
    state.apply_assignment(assign(revoked, op="revoke"))
    state.apply_assignment(assign(reassigned, relation="service_team"))
    assert look(state, T0 + DAY).relation == "relationship_manager"
    assert not look(state, revoked).assigned
    assert not look(state, revoked + DAY).assigned
    after = look(state, reassigned + 1)
    assert after.assigned and after.relation == "service_team"
    assert state.counts()["assignment_pairs"] == 1


def test_revoke_removes_intervals_starting_after_it() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, T0 + DAY))
    state.apply_assignment(assign(T0 + 5 * DAY))
    state.apply_assignment(assign(T0 + 3 * DAY, op="revoke"))
    assert look(state, T0 + 1).assigned
    assert not look(state, T0 + 6 * DAY).assigned


def test_revoke_inside_an_interval_ends_it_there() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, T0 + 10 * DAY))
    state.apply_assignment(assign(T0 + 4 * DAY, op="revoke"))
    assert look(state, T0 + 4 * DAY - 1).assigned
    assert not look(state, T0 + 4 * DAY).assigned
    # The revoke is idempotent.
    state.apply_assignment(assign(T0 + 4 * DAY, op="revoke"))
    assert look(state, T0 + 4 * DAY - 1).assigned
    assert state.counts()["assignment_pairs"] == 1


def test_revoke_of_unknown_pair_is_harmless() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, op="revoke"))
    assert not look(state, T0 + 1).assigned
    assert state.counts()["assignment_pairs"] == 0


def test_assign_with_same_valid_from_replaces_the_interval() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, T0 + DAY))
    state.apply_assignment(assign(T0, T0 + DAY))
    assert state.counts()["assignment_pairs"] == 1
    state.apply_assignment(assign(T0, T0 + 10 * DAY, relation="loan_officer"))
    e = look(state, T0 + 5 * DAY)
    assert e.assigned and e.relation == "loan_officer"


def test_several_intervals_of_one_pair() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0 + 10 * DAY, T0 + 12 * DAY, relation="backup"))
    state.apply_assignment(assign(T0, T0 + 2 * DAY))
    state.apply_assignment(assign(T0 + 20 * DAY, relation="service_team"))
    expected = [
        (T0 + DAY, "relationship_manager"),
        (T0 + 5 * DAY, None),
        (T0 + 11 * DAY, "backup"),
        (T0 + 15 * DAY, None),
        (T0 + 30 * DAY, "service_team"),
    ]
    assert [(at, look(state, at).relation) for at, _ in expected] == expected
    assert state.counts()["assignment_pairs"] == 1


def test_assignment_tombstone_with_colon_in_customer_id() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, customer_id="CN:0042:7"))
    state.apply_assignment(assign(T0, customer_id="C1"))
    assert look(state, T0 + 1, customer_id="CN:0042:7").assigned
    state.delete_assignment_key("S1:CN:0042:7")
    assert not look(state, T0 + 1, customer_id="CN:0042:7").assigned
    assert look(state, T0 + 1, customer_id="C1").assigned
    assert state.counts()["assignment_pairs"] == 1
    state.delete_assignment_key("S1:C1")
    assert not look(state, T0 + 1, customer_id="C1").assigned
    assert state.counts()["assignment_pairs"] == 0
    state.delete_assignment_key("S1:C1")
    state.delete_assignment_key("no-colon")
    assert state.counts()["assignment_pairs"] == 0


def test_assignment_tombstone_with_colon_in_staff_id() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, staff_id="HR:7", customer_id="C1"))
    state.delete_assignment_key("HR:7:C1")
    assert not look(state, T0 + 1, staff_id="HR:7").assigned
    assert state.counts()["assignment_pairs"] == 0


# --- customer profiles ---------------------------------------------------------------


def test_related_staff_sets_related_only_for_them() -> None:
    state = ReferenceState()
    state.apply_profile(profile(related=("S1", "S7")))
    assert look(state, T0, staff_id="S1").related
    assert look(state, T0, staff_id="S7").related
    assert not look(state, T0, staff_id="S2").related
    assert state.counts()["profiles_non_normal_or_related"] == 1
    # The profile is updated (same updated_at: a correction): S1 no longer related.
    state.apply_profile(profile(related=()))
    assert not look(state, T0, staff_id="S1").related
    assert state.counts()["profiles_non_normal_or_related"] == 0


def test_profile_packing_round_trips_for_many_branches() -> None:
    state = ReferenceState()
    combos = list(itertools.product(sorted(SEGMENTS), sorted(SENSITIVITIES)))
    expected: dict[str, tuple[str, str, str]] = {}
    for i in range(300 * len(combos)):
        branch = f"BR{i % 300:03d}"
        seg, sens = combos[(i // 300 + i) % len(combos)]
        cid = f"C{i}"
        expected[cid] = (branch, seg, sens)
        state.apply_profile(profile(cid, branch, seg, sens))
    assert state.counts()["profiles"] == len(expected)
    notable = sum(1 for _, _, sens in expected.values() if sens != "normal")
    assert state.counts()["profiles_non_normal_or_related"] == notable
    for cid, want in expected.items():
        got = state.profile(cid)
        assert got is not None
        assert got[:3] == want and got[3] == frozenset()
        e = look(state, T0, customer_id=cid)
        assert e.known_customer
        assert (e.home_branch_id, e.segment, e.sensitivity) == want
    # Every (branch, segment, sensitivity) triple must have been exercised.
    assert len(set(expected.values())) == 300 * len(combos)


def test_profile_last_write_wins_and_tombstone() -> None:
    state = ReferenceState()
    state.apply_profile(profile(sensitivity="vip", related=("S9",)))
    state.apply_profile(profile(home_branch_id="BR2", segment="private", sensitivity="pep"))
    e = look(state, T0)
    assert (e.home_branch_id, e.segment, e.sensitivity) == ("BR2", "private", "pep")
    assert not look(state, T0, staff_id="S9").related
    assert state.counts()["profiles_non_normal_or_related"] == 1
    state.delete_profile("C1")
    assert not look(state, T0).known_customer
    assert state.profile("C1") is None
    assert state.counts()["profiles"] == 0
    assert state.counts()["profiles_non_normal_or_related"] == 0
    state.delete_profile("C1")
    assert state.counts()["profiles_non_normal_or_related"] == 0


def test_search_customers_without_customer_id() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    state.apply_assignment(assign(T0))
    state.apply_profile(profile(related=("S1",)))
    e = look(state, T0 + 1, customer_id=None, action="search_customers")
    assert e.known_staff and e.role == "customer_manager"
    assert not e.assigned and not e.known_customer and not e.related
    assert e.home_branch_id is None


# --- customer profile versions by updated_at ------------------------------------------

CHANGE = T0 + 10 * DAY


def changed_state() -> ReferenceState:
    """C1 normal from T0, vip (and related to S1) from CHANGE."""
    state = ReferenceState()
    state.apply_profile(profile(sensitivity="normal", updated_at=T0))
    state.apply_profile(profile(sensitivity="vip", related=("S1",), updated_at=CHANGE))
    return state


def test_an_access_sees_the_profile_in_force_at_its_time() -> None:
    state = changed_state()
    before, after = look(state, CHANGE - 1), look(state, CHANGE)
    assert (before.sensitivity, before.related) == ("normal", False)
    assert (after.sensitivity, after.related) == ("vip", True)
    assert look(state, CHANGE + 30 * DAY).sensitivity == "vip"
    assert state.profile("C1", CHANGE - 1) == ("BR1", "retail", "normal", frozenset())
    assert state.profile("C1") == ("BR1", "retail", "vip", frozenset({"S1"}))
    # Counted once, by its newest version.
    assert state.counts() == {
        "staff": 0,
        "assignment_pairs": 0,
        "profiles": 1,
        "profiles_non_normal_or_related": 1,
    }


def test_the_earliest_version_also_holds_before_it() -> None:
    # A CRM export dates its records by the export, not by when they became true.
    state = changed_state()
    assert look(state, T0 - 100 * DAY).sensitivity == "normal"
    single = ReferenceState()
    single.apply_profile(profile(sensitivity="pep", updated_at=CHANGE))
    assert look(single, T0).sensitivity == "pep"


def test_three_versions_and_a_late_correction_in_between() -> None:
    state = changed_state()
    later = CHANGE + 10 * DAY
    state.apply_profile(profile(sensitivity="restricted", updated_at=later))
    # A version dated between two known ones, arriving last.
    state.apply_profile(profile(sensitivity="employee", updated_at=CHANGE + 5 * DAY))
    got = [
        look(state, at).sensitivity
        for at in (T0, CHANGE - 1, CHANGE, CHANGE + 5 * DAY, later - 1, later, later + DAY)
    ]
    assert got == ["normal", "normal", "vip", "employee", "employee", "restricted", "restricted"]
    assert state.profile("C1") is not None and state.profile("C1")[2] == "restricted"  # type: ignore[index]
    assert state.counts()["profiles_non_normal_or_related"] == 1


def test_profile_versions_replayed_are_idempotent() -> None:
    state = changed_state()
    probes = [T0 - DAY, T0, CHANGE - 1, CHANGE, CHANGE + DAY]
    snapshot = [look(state, at) for at in probes]
    counts = state.counts()
    # A replay of the topic (the same versions again, in order) changes nothing...
    state.apply_profile(profile(sensitivity="normal", updated_at=T0))
    state.apply_profile(profile(sensitivity="vip", related=("S1",), updated_at=CHANGE))
    assert [look(state, at) for at in probes] == snapshot
    assert state.counts() == counts
    # ...and neither does the same version twice in a row.
    state.apply_profile(profile(sensitivity="vip", related=("S1",), updated_at=CHANGE))
    assert [look(state, at) for at in probes] == snapshot
    assert state.counts() == counts
    # A fresh state fed the same records agrees.
    assert [look(changed_state(), at) for at in probes] == snapshot


def test_a_correction_with_the_same_updated_at_replaces_that_version() -> None:
    state = changed_state()
    state.apply_profile(profile(sensitivity="pep", updated_at=CHANGE))
    assert look(state, CHANGE).sensitivity == "pep"
    assert not look(state, CHANGE, staff_id="S1").related
    assert look(state, CHANGE - 1).sensitivity == "normal"
    assert state.counts()["profiles_non_normal_or_related"] == 1


def test_related_staff_follow_the_versions() -> None:
    state = ReferenceState()
    state.apply_profile(profile(related=("S1",), updated_at=T0))
    state.apply_profile(profile(related=("S2",), updated_at=CHANGE))
    assert look(state, CHANGE - 1, staff_id="S1").related
    assert not look(state, CHANGE - 1, staff_id="S2").related
    assert not look(state, CHANGE, staff_id="S1").related
    assert look(state, CHANGE, staff_id="S2").related
    assert state.counts()["profiles_non_normal_or_related"] == 1


def test_a_profile_tombstone_forgets_its_history() -> None:
    state = changed_state()
    state.delete_profile("C1")
    assert not look(state, CHANGE - 1).known_customer
    assert not look(state, CHANGE).known_customer
    assert state.counts()["profiles"] == 0
    assert state.counts()["profiles_non_normal_or_related"] == 0
    # A profile published after the tombstone holds alone, at every time.
    state.apply_profile(profile(sensitivity="employee", updated_at=CHANGE + DAY))
    assert look(state, CHANGE - 1).sensitivity == "employee"
    assert look(state, T0 - DAY).sensitivity == "employee"
    assert not look(state, CHANGE, staff_id="S1").related
    assert state.counts()["profiles_non_normal_or_related"] == 1


def test_versions_of_one_customer_leave_others_alone() -> None:
    state = changed_state()
    state.apply_profile(profile("C2", sensitivity="pep"))
    assert look(state, CHANGE - 1, customer_id="C2").sensitivity == "pep"
    assert look(state, CHANGE + 1, customer_id="C2").sensitivity == "pep"
    assert state.counts()["profiles"] == 2
    assert state.counts()["profiles_non_normal_or_related"] == 2


# --- order of arrival between kinds ------------------------------------------------------


def _apply_all(state: ReferenceState, items: list[Any]) -> None:
    for item in items:
        if isinstance(item, Staff):
            state.apply_staff(item)
        elif isinstance(item, Assignment):
            state.apply_assignment(item)
        else:
            state.apply_profile(item)


def test_reference_kinds_in_any_order_give_the_same_enrichment() -> None:
    records: list[Any] = [
        staff(T0, branch_id="BR1"),
        staff(T0 + 4 * DAY, branch_id="BR2"),
        assign(T0 + DAY, T0 + 6 * DAY),
        profile(home_branch_id="BR2", sensitivity="employee", related=("S1",)),
    ]
    probes = [T0 + h * 3600.0 for h in range(-2, 24 * 8, 7)]
    results: list[list[Enriched]] = []
    for order in itertools.permutations(range(len(records))):
        state = ReferenceState()
        _apply_all(state, [records[i] for i in order])
        results.append([look(state, at) for at in probes])
    assert all(r == results[0] for r in results)
    first = results[0]
    assert {e.assigned for e in first} == {True, False}
    assert {e.staff_branch_id for e in first} == {None, "BR1", "BR2"}
    assert all(e.related and e.sensitivity == "employee" for e in first)


# --- apply_reference_record (raw bytes) ----------------------------------------------------


def _raw(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


STAFF_JSON: dict[str, Any] = {
    "staff_id": "S1",
    "branch_id": "BR1",
    "role": "customer_manager",
    "status": "active",
    "effective_at": format_ts(T0),
}
ASSIGN_JSON: dict[str, Any] = {
    "staff_id": "S1",
    "customer_id": "C:1",
    "relation": "backup",
    "valid_from": format_ts(T0),
    "valid_to": None,
    "op": "assign",
}
PROFILE_JSON: dict[str, Any] = {
    "customer_id": "C:1",
    "home_branch_id": "BR5",
    "segment": "corporate",
    "sensitivity": "restricted",
    "related_staff_ids": ["S1"],
    "updated_at": format_ts(T0),
}


def test_apply_reference_record_valid_bytes_and_tombstones() -> None:
    state = ReferenceState()
    apply_reference_record(state, "staff", b"S1", _raw(STAFF_JSON))
    apply_reference_record(state, "assignment", b"S1:C:1", _raw(ASSIGN_JSON))
    apply_reference_record(state, "profile", b"C:1", _raw(PROFILE_JSON))
    e = look(state, T0 + 1, customer_id="C:1")
    assert e.known_staff and e.role == "customer_manager" and e.staff_branch_id == "BR1"
    assert e.assigned and e.relation == "backup"
    assert (e.home_branch_id, e.segment, e.sensitivity) == ("BR5", "corporate", "restricted")
    assert e.related

    apply_reference_record(state, "assignment", b"S1:C:1", None)
    e = look(state, T0 + 1, customer_id="C:1")
    assert not e.assigned and e.known_staff and e.known_customer
    apply_reference_record(state, "profile", b"C:1", None)
    e = look(state, T0 + 1, customer_id="C:1")
    assert not e.known_customer and e.known_staff
    apply_reference_record(state, "staff", b"S1", None)
    assert not look(state, T0 + 1, customer_id="C:1").known_staff
    assert state.counts() == {
        "staff": 0,
        "assignment_pairs": 0,
        "profiles": 0,
        "profiles_non_normal_or_related": 0,
    }


def test_apply_reference_record_reads_offsets_and_profile_versions() -> None:
    state = ReferenceState()
    # 08:00 in Shanghai on the day is midnight UTC: the same instant as T0.
    shanghai = {**STAFF_JSON, "effective_at": "2026-03-01T08:00:00+08:00"}
    apply_reference_record(state, "staff", b"S1", _raw(shanghai))
    assert look(state, T0).known_staff and not look(state, T0 - 1).known_staff
    apply_reference_record(state, "profile", b"C:1", _raw(PROFILE_JSON))
    newer = {**PROFILE_JSON, "sensitivity": "normal", "updated_at": format_ts(T0 + DAY)}
    apply_reference_record(state, "profile", b"C:1", _raw(newer))
    assert look(state, T0 + 1, customer_id="C:1").sensitivity == "restricted"
    assert look(state, T0 + DAY, customer_id="C:1").sensitivity == "normal"


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("staff", b"{not json", "malformed_json"),
        ("staff", b"\xff\xfe\x00", "not_utf8"),
        ("staff", b"[1, 2]", "not_an_object"),
        ("staff", _raw({**STAFF_JSON, "role": "janitor"}), "unknown_enum"),
        ("staff", _raw({k: v for k, v in STAFF_JSON.items() if k != "branch_id"}), "missing_field"),
        ("staff", _raw({**STAFF_JSON, "effective_at": "yesterday"}), "bad_timestamp"),
        ("staff", _raw({**STAFF_JSON, "timezone": "Mars/Olympus"}), "invalid_value"),
        ("assignment", _raw({**ASSIGN_JSON, "valid_to": 5}), "wrong_type"),
        ("assignment", _raw({**ASSIGN_JSON, "op": "delete"}), "unknown_enum"),
        ("profile", _raw({**PROFILE_JSON, "related_staff_ids": "S1"}), "wrong_type"),
        ("profile", _raw({**PROFILE_JSON, "customer_id": ""}), "invalid_value"),
        (
            "profile",
            _raw({**PROFILE_JSON, "updated_at": "2026-03-01T00:00:00+0800"}),
            "bad_timestamp",
        ),
    ],
)
def test_apply_reference_record_malformed_raises_decode_error(
    kind: str, value: bytes, code: str
) -> None:
    state = ReferenceState()
    with pytest.raises(DecodeError) as info:
        apply_reference_record(state, kind, b"k", value)
    assert info.value.code == code
    assert state.counts() == ReferenceState().counts()


@pytest.mark.parametrize("kind", ["staff", "assignment", "profile"])
def test_tombstone_without_key_raises(kind: str) -> None:
    state = ReferenceState()
    apply_reference_record(state, "staff", b"S1", _raw(STAFF_JSON))
    with pytest.raises(DecodeError) as info:
        apply_reference_record(state, kind, None, None)
    assert info.value.code == "tombstone"
    assert state.counts()["staff"] == 1
