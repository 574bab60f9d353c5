"""Typed records of the external contract (``shared/contract.md``, v1).

These are the decoded, validated forms the pure core works on. Timestamps are
held as UTC epoch seconds (``float``); :mod:`pipeline.timeutil` converts them
back to RFC 3339 for output. Decoding from bytes lives in :mod:`pipeline.contract.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

ACTIONS: Final = frozenset(
    {
        "view_profile",
        "view_balance",
        "view_transactions",
        "export_statement",
        "print_statement",
        "credit_report_query",
        "update_contact_info",
        "view_loan_file",
        "view_id_document",
        "search_customers",
    }
)
CHANNELS: Final = frozenset(
    {"branch_terminal", "crm_web", "mobile_crm", "back_office_batch", "api"}
)
OUTCOMES: Final = frozenset({"success", "denied"})
ROLES: Final = frozenset(
    {
        "customer_manager",
        "teller",
        "loan_officer",
        "operations",
        "branch_manager",
        "auditor",
        "it_support",
    }
)
STAFF_STATUSES: Final = frozenset({"active", "on_leave", "transferred", "terminated"})
RELATIONS: Final = frozenset({"relationship_manager", "loan_officer", "backup", "service_team"})
ASSIGNMENT_OPS: Final = frozenset({"assign", "revoke"})
SEGMENTS: Final = frozenset({"retail", "private", "corporate"})
SENSITIVITIES: Final = frozenset({"normal", "vip", "pep", "employee", "restricted"})
VERDICTS: Final = frozenset({"true_positive", "false_positive", "benign_true_positive"})
SEVERITIES: Final = ("low", "medium", "high", "critical")

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
EXPORT_ACTIONS: Final = frozenset({"export_statement", "print_statement"})


@dataclass(slots=True, frozen=True)
class AccessEvent:
    event_id: str
    occurred_at: float
    staff_id: str
    customer_id: str | None
    action: str
    channel: str
    branch_id: str
    terminal_id: str | None = None
    source_ip: str | None = None
    session_id: str | None = None
    authorization_ref: str | None = None
    record_count: int = 1
    outcome: str = "success"


@dataclass(slots=True, frozen=True)
class StaffRecord:
    staff_id: str
    branch_id: str
    role: str
    status: str
    effective_at: float
    shift_start: str | None = None
    shift_end: str | None = None
    timezone: str = DEFAULT_TIMEZONE


@dataclass(slots=True, frozen=True)
class Assignment:
    staff_id: str
    customer_id: str
    relation: str
    valid_from: float
    valid_to: float | None
    op: str = "assign"


@dataclass(slots=True, frozen=True)
class CustomerProfile:
    customer_id: str
    home_branch_id: str
    segment: str
    sensitivity: str
    related_staff_ids: tuple[str, ...]
    updated_at: float


@dataclass(slots=True, frozen=True)
class AlertFeedback:
    alert_id: str
    verdict: str
    analyst_id: str
    decided_at: float
    comment: str | None = None


@dataclass(slots=True, frozen=True)
class Reason:
    code: str
    summary: str
    weight: float

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "summary": self.summary, "weight": round(self.weight, 4)}


@dataclass(slots=True)
class Alert:
    """The contract Alert. ``to_json`` gives the wire form."""

    alert_id: str
    revision: int
    created_at: str
    first_event_at: str
    last_event_at: str
    staff_id: str
    branch_id: str
    severity: str
    risk_score: float
    reasons: list[Reason]
    event_ids: list[str]
    event_count: int
    customer_refs: list[str]
    model: dict[str, Any] | None = None
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "alert_id": self.alert_id,
            "revision": self.revision,
            "schema_version": 1,
            "created_at": self.created_at,
            "first_event_at": self.first_event_at,
            "last_event_at": self.last_event_at,
            "staff_id": self.staff_id,
            "branch_id": self.branch_id,
            "severity": self.severity,
            "risk_score": round(self.risk_score, 2),
            "reasons": [r.to_json() for r in self.reasons],
            "model": self.model,
            "event_ids": self.event_ids,
            "event_count": self.event_count,
            "customer_refs": self.customer_refs,
        }
        if self.summary:
            out["summary"] = self.summary
        out.update(self.extra)
        return out
