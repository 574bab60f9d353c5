"""Thin Faust agents: decode, call the pure core, hand results to a sink.

* ``score-access``: access events (keyed by staff_id) -> engine -> alerts topic.
  Per-employee risk state is a Faust table co-partitioned with the access
  topic (changelog ``{app_id}-staff-risk-changelog``, JSON values).
* ``store-alerts``: alerts topic -> Postgres (idempotent upserts).
* ``apply-feedback``: analyst verdicts -> Postgres.
* a task running the :class:`ReferenceReader` (global reference tables).

Bad input never crashes an agent: it goes to ``{prefix}access-events.dlq``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson
from aiokafka.errors import IllegalStateError

from pipeline.contract.decode import DecodeError, dead_letter, decode_access_event, decode_feedback
from pipeline.contract.records import AccessEvent
from pipeline.db.migrate import migrate_url
from pipeline.errors import RetriableError
from pipeline.reference.reader import ReferenceReader
from pipeline.sinks.base import WriteResult
from pipeline.sinks.postgres import PostgresSink
from pipeline.worker.runtime import Runtime

log = logging.getLogger(__name__)

BENIGN_VERDICTS = frozenset({"false_positive", "benign_true_positive"})
BATCH = 2000
BATCH_WITHIN = 0.25
MAX_BACKOFF = 30.0


def register(app: faust.App, rt: Runtime) -> None:
    s = rt.settings
    access = app.topic(s.access_topic, partitions=s.partitions)
    alerts = app.topic(s.alerts_topic, partitions=s.partitions)
    feedback = app.topic(s.feedback_topic, partitions=s.partitions)
    dlq = app.topic(s.dlq_topic, partitions=s.partitions)
    # Verdicts re-keyed by staff_id, so they reach the worker holding that staff's state.
    staff_feedback = app.topic(s.staff_feedback_topic, partitions=s.partitions)
    # Keys are the raw staff_id bytes and go through the default partitioner,
    # so changelog partition p holds exactly the staff of access partition p
    # (the same murmur2 hash every Kafka producer uses for the access key).
    # Values are the engine's own JSON bytes (never pickle).
    staff_risk = app.Table(
        "staff-risk",
        default=None,
        partitions=s.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
        help="per-employee risk, incident and behaviour baselines (JSON bytes)",
    )
    rt.engine.store.backing = TableBacking(staff_risk)
    metrics = rt.metrics

    async def send_dead_letter(
        value: bytes | None,
        key: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        err: DecodeError,
    ) -> None:
        record = dead_letter(value, key, topic, partition, offset, err, time.time())
        await dlq.send(key=key, value=orjson.dumps(record))
        log.warning("dead-lettered %s[%d]@%d: %s %s", topic, partition, offset, err.code, err)

    reader = ReferenceReader(s, rt.reference, metrics, send_dead_letter, rt.reference_ready)

    async def load_reference() -> None:
        await reader.run()

    app.task(load_reference)

    def on_joined(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        rt.joined = True

    def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The table is the truth for partitions we may get back later.
        rt.engine.store.forget()

    app.on_rebalance_complete.connect(on_joined)
    app.on_partitions_revoked.connect(on_revoked)

    @app.agent(access, name="score-access")
    async def score_access(stream: Any) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN):
            await rt.reference_ready.wait()
            decoded: list[AccessEvent] = []
            partitions: list[int] = []
            metrics.inc("pipeline_events_in_total", len(batch))
            for event in batch:
                msg = event.message
                rt.last_offsets[(msg.topic, msg.partition)] = msg.offset
                try:
                    decoded.append(decode_access_event(msg.value))
                    partitions.append(msg.partition)
                except DecodeError as err:
                    metrics.inc(
                        "pipeline_events_dead_lettered_total", code=err.code, topic=msg.topic
                    )
                    await send_dead_letter(
                        msg.value, msg.key, msg.topic, msg.partition, msg.offset, err
                    )
            out = rt.engine.process_batch(decoded, partitions)
            rt.engine.store.flush()
            futures = [
                await alerts.send(key=a.staff_id.encode(), value=orjson.dumps(a.to_json()))
                for a in out
            ]
            if futures:
                await asyncio.gather(*futures)
                metrics.inc("pipeline_alerts_out_total", len(futures))
            if rt.engine.stats.newest_event_at:
                metrics.set(
                    "pipeline_processing_lag_seconds",
                    max(0.0, time.time() - rt.engine.stats.newest_event_at),
                )

    sink_holder: list[PostgresSink] = []

    async def sink() -> PostgresSink:
        if not sink_holder:
            await migrate_url(s.database_url)
            sink_holder.append(await PostgresSink.connect(s.database_url))
        return sink_holder[0]

    async def with_retry(what: str, fn: Any, *args: Any) -> Any:
        delay = 0.5
        while True:
            try:
                return await fn(*args)
            except (RetriableError, OSError) as exc:
                log.warning("%s failed, retrying in %.1f s: %s", what, delay, exc)
                sink_holder.clear()
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF, delay * 2)

    async def write_alerts(rows: list[dict[str, Any]]) -> WriteResult:
        return await (await sink()).write(rows)

    async def write_feedback(rows: list[dict[str, Any]]) -> int:
        return await (await sink()).apply_feedback(rows)

    async def alert_owners(ids: list[str]) -> dict[str, tuple[str, list[str]]]:
        return await (await sink()).alert_owners(ids)

    @app.agent(alerts, name="store-alerts")
    async def store_alerts(stream: Any) -> None:
        async for batch in stream.take_events(500, within=0.5):
            rows: list[dict[str, Any]] = []
            for event in batch:
                msg = event.message
                try:
                    rows.append(orjson.loads(msg.value))
                except orjson.JSONDecodeError as exc:
                    err = DecodeError("malformed_json", f"alert is not JSON: {exc}")
                    await send_dead_letter(
                        msg.value, msg.key, msg.topic, msg.partition, msg.offset, err
                    )
            result = await with_retry("writing alerts", write_alerts, rows)
            for event in batch:
                msg = event.message
                why = result.rejected.get(_alert_id(msg.value))
                if why is not None:
                    err = DecodeError("rejected_by_database", why)
                    await send_dead_letter(
                        msg.value, msg.key, msg.topic, msg.partition, msg.offset, err
                    )
            metrics.inc("pipeline_alerts_written_total", result.written)

    @app.agent(feedback, name="apply-feedback")
    async def apply_feedback(stream: Any) -> None:
        async for batch in stream.take_events(200, within=0.5):
            rows: list[dict[str, Any]] = []
            for event in batch:
                msg = event.message
                try:
                    fb = decode_feedback(msg.value)
                except DecodeError as err:
                    metrics.inc(
                        "pipeline_events_dead_lettered_total", code=err.code, topic=msg.topic
                    )
                    await send_dead_letter(
                        msg.value, msg.key, msg.topic, msg.partition, msg.offset, err
                    )
                    continue
                rows.append(
                    {
                        "alert_id": fb.alert_id,
                        "verdict": fb.verdict,
                        "analyst_id": fb.analyst_id,
                        "comment": fb.comment,
                        "decided_at": fb.decided_at,
                    }
                )
            if rows:
                await with_retry("applying feedback", write_feedback, rows)
                metrics.inc("pipeline_feedback_total", len(rows))
                benign = [r["alert_id"] for r in rows if r["verdict"] in BENIGN_VERDICTS]
                if benign:
                    owners = await with_retry("reading alert owners", alert_owners, benign)
                    for alert_id in benign:
                        if alert_id not in owners:
                            log.warning("verdict for %s: alert not stored yet", alert_id)
                            continue
                        staff_id, codes = owners[alert_id]
                        await staff_feedback.send(
                            key=staff_id.encode(),
                            value=orjson.dumps({"staff_id": staff_id, "codes": codes}),
                        )

    @app.agent(staff_feedback, name="learn-from-feedback")
    async def learn_from_feedback(stream: Any) -> None:
        async for batch in stream.take_events(200, within=0.5):
            for event in batch:
                msg = orjson.loads(event.message.value)
                rt.engine.apply_feedback(msg["staff_id"], list(msg["codes"]))
            rt.engine.store.flush()
            metrics.inc("pipeline_feedback_learned_total", len(batch))

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        body = {
            "joined": rt.joined,
            "reference_loaded": rt.reference_ready.is_set(),
            "reference": rt.reference.counts(),
        }
        return web.json(body, status=200 if rt.healthy else 503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        consumer = app.consumer
        for (topic, partition), offset in list(rt.last_offsets.items()):
            tp = faust.types.TP(topic, partition)
            try:
                high = consumer.highwater(tp)
            except IllegalStateError:
                continue
            if high is not None:
                metrics.set(
                    "pipeline_consumer_lag_messages",
                    max(0, high - offset - 1),
                    topic=topic,
                    partition=str(partition),
                )
        return web.text(metrics.render(), content_type="text/plain; version=0.0.4")


class TableBacking:
    """str-keyed view of a bytes-keyed, bytes-valued Faust table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str, /) -> bytes | None:
        value = self.table.get(key.encode())
        return None if value is None else bytes(value)

    def __setitem__(self, key: str, value: bytes, /) -> None:
        self.table[key.encode()] = value


def _alert_id(raw: bytes | None) -> str:
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return "\x00"
    return str(value.get("alert_id", "\x00")) if isinstance(value, dict) else "\x00"
