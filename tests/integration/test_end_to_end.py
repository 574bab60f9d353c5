"""Event in, alert out: the whole path on the real broker and database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import orjson
from aiokafka import AIOKafkaProducer

from pipeline.settings import Settings
from tests.integration.kit import read_topic, send_json, wait_for

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
T0 = "2026-03-02T09:00:00+08:00"


def event(
    n: int, customer: str | None, action: str = "view_profile", **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"e2e-{n}",
        "occurred_at": f"2026-03-02T10:{n % 60:02d}:00+08:00",
        "staff_id": "S1",
        "customer_id": customer,
        "action": action,
        "channel": "branch_terminal",
        "branch_id": "BR01",
        **extra,
    }


async def publish_reference(producer: AIOKafkaProducer, s: Settings) -> None:
    await send_json(
        producer,
        s.staff_topic,
        "S1",
        {
            "staff_id": "S1",
            "branch_id": "BR01",
            "role": "customer_manager",
            "status": "active",
            "effective_at": "2026-01-01T00:00:00+08:00",
            "shift_start": "08:30",
            "shift_end": "17:30",
        },
    )
    await send_json(
        producer,
        s.assignments_topic,
        "S1:C1",
        {
            "staff_id": "S1",
            "customer_id": "C1",
            "relation": "relationship_manager",
            "valid_from": "2026-01-01T00:00:00+08:00",
            "valid_to": None,
            "op": "assign",
        },
    )
    for cid, sens in (("C1", "normal"), ("C2", "normal"), ("C3", "vip")):
        await send_json(
            producer,
            s.profiles_topic,
            cid,
            {
                "customer_id": cid,
                "home_branch_id": "BR02",
                "segment": "retail",
                "sensitivity": sens,
                "related_staff_ids": [],
                "updated_at": T0,
            },
        )


BAD_RECORDS: list[tuple[bytes, str]] = [
    (b"{not json", "malformed_json"),
    (b'{"event_id": "\xff\xfe"}', "not_utf8"),
    (orjson.dumps({**event(90, "C1"), "record_count": "many"}), "wrong_type"),
    (orjson.dumps({**event(91, "C1"), "action": "steal_everything"}), "unknown_enum"),
    (orjson.dumps({k: v for k, v in event(92, "C1").items() if k != "staff_id"}), "missing_field"),
    (orjson.dumps({**event(93, "C1"), "occurred_at": "2026-03-02T10:00:00"}), "bad_timestamp"),
    (orjson.dumps({**event(94, "C1"), "terminal_id": "x" * 70_000}), "value_too_large"),
]


async def test_event_in_alert_out(
    topics: Settings,
    producer: AIOKafkaProducer,
    start_worker: Any,
    db: asyncpg.Connection,
) -> None:
    s = topics
    await publish_reference(producer, s)
    worker = start_worker()
    worker.wait_healthy()

    # Bad records first: each must be dead-lettered, and good events after them still processed.
    for raw, _ in BAD_RECORDS:
        await send_json(producer, s.access_topic, "S1", raw, raw=True)
    good = [
        event(1, "C1"),  # assigned: no signal
        event(2, "C2"),  # another branch's customer, unassigned: usual for the role, no weight
        event(3, "C3"),  # ... and a VIP: improbable, risk builds up, still under the threshold
        event(4, "C1", "credit_report_query"),  # no authorization_ref -> the incident opens
        event(5, "C1", "credit_report_query", authorization_ref="AUTH-1"),  # fine
        event(6, "C2", "credit_report_query"),  # more evidence -> revision 2
    ]
    for ev in good:
        await send_json(producer, s.access_topic, "S1", ev)

    records = await read_topic(
        s.alerts_topic,
        until=lambda recs: any(orjson.loads(v)["revision"] >= 2 for _, v in recs),
    )
    alerts = [orjson.loads(v) for _, v in records]
    schema = json.loads((SCHEMAS / "alert.schema.json").read_text())
    for a in alerts:
        jsonschema.validate(a, schema)
    assert {a["alert_id"] for a in alerts} == {alerts[0]["alert_id"]}, "one incident, one alert"
    latest = max(alerts, key=lambda a: a["revision"])
    assert latest["staff_id"] == "S1"
    assert set(latest["event_ids"]) == {"e2e-3", "e2e-4", "e2e-6"}
    assert {r["code"] for r in latest["reasons"]} >= {
        "sensitive_customer_access",
        "credit_report_without_authorization",
    }
    assert latest["event_count"] == 3
    assert all(ref.startswith("cref-") for ref in latest["customer_refs"])
    assert not {"C1", "C2", "C3"} & set(latest["customer_refs"]), "customer ids pseudonymized"
    assert all(k == b"S1" for k, _ in records)

    dlq = await read_topic(s.dlq_topic, until=lambda recs: len(recs) >= len(BAD_RECORDS))
    dl_schema = json.loads((SCHEMAS / "dead-letter.schema.json").read_text())
    letters = [orjson.loads(v) for _, v in dlq]
    for letter in letters:
        jsonschema.validate(letter, dl_schema)
        assert letter["topic"] == s.access_topic
    assert sorted(letter["error"]["code"] for letter in letters) == sorted(
        code for _, code in BAD_RECORDS
    )
    assert {letter["key"] for letter in letters} == {"S1"}

    async def row() -> Any:
        r = await db.fetchrow("SELECT * FROM alerts WHERE alert_id = $1", latest["alert_id"])
        return r if r is not None and r["revision"] == latest["revision"] else None

    stored = await wait_for(row)
    assert stored["staff_id"] == "S1"
    assert stored["status"] == "open" and stored["verdict"] is None
    assert set(stored["event_ids"]) == set(latest["event_ids"])
    assert json.loads(stored["payload"])["alert_id"] == latest["alert_id"]

    # What the console shows comes from the worker: every revision, and the evidence
    # accesses with pseudonymized customers.
    revisions = await db.fetch(
        "SELECT revision FROM alert_revisions WHERE alert_id = $1 ORDER BY revision",
        latest["alert_id"],
    )
    assert [r["revision"] for r in revisions] == list(range(1, latest["revision"] + 1))

    async def evidence() -> Any:
        rows = await db.fetch(
            "SELECT event_id, customer_ref, staff_id FROM alert_evidence WHERE alert_id = $1",
            latest["alert_id"],
        )
        return rows if {r["event_id"] for r in rows} >= set(latest["event_ids"]) else None

    rows = await wait_for(evidence)
    assert {r["event_id"] for r in rows} == set(latest["event_ids"])
    assert all(r["staff_id"] == "S1" for r in rows)
    assert all((r["customer_ref"] or "").startswith("cref-") for r in rows)

    metrics = worker.metrics()
    # Summed over label sets (the counter is per topic).
    assert worker.metric("pipeline_events_in_total") == 13
    assert 'pipeline_events_dead_lettered_total{code="malformed_json"' in metrics

    # Analyst verdict flows back to Postgres.
    await send_json(
        producer,
        s.feedback_topic,
        latest["alert_id"],
        {
            "alert_id": latest["alert_id"],
            "verdict": "true_positive",
            "analyst_id": "soc-7",
            "decided_at": "2026-03-02T11:00:00+08:00",
        },
    )

    async def closed() -> Any:
        return await db.fetchval(
            "SELECT verdict FROM alerts WHERE alert_id = $1 AND status = 'closed'",
            latest["alert_id"],
        )

    assert await wait_for(closed) == "true_positive"
