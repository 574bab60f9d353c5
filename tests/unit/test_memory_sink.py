"""MemorySink: the in-memory twin of the Postgres sink (same semantics, no database)."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from pipeline.contract.records import Alert, Reason
from pipeline.sinks.base import AlertSink, EvidenceRow, MemorySink, refusal

T = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def alert(alert_id: str, revision: int, **changes: Any) -> Alert:
    base = Alert(
        alert_id=alert_id,
        revision=revision,
        schema_version=1,
        created_at=T + timedelta(minutes=revision),
        first_event_at=T,
        last_event_at=T + timedelta(minutes=revision),
        staff_id="S1",
        branch_id="BR1",
        severity="medium",
        risk_score=40.0 + revision,
        reasons=[Reason("unassigned_customer_access", "view_profile on C1", 9.0)],
        model=None,
        event_ids=[f"e{i}" for i in range(revision)],
        event_count=revision,
        customer_refs=["ref-1"],
        summary=f"revision {revision}",
    )
    return replace(base, **changes)


def verdict(alert_id: str, value: str, decided_at: float, analyst_id: str = "A1") -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "verdict": value,
        "analyst_id": analyst_id,
        "comment": None,
        "decided_at": T + timedelta(seconds=decided_at),
    }


def evidence(alert_id: str, event_id: str, revision: int = 1, **changes: Any) -> EvidenceRow:
    row = EvidenceRow(
        alert_id=alert_id,
        revision=revision,
        staff_id="S1",
        event_id=event_id,
        at=T.timestamp(),
        customer_ref="ref-1",
        customer_id="C1",
        action="view_profile",
        channel="crm_web",
        branch_id="BR1",
        record_count=1,
        outcome="success",
        codes=["unassigned_customer_access"],
    )
    return dataclasses.replace(row, **changes)


def test_is_an_alert_sink() -> None:
    sink: AlertSink = MemorySink()
    for name in ("write_alerts", "write_evidence", "store_feedback", "unrouted", "mark_routed"):
        assert callable(getattr(sink, name))


async def test_close() -> None:
    sink = MemorySink()
    await sink.close()
    assert sink.closed


# --- alerts ------------------------------------------------------------------------------


async def test_keeps_highest_revision_in_any_arrival_order() -> None:
    sink = MemorySink()
    r1 = await sink.write_alerts([alert("a1", 1)])
    assert r1.written == 1 and r1.rejected == {}
    await sink.write_alerts([alert("a1", 3), alert("a1", 2)])
    await sink.write_alerts([alert("a1", 1, summary="first again")])
    row = sink.rows["a1"]
    assert row["alert"].revision == 3 and row["alert"].summary == "revision 3"
    assert row["status"] == "open" and row["verdict"] is None


async def test_every_revision_is_kept_once() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 2), alert("a1", 1), alert("a1", 3)])
    await sink.write_alerts([alert("a1", 2, summary="replayed")])
    assert sorted(sink.revisions) == [("a1", 1), ("a1", 2), ("a1", 3)]
    assert sink.revisions[("a1", 2)].summary == "revision 2"  # the first write stays


async def test_replay_is_idempotent() -> None:
    sink = MemorySink()
    batch = [alert("a1", 1), alert("a2", 1), alert("a1", 2)]
    await sink.write_alerts(batch)
    await sink.store_feedback([verdict("a2", "true_positive", 5.0)])
    snapshot = {k: dict(v) for k, v in sink.rows.items()}
    revisions = dict(sink.revisions)
    again = await sink.write_alerts(batch)
    assert again.written == 3 and again.rejected == {}
    assert sink.rows == snapshot and sink.revisions == revisions
    assert set(sink.rows) == {"a1", "a2"}


async def test_a_closing_revision_closes_and_a_later_open_one_reopens() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1), alert("a1", 2, status="closed")])
    assert sink.rows["a1"]["status"] == "closed"
    # An older revision arriving late changes nothing.
    await sink.write_alerts([alert("a1", 1)])
    assert sink.rows["a1"]["status"] == "closed"
    # The incident grew again: the newest revision decides (as the SQL's CASE does).
    await sink.write_alerts([alert("a1", 3)])
    assert sink.rows["a1"]["status"] == "open"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"risk_score": 100.5}, "risk_score"),
        ({"risk_score": -0.5}, "risk_score"),
        ({"risk_score": math.nan}, "risk_score"),
        ({"revision": 0}, "revision"),
        ({"revision": 2**31}, "revision"),
        ({"severity": "urgent"}, "severity"),
        ({"status": "pending"}, "status"),
        ({"staff_id": "S\x001"}, "NUL"),
        ({"reasons": [Reason("first_seen", "terminal T\x00", 3.0)]}, "NUL"),
    ],
)
async def test_rows_the_table_refuses_are_rejected_and_the_rest_written(
    changes: dict[str, Any], why: str
) -> None:
    bad = replace(alert("bad", 1), **changes)
    assert refusal(bad) is not None and why in (refusal(bad) or "")
    sink = MemorySink()
    result = await sink.write_alerts([alert("a1", 1), bad, alert("a2", 1)])
    assert result.written == 2
    assert set(result.rejected) == {"bad"} and why in result.rejected["bad"]
    assert set(sink.rows) == {"a1", "a2"}
    assert ("bad", bad.revision) not in sink.revisions


def test_refusal_accepts_the_edges() -> None:
    assert refusal(alert("a", 1, risk_score=0.0)) is None
    assert refusal(alert("a", 1, risk_score=100.0)) is None
    assert refusal(replace(alert("a", 1), revision=2**31 - 1, event_count=2**31 - 1)) is None


# --- evidence ----------------------------------------------------------------------------


async def test_evidence_first_row_per_event_wins_and_reveal_is_kept() -> None:
    sink = MemorySink()
    assert await sink.write_evidence([evidence("a1", "e1"), evidence("a1", "e2")]) == 2
    assert await sink.write_evidence([evidence("a1", "e1", revision=3)]) == 1
    assert sink.evidence[("a1", "e1")].revision == 1
    assert sorted(sink.evidence) == [("a1", "e1"), ("a1", "e2")]
    assert sink.reveal == {"ref-1": "C1"}
    # No raw id (pseudonymisation off, or a search): nothing to reveal.
    await sink.write_evidence([evidence("a2", "e3", customer_ref="ref-2", customer_id=None)])
    assert "ref-2" not in sink.reveal


# --- verdicts ------------------------------------------------------------------------------


async def test_feedback_after_the_alert_closes_it() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1), alert("a2", 1)])
    changed = await sink.store_feedback([verdict("a1", "true_positive", 10.0)])
    assert changed == 1
    assert sink.rows["a1"]["verdict"] == "true_positive"
    assert sink.rows["a1"]["status"] == "closed"
    assert sink.rows["a2"]["status"] == "open" and sink.rows["a2"]["verdict"] is None
    # The same verdict again changes nothing.
    assert await sink.store_feedback([verdict("a1", "true_positive", 10.0)]) == 0


async def test_feedback_before_the_alert_applies_when_it_arrives() -> None:
    sink = MemorySink()
    assert await sink.store_feedback([verdict("a1", "false_positive", 10.0)]) == 0
    assert "a1" not in sink.rows
    assert await sink.unrouted(["a1"]) == []  # nothing to route while the alert is missing
    await sink.write_alerts([alert("a1", 1)])
    assert sink.rows["a1"]["verdict"] == "false_positive"
    assert sink.rows["a1"]["status"] == "closed"
    assert await sink.unrouted(["a1"]) == [
        ("a1", "false_positive", "S1", ["unassigned_customer_access"])
    ]


async def test_new_revision_keeps_the_verdict() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1)])
    await sink.store_feedback([verdict("a1", "benign_true_positive", 10.0)])
    await sink.write_alerts([alert("a1", 2)])
    row = sink.rows["a1"]
    assert row["alert"].revision == 2
    assert row["verdict"] == "benign_true_positive" and row["status"] == "closed"


async def test_latest_decision_wins_regardless_of_arrival_order() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1)])
    await sink.store_feedback([verdict("a1", "false_positive", 20.0)])
    # An older decision arriving late does not override the newer one.
    assert await sink.store_feedback([verdict("a1", "true_positive", 10.0)]) == 0
    assert sink.rows["a1"]["verdict"] == "false_positive"
    assert await sink.store_feedback([verdict("a1", "true_positive", 30.0)]) == 1
    assert sink.rows["a1"]["verdict"] == "true_positive"


async def test_a_tie_in_time_goes_to_the_smallest_analyst_id() -> None:
    # ORDER BY decided_at DESC, analyst_id (ascending), as in the Postgres sink.
    for order in (("A2", "A1"), ("A1", "A2")):
        sink = MemorySink()
        await sink.write_alerts([alert("a1", 1)])
        values = {"A1": "true_positive", "A2": "false_positive"}
        await sink.store_feedback([verdict("a1", values[a], 10.0, analyst_id=a) for a in order])
        assert sink.rows["a1"]["verdict"] == "true_positive", order
        assert (await sink.unrouted(["a1"]))[0][1] == "true_positive"


async def test_one_verdict_per_alert_time_and_analyst_the_first_kept() -> None:
    sink = MemorySink()
    await sink.store_feedback([verdict("a1", "true_positive", 10.0)])
    await sink.store_feedback([verdict("a1", "false_positive", 10.0)])  # same key
    assert len(sink.feedback["a1"]) == 1
    await sink.write_alerts([alert("a1", 1)])
    assert sink.rows["a1"]["verdict"] == "true_positive"


async def test_store_feedback_counts_the_alerts_it_changed() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1), alert("a2", 1)])
    batch = [
        verdict("a1", "true_positive", 1.0),
        verdict("a1", "false_positive", 2.0),
        verdict("a2", "true_positive", 1.0),
        verdict("a3", "true_positive", 1.0),  # not stored yet
    ]
    assert await sink.store_feedback(batch) == 2
    assert sink.rows["a1"]["verdict"] == "false_positive"


# --- routing -------------------------------------------------------------------------------


async def test_routing_marks() -> None:
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1), alert("a2", 1, staff_id="S2"), alert("a3", 1)])
    await sink.store_feedback(
        [verdict("a1", "true_positive", 1.0), verdict("a2", "false_positive", 1.0)]
    )
    todo = await sink.unrouted(["a2", "a1", "a3", "a1", "missing"])
    assert todo == [
        ("a1", "true_positive", "S1", ["unassigned_customer_access"]),
        ("a2", "false_positive", "S2", ["unassigned_customer_access"]),
    ]
    await sink.mark_routed(["a1"])
    assert [t[0] for t in await sink.unrouted(["a1", "a2"])] == ["a2"]
    await sink.mark_routed(["a2"])
    assert await sink.unrouted(["a1", "a2", "a3"]) == []
    await sink.mark_routed([])


async def test_a_verdict_after_routing_is_routed_again() -> None:
    # routed_at is per verdict row: a changed mind is routed (the learner applies
    # each alert once; the message is still sent).
    sink = MemorySink()
    await sink.write_alerts([alert("a1", 1)])
    await sink.store_feedback([verdict("a1", "true_positive", 1.0)])
    await sink.mark_routed(["a1"])
    await sink.store_feedback([verdict("a1", "false_positive", 2.0)])
    assert await sink.unrouted(["a1"]) == [
        ("a1", "false_positive", "S1", ["unassigned_customer_access"])
    ]
    await sink.mark_routed(["a1"])
    assert await sink.unrouted(["a1"]) == []
    assert sink.rows["a1"]["verdict"] == "false_positive"


async def test_reason_codes_come_from_the_stored_alert() -> None:
    sink = MemorySink()
    reasons = [Reason("related_customer_access", "x", 60.0), Reason("first_seen", "y", 3.0)]
    await sink.write_alerts([alert("a1", 1), alert("a1", 2, reasons=reasons)])
    await sink.store_feedback([verdict("a1", "true_positive", 1.0)])
    ((_, _, staff, codes),) = await sink.unrouted(["a1"])
    assert (staff, codes) == ("S1", ["related_customer_access", "first_seen"])
