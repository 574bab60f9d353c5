"""Analyst verdicts change future behaviour: a false positive halves that pattern's weight."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.settings import Settings
from tests.integration.kit import read_topic, send_json, wait_for


def staff(staff_id: str) -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "branch_id": "BR01",
        "role": "customer_manager",
        "status": "active",
        "effective_at": "2026-01-01T00:00:00+08:00",
    }


def access(
    n: int, staff_id: str, day: int, minute: int, action: str, customer: str
) -> dict[str, Any]:
    return {
        "event_id": f"fb-{staff_id}-{n}",
        "occurred_at": f"2026-03-{day:02d}T10:{minute:02d}:00+08:00",
        "staff_id": staff_id,
        "customer_id": customer,
        "action": action,
        "channel": "crm_web",
        "branch_id": "BR01",
    }


def credit_weight(alert: dict[str, Any]) -> float:
    return float(
        sum(
            r["weight"]
            for r in alert["reasons"]
            if r["code"] == "credit_report_without_authorization"
        )
    )


async def test_false_positive_lowers_the_pattern_weight_for_that_employee(
    topics: Settings, producer: AIOKafkaProducer, start_worker: Any, db: asyncpg.Connection
) -> None:
    s = topics
    for sid in ("S1", "S2"):
        await send_json(producer, s.staff_topic, sid, staff(sid))
    await send_json(
        producer,
        s.profiles_topic,
        "C9",
        {
            "customer_id": "C9",
            "home_branch_id": "BR01",
            "segment": "retail",
            "sensitivity": "employee",
            "related_staff_ids": ["S1", "S2"],
            "updated_at": "2026-01-01T00:00:00+08:00",
        },
    )
    worker = start_worker()
    worker.wait_healthy()

    # Day 2: both employees query a credit report without authorization -> one alert each.
    for sid in ("S1", "S2"):
        await send_json(
            producer, s.access_topic, sid, access(1, sid, 2, 0, "credit_report_query", "C1")
        )
    first = await read_topic(s.alerts_topic, until=lambda recs: len(recs) >= 2)
    by_staff = {orjson.loads(v)["staff_id"]: orjson.loads(v)["alert_id"] for _, v in first}

    async def stored() -> Any:
        n = await db.fetchval(
            "SELECT count(*) FROM alerts WHERE alert_id = ANY($1::text[])", list(by_staff.values())
        )
        return n == 2

    await wait_for(stored)
    # The analyst calls S1's alert a false positive; S2's stays untouched.
    await send_json(
        producer,
        s.feedback_topic,
        by_staff["S1"],
        {
            "alert_id": by_staff["S1"],
            "verdict": "false_positive",
            "analyst_id": "soc-1",
            "decided_at": "2026-03-02T12:00:00+08:00",
        },
    )

    async def learned() -> bool:
        return worker.metric("pipeline_feedback_learned_total") >= 1

    await wait_for(learned)

    # Day 12 (the first incidents have long closed): the same pattern twice, then a
    # related-customer access that opens an incident for both, carrying the evidence.
    for sid in ("S1", "S2"):
        await send_json(
            producer, s.access_topic, sid, access(2, sid, 12, 0, "credit_report_query", "C1")
        )
        await send_json(
            producer, s.access_topic, sid, access(3, sid, 12, 5, "credit_report_query", "C2")
        )
        await send_json(producer, s.access_topic, sid, access(4, sid, 12, 10, "view_profile", "C9"))

    def second_alerts(recs: list[tuple[bytes | None, bytes | None]]) -> bool:
        alerts = [orjson.loads(v) for _, v in recs]
        fresh = {a["staff_id"] for a in alerts if a["alert_id"] not in by_staff.values()}
        return fresh == {"S1", "S2"} and all(
            any(f"fb-{sid}-4" in a["event_ids"] for a in alerts) for sid in ("S1", "S2")
        )

    records = await read_topic(s.alerts_topic, until=second_alerts)
    latest: dict[str, dict[str, Any]] = {}
    for _, v in records:
        a = orjson.loads(v)
        if a["alert_id"] in by_staff.values():
            continue
        if a["revision"] >= latest.get(a["staff_id"], {"revision": 0})["revision"]:
            latest[a["staff_id"]] = a
    s1, s2 = credit_weight(latest["S1"]), credit_weight(latest["S2"])
    assert s2 > 0
    assert s1 == pytest.approx(s2 / 2, rel=1e-3), (s1, s2)
    verdict = await db.fetchval("SELECT verdict FROM alerts WHERE alert_id = $1", by_staff["S1"])
    assert verdict == "false_positive"
