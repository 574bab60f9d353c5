"""MemorySink is the Postgres sink's twin: the same operations give the same outcomes.

Each scenario runs against a real PostgresSink (a fresh, migrated database) and
a MemorySink, and every observable result is compared: what each call returns,
and the alerts table (revision, status, verdict per alert) and the revisions
kept afterwards.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from msgspec.structs import replace

from pipeline.contract.records import Alert, Reason
from pipeline.db.migrate import migrate_url
from pipeline.sinks.base import AlertSink, EvidenceRow, MemorySink
from pipeline.sinks.postgres import PostgresSink
from tests.integration.kit import DATABASE_URL, with_login

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
        reasons=[Reason("unassigned_customer_access", "view_profile", 9.0)],
        model=None,
        event_ids=[f"e{i}" for i in range(revision)],
        event_count=revision,
        customer_refs=["ref-1"],
    )
    return replace(base, **changes)


def verdict(alert_id: str, value: str, seconds: float, analyst_id: str = "A1") -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "verdict": value,
        "analyst_id": analyst_id,
        "comment": None,
        "decided_at": T + timedelta(seconds=seconds),
    }


def evidence(alert_id: str, event_id: str, revision: int) -> EvidenceRow:
    return EvidenceRow(
        alert_id, revision, "S1", event_id, T.timestamp(), "ref-1", "C1", "view_profile",
        "crm_web", "BR1", 1, "success", ["unassigned_customer_access"],
    )  # fmt: skip


Step = Callable[[AlertSink], Awaitable[Any]]


async def _rows(sink: AlertSink, pool: asyncpg.Pool | None) -> Any:
    if isinstance(sink, MemorySink):
        table = {k: (r["alert"].revision, r["status"], r["verdict"]) for k, r in sink.rows.items()}
        return table, sorted(sink.revisions), sorted(sink.evidence)
    assert pool is not None
    async with pool.acquire() as conn:
        table = {
            r[0]: (r[1], r[2], r[3])
            for r in await conn.fetch("SELECT alert_id, revision, status, verdict FROM alerts")
        }
        revisions = await conn.fetch("SELECT alert_id, revision FROM alert_revisions")
        ev = await conn.fetch("SELECT alert_id, event_id FROM alert_evidence")
    return table, sorted((r[0], r[1]) for r in revisions), sorted((r[0], r[1]) for r in ev)


def _result(value: Any) -> Any:
    """What a call returned, comparable across the two sinks."""
    if hasattr(value, "written"):
        return ("write", value.written, sorted(value.rejected))
    return value


SCENARIOS: dict[str, list[Step]] = {
    "revisions in any order, replays, closing and reopening": [
        lambda s: s.write_alerts([alert("a1", 1)]),
        lambda s: s.write_alerts([alert("a1", 3), alert("a1", 2)]),
        lambda s: s.write_alerts([alert("a1", 1), alert("a2", 1)]),
        lambda s: s.write_alerts([alert("a2", 2, status="closed")]),
        lambda s: s.write_alerts([alert("a2", 1)]),
        lambda s: s.write_alerts([alert("a2", 3)]),
    ],
    "verdicts before and after their alert, latest wins, ties": [
        lambda s: s.store_feedback([verdict("a1", "false_positive", 10)]),
        lambda s: s.unrouted(["a1"]),
        lambda s: s.write_alerts([alert("a1", 1), alert("a2", 1), alert("a3", 1)]),
        lambda s: s.store_feedback([verdict("a1", "true_positive", 5)]),  # older: no change
        lambda s: s.store_feedback([verdict("a1", "true_positive", 20)]),
        lambda s: s.store_feedback(
            [verdict("a2", "false_positive", 7, "A2"), verdict("a2", "true_positive", 7, "A1")]
        ),
        lambda s: s.store_feedback(
            [verdict("a3", "true_positive", 7, "A1"), verdict("a3", "false_positive", 7, "A2")]
        ),
        lambda s: s.write_alerts([alert("a1", 2)]),  # the verdict stays on a new revision
        lambda s: s.unrouted(["a3", "a1", "a2", "missing"]),
    ],
    "routing marks per verdict": [
        lambda s: s.write_alerts([alert("a1", 1), alert("a2", 1, staff_id="S2")]),
        lambda s: s.store_feedback([verdict("a1", "true_positive", 1)]),
        lambda s: s.store_feedback([verdict("a2", "true_positive", 1)]),
        lambda s: s.unrouted(["a1", "a2"]),
        lambda s: s.mark_routed(["a1"]),
        lambda s: s.unrouted(["a1", "a2"]),
        lambda s: s.store_feedback([verdict("a1", "false_positive", 2)]),
        lambda s: s.unrouted(["a1", "a2"]),
        lambda s: s.mark_routed(["a1", "a2"]),
        lambda s: s.unrouted(["a1", "a2"]),
    ],
    "rows the table refuses": [
        lambda s: s.write_alerts(
            [
                alert("ok1", 1),
                alert("score", 1, risk_score=150.0),
                alert("nan", 1, risk_score=math.nan),
                alert("nul", 1, staff_id="S\x001"),
                alert("nul-json", 1, summary="a\x00b"),
                alert("ok2", 1),
            ]
        ),
        lambda s: s.write_alerts([alert("ok1", 2)]),
    ],
    "evidence, first row per event": [
        lambda s: s.write_alerts([alert("a1", 1)]),
        lambda s: s.write_evidence([evidence("a1", "e1", 1), evidence("a1", "e2", 1)]),
        lambda s: s.write_evidence([evidence("a1", "e1", 2)]),
    ],
}


@pytest.fixture
async def pg_sink() -> AsyncIterator[tuple[PostgresSink, asyncpg.Pool]]:
    database = f"aw_twin_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{database}"')
    owner = urlsplit(DATABASE_URL)
    url = with_login(DATABASE_URL, owner.username or "", owner.password or "", database)
    try:
        await migrate_url(url)
        sink = await PostgresSink.connect(url)
        try:
            yield sink, sink.pool
        finally:
            await sink.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_memory_sink_matches_postgres(
    name: str, pg_sink: tuple[PostgresSink, asyncpg.Pool]
) -> None:
    pg, pool = pg_sink
    memory = MemorySink()
    for i, step in enumerate(SCENARIOS[name]):
        got_pg = _result(await step(pg))
        got_mem = _result(await step(memory))
        assert got_mem == got_pg, f"step {i}: memory {got_mem!r} != postgres {got_pg!r}"
        assert await _rows(memory, None) == await _rows(pg, pool), f"after step {i}"
