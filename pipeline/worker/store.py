"""The alert store service: the Postgres sink with its connection, retries and poison rows.

Used by the store-alerts, store-evidence and feedback agents. A transient
failure (:func:`pipeline.sinks.postgres.classify`) drops the pool (closing
its connections), waits with backoff and tries the same batch again, counted
in ``pipeline_retries_total{operation}``; the agent does not acknowledge the
batch meanwhile, so nothing is lost however long Postgres is away. Poison
rows are dead-lettered one by one with code ``rejected_by_database``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import asyncpg

from pipeline.contract.decode import DecodeError, dead_letter, decode_alert
from pipeline.contract.records import Alert
from pipeline.db.migrate import prepare_schema
from pipeline.errors import PoisonError
from pipeline.observability.metrics import WorkerMetrics
from pipeline.settings import Settings
from pipeline.sinks.base import AlertSink
from pipeline.sinks.postgres import PostgresSink, classify
from pipeline.worker.publish import DeadLetterSender

log = logging.getLogger(__name__)

MAX_BACKOFF: Final = 30.0
# What may be transient: every database error (classified), lost connections, timeouts,
# and asyncpg's InternalClientError: a session the server terminated mid-transaction
# (Postgres shutting down) can come back from the pool with its protocol state corrupt
# ("cannot switch to state 15; another operation is in progress", MagicStack/asyncpg#784);
# a fresh pool cures it.
TRANSIENT: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
T = TypeVar("T")


class AlertStore:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        dead_letters: DeadLetterSender,
        connect: Callable[[str], Awaitable[AlertSink]] | None = None,
    ) -> None:
        self.s = settings
        self.metrics = metrics
        self.dead_letters = dead_letters
        self._connect = connect or PostgresSink.connect
        self._sink: AlertSink | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> AlertSink:
        if self._sink is None:
            await prepare_schema(self.s)
            self._sink = await self._connect(self.s.database_url)
        return self._sink

    async def _drop(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                await asyncio.wait_for(sink.close(), 5.0)
            except TRANSIENT as exc:
                log.debug("closing the Postgres pool failed: %s", exc)
                terminate = getattr(sink, "terminate", None)
                if terminate is not None:
                    terminate()

    async def run(self, operation: str, fn: Callable[[AlertSink], Awaitable[T]]) -> T:
        """``fn(sink)``, retried on transient failures until it succeeds."""
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                async with self._lock:
                    result = await fn(await self._get())
                self.metrics.postgres_write_seconds.labels(operation=operation).observe(
                    time.perf_counter() - started
                )
                return result
            except TRANSIENT as exc:
                if classify(exc) == "poison":
                    raise
                self.metrics.retries.labels(operation=operation).inc()
                log.warning(
                    "%s failed (%s: %s); retrying in %.1f s",
                    operation,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._drop()
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF, delay * 2)

    async def store_alerts(
        self, records: list[tuple[bytes | None, bytes | None, str, int, int]]
    ) -> list[Alert]:
        """Decode and store alert records ``(value, key, topic, partition, offset)``;
        dead-letter what cannot be stored; return the alerts stored."""
        alerts: list[Alert] = []
        origin: dict[str, tuple[bytes | None, bytes | None, str, int, int]] = {}
        for rec in records:
            value, key, topic, partition, offset = rec
            try:
                alert = decode_alert(value)
            except DecodeError as err:
                await self.dead_letters(
                    dead_letter(value, key, topic, partition, offset, err, time.time()), key
                )
                continue
            alerts.append(alert)
            origin[alert.alert_id] = rec
        if not alerts:
            return []
        result = await self.run("write_alerts", lambda sink: sink.write_alerts(alerts))
        for alert_id, why in result.rejected.items():
            value, key, topic, partition, offset = origin[alert_id]
            refused = PoisonError("rejected_by_database", why)
            await self.dead_letters(
                dead_letter(value, key, topic, partition, offset, refused, time.time()), key
            )
        self.metrics.alerts_written.inc(result.written)
        return [a for a in alerts if a.alert_id not in result.rejected]

    async def close(self) -> None:
        await self._drop()
