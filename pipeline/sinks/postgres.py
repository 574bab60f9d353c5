"""The Postgres alert store: idempotent writes that keep the highest revision.

The alert topic is the source of truth; this store may lag or be down.
Every failure is sorted by what retrying can do (:func:`classify`):

* **retry** the whole batch later: no connection, the server shutting down or
  read-only after a failover (SQLSTATE classes 08, 25, 53, 55, 57, 58, XX),
  serialization failures and deadlocks (40), a table not migrated yet
  (42P01), missing privileges (42501); and any error not known to be
  permanent, since dropping an alert is worse than waiting;
* **poison**: data the table can never hold (classes 22 and 23): the batch is
  written again one row at a time, and the rows that still fail are returned
  as rejected (the caller dead-letters them).

Writes: ``alerts`` keeps one row per alert id with its highest revision
(``INSERT ... ON CONFLICT ... WHERE revision <``); ``alert_revisions`` keeps
every revision; ``alert_evidence`` the accesses of each incident;
``customer_reveal`` the raw id behind each pseudonym. Replays leave every
table as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import asyncpg
import msgspec

from pipeline.contract.decode import decode_alert
from pipeline.contract.records import Alert
from pipeline.sinks.base import EvidenceRow, WriteResult

log = logging.getLogger(__name__)

RETRY_CLASSES: Final = frozenset({"08", "25", "40", "53", "55", "57", "58", "XX"})
RETRY_STATES: Final = frozenset({"42P01", "42501", "3D000", "28000", "28P01"})
POISON_CLASSES: Final = frozenset({"22", "23"})


def classify(exc: BaseException) -> Literal["retry", "poison"]:
    """What retrying can do about ``exc`` (module docstring)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state in RETRY_STATES or state[:2] in RETRY_CLASSES:
            return "retry"
        if state[:2] in POISON_CLASSES:
            return "poison"
        return "retry"
    return "retry"  # connection errors, OSError, timeouts, interface errors


UPSERT_ALERT: Final = """
INSERT INTO alerts (alert_id, revision, staff_id, branch_id, severity, risk_score,
                    first_event_at, last_event_at, event_ids, event_count, reason_codes,
                    payload, created_at, status, staff_role)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)
ON CONFLICT (alert_id) DO UPDATE SET
    revision = EXCLUDED.revision, staff_id = EXCLUDED.staff_id,
    branch_id = EXCLUDED.branch_id, severity = EXCLUDED.severity,
    risk_score = EXCLUDED.risk_score, first_event_at = EXCLUDED.first_event_at,
    last_event_at = EXCLUDED.last_event_at, event_ids = EXCLUDED.event_ids,
    event_count = EXCLUDED.event_count, reason_codes = EXCLUDED.reason_codes,
    payload = EXCLUDED.payload, created_at = EXCLUDED.created_at,
    status = CASE WHEN EXCLUDED.status = 'closed' OR alerts.verdict IS NOT NULL
                  THEN 'closed' ELSE 'open' END,
    staff_role = EXCLUDED.staff_role, updated_at = now()
WHERE alerts.revision < EXCLUDED.revision
"""

INSERT_REVISION: Final = """
INSERT INTO alert_revisions (alert_id, revision, severity, risk_score, status, event_count,
                             reason_codes, payload, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
ON CONFLICT (alert_id, revision) DO NOTHING
"""

APPLY_FEEDBACK: Final = """
UPDATE alerts a SET verdict = f.verdict, status = 'closed', updated_at = now()
FROM (SELECT DISTINCT ON (alert_id) alert_id, verdict FROM alert_feedback
      WHERE alert_id = ANY($1::text[]) ORDER BY alert_id, decided_at DESC, analyst_id) f
WHERE a.alert_id = f.alert_id AND a.verdict IS DISTINCT FROM f.verdict
"""

INSERT_FEEDBACK: Final = """
INSERT INTO alert_feedback (alert_id, verdict, analyst_id, comment, decided_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
"""

INSERT_EVIDENCE: Final = """
INSERT INTO alert_evidence (alert_id, event_id, occurred_at, staff_id, action, channel,
                            branch_id, customer_ref, record_count, outcome, reason_codes,
                            first_revision)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (alert_id, event_id) DO NOTHING
"""

INSERT_REVEAL: Final = """
INSERT INTO customer_reveal (customer_ref, customer_id) VALUES ($1, $2)
ON CONFLICT (customer_ref) DO NOTHING
"""

_JSON = msgspec.json.Encoder()


def _ts(value: datetime) -> datetime:
    return value.astimezone(UTC)


