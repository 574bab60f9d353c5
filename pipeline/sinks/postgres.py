"""The Postgres alert sink: idempotent upserts that keep the highest revision.

The alert topic is the source of truth; this sink may lag or be down. Errors
are sorted into :class:`RetriableError` (the caller waits and retries the same
batch, without committing its offsets) and rejected rows (alerts the table can
never hold, returned in :class:`WriteResult`; the caller dead-letters them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from pipeline.errors import RetriableError
from pipeline.sinks.base import WriteResult
from pipeline.timeutil import parse_ts

log = logging.getLogger(__name__)

RETRIABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
POISON = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

UPSERT = """
INSERT INTO alerts (alert_id, revision, staff_id, branch_id, severity, risk_score,
                    first_event_at, last_event_at, event_ids, event_count, reason_codes,
                    payload, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13)
ON CONFLICT (alert_id) DO UPDATE SET
    revision = EXCLUDED.revision, staff_id = EXCLUDED.staff_id,
    branch_id = EXCLUDED.branch_id, severity = EXCLUDED.severity,
    risk_score = EXCLUDED.risk_score, first_event_at = EXCLUDED.first_event_at,
    last_event_at = EXCLUDED.last_event_at, event_ids = EXCLUDED.event_ids,
    event_count = EXCLUDED.event_count, reason_codes = EXCLUDED.reason_codes,
    payload = EXCLUDED.payload, created_at = EXCLUDED.created_at, updated_at = now()
WHERE alerts.revision < EXCLUDED.revision
"""

APPLY_FEEDBACK = """
UPDATE alerts a SET verdict = f.verdict, status = 'closed', updated_at = now()
FROM (SELECT DISTINCT ON (alert_id) alert_id, verdict FROM alert_feedback
      WHERE alert_id = ANY($1::text[]) ORDER BY alert_id, decided_at DESC) f
WHERE a.alert_id = f.alert_id AND a.verdict IS DISTINCT FROM f.verdict
"""

INSERT_FEEDBACK = """
INSERT INTO alert_feedback (alert_id, verdict, analyst_id, comment, decided_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
"""


def _ts(text: str) -> datetime:
    return datetime.fromtimestamp(parse_ts(text), tz=UTC)


def alert_row(alert: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        alert["alert_id"],
        alert["revision"],
        alert["staff_id"],
        alert["branch_id"],
        alert["severity"],
        float(alert["risk_score"]),
        _ts(alert["first_event_at"]),
        _ts(alert["last_event_at"]),
        list(alert["event_ids"]),
        alert["event_count"],
        [r["code"] for r in alert["reasons"]],
        orjson.dumps(alert).decode(),
        _ts(alert["created_at"]),
    )


class PostgresSink:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, database_url: str, max_size: int = 4) -> PostgresSink:
        try:
            pool = await asyncpg.create_pool(database_url, min_size=1, max_size=max_size)
        except RETRIABLE as exc:
            raise RetriableError(f"cannot reach Postgres: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def write(self, alerts: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Upsert a batch. Rows the table can never hold are returned as rejected."""
        if not alerts:
            return WriteResult(0, {})
        rows = [alert_row(a) for a in alerts]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(UPSERT, rows)
                await conn.execute(APPLY_FEEDBACK, [r[0] for r in rows])
        except RETRIABLE as exc:
            raise RetriableError(f"Postgres unavailable: {exc}") from exc
        except POISON:
            return await self._write_one_by_one(rows)
        return WriteResult(len(rows), {})

    async def _write_one_by_one(self, rows: list[tuple[Any, ...]]) -> WriteResult:
        bad: dict[str, str] = {}
        async with self.pool.acquire() as conn:
            for row in rows:
                try:
                    async with conn.transaction():
                        await conn.execute(UPSERT, *row)
                        await conn.execute(APPLY_FEEDBACK, [row[0]])
                except POISON as exc:
                    bad[row[0]] = f"{type(exc).__name__}: {exc}"
        return WriteResult(len(rows) - len(bad), bad)

    async def alert_owners(self, alert_ids: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
        """alert_id -> (staff_id, reason codes) for the alerts already stored."""
        try:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT alert_id, staff_id, reason_codes FROM alerts "
                    "WHERE alert_id = ANY($1::text[])",
                    list(alert_ids),
                )
        except RETRIABLE as exc:
            raise RetriableError(f"Postgres unavailable: {exc}") from exc
        return {r["alert_id"]: (r["staff_id"], list(r["reason_codes"])) for r in rows}

    async def apply_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int:
        if not feedback:
            return 0
        rows = [
            (
                f["alert_id"],
                f["verdict"],
                f["analyst_id"],
                f.get("comment"),
                datetime.fromtimestamp(f["decided_at"], tz=UTC),
            )
            for f in feedback
        ]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(INSERT_FEEDBACK, rows)
                status = await conn.execute(APPLY_FEEDBACK, [r[0] for r in rows])
        except RETRIABLE as exc:
            raise RetriableError(f"Postgres unavailable: {exc}") from exc
        return int(status.split()[-1])
