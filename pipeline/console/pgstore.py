"""The console's Postgres queries (asyncpg), over migrations 0001-0004.

The queue reads ``console_workflow`` alone (its copies of the queue keys are
kept by a trigger on ``alerts``) with keyset paging on
``(severity_rank, risk_score, last_event_at, alert_id)``, all descending, so a
page is one index range scan whatever its depth; only the page's rows are
joined to ``alerts``. SQL is assembled only from fixed fragments; every
value is a parameter.

A workflow action is one transaction: lock the row, check the transition
(:mod:`pipeline.console.workflow`), update it, add the comment, the audit
entry and, for a verdict, the outbox row that
:class:`pipeline.console.feedback.FeedbackRelay` publishes.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import orjson

from pipeline.console.filters import QueueFilter, QueueKey
from pipeline.console.store import (
    COUNT_CAP,
    ActionRequest,
    Activity,
    AlertView,
    EvidenceRow,
    FeedbackRow,
    OutboxItem,
    OutboxRow,
    QueuePage,
    QueueRow,
    Revision,
    StaffActivity,
    Workflow,
    severity_name,
)
from pipeline.console.workflow import (
    SEVERITY_RANK,
    STATES,
    InputError,
    NotFound,
    StaleRevision,
    check_transition,
)

_KEY = "(w.severity_rank, w.risk_score, w.last_event_at, w.alert_id)"
_ORDER_DESC = "w.severity_rank DESC, w.risk_score DESC, w.last_event_at DESC, w.alert_id DESC"
_ORDER_ASC = "w.severity_rank, w.risk_score, w.last_event_at, w.alert_id"
_QUEUE_COLS = (
    "w.alert_id, w.revision, w.severity_rank, w.risk_score, w.staff_id, w.branch_id, "
    "w.staff_role, w.reason_codes, w.first_event_at, w.last_event_at, w.state, w.assignee, "
    "w.reopen_count, w.verdict"
)
_WORKFLOW_COLS = (
    "w.state, w.assignee, w.assigned_at, w.acknowledged_by, w.acknowledged_at, w.closed_by, "
    "w.closed_at, w.verdict, w.closed_revision, w.closed_severity, w.reopened_at, "
    "w.reopen_count, w.version, w.updated_at"
)
BRANCH_CACHE_S = 60.0


def _init_connection(conn: asyncpg.Connection) -> Any:
    return conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


class _Where:
    """WHERE clauses with numbered parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, fragment: str, *values: Any) -> None:
        # fragment uses {} for each value, in order
        marks = []
        for v in values:
            self.args.append(v)
            marks.append(f"${len(self.args)}")
        self.clauses.append(fragment.format(*marks))

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


def _filter_where(f: QueueFilter, me: str, with_state: bool = True) -> _Where:
    w = _Where()
    if with_state:
        states = f.states()
        if f.state == "active":
            w.add("w.state <> 'closed'")  # the partial index's predicate, word for word
        elif states:
            w.add("w.state = {}", states[0])
    if f.severities:
        w.add("w.severity_rank = ANY({}::smallint[])", [SEVERITY_RANK[s] for s in f.severities])
    if f.branch:
        w.add("w.branch_id = {}", f.branch)
    if f.role:
        w.add("w.staff_role = {}", f.role)
    if f.reason:
        w.add("w.reason_codes @> ARRAY[{}]::text[]", f.reason)
    if f.staff:
        w.add("w.staff_id = {}", f.staff)
    if f.assignee == "none":
        w.add("w.assignee IS NULL")
    elif f.assignee:
        w.add("w.assignee = {}", me if f.assignee == "me" else f.assignee)
    lo, hi = f.time_range()
    if lo is not None:
        w.add("w.last_event_at >= {}", lo)
    if hi is not None:
        w.add("w.first_event_at < {}", hi)
    return w


def _key_args(key: QueueKey) -> tuple[Any, ...]:
    return (key.severity_rank, key.risk_score, key.last_event_at, key.alert_id)


