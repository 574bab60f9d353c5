"""The alert store behind one small interface, with an in-memory twin for tests.

:class:`MemorySink` has the semantics of :class:`pipeline.sinks.postgres.PostgresSink`
(highest revision wins, every revision kept, verdicts kept before their
alert, routing marks), so the worker's services are tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.contract.records import Alert


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    rejected: dict[str, str]  # alert_id -> why the store refused it


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    alert_id: str
    revision: int
    staff_id: str
    event_id: str
    at: float
    customer_ref: str | None
    customer_id: str | None
    action: str
    channel: str
    branch_id: str
    record_count: int
    outcome: str
    codes: list[str]


class AlertSink(Protocol):
    async def write_alerts(self, alerts: Sequence[Alert]) -> WriteResult: ...

    async def write_evidence(self, rows: Sequence[EvidenceRow]) -> int: ...

    async def store_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int: ...

    async def unrouted(self, alert_ids: Sequence[str]) -> list[tuple[str, str, str, list[str]]]: ...

    async def mark_routed(self, alert_ids: Sequence[str]) -> None: ...

    async def latest(self, alert_ids: Sequence[str]) -> list[Alert]: ...

    async def close(self) -> None: ...


class MemorySink:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}  # alert_id -> {alert, status, verdict}
        self.revisions: dict[tuple[str, int], Alert] = {}
        self.evidence: dict[tuple[str, str], EvidenceRow] = {}
        self.reveal: dict[str, str] = {}
        self.feedback: dict[tuple[str, Any, str], Mapping[str, Any]] = {}
        self.routed: set[str] = set()
        self.closed = False

    async def write_alerts(self, alerts: Sequence[Alert]) -> WriteResult:
        for a in alerts:
            self.revisions.setdefault((a.alert_id, a.revision), a)
            current = self.rows.get(a.alert_id)
            if current is None or current["alert"].revision < a.revision:
                verdict = None if current is None else current["verdict"]
                status = "closed" if a.status == "closed" or verdict is not None else "open"
                self.rows[a.alert_id] = {"alert": a, "status": status, "verdict": verdict}
            self._apply(a.alert_id)
        return WriteResult(len(alerts), {})

    async def write_evidence(self, rows: Sequence[EvidenceRow]) -> int:
        for r in rows:
            self.evidence.setdefault((r.alert_id, r.event_id), r)
            if r.customer_ref and r.customer_id:
                self.reveal.setdefault(r.customer_ref, r.customer_id)
        return len(rows)

    async def store_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int:
        changed = 0
        for f in feedback:
            self.feedback.setdefault((f["alert_id"], f["decided_at"], f["analyst_id"]), f)
        for alert_id in {f["alert_id"] for f in feedback}:
            changed += self._apply(alert_id)
        return changed

    def _latest(self, alert_id: str) -> Mapping[str, Any] | None:
        mine = [f for (a, _, _), f in self.feedback.items() if a == alert_id]
        if not mine:
            return None
        return max(mine, key=lambda f: (f["decided_at"], f["analyst_id"]))

    def _apply(self, alert_id: str) -> int:
        row = self.rows.get(alert_id)
        fb = self._latest(alert_id)
        if row is None or fb is None or row["verdict"] == fb["verdict"]:
            return 0
        row["verdict"] = fb["verdict"]
        row["status"] = "closed"
        return 1

    async def unrouted(self, alert_ids: Sequence[str]) -> list[tuple[str, str, str, list[str]]]:
        out = []
        for alert_id in sorted(set(alert_ids)):
            row = self.rows.get(alert_id)
            fb = self._latest(alert_id)
            if row is None or fb is None or alert_id in self.routed:
                continue
            alert: Alert = row["alert"]
            out.append((alert_id, fb["verdict"], alert.staff_id, [r.code for r in alert.reasons]))
        return out

    async def mark_routed(self, alert_ids: Sequence[str]) -> None:
        self.routed.update(alert_ids)

    async def latest(self, alert_ids: Sequence[str]) -> list[Alert]:
        return [self.rows[a]["alert"] for a in sorted(set(alert_ids)) if a in self.rows]

    async def close(self) -> None:
        self.closed = True
