"""Versioned state encodings: round trips, upgrades from the previous release, resets."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from pipeline.alerts.incidents import Incident, Risk
from pipeline.core.state import (
    STAFF_VERSION,
    PartitionState,
    StaffState,
    StateError,
    decode_partition,
    decode_staff,
    encode,
)
from pipeline.detect.behaviour import Behaviour

V1_STATE = {  # a value of the previous release's staff-risk table (JSON)
    "risk": {
        "risk": 42.0,
        "slow": 10.0,
        "risk_at": 1772415000.0,
        "incident": {
            "alert_id": "al-1",
            "revision": 3,
            "first_event_at": 1772414000.0,
            "last_event_at": 1772415000.0,
            "branch_id": "BR1",
            "event_ids": ["e1", "e2"],
            "event_count": 2,
            "customers": ["C1"],
            "reasons": {"bulk_access": [40.0, 1, "many"]},
            "peak_risk": 80.0,
            "emitted_count": 2,
            "emitted_at": 1772415000.0,
            "emitted_codes": ["bulk_access"],
            "emitted_severity": "high",
            "unemitted_weight": 0.0,
            "model": None,
        },
        "pending": [],
        "closed_ids": ["e0"],
    },
    "behaviour": {
        "daily_mean": {"unassigned_customer_access": 2.5, "_hourly_peak": 9.0},
        "days": 12,
        "first_seen": {"branch:BR1": 1772410000.0},
        "events": 900,
        "feedback_scale": {"first_seen": 0.125},
        "window": {"C9": 1772415000.0},
    },
}


def test_round_trip() -> None:
    st = StaffState(applied=7, ids=["e1"], risk=Risk(fast=3.0), behaviour=Behaviour(days=2))
    st.risk.incident = Incident("al-1", 2, 1.0, 2.0, "BR1", event_ids=["e1"], event_count=1)
    assert decode_staff(encode(st)) == st
    ps = PartitionState(partition=3, arrived=10, active={5: ["S1"]}, closed_through=4)
    assert decode_partition(encode(ps)) == ps


def test_the_previous_release_state_is_upgraded() -> None:
    st = decode_staff(orjson.dumps(V1_STATE))
    assert st.v == STAFF_VERSION
    assert st.risk.fast == 42.0 and st.risk.at == 1772415000.0
    inc = st.risk.incident
    assert inc is not None and inc.alert_id == "al-1" and inc.revision == 3
    assert inc.reasons["bulk_access"].weight == 40.0
    b = st.behaviour
    assert b.baselines["unassigned_customer_access"].mean == 2.5
    assert "_hourly_peak" not in b.baselines
    assert b.feedback == {"first_seen": 0.25}, "an old feedback scale is raised to the floor"
    assert b.window == {}, "windows start empty"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc1\xc1", "corrupt"),
        (b"{not json", "corrupt"),
        (msgspec.msgpack.encode({"v": 99}), "newer_version"),
        (msgspec.msgpack.encode([1, 2, 3]), "corrupt"),
        (orjson.dumps({"risk": {"incident": {"alert_id": 1}}, "v": 1}), "upgrade_failed"),
        (msgspec.msgpack.encode({"v": 0}), "no_upgrade"),
        (msgspec.msgpack.encode({"v": 2, "applied": "seven"}), "upgrade_failed"),
    ],
)
def test_unreadable_values_raise_a_state_error_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(StateError) as info:
        decode_staff(raw)
    assert info.value.reason == reason


def test_a_value_with_unknown_extra_fields_still_reads() -> None:
    raw = msgspec.msgpack.encode({**msgspec.to_builtins(StaffState(applied=3)), "later": 1})
    assert decode_staff(raw).applied == 3
