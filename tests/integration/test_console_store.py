"""The console's Postgres store, triggers and privileges on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import asyncpg
import pytest

from pipeline.console.filters import QueueFilter, QueueKey
from pipeline.console.pgstore import PostgresStore
from pipeline.console.store import ActionRequest, QueueRow
from pipeline.console.workflow import SEVERITY_RANK, StaleRevision, feedback_for
from tests.alert_rows import SyntheticAlert, make_alerts, write_alerts, write_revision

TOPIC = "t.alert-feedback"


def _key(p: dict[str, object]) -> tuple[int, float, datetime, str]:
    return (
        SEVERITY_RANK[str(p["severity"])],
        float(p["risk_score"]),  # type: ignore[arg-type]
        datetime.fromisoformat(str(p["last_event_at"]).replace("Z", "+00:00")),
        str(p["alert_id"]),
    )


async def _seeded(url: str, n: int = 240) -> tuple[PostgresStore, list[SyntheticAlert]]:
    alerts = make_alerts(n, seed=5, revisions=2, events=4, staff=60, branches=6)
    conn = await asyncpg.connect(url)
    try:
        await write_alerts(conn, alerts)
    finally:
        await conn.close()
    return await PostgresStore.connect(url, max_size=2), alerts


async def _walk(store: PostgresStore, f: QueueFilter, me: str = "me") -> list[QueueRow]:
    rows: list[QueueRow] = []
    after: QueueKey | None = None
    while True:
        page = await store.queue(f, me, after, None)
        rows += page.rows
        if page.next_cursor is None:
            return rows
        after = QueueKey.decode(page.next_cursor)


async def test_queue_pages_equal_a_brute_force_filter_and_sort(pg_schema: str) -> None:
    store, alerts = await _seeded(pg_schema)
    try:
        latest = [a.latest for a in alerts]
        branch = latest[0]["branch_id"]
        code = latest[0]["reasons"][0]["code"]
        lo = datetime(2026, 3, 10, tzinfo=UTC)
        cases = [
            (QueueFilter(limit=25), lambda p: True),
            (
                QueueFilter(severities=("high", "critical")),
                lambda p: p["severity"] in ("high", "critical"),
            ),
            (
                QueueFilter(branch=branch, role=latest[0]["staff_role"]),
                lambda p: p["branch_id"] == branch and p["staff_role"] == latest[0]["staff_role"],
            ),
            (
                QueueFilter(reason=code, limit=25),
                lambda p: code in [r["code"] for r in p["reasons"]],
            ),
            (QueueFilter(since="2026-03-10", zone="UTC"), lambda p: _key(p)[2] >= lo),
        ]
        for f, keep in cases:
            expected = [p["alert_id"] for p in sorted(filter(keep, latest), key=_key, reverse=True)]
            got = [r.alert_id for r in await _walk(store, f)]
            assert got == expected, f
            counts = await store.counts(f, "me")
            assert counts == {"open": len(expected), "acknowledged": 0, "closed": 0}
        # a previous page from a cursor is the page before it
        f = QueueFilter(limit=25)
        first = await store.queue(f, "me", None, None)
        second = await store.queue(f, "me", QueueKey.decode(first.next_cursor or ""), None)
        assert second.prev_cursor is not None
        back = await store.queue(f, "me", None, QueueKey.decode(second.prev_cursor))
        assert [r.alert_id for r in back.rows] == [r.alert_id for r in first.rows]
        assert back.prev_cursor is None and back.next_cursor is not None
        assert sorted(await store.branches()) == sorted({p["branch_id"] for p in latest})
    finally:
        await store.close()


async def test_workflow_actions_state_counts_and_audit(pg_schema: str) -> None:
    store, alerts = await _seeded(pg_schema, 20)
    try:
        aid = alerts[0].latest["alert_id"]
        w = await store.act(aid, ActionRequest("acknowledge", "alice", "127.0.0.1"))
        assert (w.state, w.acknowledged_by, w.assignee) == ("acknowledged", "alice", "alice")
        mine = await _walk(store, QueueFilter(assignee="me"), me="alice")
        assert [r.alert_id for r in mine] == [aid]
        fb = feedback_for(aid, "true_positive", "alice", "confirmed with HR")
        w = await store.act(
            aid,
            ActionRequest(
                "close",
                "alice",
                None,
                comment=fb.comment,
                seen_revision=2,
                feedback=fb,
                topic=TOPIC,
            ),
        )
        assert (w.state, w.verdict, w.closed_revision) == ("closed", "true_positive", 2)
        assert w.closed_at == fb.decided_at
        counts = await store.counts(QueueFilter(), "alice")
        assert counts == {"open": 19, "acknowledged": 0, "closed": 1}
        pending = await store.outbox_pending(10)
        assert [(p.alert_id, p.topic, p.value) for p in pending] == [(aid, TOPIC, fb.to_json())]
        activity = await store.activity(aid)
        assert [a.action for a in activity][:3] == ["close", "verdict", "acknowledge"] or {
            "close",
            "verdict",
            "acknowledge",
        } <= {a.action for a in activity}
        other = alerts[1].latest["alert_id"]
        with pytest.raises(StaleRevision):
            await store.act(
                other,
                ActionRequest(
                    "close",
                    "alice",
                    None,
                    seen_revision=1,
                    feedback=feedback_for(other, "false_positive", "alice", None),
                    topic=TOPIC,
                ),
            )
        assert (await store.alert(other)).workflow.state == "open"  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_an_escalated_revision_reopens_a_closed_alert(pg_schema: str) -> None:
    store, alerts = await _seeded(pg_schema, 10)
    conn = await asyncpg.connect(pg_schema)
    try:
        a = next(x for x in alerts if x.latest["severity"] in ("low", "medium", "high"))
        p = a.latest
        aid = p["alert_id"]
        fb = feedback_for(aid, "false_positive", "alice", None)
        await store.act(
            aid,
            ActionRequest(
                "close", "alice", None, seen_revision=p["revision"], feedback=fb, topic=TOPIC
            ),
        )
        # more evidence, same severity: stays closed
        later = dict(p, revision=p["revision"] + 1, event_count=p["event_count"] + 3)
        await write_revision(conn, later)
        view = await store.alert(aid)
        assert view is not None and view.workflow.state == "closed" and view.revision == 3
        # a higher severity: re-opened, recorded as done by the pipeline
        worse = {"low": "medium", "medium": "high", "high": "critical"}[p["severity"]]
        await write_revision(conn, dict(later, revision=later["revision"] + 1, severity=worse))
        view = await store.alert(aid)
        assert view is not None
        assert (view.workflow.state, view.workflow.reopen_count) == ("open", 1)
        assert view.workflow.verdict == "false_positive"  # the earlier verdict stays visible
        row = await conn.fetchrow(
            "SELECT actor, detail FROM console_audit WHERE alert_id = $1 AND action = 'reopen'",
            aid,
        )
        assert row["actor"] == "pipeline"
        assert '"severity": "' + worse in row["detail"]
        active = [r.alert_id for r in await _walk(store, QueueFilter())]
        assert aid in active
        # an older revision arriving late changes nothing
        await write_revision(conn, dict(p, revision=1, severity="critical"))
        assert (await store.alert(aid)).revision == 4  # type: ignore[union-attr]
    finally:
        await conn.close()
        await store.close()


async def test_a_verdict_from_another_tool_closes_the_console_row(pg_schema: str) -> None:
    store, alerts = await _seeded(pg_schema, 5)
    conn = await asyncpg.connect(pg_schema)
    try:
        aid = alerts[0].latest["alert_id"]
        decided = datetime.now(tz=UTC)
        await conn.execute(
            "INSERT INTO alert_feedback (alert_id, verdict, analyst_id, decided_at)"
            " VALUES ($1, 'true_positive', 'soar-bot', $2)",
            aid,
            decided,
        )
        view = await store.alert(aid)
        assert view is not None
        assert (view.workflow.state, view.workflow.closed_by) == ("closed", "soar-bot")
        await store.act(aid, ActionRequest("reopen", "alice", None, comment="not done yet"))
        # the same old verdict delivered again does not close what was re-opened after it
        await conn.execute(
            "INSERT INTO alert_feedback (alert_id, verdict, analyst_id, decided_at)"
            " VALUES ($1, 'true_positive', 'soar-bot', $2)",
            aid,
            decided - timedelta(seconds=1),
        )
        assert (await store.alert(aid)).workflow.state == "open"  # type: ignore[union-attr]
    finally:
        await conn.close()
        await store.close()


async def test_the_console_role_reads_raw_ids_only_through_the_audited_function(
    pg_schema: str, console_role_url: str
) -> None:
    owner_store, alerts = await _seeded(pg_schema, 5)
    await owner_store.close()
    ref, raw = next(iter(alerts[0].customers.items()))
    aid = alerts[0].latest["alert_id"]
    conn = await asyncpg.connect(console_role_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM customer_reveal")
        with pytest.raises(asyncpg.InvalidParameterValueError, match="reason"):
            await conn.fetchval("SELECT console_reveal('ivan', $1, 'x', $2, NULL)", ref, aid)
        got = await conn.fetchval(
            "SELECT console_reveal('ivan', $1, 'case 77 review', $2, '10.0.0.9')", ref, aid
        )
        assert got == raw
        row = await conn.fetchrow(
            "SELECT actor, action, subject, reason, client, at FROM console_audit"
            " WHERE action = 'reveal'"
        )
        assert (row["actor"], row["subject"], row["reason"], row["client"]) == (
            "ivan",
            ref,
            "case 77 review",
            "10.0.0.9",
        )
        assert abs((datetime.now(tz=UTC) - row["at"]).total_seconds()) < 600
        for sql in (
            "UPDATE alerts SET verdict = 'false_positive'",
            "INSERT INTO alert_feedback (alert_id, verdict, analyst_id, decided_at)"
            " VALUES ('x', 'true_positive', 'a', now())",
            "UPDATE console_audit SET actor = 'nobody'",
            "DELETE FROM console_audit",
            "DELETE FROM console_workflow",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    finally:
        await conn.close()
    # the store works as that role: a close writes workflow, comment, audit and outbox
    store = await PostgresStore.connect(console_role_url, max_size=1)
    try:
        fb = feedback_for(aid, "benign_true_positive", "ivan", "known process")
        w = await store.act(
            aid,
            ActionRequest(
                "close", "ivan", None, comment=fb.comment, seen_revision=2, feedback=fb, topic=TOPIC
            ),
        )
        assert w.state == "closed"
        assert await store.reveal("ivan", ref, "second look", aid, None) == raw
    finally:
        await store.close()


async def test_migration_0004_can_be_run_again(pg_schema: str) -> None:
    sql = resources.files("pipeline.db").joinpath("migrations/0004_console.sql").read_text()
    conn = await asyncpg.connect(pg_schema)
    try:
        async with conn.transaction():
            await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM console_workflow") == 0
    finally:
        await conn.close()
