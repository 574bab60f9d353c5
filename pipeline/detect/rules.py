"""Stateless rules over one enriched access. Pure functions; no I/O.

Each rule returns a :class:`Signal` with the catalogue weight, or None; how
much a soft signal weighs for this employee today is decided later, from
their own and their peers' usual counts (:mod:`pipeline.detect.behaviour`).
Role matters only where it defines the job: tellers serve walk-in customers
they are not assigned to, operations staff run bulk exports, auditors sample
across branches; the rules below say, each, whom they apply to.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.contract.records import EXPORT_ACTIONS
from pipeline.detect.catalogue import spec
from pipeline.detect.shift import local_minute, outside_shift
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched

# Roles whose work is their own portfolio: unassigned access is the exception.
PORTFOLIO_ROLES = frozenset({"customer_manager", "loan_officer"})
# Roles that legitimately touch customers across branches or without assignment.
CROSS_BRANCH_ROLES = frozenset({"auditor", "operations", "it_support"})
SENSITIVE = frozenset({"vip", "pep", "employee", "restricted"})


def _sig(code: str, summary: str) -> Signal:
    return Signal(code, spec(code).weight, summary)


def _unassigned(e: Enriched) -> bool:
    return e.event.customer_id is not None and not e.assigned


def unassigned_customer_access(e: Enriched) -> Signal | None:
    """Own-branch customer, no assignment, by someone who works a portfolio."""
    if not _unassigned(e) or e.role not in PORTFOLIO_ROLES:
        return None
    if e.home_branch_id is not None and e.home_branch_id != e.staff_branch_id:
        return None  # other_branch_customer_access covers it
    return _sig("unassigned_customer_access", f"{e.event.action} on an unassigned customer")


def _other_branch(e: Enriched) -> bool:
    return e.home_branch_id is not None and e.home_branch_id != e.staff_branch_id


def other_branch_customer_access(e: Enriched) -> Signal | None:
    """Another branch's customer, no assignment (tellers' walk-ins from other branches
    habituate like everything soft: by the teller's and their peers' usual counts)."""
    if not _unassigned(e) or e.role in CROSS_BRANCH_ROLES or e.role is None:
        return None
    if not _other_branch(e):
        return None
    return _sig(
        "other_branch_customer_access",
        f"{e.event.action} on an unassigned customer of {e.home_branch_id} "
        f"(employee's branch {e.staff_branch_id})",
    )


def credit_report_without_authorization(e: Enriched) -> Signal | None:
    """Always an alert (policy). One query without the reference is a lesser violation
    (its catalogue weight opens a ``medium`` alert, pipeline.alerts.incidents): as often
    as not the signed form is on file and its reference was not keyed in, for an
    assigned customer or for an applicant not yet assigned to anyone. A second one makes
    it ``high``."""
    ev = e.event
    if ev.action != "credit_report_query" or ev.authorization_ref:
        return None
    whose = "an assigned customer" if e.assigned else "an unassigned customer"
    return _sig(
        "credit_report_without_authorization",
        f"credit report queried without authorization_ref ({whose})",
    )


def inactive_staff_activity(e: Enriched) -> Signal | None:
    if e.event.outcome == "denied":
        return None  # the bank's own controls stopped it
    if not e.known_staff:
        return _sig("inactive_staff_activity", "operator id unknown to HR at that time")
    if e.status == "active":
        return None
    return _sig("inactive_staff_activity", f"activity while HR status was {e.status}")


def related_customer_access(e: Enriched) -> Signal | None:
    if not e.related:
        return None
    return _sig("related_customer_access", f"{e.event.action} on a related customer's data")


def sensitive_customer_access(e: Enriched) -> Signal | None:
    if e.sensitivity not in SENSITIVE or e.assigned or e.role == "auditor" or e.related:
        return None
    if e.role == "operations" and e.event.channel == "back_office_batch":
        return None  # batch runs cover every customer, sensitive ones included
    if e.role == "teller" and not _other_branch(e):
        return None  # a walk-in at the teller's own branch, whoever the customer is
    return _sig("sensitive_customer_access", f"{e.event.action} on a {e.sensitivity} customer")


def statement_export_unassigned(e: Enriched) -> Signal | None:
    """Statements for an unassigned customer; tellers print for walk-ins of their own branch."""
    ev = e.event
    if ev.action not in EXPORT_ACTIONS or not _unassigned(e) or e.role == "operations":
        return None
    if e.role == "teller" and not _other_branch(e):
        return None
    return _sig(
        "statement_export_unassigned",
        f"{ev.action} ({ev.record_count} records) for an unassigned customer",
    )


def off_shift_access(e: Enriched) -> Signal | None:
    ev = e.event
    if e.assigned or ev.channel == "back_office_batch" or ev.customer_id is None:
        return None
    minute = local_minute(e)
    if not outside_shift(minute, e.shift_start, e.shift_end):
        return None
    return _sig(
        "off_shift_access",
        f"{ev.action} at {minute // 60:02d}:{minute % 60:02d} local, outside the shift",
    )


RULES: tuple[Callable[[Enriched], Signal | None], ...] = (
    unassigned_customer_access,
    other_branch_customer_access,
    credit_report_without_authorization,
    inactive_staff_activity,
    related_customer_access,
    sensitive_customer_access,
    statement_export_unassigned,
    off_shift_access,
)


def evaluate_rules(e: Enriched) -> list[Signal]:
    """Every rule's signal for one access. Most accesses are routine (an assigned customer,
    an active employee, no conflict, no credit report): no rule can fire on them, and they
    are answered without running any."""
    if (
        e.assigned
        and e.status == "active"
        and not e.related
        and e.event.action != "credit_report_query"
    ):
        return []
    out = []
    for rule in RULES:
        sig = rule(e)
        if sig is not None:
            out.append(sig)
    return out
