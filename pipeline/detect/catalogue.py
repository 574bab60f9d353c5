"""The catalogue of reason codes: stable names analysts and dashboards rely on.

A code never changes meaning; retired codes are not reused. ``weight`` is the
risk one occurrence adds before per-employee habituation and feedback scale it
(see :mod:`pipeline.detect.behaviour`). The README's reason-code table lists
these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    code: str
    title: str
    weight: float  # default risk points one occurrence adds
    family: str  # rule | first_seen | behaviour | model
    habituates: bool = True  # False: a policy violation, weighed fully however usual


_SPECS = (
    ReasonSpec(
        "unassigned_customer_access",
        "Access to a customer of the employee's own branch with no valid assignment "
        "(customer managers, loan officers, branch managers)",
        6.0,
        "rule",
    ),
    ReasonSpec(
        "other_branch_customer_access",
        "Access to another branch's customer with no valid assignment",
        15.0,
        "rule",
    ),
    ReasonSpec(
        "credit_report_without_authorization",
        "A credit report was queried without the customer's signed authorization",
        60.0,
        "rule",
        habituates=False,
    ),
    ReasonSpec(
        "inactive_staff_activity",
        "Activity under an operator id whose HR status was not active at that time "
        "(terminated, transferred, on leave) or that HR does not know",
        80.0,
        "rule",
        habituates=False,
    ),
    ReasonSpec(
        "related_customer_access",
        "Access to a customer the employee is related to (conflict of interest)",
        60.0,
        "rule",
        habituates=False,
    ),
    ReasonSpec(
        "sensitive_customer_access",
        "Access to a VIP, PEP, employee or restricted customer outside assignment",
        20.0,
        "rule",
    ),
    ReasonSpec(
        "statement_export_unassigned",
        "Statement exported or printed for a customer with no valid assignment",
        25.0,
        "rule",
    ),
    ReasonSpec(
        "off_shift_access",
        "Access to an unassigned customer outside the employee's shift (local time)",
        8.0,
        "rule",
    ),
    ReasonSpec(
        "bulk_access",
        "Many distinct unassigned customers within an hour (sliding window)",
        40.0,
        "behaviour",
    ),
    ReasonSpec(
        "export_volume",
        "Exported or printed record count far above the employee's and peers' norm",
        30.0,
        "behaviour",
    ),
    ReasonSpec(
        "first_seen",
        "First access from a branch, terminal, network or channel, or first use of an "
        "action, for this employee (within the memory horizon)",
        3.0,
        "first_seen",
    ),
    ReasonSpec(
        "behaviour_anomaly",
        "The hour's activity is unusual for the employee and for their peers (online model)",
        20.0,
        "model",
    ),
)

CATALOGUE: Final[dict[str, ReasonSpec]] = {s.code: s for s in _SPECS}


def spec(code: str) -> ReasonSpec:
    try:
        return CATALOGUE[code]
    except KeyError:
        raise KeyError(f"reason code {code!r} is not in the catalogue") from None