def _queue_row(r: asyncpg.Record) -> QueueRow:
    return QueueRow(
        alert_id=r["alert_id"],
        revision=r["revision"],
        severity=severity_name(r["severity_rank"]),
        risk_score=r["risk_score"],
        staff_id=r["staff_id"],
        branch_id=r["branch_id"],
        staff_role=r["staff_role"],
        reason_codes=list(r["reason_codes"]),
        event_count=r["event_count"],
        first_event_at=r["first_event_at"],
        last_event_at=r["last_event_at"],
        state=r["state"],
        assignee=r["assignee"],
        reopen_count=r["reopen_count"],
        verdict=r["verdict"],
        summary=r["summary"],
    )


def _workflow(r: asyncpg.Record) -> Workflow:
    return Workflow(
        state=r["state"],
        assignee=r["assignee"],
        assigned_at=r["assigned_at"],
        acknowledged_by=r["acknowledged_by"],
        acknowledged_at=r["acknowledged_at"],
        closed_by=r["closed_by"],
        closed_at=r["closed_at"],
        verdict=r["verdict"],
        closed_revision=r["closed_revision"],
        closed_severity=r["closed_severity"],
        reopened_at=r["reopened_at"],
        reopen_count=r["reopen_count"],
        version=r["version"],
        updated_at=r["updated_at"],
    )


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._branches: tuple[float, list[str]] = (0.0, [])

    @classmethod
    async def connect(cls, database_url: str, max_size: int = 8) -> PostgresStore:
        pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=max_size, init=_init_connection
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    # -- queue ---------------------------------------------------------------
    async def queue(
        self, f: QueueFilter, me: str, after: QueueKey | None, before: QueueKey | None
    ) -> QueuePage:
        w = _filter_where(f, me)
        order = _ORDER_DESC
        if after is not None:
            w.add(f"{_KEY} < ({{}}, {{}}, {{}}, {{}})", *_key_args(after))
        elif before is not None:
            w.add(f"{_KEY} > ({{}}, {{}}, {{}}, {{}})", *_key_args(before))
            order = _ORDER_ASC
        w.args.append(f.limit + 1)
        sql = (
            f"SELECT {_QUEUE_COLS}, a.event_count, a.payload->>'summary' AS summary FROM "
            f"(SELECT * FROM console_workflow w WHERE {w.sql()} ORDER BY {order} "
            f"LIMIT ${len(w.args)}) w JOIN alerts a USING (alert_id) ORDER BY {order}"
        )
        async with self.pool.acquire() as conn:
            records = await conn.fetch(sql, *w.args)
        rows = [_queue_row(r) for r in records]
        more = len(rows) > f.limit
        rows = rows[: f.limit]
        if before is not None:
            rows.reverse()
            has_next, has_prev = True, more
        else:
            has_next, has_prev = more, after is not None
        return QueuePage(
            rows=rows,
            next_cursor=rows[-1].key.encode() if rows and has_next else None,
            prev_cursor=rows[0].key.encode() if rows and has_prev else None,
        )

    async def counts(self, f: QueueFilter, me: str) -> dict[str, int]:
        """Alerts per state under the filter, each counted up to COUNT_CAP + 1 (shown as
        "10,000+"), so that a count stops scanning where an exact figure stops mattering."""
        w = _filter_where(f, me, with_state=False)
        w.args.append(COUNT_CAP + 1)
        cap = f"${len(w.args)}"
        parts = [
            f"(SELECT count(*) FROM (SELECT 1 FROM console_workflow w WHERE w.state = '{state}'"
            f" AND {w.sql()} LIMIT {cap}) x) AS {state}"
            for state in STATES
        ]
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(f"SELECT {', '.join(parts)}", *w.args)
        return {state: int(r[state]) for state in STATES}

    async def branches(self) -> list[str]:
        at, cached = self._branches
        if time.monotonic() - at < BRANCH_CACHE_S and cached:
            return cached
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                # a loose index scan: one probe per branch, not a scan of every alert
                "WITH RECURSIVE b AS ("
                " (SELECT branch_id FROM console_workflow ORDER BY branch_id LIMIT 1)"
                " UNION ALL SELECT (SELECT w.branch_id FROM console_workflow w"
                " WHERE w.branch_id > b.branch_id ORDER BY w.branch_id LIMIT 1) FROM b"
                " WHERE b.branch_id IS NOT NULL) SELECT branch_id FROM b"
                " WHERE branch_id IS NOT NULL LIMIT 1000"
            )
        names = [r["branch_id"] for r in records]
        self._branches = (time.monotonic(), names)
        return names

    async def neighbours(
        self, f: QueueFilter, me: str, key: QueueKey
    ) -> tuple[str | None, str | None]:
        out: list[str | None] = []
        async with self.pool.acquire() as conn:
            for op, order in (("<", _ORDER_DESC), (">", _ORDER_ASC)):
                w = _filter_where(f, me)
                w.add(f"{_KEY} {op} ({{}}, {{}}, {{}}, {{}})", *_key_args(key))
                out.append(
                    await conn.fetchval(
                        f"SELECT w.alert_id FROM console_workflow w WHERE {w.sql()} "
                        f"ORDER BY {order} LIMIT 1",
                        *w.args,
                    )
                )
        next_id, prev_id = out
        return prev_id, next_id

    # -- one alert -----------------------------------------------------------
    async def alert(self, alert_id: str) -> AlertView | None:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                f"SELECT a.*, {_WORKFLOW_COLS} FROM alerts a "
                "JOIN console_workflow w USING (alert_id) WHERE a.alert_id = $1",
                alert_id,
            )
        if r is None:
            return None
        return AlertView(
            alert_id=r["alert_id"],
            revision=r["revision"],
            severity=r["severity"],
            risk_score=r["risk_score"],
            staff_id=r["staff_id"],
            branch_id=r["branch_id"],
            staff_role=r["staff_role"],
            first_event_at=r["first_event_at"],
            last_event_at=r["last_event_at"],
            event_count=r["event_count"],
            status=r["status"],
            pipeline_verdict=r["verdict"],
            payload=dict(r["payload"]),
            workflow=_workflow(r),
        )

    async def revisions(self, alert_id: str) -> list[Revision]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT revision, severity, risk_score, status, event_count, reason_codes,"
                " created_at, payload FROM alert_revisions WHERE alert_id = $1"
                " ORDER BY revision DESC",
                alert_id,
            )
        return [
            Revision(
                revision=r["revision"],
                severity=r["severity"],
                risk_score=r["risk_score"],
                status=r["status"],
                event_count=r["event_count"],
                reason_codes=list(r["reason_codes"]),
                created_at=r["created_at"],
                payload=dict(r["payload"]),
            )
            for r in records
        ]

    async def evidence(self, alert_id: str, limit: int) -> list[EvidenceRow]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT event_id, occurred_at, action, channel, branch_id, customer_ref,"
                " record_count, outcome, reason_codes, first_revision FROM alert_evidence"
                " WHERE alert_id = $1 ORDER BY occurred_at, event_id LIMIT $2",
                alert_id,
                limit,
            )
        return [
            EvidenceRow(
                event_id=r["event_id"],
                occurred_at=r["occurred_at"],
                action=r["action"],
                channel=r["channel"],
                branch_id=r["branch_id"],
                customer_ref=r["customer_ref"],
                record_count=r["record_count"],
                outcome=r["outcome"],
                reason_codes=list(r["reason_codes"]),
                first_revision=r["first_revision"],
            )
            for r in records
        ]

    async def activity(self, alert_id: str) -> list[Activity]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT created_at AS at, author AS actor, kind AS action, body AS text,"
                " '{}'::jsonb AS detail FROM console_comments WHERE alert_id = $1"
                " UNION ALL SELECT at, actor, action, reason, detail FROM console_audit"
                " WHERE alert_id = $1 AND action NOT IN ('view_alert', 'comment')"
                " ORDER BY at DESC LIMIT 200",
                alert_id,
            )
        return [
            Activity(r["at"], r["actor"], r["action"], r["text"], dict(r["detail"]))
            for r in records
        ]

    async def feedback(self, alert_id: str) -> list[FeedbackRow]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT verdict, analyst_id, comment, decided_at, received_at"
                " FROM alert_feedback WHERE alert_id = $1 ORDER BY decided_at DESC",
                alert_id,
            )
        return [
            FeedbackRow(
                r["verdict"], r["analyst_id"], r["comment"], r["decided_at"], r["received_at"]
            )
            for r in records
        ]

    async def outbox(self, alert_id: str) -> list[OutboxRow]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT id, created_at, published_at, attempts, last_error FROM console_outbox"
                " WHERE alert_id = $1 ORDER BY id DESC",
                alert_id,
            )
        return [
            OutboxRow(r["id"], r["created_at"], r["published_at"], r["attempts"], r["last_error"])
            for r in records
        ]

    # -- one employee --------------------------------------------------------
    async def staff_alerts(self, staff_id: str, limit: int) -> list[QueueRow]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                f"SELECT {_QUEUE_COLS}, a.event_count, a.payload->>'summary' AS summary"
                " FROM console_workflow w JOIN alerts a USING (alert_id)"
                " WHERE w.staff_id = $1 ORDER BY w.last_event_at DESC LIMIT $2",
                staff_id,
                limit,
            )
        return [_queue_row(r) for r in records]

    async def staff_activity(self, staff_id: str, zone: str) -> StaffActivity:
        ev = (
            "FROM alert_evidence e WHERE e.alert_id IN"
            " (SELECT alert_id FROM alerts WHERE staff_id = $1)"
        )
        async with self.pool.acquire() as conn:
            totals = await conn.fetchrow(
                "SELECT count(*) AS events, count(DISTINCT customer_ref) AS customers,"
                f" coalesce(sum(record_count), 0) AS records {ev}",
                staff_id,
            )
            hours = await conn.fetch(
                "SELECT extract(hour FROM occurred_at AT TIME ZONE $2)::int AS h, count(*) AS n"
                f" {ev} GROUP BY 1",
                staff_id,
                zone,
            )
            groups: dict[str, list[tuple[str, int]]] = {}
            for col in ("action", "channel", "outcome"):
                rows = await conn.fetch(
                    f"SELECT {col} AS k, count(*) AS n {ev} GROUP BY 1 ORDER BY 2 DESC, 1",
                    staff_id,
                )
                groups[col] = [(r["k"], r["n"]) for r in rows]
            verdicts = await conn.fetch(
                "SELECT coalesce(verdict, state) AS k, count(*) AS n FROM console_workflow"
                " WHERE staff_id = $1 GROUP BY 1 ORDER BY 2 DESC",
                staff_id,
            )
            model = await conn.fetchval(
                "SELECT payload->'model'->'top_features' FROM alerts WHERE staff_id = $1"
                " AND jsonb_typeof(payload->'model') = 'object' ORDER BY last_event_at DESC"
                " LIMIT 1",
                staff_id,
            )
        by_hour = [0] * 24
        for r in hours:
            by_hour[r["h"]] = r["n"]
        return StaffActivity(
            events=totals["events"],
            customers=totals["customers"],
            records=totals["records"],
            by_hour=by_hour,
            by_action=groups["action"],
            by_channel=groups["channel"],
            by_outcome=groups["outcome"],
            verdicts=[(r["k"], r["n"]) for r in verdicts],
            baselines=list(model or []),
        )

    # -- workflow ------------------------------------------------------------
    async def act(self, alert_id: str, req: ActionRequest) -> Workflow:
        async with self.pool.acquire() as conn, conn.transaction():
            cur = await conn.fetchrow(
                "SELECT w.state, w.revision, a.severity FROM console_workflow w"
                " JOIN alerts a USING (alert_id) WHERE w.alert_id = $1 FOR UPDATE OF w",
                alert_id,
            )
            if cur is None:
                raise NotFound(f"no alert {alert_id}")
            check_transition(cur["state"], req.action)
            sets, args = self._sets(req, cur)
            detail: dict[str, Any] = {"revision": cur["revision"]}
            if sets:
                args.append(alert_id)
                await conn.execute(
                    f"UPDATE console_workflow SET {', '.join(sets)}, version = version + 1,"
                    f" updated_at = now() WHERE alert_id = ${len(args)}",
                    *args,
                )
            if req.comment is not None and req.action in ("close", "comment", "reopen"):
                kind = "verdict" if req.action == "close" else "comment"
                body = req.comment
                await conn.execute(
                    "INSERT INTO console_comments (alert_id, author, kind, body)"
                    " VALUES ($1, $2, $3, $4)",
                    alert_id,
                    req.actor,
                    kind,
                    body,
                )
            if req.feedback is not None:
                if req.topic is None:
                    raise InputError("no feedback topic")
                detail["verdict"] = req.feedback.verdict
                await conn.execute(
                    "INSERT INTO console_outbox (alert_id, topic, value) VALUES ($1, $2, $3)",
                    alert_id,
                    req.topic,
                    req.feedback.to_json(),
                )
            if req.assignee is not None:
                detail["assignee"] = req.assignee
            await conn.execute(
                "INSERT INTO console_audit (actor, action, alert_id, reason, client, detail)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                req.actor,
                req.action,
                alert_id,
                req.comment if req.action in ("reopen", "comment") else None,
                req.client,
                detail,
            )
            r = await conn.fetchrow(
                f"SELECT {_WORKFLOW_COLS} FROM console_workflow w WHERE alert_id = $1", alert_id
            )
        return _workflow(r)

    @staticmethod
    def _sets(req: ActionRequest, cur: asyncpg.Record) -> tuple[list[str], list[Any]]:
        args: list[Any] = []

        def p(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        a = req.action
        if a == "assign":
            return [f"assignee = {p(req.assignee)}", "assigned_at = now()"], args
        if a == "unassign":
            return ["assignee = NULL", "assigned_at = NULL"], args
        if a == "acknowledge":
            sets = ["state = 'acknowledged'", f"acknowledged_by = {p(req.actor)}"]
            sets.append("acknowledged_at = now()")
            sets.append(f"assignee = coalesce(assignee, {p(req.actor)})")
            return sets, args
        if a == "close":
            if req.feedback is None or req.seen_revision is None:
                raise InputError("a close needs a verdict and the revision you reviewed")
            if req.seen_revision != cur["revision"]:
                raise StaleRevision(req.seen_revision, cur["revision"])
            return [
                "state = 'closed'",
                f"verdict = {p(req.feedback.verdict)}",
                f"closed_by = {p(req.actor)}",
                f"closed_at = {p(req.feedback.decided_at)}",
                f"closed_revision = {p(cur['revision'])}",
                f"closed_severity = {p(cur['severity'])}",
            ], args
        if a == "reopen":
            return [
                "state = 'open'",
                "reopened_at = now()",
                "reopen_count = reopen_count + 1",
            ], args
        return [], args  # comment

    async def audit(
        self,
        actor: str,
        action: str,
        *,
        alert_id: str | None = None,
        subject: str | None = None,
        reason: str | None = None,
        client: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO console_audit (actor, action, alert_id, subject, reason, client,"
                " detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                actor,
                action,
                alert_id,
                subject,
                reason,
                client,
                detail or {},
            )

    async def reveal(
        self, actor: str, ref: str, reason: str, alert_id: str, client: str | None
    ) -> str | None:
        async with self.pool.acquire() as conn:
            raw: str | None = await conn.fetchval(
                "SELECT console_reveal($1, $2, $3, $4, $5)", actor, ref, reason, alert_id, client
            )
        return raw

    # -- outbox --------------------------------------------------------------
    async def outbox_pending(self, limit: int) -> list[OutboxItem]:
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT id, topic, alert_id, value FROM console_outbox"
                " WHERE published_at IS NULL ORDER BY id LIMIT $1",
                limit,
            )
        return [OutboxItem(r["id"], r["topic"], r["alert_id"], r["value"]) for r in records]

    async def outbox_done(self, item_id: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE console_outbox SET published_at = now(), attempts = attempts + 1,"
                " last_error = NULL WHERE id = $1",
                item_id,
            )

    async def outbox_failed(self, item_id: int, error: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE console_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                item_id,
                error[:500],
            )
