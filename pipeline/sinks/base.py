"""Alert sinks behind one small interface, with an in-memory twin for tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    rejected: dict[str, str]  # alert_id -> why the store refused it


class AlertSink(Protocol):
    async def write(self, alerts: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Store alerts idempotently, keeping the highest revision."""

    async def apply_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int:
        """Record verdicts and update the alerts they name; return rows changed."""


class MemorySink:
    """The same semantics as the Postgres sink, in a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, Mapping[str, Any]] = {}

    async def write(self, alerts: Sequence[Mapping[str, Any]]) -> WriteResult:
        changed = 0
        for alert in alerts:
            current = self.rows.get(alert["alert_id"])
            if current is None or current["payload"]["revision"] < alert["revision"]:
                status, verdict = (
                    ("open", None) if current is None else (current["status"], current["verdict"])
                )
                self.rows[alert["alert_id"]] = {
                    "payload": dict(alert),
                    "status": status,
                    "verdict": verdict,
                }
                changed += 1
            self._apply(alert["alert_id"])
        return WriteResult(changed, {})

    async def apply_feedback(self, feedback: Sequence[Mapping[str, Any]]) -> int:
        changed = 0
        for fb in feedback:
            prev = self.feedback.get(fb["alert_id"])
            if prev is None or prev["decided_at"] <= fb["decided_at"]:
                self.feedback[fb["alert_id"]] = fb
            changed += self._apply(fb["alert_id"])
        return changed

    def _apply(self, alert_id: str) -> int:
        row = self.rows.get(alert_id)
        fb = self.feedback.get(alert_id)
        if row is None or fb is None or row["verdict"] == fb["verdict"]:
            return 0
        row["verdict"] = fb["verdict"]
        row["status"] = "closed"
        return 1
