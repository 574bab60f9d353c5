"""MemorySink: the in-memory twin of the Postgres sink."""

from __future__ import annotations

from typing import Any

from pipeline.sinks.base import AlertSink, MemorySink


def alert(alert_id: str, revision: int, **extra: Any) -> dict[str, Any]:
    return {"alert_id": alert_id, "revision": revision, "staff_id": "S1", **extra}


def verdict(alert_id: str, value: str, decided_at: float) -> dict[str, Any]:
    return {"alert_id": alert_id, "verdict": value, "analyst_id": "A1", "decided_at": decided_at}


def test_is_an_alert_sink() -> None:
    sink: AlertSink = MemorySink()
    assert hasattr(sink, "write") and hasattr(sink, "apply_feedback")


async def test_keeps_highest_revision_in_any_arrival_order() -> None:
    sink = MemorySink()
    r1 = await sink.write([alert("a1", 1, note="first")])
    assert r1.written == 1 and r1.rejected == {}
    await sink.write([alert("a1", 3, note="third"), alert("a1", 2, note="second")])
    await sink.write([alert("a1", 1, note="first again")])
    row = sink.rows["a1"]
    assert row["payload"]["revision"] == 3
    assert row["payload"]["note"] == "third"
    assert row["status"] == "open" and row["verdict"] is None


async def test_replay_is_idempotent() -> None:
    sink = MemorySink()
    batch = [alert("a1", 1), alert("a2", 1), alert("a1", 2)]
    await sink.write(batch)
    snapshot = {k: dict(v) for k, v in sink.rows.items()}
    again = await sink.write(batch)
    assert again.written == 0
    assert sink.rows == snapshot
    assert set(sink.rows) == {"a1", "a2"}


async def test_payload_is_a_copy() -> None:
    sink = MemorySink()
    a = alert("a1", 1)
    await sink.write([a])
    a["revision"] = 99
    assert sink.rows["a1"]["payload"]["revision"] == 1


async def test_feedback_after_the_alert_closes_it() -> None:
    sink = MemorySink()
    await sink.write([alert("a1", 1), alert("a2", 1)])
    changed = await sink.apply_feedback([verdict("a1", "true_positive", 10.0)])
    assert changed == 1
    assert sink.rows["a1"]["verdict"] == "true_positive"
    assert sink.rows["a1"]["status"] == "closed"
    assert sink.rows["a2"]["status"] == "open" and sink.rows["a2"]["verdict"] is None
    # The same verdict again changes nothing.
    assert await sink.apply_feedback([verdict("a1", "true_positive", 10.0)]) == 0


async def test_feedback_before_the_alert_applies_when_it_arrives() -> None:
    sink = MemorySink()
    assert await sink.apply_feedback([verdict("a1", "false_positive", 10.0)]) == 0
    assert "a1" not in sink.rows
    await sink.write([alert("a1", 1)])
    assert sink.rows["a1"]["verdict"] == "false_positive"
    assert sink.rows["a1"]["status"] == "closed"


async def test_new_revision_keeps_the_verdict() -> None:
    sink = MemorySink()
    await sink.write([alert("a1", 1)])
    await sink.apply_feedback([verdict("a1", "benign_true_positive", 10.0)])
    await sink.write([alert("a1", 2)])
    row = sink.rows["a1"]
    assert row["payload"]["revision"] == 2
    assert row["verdict"] == "benign_true_positive" and row["status"] == "closed"


async def test_latest_decision_wins_regardless_of_arrival_order() -> None:
    sink = MemorySink()
    await sink.write([alert("a1", 1)])
    await sink.apply_feedback([verdict("a1", "false_positive", 20.0)])
    # An older decision arriving late does not override the newer one.
    assert await sink.apply_feedback([verdict("a1", "true_positive", 10.0)]) == 0
    assert sink.rows["a1"]["verdict"] == "false_positive"
    assert await sink.apply_feedback([verdict("a1", "true_positive", 30.0)]) == 1
    assert sink.rows["a1"]["verdict"] == "true_positive"
