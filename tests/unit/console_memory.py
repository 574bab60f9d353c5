"""An in-memory twin of the console's Postgres store, for the handler tests.

Same semantics as :class:`pipeline.console.pgstore.PostgresStore` on the
paths the handlers use (queue order and filters, workflow transitions, audit,
outbox, reveal); the integration tests check the real store against Postgres.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pipeline.console.filters import QueueFilter, QueueKey
from pipeline.console.store import (
    COUNT_CAP,
    ActionRequest,
    Activity,
    AlertView,
    EvidenceRow,
    FeedbackRow,
    OutboxItem,
    OutboxRow,
    QueuePage,
    QueueRow,
    Revision,
    StaffActivity,
    Workflow,
)
from pipeline.console.workflow import (
    SEVERITY_RANK,
    InputError,
    NotFound,
    StaleRevision,
    check_transition,
)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _now() -> datetime:
    return datetime.now(tz=UTC)


def new_workflow() -> Workflow:
    return Workflow(
        "open", None, None, None, None, None, None, None, None, None, None, 0, 1, _now()
    )


class MemoryStore:
    def __init__(self) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}  # alert_id -> latest payload
        self.revs: dict[str, list[dict[str, Any]]] = {}
        self.workflows: dict[str, Workflow] = {}
        self.evidence_rows: dict[str, list[EvidenceRow]] = {}
        self.reveal_table: dict[str, str] = {}
        self.audit_log: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.outbox_rows: list[dict[str, Any]] = []

    # -- seeding (what the pipeline's sink would write) ----------------------
    def add(self, payload: dict[str, Any], evidence: list[EvidenceRow] | None = None) -> None:
        aid = payload["alert_id"]
        self.revs.setdefault(aid, []).append(payload)
        if aid not in self.alerts or self.alerts[aid]["revision"] < payload["revision"]:
            self.alerts[aid] = payload
        self.workflows.setdefault(aid, new_workflow())
        if evidence is not None:
            self.evidence_rows[aid] = evidence

    # -- queue ---------------------------------------------------------------
    def _row(self, aid: str) -> QueueRow:
        p, w = self.alerts[aid], self.workflows[aid]
        return QueueRow(
            alert_id=aid,
            revision=p["revision"],
            severity=p["severity"],
            risk_score=float(p["risk_score"]),
            staff_id=p["staff_id"],
            branch_id=p["branch_id"],
            staff_role=p.get("staff_role"),
            reason_codes=[r["code"] for r in p["reasons"]],
            event_count=p["event_count"],
            first_event_at=_ts(p["first_event_at"]),
            last_event_at=_ts(p["last_event_at"]),
            state=w.state,
            assignee=w.assignee,
            reopen_count=w.reopen_count,
            verdict=w.verdict,
            summary=p.get("summary"),
        )

    def _matching(self, f: QueueFilter, me: str, with_state: bool = True) -> list[QueueRow]:
        lo, hi = f.time_range()
        out = []
        for aid in self.alerts:
            r = self._row(aid)
            if with_state and f.states() and r.state not in f.states():
                continue
            if f.severities and r.severity not in f.severities:
                continue
            if f.branch and r.branch_id != f.branch:
                continue
            if f.role and r.staff_role != f.role:
                continue
            if f.reason and f.reason not in r.reason_codes:
                continue
            if f.staff and r.staff_id != f.staff:
                continue
            if f.assignee == "none" and r.assignee is not None:
                continue
            if f.assignee not in (None, "none") and r.assignee != (
                me if f.assignee == "me" else f.assignee
            ):
                continue
            if lo is not None and r.last_event_at < lo:
                continue
            if hi is not None and r.first_event_at >= hi:
                continue
            out.append(r)
        out.sort(key=lambda r: r.key, reverse=True)
        return out

    async def queue(
        self, f: QueueFilter, me: str, after: QueueKey | None, before: QueueKey | None
    ) -> QueuePage:
        rows = self._matching(f, me)
        if after is not None:
            rows = [r for r in rows if r.key < after]
            page = rows[: f.limit]
            more = len(rows) > f.limit
            return QueuePage(
                page,
                page[-1].key.encode() if more and page else None,
                page[0].key.encode() if page else None,
            )
        if before is not None:
            rows = [r for r in rows if r.key > before]
            page = rows[-f.limit :]
            more = len(rows) > f.limit
            return QueuePage(
                page,
                page[-1].key.encode() if page else None,
                page[0].key.encode() if more and page else None,
            )
        page = rows[: f.limit]
        return QueuePage(page, page[-1].key.encode() if len(rows) > f.limit else None, None)

    async def counts(self, f: QueueFilter, me: str) -> dict[str, int]:
        out = {"open": 0, "acknowledged": 0, "closed": 0}
        for r in self._matching(f, me, with_state=False):
            out[r.state] += 1
        return {k: min(v, COUNT_CAP + 1) for k, v in out.items()}

    async def branches(self) -> list[str]:
        return sorted({p["branch_id"] for p in self.alerts.values()})

    async def neighbours(
        self, f: QueueFilter, me: str, key: QueueKey
    ) -> tuple[str | None, str | None]:
        rows = self._matching(f, me)
        after = [r for r in rows if r.key < key]
        before = [r for r in rows if r.key > key]
        return (before[-1].alert_id if before else None, after[0].alert_id if after else None)

    # -- one alert -----------------------------------------------------------
    async def alert(self, alert_id: str) -> AlertView | None:
        p = self.alerts.get(alert_id)
        if p is None:
            return None
        return AlertView(
            alert_id=alert_id,
            revision=p["revision"],
            severity=p["severity"],
            risk_score=float(p["risk_score"]),
            staff_id=p["staff_id"],
            branch_id=p["branch_id"],
            staff_role=p.get("staff_role"),
            first_event_at=_ts(p["first_event_at"]),
            last_event_at=_ts(p["last_event_at"]),
            event_count=p["event_count"],
            status=p.get("status", "open"),
            pipeline_verdict=None,
            payload=p,
            workflow=self.workflows[alert_id],
        )

    async def revisions(self, alert_id: str) -> list[Revision]:
        return [
            Revision(
                p["revision"],
                p["severity"],
                float(p["risk_score"]),
                p.get("status", "open"),
                p["event_count"],
                [r["code"] for r in p["reasons"]],
                _ts(p["created_at"]),
                p,
            )
            for p in sorted(self.revs.get(alert_id, []), key=lambda p: -p["revision"])
        ]

    async def evidence(self, alert_id: str, limit: int) -> list[EvidenceRow]:
        return self.evidence_rows.get(alert_id, [])[:limit]

    async def activity(self, alert_id: str) -> list[Activity]:
        out = [
            Activity(c["at"], c["author"], c["kind"], c["body"])
            for c in self.comments
            if c["alert_id"] == alert_id
        ]
        out += [
            Activity(a["at"], a["actor"], a["action"], a["reason"], a["detail"])
            for a in self.audit_log
            if a["alert_id"] == alert_id and a["action"] not in ("view_alert", "comment")
        ]
        return sorted(out, key=lambda x: x.at, reverse=True)

    async def feedback(self, alert_id: str) -> list[FeedbackRow]:
        return []

    async def outbox(self, alert_id: str) -> list[OutboxRow]:
        return [
            OutboxRow(o["id"], o["created_at"], o["published_at"], o["attempts"], o["last_error"])
            for o in reversed(self.outbox_rows)
            if o["alert_id"] == alert_id
        ]

    # -- one employee --------------------------------------------------------
    async def staff_alerts(self, staff_id: str, limit: int) -> list[QueueRow]:
        rows = [self._row(a) for a, p in self.alerts.items() if p["staff_id"] == staff_id]
        return sorted(rows, key=lambda r: r.last_event_at, reverse=True)[:limit]

    async def staff_activity(self, staff_id: str, zone: str) -> StaffActivity:
        ev = [
            e
            for aid, rows in self.evidence_rows.items()
            if self.alerts[aid]["staff_id"] == staff_id
            for e in rows
        ]
        by_hour = [0] * 24
        for e in ev:
            by_hour[e.occurred_at.hour] += 1
        return StaffActivity(
            len(ev),
            len({e.customer_ref for e in ev}),
            sum(e.record_count for e in ev),
            by_hour,
            [],
            [],
            [],
            [],
            [],
        )

    # -- workflow ------------------------------------------------------------
    async def act(self, alert_id: str, req: ActionRequest) -> Workflow:
        w = self.workflows.get(alert_id)
        if w is None:
            raise NotFound(f"no alert {alert_id}")
        p = self.alerts[alert_id]
        check_transition(w.state, req.action)
        now = _now()
        a = req.action
        if a == "assign":
            w = replace(w, assignee=req.assignee, assigned_at=now)
        elif a == "unassign":
            w = replace(w, assignee=None, assigned_at=None)
        elif a == "acknowledge":
            w = replace(
                w,
                state="acknowledged",
                acknowledged_by=req.actor,
                acknowledged_at=now,
                assignee=w.assignee or req.actor,
            )
        elif a == "close":
            if req.feedback is None or req.seen_revision is None or req.topic is None:
                raise InputError("a close needs a verdict and the revision you reviewed")
            if req.seen_revision != p["revision"]:
                raise StaleRevision(req.seen_revision, p["revision"])
            w = replace(
                w,
                state="closed",
                verdict=req.feedback.verdict,
                closed_by=req.actor,
                closed_at=req.feedback.decided_at,
                closed_revision=p["revision"],
                closed_severity=p["severity"],
            )
            self.outbox_rows.append(
                {
                    "id": len(self.outbox_rows) + 1,
                    "alert_id": alert_id,
                    "topic": req.topic,
                    "value": req.feedback.to_json(),
                    "created_at": now,
                    "published_at": None,
                    "attempts": 0,
                    "last_error": None,
                }
            )
        elif a == "reopen":
            w = replace(w, state="open", reopened_at=now, reopen_count=w.reopen_count + 1)
        self.workflows[alert_id] = replace(w, version=w.version + 1, updated_at=now)
        if req.comment is not None and a in ("close", "comment", "reopen"):
            self.comments.append(
                {
                    "alert_id": alert_id,
                    "author": req.actor,
                    "body": req.comment,
                    "at": now,
                    "kind": "verdict" if a == "close" else "comment",
                }
            )
        detail: dict[str, Any] = {"revision": p["revision"]}
        if req.feedback is not None:
            detail["verdict"] = req.feedback.verdict
        await self.audit(req.actor, a, alert_id=alert_id, client=req.client, detail=detail)
        return self.workflows[alert_id]

    def escalate(self, payload: dict[str, Any]) -> None:
        """What the trigger on ``alerts`` does when a later revision arrives."""
        old = self.alerts[payload["alert_id"]]
        self.add(payload)
        w = self.workflows[payload["alert_id"]]
        if (
            w.state == "closed"
            and payload["revision"] > old["revision"]
            and SEVERITY_RANK[payload["severity"]] > SEVERITY_RANK[w.closed_severity or "low"]
        ):
            self.workflows[payload["alert_id"]] = replace(
                w, state="open", reopened_at=_now(), reopen_count=w.reopen_count + 1
            )

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
    ) -> None:
        self.audit_log.append(
            {
                "at": _now(),
                "actor": actor,
                "action": action,
                "alert_id": alert_id,
                "subject": subject,
                "reason": reason,
                "client": client,
                "detail": detail or {},
            }
        )

    async def reveal(
        self, actor: str, ref: str, reason: str, alert_id: str, client: str | None
    ) -> str | None:
        raw = self.reveal_table.get(ref)
        await self.audit(
            actor,
            "reveal" if raw else "reveal_unknown",
            alert_id=alert_id,
            subject=ref,
            reason=reason,
            client=client,
        )
        return raw

    # -- outbox --------------------------------------------------------------
    async def outbox_pending(self, limit: int) -> list[OutboxItem]:
        return [
            OutboxItem(o["id"], o["topic"], o["alert_id"], o["value"])
            for o in self.outbox_rows
            if o["published_at"] is None
        ][:limit]

    async def outbox_done(self, item_id: int) -> None:
        for o in self.outbox_rows:
            if o["id"] == item_id:
                o["published_at"] = _now()
                o["attempts"] += 1

    async def outbox_failed(self, item_id: int, error: str) -> None:
        for o in self.outbox_rows:
            if o["id"] == item_id:
                o["attempts"] += 1
                o["last_error"] = error

    async def close(self) -> None:
        return None
