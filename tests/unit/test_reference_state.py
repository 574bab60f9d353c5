"""ReferenceState: everything judged at the access's own occurred_at; apply_reference_record."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from pipeline.contract.decode import DecodeError
from pipeline.contract.records import (
    SEGMENTS,
    SENSITIVITIES,
    AccessEvent,
    Assignment,
    CustomerProfile,
)
from pipeline.contract.records import StaffRecord as Staff
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import Enriched, ReferenceState
from pipeline.timeutil import format_ts, parse_ts

DAY = 86400.0
T0 = parse_ts("2026-03-01T00:00:00Z")


def access(
    at: float,
    staff_id: str = "S1",
    customer_id: str | None = "C1",
    action: str = "view_balance",
) -> AccessEvent:
    return AccessEvent(
        event_id=f"ev-{staff_id}-{customer_id}-{at}",
        occurred_at=at,
        staff_id=staff_id,
        customer_id=customer_id,
        action=action,
        channel="crm_web",
        branch_id="BR-T",
    )


def staff(
    effective_at: float,
    staff_id: str = "S1",
    branch_id: str = "BR1",
    role: str = "customer_manager",
    status: str = "active",
) -> Staff:
    return Staff(staff_id, branch_id, role, status, effective_at)


def assign(
    valid_from: float,
    valid_to: float | None = None,
    staff_id: str = "S1",
    customer_id: str = "C1",
    op: str = "assign",
    relation: str = "relationship_manager",
) -> Assignment:
    return Assignment(staff_id, customer_id, relation, valid_from, valid_to, op)


def profile(
    customer_id: str = "C1",
    home_branch_id: str = "BR1",
    segment: str = "retail",
    sensitivity: str = "normal",
    related: tuple[str, ...] = (),
) -> CustomerProfile:
    return CustomerProfile(customer_id, home_branch_id, segment, sensitivity, related, T0)


# --- staff history -------------------------------------------------------------------


def test_unknown_staff_and_unknown_customer() -> None:
    state = ReferenceState()
    e = state.enrich(access(T0))
    assert not e.known_staff
    assert e.role is None and e.staff_branch_id is None and e.status is None
    assert e.timezone == "Asia/Shanghai"
    assert not e.known_customer
    assert e.home_branch_id is None and e.segment is None and e.sensitivity is None
    assert not e.assigned and e.relation is None and not e.related


def test_access_before_the_first_staff_record_sees_no_staff() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    assert not state.enrich(access(T0 - 1)).known_staff
    assert state.enrich(access(T0)).known_staff


def test_transfer_splits_history_at_its_effective_time() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0, branch_id="BR-OLD"))
    transfer = T0 + 10 * DAY
    state.apply_staff(staff(transfer, branch_id="BR-NEW"))
    assert state.enrich(access(transfer - 1)).staff_branch_id == "BR-OLD"
    assert state.enrich(access(transfer)).staff_branch_id == "BR-NEW"
    assert state.enrich(access(transfer + DAY)).staff_branch_id == "BR-NEW"


def test_future_termination_does_not_change_an_earlier_access() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    leaves = T0 + 30 * DAY
    state.apply_staff(staff(leaves, status="terminated"))
    earlier = state.enrich(access(T0 + 5 * DAY))
    assert earlier.status == "active"
    assert earlier.role == "customer_manager"
    assert state.enrich(access(leaves + 1)).status == "terminated"


def test_past_termination_applies_to_an_access_arriving_now() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    now = T0 + 20 * DAY
    # HR publishes late: the termination took effect a week before the access.
    state.apply_staff(staff(now - 7 * DAY, status="terminated"))
    assert state.enrich(access(now)).status == "terminated"
    assert state.enrich(access(now - 8 * DAY)).status == "active"


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
        a, b = in_order.enrich(access(at)), reversed_.enrich(access(at))
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
    snapshot = [state.enrich(access(T0 + d * DAY / 2)) for d in range(4)]
    state.apply_staff(staff(T0, branch_id="BR1"))
    state.apply_staff(staff(T0 + DAY, branch_id="BR2"))
    assert [state.enrich(access(T0 + d * DAY / 2)) for d in range(4)] == snapshot
    assert state.counts()["staff"] == 1
    # A correction with the same effective_at replaces the version instead of adding one.
    state.apply_staff(staff(T0, branch_id="BR9"))
    assert state.enrich(access(T0 + 1)).staff_branch_id == "BR9"
    assert state.enrich(access(T0 + DAY + 1)).staff_branch_id == "BR2"


def test_staff_tombstone_forgets_the_employee() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    state.apply_staff(staff(T0, staff_id="S2"))
    state.delete_staff("S1")
    assert not state.enrich(access(T0 + 1)).known_staff
    assert state.enrich(access(T0 + 1, staff_id="S2")).known_staff
    state.delete_staff("never-existed")
    assert state.counts()["staff"] == 1


def test_shift_and_timezone_are_carried() -> None:
    state = ReferenceState()
    state.apply_staff(Staff("S1", "BR1", "teller", "active", T0, "09:00", "17:30", "Europe/Paris"))
    e = state.enrich(access(T0 + 1))
    assert (e.shift_start, e.shift_end, e.timezone) == ("09:00", "17:30", "Europe/Paris")


# --- assignments ---------------------------------------------------------------------


def test_assignment_valid_only_inside_half_open_interval() -> None:
    state = ReferenceState()
    start, end = T0 + DAY, T0 + 3 * DAY
    state.apply_assignment(assign(start, end, relation="backup"))
    assert not state.enrich(access(start - 1)).assigned
    inside = state.enrich(access(start))
    assert inside.assigned and inside.relation == "backup"
    assert state.enrich(access(end - 0.001)).assigned
    assert not state.enrich(access(end)).assigned
    assert not state.enrich(access(end + DAY)).assigned


def test_open_ended_assignment_is_valid_forever_and_only_for_its_pair() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0))
    assert state.enrich(access(T0 + 1000 * DAY)).assigned
    assert not state.enrich(access(T0 + 1, customer_id="C2")).assigned
    assert not state.enrich(access(T0 + 1, staff_id="S2")).assigned
    assert state.assigned_customers("S1", T0 + 1) == ["C1"]
    assert state.assigned_customers("S1", T0 - 1) == []
    assert state.assigned_customers("S2", T0 + 1) == []


def test_revoke_then_reassign() -> None:
    state = ReferenceState()
    revoked, reassigned = T0 + 2 * DAY, T0 + 5 * DAY
    state.apply_assignment(assign(T0))
    state.apply_assignment(assign(revoked, op="revoke"))
    state.apply_assignment(assign(reassigned, relation="service_team"))
    assert state.enrich(access(T0 + DAY)).relation == "relationship_manager"
    assert not state.enrich(access(revoked)).assigned
    assert not state.enrich(access(revoked + DAY)).assigned
    after = state.enrich(access(reassigned + 1))
    assert after.assigned and after.relation == "service_team"
    assert state.counts()["assignment_pairs"] == 1


def test_revoke_removes_intervals_starting_after_it() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, T0 + DAY))
    state.apply_assignment(assign(T0 + 5 * DAY))
    state.apply_assignment(assign(T0 + 3 * DAY, op="revoke"))
    assert state.enrich(access(T0 + 1)).assigned
    assert not state.enrich(access(T0 + 6 * DAY)).assigned


def test_revoke_of_unknown_pair_is_harmless() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, op="revoke"))
    assert not state.enrich(access(T0 + 1)).assigned
    assert state.counts()["assignment_pairs"] == 0


def test_assign_with_same_valid_from_replaces_the_interval() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, T0 + DAY))
    state.apply_assignment(assign(T0, T0 + DAY))
    assert state.counts()["assignment_pairs"] == 1
    state.apply_assignment(assign(T0, T0 + 10 * DAY, relation="loan_officer"))
    e = state.enrich(access(T0 + 5 * DAY))
    assert e.assigned and e.relation == "loan_officer"


def test_assignment_tombstone_with_colon_in_customer_id() -> None:
    state = ReferenceState()
    state.apply_assignment(assign(T0, customer_id="CN:0042:7"))
    state.apply_assignment(assign(T0, customer_id="C1"))
    assert state.enrich(access(T0 + 1, customer_id="CN:0042:7")).assigned
    state.delete_assignment_key("S1:CN:0042:7")
    assert not state.enrich(access(T0 + 1, customer_id="CN:0042:7")).assigned
    assert state.enrich(access(T0 + 1, customer_id="C1")).assigned
    assert state.counts()["assignment_pairs"] == 1
    state.delete_assignment_key("S1:C1")
    assert not state.enrich(access(T0 + 1, customer_id="C1")).assigned
    assert state.counts()["assignment_pairs"] == 0
    state.delete_assignment_key("S1:C1")
    state.delete_assignment_key("no-colon")
    assert state.counts()["assignment_pairs"] == 0


# --- customer profiles ---------------------------------------------------------------


def test_related_staff_sets_related_only_for_them() -> None:
    state = ReferenceState()
    state.apply_profile(profile(related=("S1", "S7")))
    assert state.enrich(access(T0, staff_id="S1")).related
    assert state.enrich(access(T0, staff_id="S7")).related
    assert not state.enrich(access(T0, staff_id="S2")).related
    # The profile is updated: S1 no longer related, and the side table entry goes.
    state.apply_profile(profile(related=()))
    assert not state.enrich(access(T0, staff_id="S1")).related
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
    for cid, want in expected.items():
        got = state.profile(cid)
        assert got is not None
        assert got[:3] == want
        e = state.enrich(access(T0, customer_id=cid))
        assert e.known_customer
        assert (e.home_branch_id, e.segment, e.sensitivity) == want
    # Every (branch, segment, sensitivity) triple must have been exercised.
    assert len(set(expected.values())) == 300 * len(combos)


def test_profile_last_write_wins_and_tombstone() -> None:
    state = ReferenceState()
    state.apply_profile(profile(sensitivity="vip", related=("S9",)))
    state.apply_profile(profile(home_branch_id="BR2", segment="private", sensitivity="pep"))
    e = state.enrich(access(T0))
    assert (e.home_branch_id, e.segment, e.sensitivity) == ("BR2", "private", "pep")
    assert not state.enrich(access(T0, staff_id="S9")).related
    state.delete_profile("C1")
    assert not state.enrich(access(T0)).known_customer
    assert state.profile("C1") is None
    assert state.counts()["profiles"] == 0
    assert state.counts()["profiles_non_normal_or_related"] == 0


def test_search_customers_without_customer_id() -> None:
    state = ReferenceState()
    state.apply_staff(staff(T0))
    state.apply_assignment(assign(T0))
    state.apply_profile(profile(related=("S1",)))
    e = state.enrich(access(T0 + 1, customer_id=None, action="search_customers"))
    assert e.known_staff and e.role == "customer_manager"
    assert not e.assigned and not e.known_customer and not e.related
    assert e.home_branch_id is None


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
    probes = [access(T0 + h * 3600.0) for h in range(-2, 24 * 8, 7)]
    results: list[list[Enriched]] = []
    for order in itertools.permutations(range(len(records))):
        state = ReferenceState()
        _apply_all(state, [records[i] for i in order])
        results.append([state.enrich(p) for p in probes])
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
    e = state.enrich(access(T0 + 1, customer_id="C:1"))
    assert e.known_staff and e.role == "customer_manager" and e.staff_branch_id == "BR1"
    assert e.assigned and e.relation == "backup"
    assert (e.home_branch_id, e.segment, e.sensitivity) == ("BR5", "corporate", "restricted")
    assert e.related

    apply_reference_record(state, "assignment", b"S1:C:1", None)
    e = state.enrich(access(T0 + 1, customer_id="C:1"))
    assert not e.assigned and e.known_staff and e.known_customer
    apply_reference_record(state, "profile", b"C:1", None)
    e = state.enrich(access(T0 + 1, customer_id="C:1"))
    assert not e.known_customer and e.known_staff
    apply_reference_record(state, "staff", b"S1", None)
    assert not state.enrich(access(T0 + 1, customer_id="C:1")).known_staff
    assert state.counts() == {
        "staff": 0,
        "assignment_pairs": 0,
        "profiles": 0,
        "profiles_non_normal_or_related": 0,
    }


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("staff", b"{not json", "malformed_json"),
        ("staff", b"\xff\xfe\x00", "not_utf8"),
        ("staff", b"[1, 2]", "not_an_object"),
        ("staff", _raw({**STAFF_JSON, "role": "janitor"}), "unknown_enum"),
        ("staff", _raw({k: v for k, v in STAFF_JSON.items() if k != "branch_id"}), "missing_field"),
        ("staff", _raw({**STAFF_JSON, "effective_at": "yesterday"}), "bad_timestamp"),
        ("assignment", _raw({**ASSIGN_JSON, "valid_to": 5}), "wrong_type"),
        ("assignment", _raw({**ASSIGN_JSON, "op": "delete"}), "unknown_enum"),
        ("profile", _raw({**PROFILE_JSON, "related_staff_ids": "S1"}), "wrong_type"),
        ("profile", _raw({**PROFILE_JSON, "customer_id": ""}), "invalid_value"),
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
