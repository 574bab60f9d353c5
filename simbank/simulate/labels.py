"""Ground-truth labels: which injected incident (or benign look-alike) an event belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MALICIOUS_KINDS: Final = (
    "unassigned_lookup",
    "bulk_harvest",
    "statement_exfiltration",
    "unauthorized_credit_query",
    "inactive_account_use",
    "sensitive_snooping",
    "related_customer_access",
    "low_and_slow",
    "off_hours_session",
)
BENIGN_KINDS: Final = (
    "covering_colleague",
    "new_hire",
    "transfer",
    "month_end_batch",
    "overtime",
    "authorization_on_file",  # only in profiles where some credit queries lack the reference
)
# Policy violations: the detector is expected to alert on them from the first event, also
# during a learning period (the others are behaviour-only and need baselines).
POLICY_KINDS: Final = frozenset(
    {"unauthorized_credit_query", "inactive_account_use", "related_customer_access"}
)
NORMAL: Final = -1  # label of an event that belongs to no incident


@dataclass(frozen=True, slots=True)
class LabelSpec:
    kind: str
    benign: bool
    staff_id: str
    within_session: bool


class LabelBook:
    """Issues label numbers; events carry the number, the book holds what it means."""

    def __init__(self) -> None:
        self.specs: list[LabelSpec] = []

    def new(self, kind: str, staff_id: str, *, within_session: bool) -> int:
        if kind in MALICIOUS_KINDS:
            benign = False
        elif kind in BENIGN_KINDS:
            benign = True
        else:
            raise ValueError(f"unknown incident kind {kind!r}")
        self.specs.append(LabelSpec(kind, benign, staff_id, within_session))
        return len(self.specs) - 1
