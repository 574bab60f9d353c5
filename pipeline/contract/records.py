"""The records of the external contract (``shared/contract.md``, v1.1), declared once.

Each record is a :class:`msgspec.Struct` whose field types carry the
contract's rules: enums as ``Literal``, lengths and ranges as ``Meta``. The
decoder (:mod:`pipeline.contract.decode`) validates bytes against these
types, and :mod:`pipeline.contract.schemas` generates ``schemas/*.schema.json``
from them (a test checks the committed files equal the generated ones).

Bounds that the contract leaves open are fixed here so that no single record
can exhaust a worker (``schemas/README.md`` lists them): string lengths,
``record_count`` and the event-time range of an access.

Unknown extra fields are ignored: the contract lets optional fields be added
without a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, get_args

from msgspec import Meta, Struct

from pipeline.timeutil import RFC3339_PATTERN

# -- enumerations ----------------------------------------------------------------

Action = Literal[
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
]
Channel = Literal["branch_terminal", "crm_web", "mobile_crm", "back_office_batch", "api"]
Outcome = Literal["success", "denied"]
Role = Literal[
    "customer_manager",
    "teller",
    "loan_officer",
    "operations",
    "branch_manager",
    "auditor",
    "it_support",
]
StaffStatus = Literal["active", "on_leave", "transferred", "terminated"]
Relation = Literal["relationship_manager", "loan_officer", "backup", "service_team"]
AssignmentOp = Literal["assign", "revoke"]
Segment = Literal["retail", "private", "corporate"]
Sensitivity = Literal["normal", "vip", "pep", "employee", "restricted"]
Verdict = Literal["true_positive", "false_positive", "benign_true_positive"]
Severity = Literal["low", "medium", "high", "critical"]
AlertStatus = Literal["open", "closed"]

SEVERITIES: Final[tuple[Severity, ...]] = ("low", "medium", "high", "critical")
# The enumerations as sets of strings (for code that checks values itself).
ACTIONS: Final = frozenset(get_args(Action))
CHANNELS: Final = frozenset(get_args(Channel))
OUTCOMES: Final = frozenset(get_args(Outcome))
ROLES: Final = frozenset(get_args(Role))
VERDICTS: Final = frozenset(get_args(Verdict))
EXPORT_ACTIONS: Final = frozenset({"export_statement", "print_statement"})
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"

# Every code a dead letter can carry, and what it means (schemas/README.md).
DEAD_LETTER_CODES: Final[dict[str, str]] = {
    "tombstone": "the value is null (on a compacted reference topic: a deletion, not an error)",
    "value_too_large": "the value is longer than 64 KiB",
    "not_utf8": "the value is not valid UTF-8",
    "malformed_json": "the value is not valid JSON",
    "not_an_object": "the value is valid JSON but not an object",
    "missing_field": "a required field is absent",
    "wrong_type": "a field has the wrong JSON type (null included where not allowed)",
    "unknown_enum": "a string outside the field's enumeration",
    "bad_timestamp": "a timestamp that is not RFC 3339 with an offset, not a real instant, "
    "or an access outside 2000-2099",
    "invalid_value": "right type, wrong value: a length, range or pattern, or a rule across fields",
    "key_mismatch": "an access whose message key is not its staff_id",
    "clock_skew": "an access more than PIPELINE_MAX_EVENT_SKEW_S ahead of both its partition's "
    "event-time watermark and the wall clock",
    "processing_error": "the engine failed on this record (a defect; kept here for replay)",
    "rejected_by_database": "the alert store refused the alert",
}

# -- bounds ------------------------------------------------------------------------

MAX_VALUE_BYTES: Final = 64 * 1024  # a larger Kafka value is dead-lettered unread
ID_MAX: Final = 64  # staff, customer and branch ids
EVENT_ID_MAX: Final = 128
TEXT_MAX: Final = 128  # terminal, session, authorization and analyst ids
MAX_RECORD_COUNT: Final = 10_000_000  # rows one access may return, export or print
MAX_RELATED_STAFF: Final = 100
COMMENT_MAX: Final = 4000
MAX_EVENT_IDS: Final = 500
# Accesses must happen in [2000-01-01T00:00Z, 2100-01-01T00:00Z): the engine's
# calendar and decay arithmetic stay finite, and a typo'd year is caught.
FIRST_EVENT_TIME: Final = 946684800.0
END_EVENT_TIME: Final = 4102444800.0


def _d(text: str) -> Meta:
    return Meta(description=text)


# -- field types ---------------------------------------------------------------------

_TS_SCHEMA = {"pattern": RFC3339_PATTERN}
Timestamp = Annotated[
    datetime,
    Meta(tz=True, description="RFC 3339 timestamp with an offset", extra_json_schema=_TS_SCHEMA),
]
StaffId = Annotated[str, Meta(min_length=1, max_length=ID_MAX, description="Operator id")]
CustomerId = Annotated[str, Meta(min_length=1, max_length=ID_MAX, description="Customer id")]
BranchId = Annotated[str, Meta(min_length=1, max_length=ID_MAX, description="Branch id")]
ShortText = Annotated[str, Meta(max_length=TEXT_MAX)]
HHMM = Annotated[
    str, Meta(pattern=r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$", description="Local time HH:MM")
]
ZoneName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*$",
        description="IANA time zone name (checked against the tz database)",
    ),
]


# -- input records -------------------------------------------------------------------


class AccessEvent(Struct, frozen=True, gc=False):
    """One read or write of customer data by a member of staff, as logged by core banking.
    Topic {prefix}access-events, key staff_id (UTF-8)."""

    event_id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=EVENT_ID_MAX,
            description="Unique per event; a replay reuses it.",
        ),
    ]
    occurred_at: Annotated[
        Timestamp, _d("When the access happened, in 2000-01-01..2099-12-31 UTC.")
    ]
    staff_id: Annotated[StaffId, _d("Operator id of the employee.")]
    # Required, but null only for search_customers (checked by the decoder).
    customer_id: Annotated[
        CustomerId | None, _d("Whose data. Null only when action is search_customers.")
    ]
    action: Annotated[Action, _d("What was done.")]
    channel: Annotated[Channel, _d("Where the access came from.")]
    branch_id: Annotated[BranchId, _d("Branch of the terminal or session.")]
    terminal_id: Annotated[ShortText | None, _d("Workstation id; empty means none.")] = None
    source_ip: Annotated[
        Annotated[str, Meta(max_length=64)] | None, _d("Source IPv4 or IPv6 address.")
    ] = None
    session_id: Annotated[ShortText | None, _d("Login session.")] = None
    authorization_ref: Annotated[
        ShortText | None,
        _d(
            "The customer's signed authorization, required by policy for credit_report_query; "
            "empty means none."
        ),
    ] = None
    record_count: Annotated[
        int, Meta(ge=0, le=MAX_RECORD_COUNT, description="Rows returned, exported or printed.")
    ] = 1
    outcome: Annotated[Outcome, _d("Whether the access was allowed.")] = "success"


class StaffRecord(Struct, frozen=True, gc=False):
    """The HR view of one employee from effective_at on. Topic {prefix}staff-directory
    (compacted), key staff_id."""

    staff_id: Annotated[StaffId, _d("Operator id of the employee.")]
    branch_id: Annotated[BranchId, _d("Branch the employee belongs to.")]
    role: Annotated[Role, _d("Job role.")]
    status: Annotated[StaffStatus, _d("Employment status.")]
    effective_at: Annotated[Timestamp, _d("From when this record holds.")]
    shift_start: Annotated[HHMM | None, _d("Start of the shift, local time.")] = None
    shift_end: Annotated[
        HHMM | None, _d("End of the shift, local time; earlier than shift_start across midnight.")
    ] = None
    timezone: Annotated[ZoneName, _d("IANA time zone of the shift times.")] = DEFAULT_TIMEZONE


class Assignment(Struct, frozen=True, gc=False):
    """A staff member's responsibility for a customer. Topic {prefix}staff-assignments
    (compacted), key staff_id:customer_id."""

    staff_id: Annotated[StaffId, _d("Operator id of the responsible employee.")]
    customer_id: Annotated[CustomerId, _d("The customer.")]
    relation: Annotated[Relation, _d("Kind of responsibility.")]
    valid_from: Annotated[Timestamp, _d("Start of validity.")]
    valid_to: Annotated[Timestamp | None, _d("End of validity, or null: open-ended (required).")]
    op: Annotated[
        AssignmentOp, _d("assign grants the responsibility; revoke withdraws it from valid_from.")
    ] = "assign"


class CustomerProfile(Struct, frozen=True, gc=False):
    """A customer's home branch, segment and sensitivity. Topic {prefix}customer-profiles
    (compacted), key customer_id."""

    customer_id: Annotated[CustomerId, _d("The customer.")]
    home_branch_id: Annotated[BranchId, _d("Branch that holds the customer relationship.")]
    segment: Annotated[Segment, _d("Customer segment.")]
    sensitivity: Annotated[Sensitivity, _d("How sensitive the customer's data is.")]
    related_staff_ids: Annotated[
        list[StaffId],
        Meta(
            max_length=MAX_RELATED_STAFF,
            description="Staff who are the customer or family (a conflict of interest); "
            "may be empty.",
        ),
    ]
    updated_at: Annotated[Timestamp, _d("When this profile was changed; it holds from then on.")]


class AlertFeedback(Struct, frozen=True, gc=False):
    """An analyst's verdict on an alert. Topic {prefix}alert-feedback, key alert_id."""

    alert_id: Annotated[
        str, Meta(min_length=1, max_length=EVENT_ID_MAX, description="The alert judged.")
    ]
    verdict: Annotated[Verdict, _d("The analyst's verdict.")]
    analyst_id: Annotated[str, Meta(min_length=1, max_length=TEXT_MAX, description="Who decided.")]
    decided_at: Annotated[Timestamp, _d("When the verdict was given.")]
    comment: Annotated[str, Meta(max_length=COMMENT_MAX, description="Free text.")] = ""