def alert_rows(alert: Alert) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The ``alerts`` and ``alert_revisions`` rows of one alert revision."""
    payload = _JSON.encode(alert).decode()
    codes = [r.code for r in alert.reasons]
    row = (
        alert.alert_id,
        alert.revision,
        alert.staff_id,
        alert.branch_id,
        alert.severity,
        float(alert.risk_score),
        _ts(alert.first_event_at),
        _ts(alert.last_event_at),
        list(alert.event_ids),
        alert.event_count,
        codes,
        payload,
        _ts(alert.created_at),
        alert.status,
        alert.staff_role,
    )
    revision = (
        alert.alert_id,
        alert.revision,
        alert.severity,
        float(alert.risk_score),
        alert.status,
        alert.event_count,
        codes,
        payload,
        _ts(alert.created_at),
    )
    return row, revision


class PostgresSink:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, database_url: str, max_size: int = 4) -> PostgresSink:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=max_size)
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    def terminate(self) -> None:
        """Drop every connection now (after an error that may have broken them)."""
        self.pool.terminate()

    # -- alerts ------------------------------------------------------------------
    async def write_alerts(self, alerts: Sequence[Alert]) -> WriteResult:
        """Upsert a batch; rows the tables can never hold come back as rejected."""
        if not alerts:
            return WriteResult(0, {})
        rows = [alert_rows(a) for a in alerts]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(UPSERT_ALERT, [r for r, _ in rows])
                await conn.executemany(INSERT_REVISION, [v for _, v in rows])
                await conn.execute(APPLY_FEEDBACK, [r[0] for r, _ in rows])
        except asyncpg.PostgresError as exc:
            if classify(exc) != "poison":
                raise
            return await self._alerts_one_by_one(rows)
        return WriteResult(len(rows), {})

    async def _alerts_one_by_one(
        self, rows: list[tuple[tuple[Any, ...], tuple[Any, ...]]]
    ) -> WriteResult:
        bad: dict[str, str] = {}
        async with self.pool.acquire() as conn:
            for row, revision in rows:
                try:
                    async with conn.transaction():
                        await conn.execute(UPSERT_ALERT, *row)
                        await conn.execute(INSERT_REVISION, *revision)
                        await conn.execute(APPLY_FEEDBACK, [row[0]])
                except asyncpg.PostgresError as exc:
                    if classify(exc) != "poison":
                        raise
                    bad[row[0]] = f"{type(exc).__name__} ({exc.sqlstate}): {exc}"
        return WriteResult(len(rows) - len(bad), bad)

    # -- evidence ------------------------------------------------------------------
    async def write_evidence(self, rows: Sequence[EvidenceRow]) -> int:
        if not rows:
            return 0
        ev = [
            (
                r.alert_id,
                r.event_id,
                datetime.fromtimestamp(r.at, UTC),
                r.staff_id,
                r.action,
                r.channel,
                r.branch_id,
                r.customer_ref,
                r.record_count,
                r.outcome,
                r.codes,
                r.revision,
            )
            for r in rows
        ]
        reveal = sorted(
            {(r.customer_ref, r.customer_id) for r in rows if r.customer_ref and r.customer_id}
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(INSERT_EVIDENCE, ev)
            if reveal:
                await conn.executemany(INSERT_REVEAL, reveal)
        return len(rows)

    # -- feedback ------------------------------------------------------------------
    async def store_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int:
        """Record verdicts (also for alerts not stored yet) and apply them to stored alerts."""
        if not feedback:
            return 0
        rows = [
            (f["alert_id"], f["verdict"], f["analyst_id"], f.get("comment"), f["decided_at"])
            for f in feedback
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(INSERT_FEEDBACK, rows)
            status = await conn.execute(APPLY_FEEDBACK, sorted({r[0] for r in rows}))
        return int(status.split()[-1])

    async def unrouted(self, alert_ids: Sequence[str]) -> list[tuple[str, str, str, list[str]]]:
        """Verdicts on these (stored) alerts not yet routed to the staff's worker:
        (alert_id, verdict, staff_id, reason codes), the latest verdict per alert."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(
                "SELECT DISTINCT ON (f.alert_id) f.alert_id, f.verdict, a.staff_id, "
                "a.reason_codes FROM alert_feedback f JOIN alerts a USING (alert_id) "
                "WHERE f.alert_id = ANY($1::text[]) AND f.routed_at IS NULL "
                "ORDER BY f.alert_id, f.decided_at DESC, f.analyst_id",
                list(alert_ids),
            )
        return [(r[0], r[1], r[2], list(r[3])) for r in recs]

    async def latest(self, alert_ids: Sequence[str]) -> list[Alert]:
        """The stored (highest) revision of each of these alerts."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(
                "SELECT payload::text FROM alerts WHERE alert_id = ANY($1::text[]) "
                "ORDER BY alert_id",
                list(alert_ids),
            )
        return [decode_alert(r[0].encode()) for r in recs]

    async def mark_routed(self, alert_ids: Sequence[str]) -> None:
        if not alert_ids:
            return
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE alert_feedback SET routed_at = now() "
                "WHERE alert_id = ANY($1::text[]) AND routed_at IS NULL",
                list(alert_ids),
            )
