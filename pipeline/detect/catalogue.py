"""The catalogue of reason codes: stable names analysts and dashboards rely on.

A code never changes meaning; retired codes are not reused. The README's
"Reason codes" table is generated from this dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    code: str
    title: str
    weight: float  # default risk points one occurrence adds


CATALOGUE: Final[dict[str, ReasonSpec]] = {
    spec.code: spec
    for spec in (
        ReasonSpec(
            "unassigned_customer_access",
            "A customer manager accessed a customer with no valid assignment",
            25.0,
        ),
        ReasonSpec(
            "credit_report_without_authorization",
            "A credit report was queried without the customer's signed authorization",
            60.0,
        ),
    )
}


def spec(code: str) -> ReasonSpec:
    try:
        return CATALOGUE[code]
    except KeyError:
        raise KeyError(f"reason code {code!r} is not in the catalogue") from None
