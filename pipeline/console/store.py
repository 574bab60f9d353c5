"""What the console reads and writes, as plain records, behind one interface.

:class:`ConsoleStore` is implemented by :class:`pipeline.console.pgstore.PostgresStore`
(the real one) and by an in-memory twin in the handler tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pipeline.console.filters import QueueFilter, QueueKey
from pipeline.console.workflow import SEVERITIES, Feedback

# Queue counts stop at this many (the page shows "10,000+"), as search UIs do.
COUNT_CAP = 10_000


def severity_name(rank: int) -> str:
    return SEVERITIES[rank - 1] if 1 <= rank <= len(SEVERITIES) else "low"


@dataclass(frozen=True, slots=True)
class QueueRow:
    alert_id: str
    revision: int
    severity: str
    risk_score: float
    staff_id: str
    branch_id: str
    staff_role: str | None
    reason_codes: list[str]
    event_count: int
    first_event_at: datetime
    last_event_at: datetime
    state: str
    assignee: str | None
    reopen_count: int
    verdict: str | None
    summary: str | None = None

    @property
    def key(self) -> QueueKey:
        return QueueKey(
            SEVERITIES.index(self.severity) + 1, self.risk_score, self.last_event_at, self.alert_id
        )


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None  # ?after=
    prev_cursor: str | None  # ?before=


@dataclass(frozen=True, slots=True)
class Workflow:
    state: str
    assignee: str | None
    assigned_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    verdict: str | None
    closed_revision: int | None
    closed_severity: str | None
    reopened_at: datetime | None
    reopen_count: int
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlertView:
    alert_id: str
    revision: int
    severity: str
    risk_score: float
    staff_id: str
    branch_id: str
    staff_role: str | None
    first_event_at: datetime
    last_event_at: datetime
    event_count: int
    status: str  # the pipeline's (incident open / ended, or closed by feedback)
    pipeline_verdict: str | None  # alerts.verdict, written by the worker from the topic
    payload: dict[str, Any]
    workflow: Workflow

    @property
    def key(self) -> QueueKey:
        return QueueKey(
            SEVERITIES.index(self.severity) + 1, self.risk_score, self.last_event_at, self.alert_id
        )


@dataclass(frozen=True, slots=True)
class Revision:
    revision: int
    severity: str
    risk_score: float
    status: str
    event_count: int
    reason_codes: list[str]
    created_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    event_id: str
    occurred_at: datetime
    action: str
    channel: str
    branch_id: str
    customer_ref: str | None
    record_count: int
    outcome: str
    reason_codes: list[str]
    first_revision: int


@dataclass(frozen=True, slots=True)
class Activity:
    at: datetime
    actor: str
    action: str  # comment, verdict, or an audit action
    text: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    verdict: str
    analyst_id: str
    comment: str | None
    decided_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    created_at: datetime
    published_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    topic: str
    alert_id: str
    value: str


@dataclass(frozen=True, slots=True)
class StaffActivity:
    """What the evidence store says about one employee's accesses."""

    events: int
    customers: int
    records: int
    by_hour: list[int]  # 24 counts, bank time
    by_action: list[tuple[str, int]]
    by_channel: list[tuple[str, int]]
    by_outcome: list[tuple[str, int]]
    verdicts: list[tuple[str, int]]
    baselines: list[dict[str, Any]]  # the latest model top_features seen for them


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One workflow action, validated by the handler."""

    action: str
    actor: str
    client: str | None
    assignee: str | None = None
    comment: str | None = None
    seen_revision: int | None = None
    feedback: Feedback | None = None
    topic: str | None = None  # where the feedback goes


class ConsoleStore(Protocol):
    async def queue(
        self, f: QueueFilter, me: str, after: QueueKey | None, before: QueueKey | None
    ) -> QueuePage: ...

    async def counts(self, f: QueueFilter, me: str) -> dict[str, int]: ...

    async def branches(self) -> list[str]: ...

    async def neighbours(
        self, f: QueueFilter, me: str, key: QueueKey
    ) -> tuple[str | None, str | None]: ...

    async def alert(self, alert_id: str) -> AlertView | None: ...

    async def revisions(self, alert_id: str) -> list[Revision]: ...

    async def evidence(self, alert_id: str, limit: int) -> list[EvidenceRow]: ...

    async def activity(self, alert_id: str) -> list[Activity]: ...

    async def feedback(self, alert_id: str) -> list[FeedbackRow]: ...

    async def outbox(self, alert_id: str) -> list[OutboxRow]: ...

    async def staff_alerts(self, staff_id: str, limit: int) -> list[QueueRow]: ...

    async def staff_activity(self, staff_id: str, zone: str) -> StaffActivity: ...

    async def act(self, alert_id: str, req: ActionRequest) -> Workflow: ...

    async def audit(
        self,
        actor: str,
        action: str,
        *,
        alert_id: str | None = None,
        subject: str | None = None,
        reason: str | None = None,
        client: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...

    async def reveal(
        self, actor: str, ref: str, reason: str, alert_id: str, client: str | None
    ) -> str | None: ...

    async def outbox_pending(self, limit: int) -> list[OutboxItem]: ...

    async def outbox_done(self, item_id: int) -> None: ...

    async def outbox_failed(self, item_id: int, error: str) -> None: ...

    async def close(self) -> None: ...
