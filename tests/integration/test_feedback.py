"""Analyst verdicts through the real topics change what happens next time, for that employee."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from pipeline.settings import Settings
from tests.integration.kit import read_topic, send_json, wait_for

SOFT = {"other_branch_customer_access", "sensitive_customer_access"}


def staff(staff_id: str) -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "branch_id": "BR01",
        "role": "customer_manager",
        "status": "active",
        "effective_at": "2026-01-01T00:00:00+08:00",
    }


def vip(n: int) -> dict[str, Any]:
    return {
        "customer_id": f"V{n}",
        "home_branch_id": "BR02",
        "segment": "private",
        "sensitivity": "vip",
        "related_staff_ids": [],
        "updated_at": "2026-01-01T00:00:00+08:00",
    }


def access(n: int, staff_id: str, day: int, customer: str, action: str = "view_profile") -> dict:
    return {
        "event_id": f"fb-{staff_id}-{day}-{n}",
        "occurred_at": f"2026-03-{day:02d}T10:{n:02d}:00+08:00",
        "staff_id": staff_id,
        "customer_id": customer,
        "action": action,
        "channel": "crm_web",
        "branch_id": "BR01",
    }


def soft_weight(alert: dict[str, Any]) -> float:
    return float(sum(r["weight"] for r in alert["reasons"] if r["code"] in SOFT))


def latest_by_staff(records: list[tuple[bytes | None, bytes | None]], skip: set[str]) -> dict:
    out: dict[str, dict[str, Any]] = {}
    for _, v in records:
        a = orjson.loads(v or b"")
        if a["alert_id"] in skip or a.get("status") == "closed":
            continue
        if a["revision"] >= out.get(a["staff_id"], {"revision": 0})["revision"]:
            out[a["staff_id"]] = a
    return out


async def test_a_false_positive_weighs_that_employees_pattern_down_not_policy_violations(
    topics: Settings, producer: AIOKafkaProducer, start_worker: Any, db: asyncpg.Connection
) -> None:
    s = topics
    for sid in ("S1", "S2"):
        await send_json(producer, s.staff_topic, sid, staff(sid))
    for n in range(12):
        await send_json(producer, s.profiles_topic, f"V{n}", vip(n))
    worker = start_worker()
    worker.wait_healthy()

    # Day 2: both employees look at six VIPs of another branch: improbable, one alert each.
    for sid in ("S1", "S2"):
        for n in range(6):
            await send_json(producer, s.access_topic, sid, access(n, sid, 2, f"V{n}"))
    first = await read_topic(
        s.alerts_topic,
        until=lambda recs: {orjson.loads(v)["staff_id"] for _, v in recs} >= {"S1", "S2"},
    )
    by_staff = {orjson.loads(v)["staff_id"]: orjson.loads(v)["alert_id"] for _, v in first}

    async def stored() -> bool:
        n = await db.fetchval(
            "SELECT count(*) FROM alerts WHERE alert_id = ANY($1::text[])", list(by_staff.values())
        )
        return bool(n == 2)

    await wait_for(stored)
    # The analyst calls S1's alert a false positive (twice: a redelivery changes nothing).
    verdict = {
        "alert_id": by_staff["S1"],
        "verdict": "false_positive",
        "analyst_id": "soc-1",
        "decided_at": "2026-03-02T12:00:00+08:00",
    }
    for _ in range(2):
        await send_json(producer, s.feedback_topic, by_staff["S1"], verdict)

    async def learned() -> bool:
        return worker.metric("pipeline_feedback_learned_total") >= 1

    await wait_for(learned)
    assert worker.metric("pipeline_feedback_learned_total") == 1

    # Day 12 (the first incidents have long closed): the same six look-ups again, then a
    # credit report without authorization (a policy violation) by each.
    for sid in ("S1", "S2"):
        for n in range(6):
            await send_json(producer, s.access_topic, sid, access(n, sid, 12, f"V{n + 6}"))
        await send_json(
            producer, s.access_topic, sid, access(30, sid, 12, "V0", "credit_report_query")
        )

    def second(recs: list[tuple[bytes | None, bytes | None]]) -> bool:
        latest = latest_by_staff(recs, set(by_staff.values()))
        return all(
            sid in latest and f"fb-{sid}-12-30" in latest[sid]["event_ids"] for sid in ("S1", "S2")
        )

    latest = latest_by_staff(await read_topic(s.alerts_topic, until=second), set(by_staff.values()))
    s1, s2 = soft_weight(latest["S1"]), soft_weight(latest["S2"])
    assert s2 > 0
    assert s1 <= 0.55 * s2, (s1, s2)
    credit = {
        sid: sum(r["weight"] for r in latest[sid]["reasons"] if r["code"].startswith("credit"))
        for sid in ("S1", "S2")
    }
    assert credit["S1"] == credit["S2"] > 0, "a verdict never mutes a policy violation"
    stored_verdict = await db.fetchval(
        "SELECT verdict FROM alerts WHERE alert_id = $1", by_staff["S1"]
    )
    assert stored_verdict == "false_positive"
