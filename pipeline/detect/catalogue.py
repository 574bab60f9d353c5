"""The catalogue of reason codes: stable names analysts and dashboards rely on.

A code never changes meaning; retired codes are not reused. Each code has a
*family*, which says how its evidence turns into risk (docs/detection.md):

- ``policy``: a violation of the bank's rules. Every occurrence adds
  ``weight`` risk points, however usual it is for the employee; it alerts
  from the first event, also during a learning period.
- ``soft``: something some jobs do every day (unassigned look-ups, other
  branches' customers, sensitive customers, statements, off-shift work,
  first use of a terminal). What counts is how *improbable* today's count is
  given the employee's and their peers' usual daily counts: ``weight`` risk
  points per decade of improbability (``-log10 P(N >= n)``).
- ``volume``: many distinct customers or records within an hour, against the
  usual peak; ``weight`` points per decade of improbability.
- ``model``: the online peer-group model finds the hour unusual; ``weight``
  points per anomalous hour.

Soft evidence alone can raise at most a ``medium`` alert (pipeline.alerts.risk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Family = Literal["policy", "soft", "volume", "model"]


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    code: str
    title: str
    weight: float
    family: Family
    # Usual daily count assumed for a role nobody has observed yet (soft codes).
    prior: float = 0.2


_SPECS = (
    ReasonSpec(
        "unassigned_customer_access",
        "Access to a customer of the employee's own branch with no valid assignment "
        "(customer managers, loan officers)",
        9.0,
        "soft",
        prior=2.0,
    ),
    ReasonSpec(
        "other_branch_customer_access",
        "Access to another branch's customer with no valid assignment",
        11.0,
        "soft",
        prior=1.0,
    ),
    ReasonSpec(
        "credit_report_without_authorization",
        "A credit report was queried without the customer's signed authorization",
        50.0,
        "policy",
    ),
    ReasonSpec(
        "inactive_staff_activity",
        "Activity under an operator id whose HR status was not active at that time "
        "(terminated, transferred, on leave) or that HR does not know",
        80.0,
        "policy",
    ),
    ReasonSpec(
        "related_customer_access",
        "Access to a customer the employee is related to (conflict of interest)",
        60.0,
        "policy",
    ),
    ReasonSpec(
        "sensitive_customer_access",
        "Access to a VIP, PEP, employee or restricted customer outside assignment",
        13.0,
        "soft",
        prior=0.3,
    ),
    ReasonSpec(
        "statement_export_unassigned",
        "Statement exported or printed for a customer with no valid assignment",
        14.0,
        "soft",
        prior=0.3,
    ),
    ReasonSpec(
        "off_shift_access",
        "Access to an unassigned customer outside the employee's shift (local time)",
        7.0,
        "soft",
        prior=0.3,
    ),
    ReasonSpec(
        "first_seen",
        "First access from a branch, terminal, network or channel, or first use of an "
        "action, for this employee (within the memory horizon)",
        3.0,
        "soft",
        prior=0.5,
    ),
    ReasonSpec(
        "bulk_access",
        "Many distinct unassigned customers within an hour, against the usual hourly peak",
        12.0,
        "volume",
    ),
    ReasonSpec(
        "export_volume",
        "Exported or printed records within an hour far above the employee's and peers' norm",
        12.0,
        "volume",
    ),
    ReasonSpec(
        "behaviour_anomaly",
        "The hour's activity is unusual for the employee's peer group (online model)",
        15.0,
        "model",
    ),
)

CATALOGUE: Final[dict[str, ReasonSpec]] = {s.code: s for s in _SPECS}
SOFT_CODES: Final = tuple(s.code for s in _SPECS if s.family == "soft")
POLICY_CODES: Final = frozenset(s.code for s in _SPECS if s.family == "policy")


def spec(code: str) -> ReasonSpec:
    try:
        return CATALOGUE[code]
    except KeyError:
        raise KeyError(f"reason code {code!r} is not in the catalogue") from None
