"""pipeline.sinks.postgres: which database errors are worth retrying, and the rows it writes.

The exceptions are asyncpg's own classes, instantiated (each carries its SQLSTATE
as a class attribute, as when asyncpg raises it from a server message).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import asyncpg.exceptions as pg
import orjson
import pytest

from pipeline.contract.decode import encode
from pipeline.contract.records import Alert, Reason
from pipeline.sinks.postgres import POISON_CLASSES, RETRY_CLASSES, alert_rows, classify

RETRY: list[tuple[type[BaseException], str]] = [
    (pg.AdminShutdownError, "57P01"),
    (pg.CrashShutdownError, "57P02"),
    (pg.CannotConnectNowError, "57P03"),
    (pg.QueryCanceledError, "57014"),
    (pg.ReadOnlySQLTransactionError, "25006"),
    (pg.SerializationError, "40001"),
    (pg.DeadlockDetectedError, "40P01"),
    (pg.UndefinedTableError, "42P01"),
    (pg.InsufficientPrivilegeError, "42501"),
    (pg.InvalidCatalogNameError, "3D000"),
    (pg.InvalidPasswordError, "28P01"),
    (pg.TooManyConnectionsError, "53300"),
    (pg.DiskFullError, "53100"),
    (pg.LockNotAvailableError, "55P03"),
    (pg.ConnectionDoesNotExistError, "08003"),
    (pg.InternalServerError, "XX000"),
]
POISON: list[tuple[type[BaseException], str]] = [
    (pg.InvalidTextRepresentationError, "22P02"),
    (pg.UniqueViolationError, "23505"),
    (pg.CheckViolationError, "23514"),
    (pg.NotNullViolationError, "23502"),
    (pg.ForeignKeyViolationError, "23503"),
    (pg.CharacterNotInRepertoireError, "22021"),  # a NUL in a text value
    (pg.UntranslatableCharacterError, "22P05"),  # \u0000 in jsonb
    (pg.NumericValueOutOfRangeError, "22003"),
    (pg.StringDataRightTruncationError, "22001"),
    # asyncpg raises this class itself for an argument it cannot encode
    # ("invalid input for query argument $2: ... out of int32 range").
    (pg.DataError, "22000"),
]


@pytest.mark.parametrize(("cls", "sqlstate"), RETRY, ids=[c.__name__ for c, _ in RETRY])
def test_transient_server_states_are_retried(cls: type[BaseException], sqlstate: str) -> None:
    exc = cls("server says no")
    assert isinstance(exc, asyncpg.PostgresError)
    assert getattr(exc, "sqlstate", None) == sqlstate
    assert classify(exc) == "retry"


@pytest.mark.parametrize(("cls", "sqlstate"), POISON, ids=[c.__name__ for c, _ in POISON])
def test_data_the_table_can_never_hold_is_poison(cls: type[BaseException], sqlstate: str) -> None:
    exc = cls("bad row")
    assert getattr(exc, "sqlstate", None) == sqlstate
    assert sqlstate[:2] in POISON_CLASSES
    assert classify(exc) == "poison"


@pytest.mark.parametrize(
    "exc",
    [
        OSError("network unreachable"),
        ConnectionResetError("reset by peer"),
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        TimeoutError(),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions.ConnectionFailureError("lost"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_trouble_is_retried(exc: BaseException) -> None:
    assert classify(exc) == "retry"


def test_unknown_server_errors_are_retried_rather_than_dropped() -> None:
    # Not known to be permanent: dropping an alert is worse than waiting.
    assert classify(pg.PostgresSyntaxError("syntax error")) == "retry"  # 42601
    assert classify(pg.UndefinedColumnError("no such column")) == "retry"  # 42703
    assert classify(asyncpg.PostgresError("no state")) == "retry"


def test_retry_and_poison_classes_do_not_overlap() -> None:
    assert not RETRY_CLASSES & POISON_CLASSES


# --- the rows written ------------------------------------------------------------------


def make_alert(**changes: object) -> Alert:
    shanghai = timezone(timedelta(hours=8))
    fields: dict[str, object] = {
        "alert_id": "al-1",
        "revision": 2,
        "schema_version": 1,
        "created_at": datetime(2026, 3, 2, 9, 31, tzinfo=shanghai),
        "first_event_at": datetime(2026, 3, 2, 9, 0, tzinfo=shanghai),
        "last_event_at": datetime(2026, 3, 2, 9, 30, tzinfo=shanghai),
        "staff_id": "S1",
        "branch_id": "BR1",
        "severity": "high",
        "risk_score": 72,
        "reasons": [
            Reason("related_customer_access", "view_profile on a related customer", 60.0),
            Reason("off_shift_access", "at 23:30 local", 7.0),
        ],
        "model": None,
        "event_ids": ["e1", "e2"],
        "event_count": 5,
        "customer_refs": ["ref-1"],
        "status": "closed",
        "staff_role": "teller",
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


def test_alert_rows_hold_the_alert_and_its_revision() -> None:
    alert = make_alert()
    row, revision = alert_rows(alert)
    (alert_id, rev, staff, branch, severity, risk, first, last, ids, count, codes, payload) = row[
        :12
    ]
    assert (alert_id, rev, staff, branch, severity) == ("al-1", 2, "S1", "BR1", "high")
    assert risk == 72.0 and type(risk) is float
    assert first == datetime(2026, 3, 2, 1, 0, tzinfo=UTC) and first.tzinfo is UTC
    assert last == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    assert (ids, count) == (["e1", "e2"], 5)
    assert codes == ["related_customer_access", "off_shift_access"]
    assert orjson.loads(payload) == orjson.loads(encode(alert))
    assert row[12:] == (datetime(2026, 3, 2, 1, 31, tzinfo=UTC), "closed", "teller")
    assert revision == (
        "al-1",
        2,
        "high",
        72.0,
        "closed",
        5,
        codes,
        payload,
        datetime(2026, 3, 2, 1, 31, tzinfo=UTC),
    )


def test_alert_rows_payload_leaves_defaults_out() -> None:
    row, _ = alert_rows(make_alert(status="open", staff_role=None))
    payload = orjson.loads(row[11])
    assert "status" not in payload and "staff_role" not in payload
    assert row[13:] == ("open", None)
