"""The alert store behind one small interface, with an in-memory twin for tests.

:class:`MemorySink` has the semantics of :class:`pipeline.sinks.postgres.PostgresSink`
(highest revision wins, every revision kept, verdicts kept before their
alert, routing marks, refused rows), so the worker's services are tested
without a database; ``tests/integration/test_sink_twin.py`` checks that both
give the same results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from pipeline.contract.decode import has_nul
from pipeline.contract.records import SEVERITIES, Alert


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


# What the Postgres tables refuse (their CHECK constraints, int4 columns, and
# NUL characters, which neither text nor jsonb can hold), for MemorySink.
_INT4_MAX = 2**31 - 1
_SEVERITIES = frozenset(SEVERITIES)


def refusal(alert: Alert) -> str | None:
    """Why the ``alerts`` table would refuse ``alert`` (a poison row), or None."""
    if not 1 <= alert.revision <= _INT4_MAX:
        return f"revision {alert.revision} outside 1..{_INT4_MAX}"
    if not 0 <= alert.event_count <= _INT4_MAX:
        return f"event_count {alert.event_count} outside 0..{_INT4_MAX}"
    if alert.severity not in _SEVERITIES:
        return f"unknown severity {alert.severity!r}"
    if not 0.0 <= alert.risk_score <= 100.0:  # NaN included
        return f"risk_score {alert.risk_score} outside 0..100"
    if alert.status not in ("open", "closed"):
        return f"unknown status {alert.status!r}"
    if has_nul(msgspec.to_builtins(alert)):
        return "a NUL character in a text field"
    return None


_FeedbackKey = tuple[str, Any, str]  # (alert_id, decided_at, analyst_id), the table's key


class MemorySink:
    """In-memory :class:`AlertSink` with the Postgres sink's semantics:

    * ``rows``: one per alert id, its highest revision (any arrival order; a
      replay changes nothing); ``revisions`` keeps every revision;
    * an alert the table would refuse (:func:`refusal`) comes back in
      ``WriteResult.rejected`` and the rest of the batch is written;
    * verdicts are kept per (alert, decided_at, analyst), also before their
      alert exists; the latest (by ``decided_at``, then the smallest analyst
      id) is applied to the alert when either arrives, and closes it;
    * routing marks are per verdict, as ``alert_feedback.routed_at``: a verdict
      that arrives after its alert was routed is routed again.
    """

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}  # alert_id -> {alert, status, verdict}
        self.revisions: dict[tuple[str, int], Alert] = {}
        self.evidence: dict[tuple[str, str], EvidenceRow] = {}
        self.reveal: dict[str, str] = {}
        self.feedback: dict[str, dict[_FeedbackKey, Mapping[str, Any]]] = {}
        self.routed: set[_FeedbackKey] = set()
        self.closed = False

    async def write_alerts(self, alerts: Sequence[Alert]) -> WriteResult:
        rejected: dict[str, str] = {}
        for a in alerts:
            why = refusal(a)
            if why is not None:
                rejected[a.alert_id] = why
                continue
            self.revisions.setdefault((a.alert_id, a.revision), a)
            current = self.rows.get(a.alert_id)
            if current is None or current["alert"].revision < a.revision:
                verdict = None if current is None else current["verdict"]
                status = "closed" if a.status == "closed" or verdict is not None else "open"
                self.rows[a.alert_id] = {"alert": a, "status": status, "verdict": verdict}
            self._apply(a.alert_id)
        return WriteResult(len(alerts) - len(rejected), rejected)

    async def write_evidence(self, rows: Sequence[EvidenceRow]) -> int:
        for r in rows:
            self.evidence.setdefault((r.alert_id, r.event_id), r)
            if r.customer_ref and r.customer_id:
                self.reveal.setdefault(r.customer_ref, r.customer_id)
        return len(rows)

    async def store_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int:
        for f in feedback:
            key = (f["alert_id"], f["decided_at"], f["analyst_id"])
            self.feedback.setdefault(f["alert_id"], {}).setdefault(key, f)
        return sum(self._apply(alert_id) for alert_id in sorted({f["alert_id"] for f in feedback}))

    def _latest(self, alert_id: str, unrouted: bool = False) -> Mapping[str, Any] | None:
        """The verdict in force: latest ``decided_at``, then smallest analyst id."""
        best: tuple[_FeedbackKey, Mapping[str, Any]] | None = None
        for key, f in self.feedback.get(alert_id, {}).items():
            if unrouted and key in self.routed:
                continue
            # Later decided_at wins; at the same time, the smaller analyst id.
            if best is None or (key[1], best[0][2]) > (best[0][1], key[2]):
                best = (key, f)
        return None if best is None else best[1]

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
            fb = self._latest(alert_id, unrouted=True)
            if row is None or fb is None:
                continue
            alert: Alert = row["alert"]
            out.append((alert_id, fb["verdict"], alert.staff_id, [r.code for r in alert.reasons]))
        return out

    async def mark_routed(self, alert_ids: Sequence[str]) -> None:
        for alert_id in alert_ids:
            self.routed.update(self.feedback.get(alert_id, {}))

    async def latest(self, alert_ids: Sequence[str]) -> list[Alert]:
        return [self.rows[a]["alert"] for a in sorted(set(alert_ids)) if a in self.rows]

    async def close(self) -> None:
        self.closed = True