# -- output records ------------------------------------------------------------------


class Reason(Struct, frozen=True, gc=False):
    code: Annotated[str, Meta(min_length=1, description="Reason code from the catalogue")]
    summary: str
    weight: Annotated[float, Meta(description="Contribution to the risk score")]


class Feature(Struct, frozen=True, gc=False):
    feature: Annotated[str, Meta(min_length=1)]
    value: float
    baseline: Annotated[float, Meta(description="The peer group's usual value")]
    contribution: Annotated[float, Meta(description="Share of the score")]
    # v1.1 optional: the employee's own usual value.
    own_baseline: float | None = None


class ModelInfo(Struct, frozen=True, gc=False):
    name: Annotated[str, Meta(min_length=1)]
    version: str
    score: float
    threshold: float
    top_features: list[Feature]


class Alert(Struct, frozen=True, gc=False, omit_defaults=True):
    """What the pipeline emits. Topic {prefix}alerts, key staff_id. An incident that grows is
    re-emitted with the same alert_id and a higher revision; consumers keep the highest."""

    alert_id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=EVENT_ID_MAX,
            description="Deterministic: the same input replayed gives the same id.",
        ),
    ]
    revision: Annotated[int, Meta(ge=1, description="Grows each time the incident is re-emitted.")]
    schema_version: Annotated[Literal[1], _d("Version of this record layout.")]
    created_at: Annotated[Timestamp, _d("Processing time.")]
    first_event_at: Annotated[Timestamp, _d("Event time of the earliest event covered.")]
    last_event_at: Annotated[Timestamp, _d("Event time of the latest event covered.")]
    staff_id: Annotated[StaffId, _d("Who: operator id of the employee.")]
    branch_id: Annotated[BranchId, _d("Who: the employee's branch.")]
    severity: Annotated[Severity, _d("low, medium, high or critical (docs/detection.md).")]
    risk_score: Annotated[float, Meta(ge=0, le=100, description="Aggregated risk, 0 to 100.")]
    reasons: Annotated[list[Reason], _d("Every detector that contributed, strongest first.")]
    model: Annotated[ModelInfo | None, _d("The anomaly model's view, or null.")]
    event_ids: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=EVENT_ID_MAX)]],
        Meta(
            min_length=1,
            max_length=MAX_EVENT_IDS,
            description="The access events that triggered it (the first and the newest "
            "past 500); never empty.",
        ),
    ]
    event_count: Annotated[
        int, Meta(ge=1, description="How many events the incident covers in all.")
    ]
    customer_refs: Annotated[
        list[str], _d("Customers involved, pseudonymized (keyed hash) unless configured.")
    ]
    summary: Annotated[str, _d("One line for a human.")] = ""
    status: Annotated[
        AlertStatus, _d("v1.1: closed on the final revision of an incident that ended.")
    ] = "open"
    staff_role: Annotated[Role | None, _d("The employee's role at the time (v1.1).")] = None


