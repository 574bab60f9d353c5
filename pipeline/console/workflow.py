"""The analyst's workflow on one alert: states, actions, verdicts. Pure, no I/O.

States (``console_workflow.state``): ``open`` (new, or re-opened by an
escalation), ``acknowledged`` (someone is working it), ``closed`` (a verdict
was given). Assigning does not change the state. Closing needs a verdict and
the revision the analyst looked at: a close against an older revision is
refused (:class:`StaleRevision`) so nobody closes what they have not seen.

>>> check_transition("open", "acknowledge")
'acknowledged'
>>> check_transition("closed", "acknowledge")
Traceback (most recent call last):
...
pipeline.console.workflow.WorkflowError: cannot acknowledge an alert that is closed
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import orjson

from pipeline.timeutil import format_ts

State = Literal["open", "acknowledged", "closed"]
STATES: Final[tuple[State, ...]] = ("open", "acknowledged", "closed")
VERDICTS: Final = ("true_positive", "false_positive", "benign_true_positive")
VERDICT_LABELS: Final = {
    "true_positive": "True positive (misuse)",
    "false_positive": "False positive (no misuse)",
    "benign_true_positive": "Benign true positive (real, but allowed)",
}
SEVERITIES: Final = ("low", "medium", "high", "critical")
SEVERITY_RANK: Final = {s: i + 1 for i, s in enumerate(SEVERITIES)}
ROLES: Final = (
    "customer_manager",
    "teller",
    "loan_officer",
    "operations",
    "branch_manager",
    "auditor",
    "it_support",
)
MAX_COMMENT: Final = 4000
MAX_NAME: Final = 128

# action -> (states it may start from, state it leads to; None: unchanged)
_TRANSITIONS: Final[dict[str, tuple[frozenset[str], State | None]]] = {
    "assign": (frozenset({"open", "acknowledged"}), None),
    "unassign": (frozenset({"open", "acknowledged"}), None),
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    "close": (frozenset({"open", "acknowledged"}), "closed"),
    "reopen": (frozenset({"closed"}), "open"),
    "comment": (frozenset(STATES), None),
}
ACTIONS: Final = tuple(_TRANSITIONS)


class WorkflowError(ValueError):
    """An action that the alert's state does not allow (HTTP 409)."""

    status = 409


class InputError(WorkflowError):
    """A form value the action cannot use (HTTP 400)."""

    status = 400


class NotFound(WorkflowError):
    """No such alert (HTTP 404)."""

    status = 404


class StaleRevision(WorkflowError):
    """The alert has a newer revision than the one the analyst acted on."""

    def __init__(self, seen: int, current: int) -> None:
        super().__init__(
            f"the alert changed since you opened it (revision {seen} -> {current}); "
            "review the new revision and try again"
        )
        self.seen = seen
        self.current = current


def check_transition(state: str, action: str) -> State:
    """The state after ``action``, or :class:`WorkflowError` if it is not allowed."""
    if action not in _TRANSITIONS:
        raise InputError(f"unknown action {action!r}")
    allowed, target = _TRANSITIONS[action]
    if state not in allowed:
        raise WorkflowError(f"cannot {action} an alert that is {state}")
    return target if target is not None else _as_state(state)


def _as_state(state: str) -> State:
    for s in STATES:
        if s == state:
            return s
    raise WorkflowError(f"unknown state {state!r}")


def check_verdict(verdict: str) -> str:
    if verdict not in VERDICTS:
        raise InputError(f"choose a verdict: one of {', '.join(VERDICTS)}")
    return verdict


def clean_comment(text: str | None, required: bool = False) -> str | None:
    """Strip a comment; refuse an over-long one, or an empty one where one is required."""
    body = (text or "").strip()
    if len(body) > MAX_COMMENT:
        raise InputError(f"a comment is at most {MAX_COMMENT} characters")
    if not body:
        if required:
            raise InputError("write a comment")
        return None
    return body


def clean_name(text: str | None, what: str = "name") -> str:
    """An analyst or assignee name: 1-128 printable characters, no surrounding space."""
    name = (text or "").strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InputError(f"{what} must be 1-{MAX_NAME} printable characters")
    return name


def parse_revision(text: str | None) -> int:
    try:
        rev = int(text or "")
    except ValueError:
        raise InputError("missing or invalid revision") from None
    if rev < 1:
        raise InputError("missing or invalid revision")
    return rev


@dataclass(frozen=True, slots=True)
class Feedback:
    """An AlertFeedback record (``schemas/alert-feedback.schema.json``)."""

    alert_id: str
    verdict: str
    analyst_id: str
    decided_at: datetime
    comment: str | None = None

    def to_json(self) -> str:
        """The UTF-8 JSON value published on ``{prefix}alert-feedback`` (key: alert_id)."""
        record: dict[str, str] = {
            "alert_id": self.alert_id,
            "verdict": self.verdict,
            "analyst_id": self.analyst_id,
            "decided_at": format_ts(self.decided_at.timestamp()),
        }
        if self.comment is not None:
            record["comment"] = self.comment
        return orjson.dumps(record).decode()


def feedback_for(
    alert_id: str, verdict: str, analyst_id: str, comment: str | None, now: datetime | None = None
) -> Feedback:
    """Validate a verdict and build its AlertFeedback record."""
    at = now or datetime.now(tz=UTC)
    return Feedback(
        alert_id=alert_id,
        verdict=check_verdict(verdict),
        analyst_id=clean_name(analyst_id, "analyst id"),
        # millisecond precision, as published: the stored close time equals decided_at
        decided_at=at.replace(microsecond=at.microsecond // 1000 * 1000),
        comment=clean_comment(comment),
    )
