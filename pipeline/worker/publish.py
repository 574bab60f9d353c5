"""Putting the core's effects on the broker: alerts, evidence, peer days, dead letters.

Every effect is a produce whose acknowledgement the caller awaits before it
writes state or acknowledges input (``pipeline.core.engine``, step 3), so a
crash can duplicate an effect but never lose one. Transient broker errors are
retried with backoff; only a defect escapes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import msgspec
from aiokafka.errors import KafkaError

from pipeline.contract.decode import encode
from pipeline.contract.records import DeadLetter
from pipeline.core.engine import Outbox
from pipeline.observability.metrics import WorkerMetrics
from pipeline.peers import days as peer_days
from pipeline.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF: Final = 30.0
_EVIDENCE = msgspec.json.Encoder()


class Producer(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> Awaitable[Any]: ...


async def retrying(what: str, fn: Callable[[], Awaitable[Any]], metrics: WorkerMetrics) -> Any:
    """Run ``fn`` until it succeeds, retrying broker errors with backoff (counted)."""
    delay = 0.2
    while True:
        try:
            return await fn()
        except (TimeoutError, KafkaError, OSError) as exc:
            metrics.retries.labels(operation=what).inc()
            log.warning(
                "%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay
            )
            await asyncio.sleep(delay)
            delay = min(MAX_BACKOFF, delay * 2)


def evidence_value(alert_id: str, revision: int, staff_id: str, evidence: Sequence[Any]) -> bytes:
    """The internal evidence record: the accesses new in one revision (raw customer ids)."""
    return _EVIDENCE.encode(
        {
            "alert_id": alert_id,
            "revision": revision,
            "staff_id": staff_id,
            "events": [
                {
                    "event_id": e.event_id,
                    "at": e.at,
                    "customer_id": e.customer_id,
                    "action": e.action,
                    "channel": e.channel,
                    "branch_id": e.branch_id,
                    "record_count": e.record_count,
                    "outcome": e.outcome,
                    "codes": sorted({s.code for s in e.signals}),
                }
                for e in evidence
            ],
        }
    )


class Letter(msgspec.Struct, array_like=True, frozen=True):
    """What the log line and metrics of one dead letter need."""

    topic: str
    partition: int
    offset: int
    code: str


class Sent(msgspec.Struct, array_like=True, frozen=True):
    """What the log line and metrics of one alert revision need."""

    alert_id: str
    staff_id: str
    revision: int
    severity: str
    risk_score: float
    event_count: int
    status: str
    source_timestamp_ms: int


class Encoded(msgspec.Struct, array_like=True):
    """An Outbox as the records to produce (topic, key, value) and what to log of it.
    Encoding is the CPU-heavy half of publishing: a scoring process
    (:mod:`pipeline.worker.scorer`) does it and ships this; the worker sends it."""

    items: list[tuple[str, bytes | None, bytes | None]]
    letters: list[Letter]
    alerts: list[Sent]
    ocsf: bool


def encode_outbox(
    out: Outbox,
    s: Settings,
    ocsf: Callable[[dict[str, Any], str | None], bytes] | None = None,
) -> Encoded:
    """The records of ``out``: dead letters, peer days, then per alert revision the alert,
    its OCSF finding (when ``ocsf``) and its new evidence."""
    items: list[tuple[str, bytes | None, bytes | None]] = []
    letters = []
    for dl, key in out.dead_letters:
        items.append((s.dlq_topic, key, encode(dl)))
        letters.append(Letter(dl.topic, dl.partition, dl.offset, dl.error.code))
    for rec in out.peer_records:
        items.append((s.peer_days_topic, peer_days.key(rec), peer_days.encode(rec)))
    sent = []
    for a in out.alerts:
        alert = a.emitted.alert
        items.append((s.alerts_topic, a.staff_id.encode(), encode(alert)))
        if ocsf is not None:
            items.append(
                (
                    s.ocsf_topic,
                    alert.alert_id.encode(),
                    ocsf(msgspec.to_builtins(alert), a.emitted.verdict),
                )
            )
        if a.emitted.evidence:
            items.append(
                (
                    s.evidence_topic,
                    alert.alert_id.encode(),
                    evidence_value(alert.alert_id, alert.revision, a.staff_id, a.emitted.evidence),
                )
            )
        sent.append(
            Sent(
                alert.alert_id,
                alert.staff_id,
                alert.revision,
                alert.severity,
                alert.risk_score,
                alert.event_count,
                alert.status,
                a.source_timestamp_ms,
            )
        )
    return Encoded(items, letters, sent, ocsf is not None)


class OutboxPublisher:
    """Sends an Outbox (or an :class:`Encoded` one) and waits for every acknowledgement."""

    def __init__(
        self,
        producer: Producer,
        settings: Settings,
        metrics: WorkerMetrics,
        ocsf: Callable[[dict[str, Any], str | None], bytes] | None = None,
    ) -> None:
        self.producer = producer
        self.s = settings
        self.metrics = metrics
        self.ocsf = ocsf

    async def _send_all(self, items: list[tuple[str, bytes | None, bytes | None]]) -> None:
        futures = [await self.producer.send(t, k, v) for t, k, v in items]
        if futures:
            await asyncio.gather(*futures)

    async def publish(self, out: Outbox) -> None:
        await self.send(encode_outbox(out, self.s, self.ocsf))

    async def send(self, enc: Encoded) -> None:
        if not enc.items:
            return
        now_ms = time.time() * 1000.0
        for a in enc.alerts:
            if a.source_timestamp_ms > 0:
                self.metrics.alert_latency.observe(max(0.0, now_ms - a.source_timestamp_ms) / 1e3)
        await retrying("publish", lambda: self._send_all(enc.items), self.metrics)
        for dl in enc.letters:
            self.metrics.events_dead_lettered.labels(topic=dl.topic, code=dl.code).inc()
            log.warning(
                "dead-lettered %s[%d]@%d: %s",
                dl.topic,
                dl.partition,
                dl.offset,
                dl.code,
                extra={
                    "topic": dl.topic,
                    "partition": dl.partition,
                    "offset": dl.offset,
                    "code": dl.code,
                },
            )
        for a in enc.alerts:
            log.info(
                "alert %s revision %d: %s, risk %.0f, %d events (%s)",
                a.alert_id,
                a.revision,
                a.severity,
                a.risk_score,
                a.event_count,
                a.status,
                extra={"alert_id": a.alert_id, "staff_id": a.staff_id},
            )
        if enc.alerts:
            self.metrics.alerts_out.inc(len(enc.alerts))
            if enc.ocsf:
                self.metrics.ocsf_out.inc(len(enc.alerts))


class DeadLetterSender:
    """Dead letters from places outside the core (reference reader, feedback, alert store)."""

    def __init__(self, producer: Producer, settings: Settings, metrics: WorkerMetrics) -> None:
        self.producer = producer
        self.s = settings
        self.metrics = metrics

    async def __call__(self, dl: DeadLetter, key: bytes | None) -> None:
        value = encode(dl)

        async def send() -> None:
            await (await self.producer.send(self.s.dlq_topic, key, value))

        await retrying("dead_letter", send, self.metrics)
        self.metrics.events_dead_lettered.labels(topic=dl.topic, code=dl.error.code).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s",
            dl.topic,
            dl.partition,
            dl.offset,
            dl.error.code,
            extra={
                "topic": dl.topic,
                "partition": dl.partition,
                "offset": dl.offset,
                "code": dl.error.code,
            },
        )