class ErrorInfo(Struct, frozen=True, gc=False):
    code: Annotated[
        str,
        Meta(
            pattern=r"^[a-z][a-z0-9_]*$",
            description="Stable snake_case code (schemas/README.md lists them).",
            examples=list(DEAD_LETTER_CODES),
        ),
    ]
    message: Annotated[str, _d("For humans; names the field at fault.")]


class DeadLetter(Struct, frozen=True, gc=False, omit_defaults=True):
    """A record the pipeline could not read or process. Topic {prefix}access-events.dlq,
    key: the original key."""

    original: Annotated[
        str,
        _d(
            "The value as text when it is valid UTF-8, else base64 (see encoding); empty for a "
            "null value (code tombstone); cut when truncated is set."
        ),
    ]
    key: Annotated[str | None, _d("The record key as text (base64 if not UTF-8), or null.")]
    topic: Annotated[str, _d("Topic the record was read from.")]
    partition: Annotated[int, Meta(ge=0, description="Its partition.")]
    offset: Annotated[int, Meta(ge=0, description="Its offset.")]
    error: Annotated[ErrorInfo, _d("Why the record could not be used.")]
    received_at: Annotated[Timestamp, _d("When the pipeline read the record.")]
    encoding: Annotated[Literal["utf-8", "base64"], _d("How original is encoded.")] = "utf-8"
    key_encoding: Annotated[Literal["utf-8", "base64"] | None, _d("How key is encoded.")] = None
    # Set when the original was too large to carry whole: its first bytes are in
    # ``original``; the size and digest identify the whole value.
    truncated: Annotated[
        bool, _d("original holds only the start of the value (at most 256 KiB).")
    ] = False
    original_bytes: Annotated[int | None, _d("Size of the whole value, when truncated.")] = None
    original_sha256: Annotated[
        str | None, _d("SHA-256 (hex) of the whole value, when truncated.")
    ] = None


INPUT_RECORDS: Final = (AccessEvent, StaffRecord, Assignment, CustomerProfile, AlertFeedback)
