"""Analyst verdicts: stored in Postgres, then routed to the worker that holds the employee.

``{prefix}alert-feedback`` is keyed by alert id, but what a verdict changes
(the employee's weights) lives with the employee's access partition. So:

1. the feedback agent stores each verdict (``alert_feedback``; kept even when
   its alert is not stored yet) and applies it to the ``alerts`` row;
2. for every verdict whose alert is stored, it sends a :class:`StaffVerdict`
   keyed by ``staff_id`` on the internal ``{app_id}-staff-feedback`` topic
   (co-partitioned with the access topic) and marks it routed; a verdict that
   arrived before its alert is routed by the store-alerts agent once the alert
   is written;
3. the learning agent applies it to the employee's state (once per alert,
   bounded: :meth:`pipeline.detect.behaviour.Behaviour.apply_feedback`).

The staff id and reason codes come from the stored alert, never from the
verdict message: a verdict can only weigh down what the pipeline itself
alerted on, for whom it alerted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, cast

import msgspec

from pipeline.contract.decode import DecodeError, dead_letter, decode_feedback
from pipeline.contract.records import Verdict
from pipeline.observability.metrics import WorkerMetrics
from pipeline.worker.publish import DeadLetterSender, Producer, retrying
from pipeline.worker.store import AlertStore

log = logging.getLogger(__name__)

MAX_CODES: Final = 32


class StaffVerdict(msgspec.Struct, frozen=True):
    """Internal: a stored alert's verdict, for the worker holding the employee."""

    alert_id: str
    verdict: Verdict
    staff_id: str
    codes: list[str]


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder(StaffVerdict)


def decode_staff_verdict(raw: bytes | None) -> StaffVerdict:
    if raw is None:
        raise DecodeError("tombstone", "staff verdict is null")
    try:
        v = _DEC.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError("invalid_value", f"not a staff verdict: {exc}") from None
    if len(v.codes) > MAX_CODES:
        raise DecodeError("invalid_value", f"more than {MAX_CODES} reason codes")
    return v


class FeedbackService:
    def __init__(
        self,
        store: AlertStore,
        producer: Producer,
        staff_topic: str,
        metrics: WorkerMetrics,
        dead_letters: DeadLetterSender,
        ocsf: Callable[[dict[str, Any], str | None], bytes] | None = None,
        ocsf_topic: str = "",
    ) -> None:
        self.ocsf = ocsf
        self.ocsf_topic = ocsf_topic
        self.store = store
        self.producer = producer
        self.staff_topic = staff_topic
        self.metrics = metrics
        self.dead_letters = dead_letters

    async def on_feedback(
        self, records: Sequence[tuple[bytes | None, bytes | None, str, int, int]]
    ) -> None:
        """Verdicts from the feedback topic: ``(value, key, topic, partition, offset)``."""
        rows: list[dict[str, Any]] = []
        for value, key, topic, partition, offset in records:
            try:
                fb = decode_feedback(value)
            except DecodeError as err:
                await self.dead_letters(
                    dead_letter(value, key, topic, partition, offset, err, time.time()), key
                )
                continue
            rows.append(
                {
                    "alert_id": fb.alert_id,
                    "verdict": fb.verdict,
                    "analyst_id": fb.analyst_id,
                    "comment": fb.comment or None,
                    "decided_at": fb.decided_at,
                }
            )
            self.metrics.feedback.labels(verdict=fb.verdict).inc()
        if not rows:
            return
        await self.store.run("store_feedback", lambda sink: sink.store_feedback(rows))
        ids = sorted({r["alert_id"] for r in rows})
        await self.route(ids)
        if self.ocsf is not None:
            await self._publish_findings(ids, rows)

    async def _publish_findings(self, ids: list[str], rows: list[dict[str, Any]]) -> None:
        """An OCSF update with the verdict for each judged alert that is stored."""
        latest_verdict = {}
        for r in sorted(rows, key=lambda r: (r["decided_at"], r["analyst_id"])):
            latest_verdict[r["alert_id"]] = r["verdict"]
        alerts = await self.store.run("read_alerts", lambda sink: sink.latest(ids))
        if not alerts or self.ocsf is None:
            return
        ocsf = self.ocsf
        items = [
            (
                self.ocsf_topic,
                a.alert_id.encode(),
                ocsf(msgspec.to_builtins(a), latest_verdict.get(a.alert_id)),
            )
            for a in alerts
        ]

        async def send() -> None:
            futures = [await self.producer.send(t, k, v) for t, k, v in items]
            for f in futures:
                await f

        await retrying("publish_findings", send, self.metrics)
        self.metrics.ocsf_out.inc(len(items))

    async def route(self, alert_ids: Sequence[str]) -> int:
        """Send the unrouted verdicts of these alerts (those stored) to the staff's worker."""
        if not alert_ids:
            return 0
        todo = await self.store.run("read_feedback", lambda sink: sink.unrouted(alert_ids))
        if not todo:
            return 0
        items = [
            (
                self.staff_topic,
                staff_id.encode(),
                _ENC.encode(StaffVerdict(aid, cast(Verdict, v), staff_id, c)),
            )
            for aid, v, staff_id, c in todo
        ]

        async def send() -> None:
            futures = [await self.producer.send(t, k, v) for t, k, v in items]
            for f in futures:
                await f

        await retrying("route_feedback", send, self.metrics)
        routed = [aid for aid, _, _, _ in todo]
        await self.store.run("mark_routed", lambda sink: sink.mark_routed(routed))
        return len(routed)


def learn(
    verdicts: Sequence[tuple[StaffVerdict, int]],
    apply: Callable[[str, int, str, str, list[str]], bool],
    metrics: WorkerMetrics,
) -> None:
    """Apply routed verdicts ``(verdict, partition)`` with ``apply`` (the core's)."""
    for v, partition in verdicts:
        if apply(v.staff_id, partition, v.alert_id, v.verdict, list(v.codes)):
            metrics.feedback_learned.inc()
        else:
            metrics.feedback_ignored.labels(reason="repeated_or_policy_only").inc()


Learner = Callable[[Sequence[tuple[StaffVerdict, int]]], Awaitable[None]]
