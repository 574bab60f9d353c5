"""The pure core driven in-process over raw records: the library entry point for offline runs.

Inputs are the bytes a topic would carry, so a caller needs nothing of the
pipeline but the contract: reference records as ``(topic suffix, key, value)``
with the suffix one of ``staff-directory``, ``staff-assignments``,
``customer-profiles``; access events as ``(key, value)``; analyst verdicts
as AlertFeedback values returned by ``triage``. The same core as the worker
runs, with the same placement of events on partitions (Kafka's default
partitioner over the key), so the alerts are the worker's.

``triage(day, alerts)`` is called after each bank day (local date in
``settings.bank_timezone``) with the alert revisions emitted that day; the
AlertFeedback values it returns are applied before the next day, as an
analyst's daily triage through the feedback topic would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.alerts.ids import Pseudonymizer
from pipeline.broker.partitioning import partition_for
from pipeline.contract.decode import (
    DecodeError,
    dead_letter,
    decode_access_event,
    decode_feedback,
)
from pipeline.core.engine import Engine, StaffStore
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings

REFERENCE_KINDS = {
    "staff-directory": "staff",
    "staff-assignments": "assignment",
    "customer-profiles": "profile",
}
BENIGN_VERDICTS = frozenset({"false_positive", "benign_true_positive"})

Triage = Callable[[str, list[dict[str, Any]]], list[bytes]]


@dataclass
class OfflineRun:
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every revision, in order
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    feedback_applied: int = 0
    seconds: float = 0.0  # CPU-bound wall time of the core (decode included)


def load_reference(
    records: Iterable[tuple[str, bytes | None, bytes | None]],
) -> tuple[ReferenceState, list[dict[str, Any]]]:
    state = ReferenceState()
    rejects: list[dict[str, Any]] = []
    for i, (suffix, key, value) in enumerate(records):
        kind = REFERENCE_KINDS[suffix]
        try:
            apply_reference_record(state, kind, key, value)
        except DecodeError as err:
            rejects.append(dead_letter(value, key, suffix, 0, i, err, 0.0))
    return state, rejects


def run_offline(
    reference: Iterable[tuple[str, bytes | None, bytes | None]],
    accesses: Iterable[tuple[bytes | None, bytes | None]],
    settings: Settings,
    triage: Triage | None = None,
    batch: int = 1000,
) -> OfflineRun:
    state, rejects = load_reference(reference)
    engine = Engine(
        state,
        Pseudonymizer(settings.pseudonym_key, raw=settings.raw_customer_ids),
        StaffStore(partitions=settings.partitions),
        namespace=settings.app_id,
    )
    zone = ZoneInfo(settings.bank_timezone)
    run = OfflineRun(dead_letters=rejects)
    owners: dict[str, tuple[str, list[str]]] = {}
    day_alerts: list[dict[str, Any]] = []
    current_day = ""
    pending: list[tuple[bytes | None, bytes | None, int]] = []
    started = time.perf_counter()

    def flush() -> None:
        events = []
        parts = []
        for key, value, offset in pending:
            try:
                ev = decode_access_event(value)
            except DecodeError as err:
                run.dead_letters.append(dead_letter(value, key, "access-events", 0, offset, err, 0))
                continue
            events.append(ev)
            parts.append(partition_for(ev.staff_id.encode(), settings.partitions))
        pending.clear()
        for a in engine.process_batch(events, parts):
            out = a.to_json()
            owners[out["alert_id"]] = (out["staff_id"], [r["code"] for r in out["reasons"]])
            run.alerts.append(out)
            day_alerts.append(out)
        engine.store.flush()

    for offset, (key, value) in enumerate(accesses):
        if triage is not None and value is not None:
            try:
                day = _day(decode_access_event(value).occurred_at, zone)
            except DecodeError:
                day = current_day
            if day != current_day:
                flush()
                if current_day:
                    run.feedback_applied += _apply(engine, owners, triage(current_day, day_alerts))
                day_alerts = []
                current_day = day
        pending.append((key, value, offset))
        if len(pending) >= batch:
            flush()
    flush()
    if triage is not None and current_day:
        run.feedback_applied += _apply(engine, owners, triage(current_day, day_alerts))
    run.seconds = time.perf_counter() - started
    return run


def _day(epoch: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d")


def _apply(engine: Engine, owners: dict[str, tuple[str, list[str]]], values: list[bytes]) -> int:
    applied = 0
    for raw in values:
        fb = decode_feedback(raw)
        owner = owners.get(fb.alert_id)
        if owner is not None and fb.verdict in BENIGN_VERDICTS:
            engine.apply_feedback(owner[0], owner[1])
            applied += 1
    engine.store.flush()
    return applied
