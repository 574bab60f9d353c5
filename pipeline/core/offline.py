"""The pure core driven in-process over raw records: the library entry point for offline runs.

Inputs are the bytes a topic would carry, so a caller needs nothing of the
pipeline but the contract: reference records as ``(topic suffix, key, value)``
with the suffix one of ``staff-directory``, ``staff-assignments``,
``customer-profiles``; access events as ``(key, value)`` in publication
order; analyst verdicts as AlertFeedback values returned by ``triage``. The
same :class:`~pipeline.core.engine.Core` as the worker runs, with the same
placement of events on partitions (Kafka's default partitioner over the
key), so the alerts are the worker's (ids, revisions, event ids).

``triage(day, alerts)`` is called after each bank day (local date in
``settings.bank_timezone``, as ``YYYY-MM-DD``) with the alert revisions
emitted while that day's accesses were processed; the AlertFeedback values
it returns are applied before the next day, as an analyst's daily triage
through the feedback topic would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pipeline.alerts.ids import Pseudonymizer
from pipeline.broker.partitioning import partition_for
from pipeline.contract.decode import DecodeError, dead_letter, decode_access_event, decode_feedback
from pipeline.core.calendar import Calendar, calendar
from pipeline.core.engine import Core, CoreConfig, Inbound, Outbox
from pipeline.core.store import Store
from pipeline.peers.book import PeerBook
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings

REFERENCE_KINDS = {
    "staff-directory": "staff",
    "staff-assignments": "assignment",
    "customer-profiles": "profile",
}

Triage = Callable[[str, list[dict[str, Any]]], list[bytes]]


@dataclass
class OfflineRun:
    alerts: list[dict[str, Any]] = field(default_factory=list)  # every revision, in order
    evidence: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    feedback_applied: int = 0
    seconds: float = 0.0  # wall time of the core (decode included)
    core: Core | None = None


def load_reference(
    records: Iterable[tuple[str, bytes | None, bytes | None]],
) -> tuple[ReferenceState, list[dict[str, Any]]]:
    state = ReferenceState()
    rejects: list[dict[str, Any]] = []
    for i, (suffix, key, value) in enumerate(records):
        try:
            apply_reference_record(state, REFERENCE_KINDS[suffix], key, value)
        except DecodeError as err:
            rejects.append(msgspec.to_builtins(dead_letter(value, key, suffix, 0, i, err, 0.0)))
    return state, rejects


def core_config(settings: Settings) -> CoreConfig:
    return CoreConfig(
        partitions=settings.partitions,
        topic=settings.access_topic,
        namespace=settings.app_id,
        bank_timezone=settings.bank_timezone,
        learn_until=settings.learn_until.timestamp() if settings.learn_until else None,
        max_event_skew_s=settings.max_event_skew_s,
        allowed_lateness_s=settings.allowed_lateness_s,
    )


def new_core(reference: ReferenceState, settings: Settings) -> Core:
    """A core holding every partition, with dict-backed state."""
    return Core(
        reference,
        core_config(settings),
        Store({}, settings.partitions),
        PeerBook(settings.partitions),
        Pseudonymizer(settings.pseudonym_key, raw=settings.raw_customer_ids),
    )


class _Collector:
    def __init__(self, run: OfflineRun) -> None:
        self.run = run
        self.owners: dict[str, tuple[str, int, list[str]]] = {}
        self.day_alerts: list[dict[str, Any]] = []

    def take(self, out: Outbox, partitions: int) -> None:
        for a in out.alerts:
            alert = msgspec.to_builtins(a.emitted.alert)
            part = partition_for(a.staff_id.encode(), partitions)
            self.owners[alert["alert_id"]] = (
                a.staff_id,
                part,
                [r["code"] for r in alert["reasons"]],
            )
            self.run.alerts.append(alert)
            self.day_alerts.append(alert)
            for ev in a.emitted.evidence:
                self.run.evidence.append({"alert_id": alert["alert_id"], "event_id": ev.event_id})
        for dl, _ in out.dead_letters:
            self.run.dead_letters.append(msgspec.to_builtins(dl))


def run_offline(
    reference: Iterable[tuple[str, bytes | None, bytes | None]],
    accesses: Iterable[tuple[bytes | None, bytes | None]],
    settings: Settings,
    triage: Triage | None = None,
    batch: int = 2000,
) -> OfflineRun:
    state, rejects = load_reference(reference)
    core = new_core(state, settings)
    run = OfflineRun(dead_letters=rejects, core=core)
    collect = _Collector(run)
    cal = calendar(settings.bank_timezone)
    offsets = [0] * settings.partitions
    started = time.perf_counter()
    current_day: int | None = None
    pending: list[Inbound] = []

    def flush() -> None:
        core.offer(pending)
        pending.clear()
        collect.take(core.drain(), settings.partitions)
        core.store.flush()

    def end_day(day: int) -> None:
        assert triage is not None
        flush()
        alerts, collect.day_alerts = collect.day_alerts, []
        run.feedback_applied += _apply(core, collect, triage(_label(day), alerts))

    for key, value in accesses:
        p = partition_for(key, settings.partitions) if key is not None else 0
        if triage is not None:
            day = _day_of(value, cal)
            if day is not None and current_day is not None and day > current_day:
                end_day(current_day)
            if day is not None and (current_day is None or day > current_day):
                current_day = day
        pending.append(Inbound(p, offsets[p], key, value))
        offsets[p] += 1
        if len(pending) >= batch:
            flush()
    flush()
    if triage is not None and current_day is not None:
        end_day(current_day)
    run.seconds = time.perf_counter() - started
    return run


def _label(day: int) -> str:
    return Calendar.day_label(day)


def _day_of(value: bytes | None, cal: Calendar) -> int | None:
    try:
        return cal.day(decode_access_event(value).occurred_at.timestamp())
    except DecodeError:
        return None


def _apply(core: Core, collect: _Collector, values: list[bytes]) -> int:
    applied = 0
    for raw in values:
        fb = decode_feedback(raw)
        owner = collect.owners.get(fb.alert_id)
        if owner is not None and core.apply_feedback(
            owner[0], owner[1], fb.alert_id, fb.verdict, owner[2]
        ):
            applied += 1
    core.store.flush()
    return applied
