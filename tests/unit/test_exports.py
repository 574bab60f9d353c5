"""HR/CRM exports -> contract records (pipeline.reference.exports) and the dry-run CLI."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import orjson
import pytest
from aiokafka.errors import KafkaError

from pipeline.contract.decode import decode_assignment, decode_customer_profile, decode_staff_record
from pipeline.reference import publish
from pipeline.reference.exports import (
    MALFORMED_ROW,
    Accepted,
    ExportError,
    Rejected,
    Result,
    Tally,
    format_of,
    parse_csv,
    parse_jsonl,
    row_to_json,
)


def csv_results(text: str, kind: str) -> list[Result]:
    return list(parse_csv(io.StringIO(text, newline=""), kind, "f.csv").results)


def jsonl_results(text: bytes, kind: str) -> list[Result]:
    return list(parse_jsonl(io.BytesIO(text), kind, "f.jsonl").results)


def accepted(results: list[Result]) -> list[Accepted]:
    return [r for r in results if isinstance(r, Accepted)]


def rejected(results: list[Result]) -> list[Rejected]:
    return [r for r in results if isinstance(r, Rejected)]


# --- CSV: staff ----------------------------------------------------------------

STAFF_CSV = (
    "staff_id,branch_id,role,status,effective_at,shift_start,shift_end,timezone\n"
    "S1,BR1,teller,active,2026-01-01T00:00:00Z,08:30,17:30,Europe/Paris\n"
    "S2,BR2,auditor,on_leave,2026-02-01T09:00:00+08:00,,,\n"
)


def test_staff_csv_rows_become_contract_records() -> None:
    results = csv_results(STAFF_CSV, "staff")
    ok = accepted(results)
    assert [r.line for r in ok] == [2, 3]
    assert [r.key for r in ok] == [b"S1", b"S2"]
    first = decode_staff_record(ok[0].value)
    assert (first.shift_start, first.shift_end, first.timezone) == (
        "08:30",
        "17:30",
        "Europe/Paris",
    )


def test_staff_csv_empty_cells_are_absent_so_defaults_apply() -> None:
    second = accepted(csv_results(STAFF_CSV, "staff"))[1]
    obj = orjson.loads(second.value)
    assert "shift_start" not in obj and "timezone" not in obj
    record = decode_staff_record(second.value)
    assert record.shift_start is None
    assert record.timezone == "Asia/Shanghai"


def test_staff_csv_rejects_carry_line_numbers_and_decoder_codes() -> None:
    text = (
        "staff_id,branch_id,role,status,effective_at\n"
        "S1,BR1,janitor,active,2026-01-01T00:00:00Z\n"  # line 2: bad enum
        "S2,BR1,teller,active,2026-13-01T00:00:00Z\n"  # line 3: no month 13
        "\n"  # line 4: blank, skipped
        "S3,,teller,active,2026-01-01T00:00:00Z\n"  # line 5: missing branch
        "S4,BR1,teller,active,2026-01-01 10:00\n"  # line 6: no offset
        "S5,BR1,teller,fired,2026-01-01T00:00:00Z\n"  # line 7: bad enum
        "S6,BR1,teller,active,2026-01-01T00:00:00Z\n"  # line 8: fine
    )
    results = csv_results(text, "staff")
    bad = rejected(results)
    assert [(r.line, r.code, r.field) for r in bad] == [
        (2, "unknown_enum", "role"),
        (3, "bad_timestamp", "effective_at"),
        (5, "missing_field", "branch_id"),
        (6, "bad_timestamp", "effective_at"),
        (7, "unknown_enum", "status"),
    ]
    assert "janitor" in bad[0].message
    assert bad[0].original == "S1,BR1,janitor,active,2026-01-01T00:00:00Z"
    assert [r.line for r in accepted(results)] == [8]


def test_staff_csv_bad_shift_and_timezone_follow_the_decoder() -> None:
    text = (
        "staff_id,branch_id,role,status,effective_at,shift_start,timezone\n"
        "S1,BR1,teller,active,2026-01-01T00:00:00Z,25:00,\n"
        "S2,BR1,teller,active,2026-01-01T00:00:00Z,,Mars/Olympus\n"
    )
    assert [(r.code, r.field) for r in rejected(csv_results(text, "staff"))] == [
        ("invalid_value", "shift_start"),
        ("invalid_value", "timezone"),
    ]


def test_csv_cells_are_trimmed_and_bom_ignored() -> None:
    text = (
        "\ufeffstaff_id , branch_id,role,status,effective_at\n"
        " S1 ,BR1, teller ,active,2026-01-01T00:00:00Z\n"
    )
    (only,) = csv_results(text, "staff")
    assert isinstance(only, Accepted)
    assert only.key == b"S1"
    assert decode_staff_record(only.value).role == "teller"


# --- CSV: assignments ------------------------------------------------------------


def test_assignment_csv_valid_to_empty_is_open_ended_and_op_defaults_to_assign() -> None:
    text = (
        "staff_id,customer_id,relation,valid_from,valid_to,op\n"
        "S1,C1,backup,2026-01-01T00:00:00Z,,\n"
        "S1,C2,relationship_manager,2026-01-01T00:00:00Z,2026-06-30T00:00:00Z,revoke\n"
    )
    first, second = accepted(csv_results(text, "assignments"))
    assert orjson.loads(first.value)["valid_to"] is None
    assert "op" not in orjson.loads(first.value)
    rec = decode_assignment(first.value)
    assert rec.valid_to is None and rec.op == "assign"
    assert decode_assignment(second.value).op == "revoke"
    assert decode_assignment(second.value).valid_to is not None


def test_assignment_keys_are_staff_colon_customer() -> None:
    text = (
        "staff_id,customer_id,relation,valid_from,valid_to\n"
        "S1,C1,backup,2026-01-01T00:00:00Z,\n"
        "S:2,C9,backup,2026-01-01T00:00:00Z,\n"
    )
    assert [r.key for r in accepted(csv_results(text, "assignments"))] == [b"S1:C1", b"S:2:C9"]


def test_assignment_csv_rejects() -> None:
    text = (
        "staff_id,customer_id,relation,valid_from,valid_to,op\n"
        "S1,C1,friend,2026-01-01T00:00:00Z,,\n"
        "S1,C2,backup,2026-01-01T00:00:00Z,soon,\n"
        "S1,,backup,2026-01-01T00:00:00Z,,\n"
        "S1,C3,backup,2026-01-01T00:00:00Z,,delete\n"
        "S1,C4,backup,2026-01-01T00:00:00Z\n"
    )
    assert [(r.line, r.code, r.field) for r in rejected(csv_results(text, "assignments"))] == [
        (2, "unknown_enum", "relation"),
        (3, "bad_timestamp", "valid_to"),
        (4, "missing_field", "customer_id"),
        (5, "unknown_enum", "op"),
        (6, MALFORMED_ROW, None),
    ]


# --- CSV: profiles ---------------------------------------------------------------


def test_profile_csv_related_staff_ids_split_on_semicolons() -> None:
    text = (
        "customer_id,home_branch_id,segment,sensitivity,related_staff_ids,updated_at\n"
        "C1,BR1,retail,employee, S1; S2 ;,2026-01-01T00:00:00Z\n"
        "C2,BR1,private,vip,,2026-01-01T00:00:00Z\n"
    )
    first, second = accepted(csv_results(text, "profiles"))
    assert first.key == b"C1" and second.key == b"C2"
    assert decode_customer_profile(first.value).related_staff_ids == ["S1", "S2"]
    assert orjson.loads(second.value)["related_staff_ids"] == []


def test_profile_csv_rejects() -> None:
    text = (
        "customer_id,home_branch_id,segment,sensitivity,related_staff_ids,updated_at\n"
        "C1,BR1,retail,famous,,2026-01-01T00:00:00Z\n"
        "C2,BR1,retail,normal,,yesterday\n"
        "C3,BR1,,normal,,2026-01-01T00:00:00Z\n"
        f"C4,BR1,retail,normal,{'x' * 65},2026-01-01T00:00:00Z\n"
    )
    assert [(r.line, r.code, r.field) for r in rejected(csv_results(text, "profiles"))] == [
        (2, "unknown_enum", "sensitivity"),
        (3, "bad_timestamp", "updated_at"),
        (4, "missing_field", "segment"),
        (5, "invalid_value", "related_staff_ids[0]"),
    ]


def test_row_to_json_maps_empty_cells_per_field() -> None:
    assert row_to_json({"staff_id": " ", "valid_to": "", "op": ""}, "assignments") == {
        "valid_to": None
    }
    assert row_to_json({"related_staff_ids": ";;"}, "profiles") == {"related_staff_ids": []}


# --- CSV: file level ---------------------------------------------------------------


def test_csv_header_missing_required_column_is_a_file_error() -> None:
    with pytest.raises(ExportError, match="effective_at"):
        parse_csv(io.StringIO("staff_id,branch_id,role,status\n"), "staff", "f.csv")


def test_csv_header_of_another_kind_is_a_file_error() -> None:
    with pytest.raises(ExportError, match="customer_id"):
        parse_csv(io.StringIO(STAFF_CSV), "profiles", "f.csv")


def test_csv_empty_file_and_duplicate_columns_are_file_errors() -> None:
    with pytest.raises(ExportError, match="empty"):
        parse_csv(io.StringIO(""), "staff", "f.csv")
    with pytest.raises(ExportError, match="twice"):
        parse_csv(
            io.StringIO("staff_id,staff_id,branch_id,role,status,effective_at\n"), "staff", "f.csv"
        )


def test_csv_unknown_columns_are_reported_and_not_published() -> None:
    text = (
        "staff_id,branch_id,role,status,effective_at,nickname\n"
        "S1,BR1,teller,active,2026-01-01T00:00:00Z,Bob\n"
    )
    parsed = parse_csv(io.StringIO(text), "staff", "f.csv")
    assert parsed.unknown_columns == ("nickname",)
    (only,) = list(parsed.results)
    assert isinstance(only, Accepted)
    assert "nickname" not in orjson.loads(only.value)


def test_csv_quoted_multiline_cell_keeps_the_starting_line_number() -> None:
    text = (
        "staff_id,branch_id,role,status,effective_at\n"
        'S1,"BR\n1",teller,active,2026-01-01T00:00:00Z\n'
        "S2,BR1,cook,active,2026-01-01T00:00:00Z\n"
    )
    results = csv_results(text, "staff")
    assert [r.line for r in accepted(results)] == [2]
    assert [(r.line, r.code) for r in rejected(results)] == [(4, "unknown_enum")]


def test_csv_non_utf8_cell_is_rejected_per_row() -> None:
    raw = (
        b"staff_id,branch_id,role,status,effective_at\n"
        b"S\xff1,BR1,teller,active,2026-01-01T00:00:00Z\n"
        b"S2,BR1,teller,active,2026-01-01T00:00:00Z\n"
    )
    text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="surrogateescape", newline="")
    results = list(parse_csv(text, "staff", "f.csv").results)
    assert [(r.line, r.code, r.field) for r in rejected(results)] == [(2, "not_utf8", "staff_id")]
    assert [r.key for r in accepted(results)] == [b"S2"]


# --- JSONL ---------------------------------------------------------------------------


def test_jsonl_rows_are_published_byte_for_byte_with_contract_keys() -> None:
    staff = (
        b'{"staff_id":"S1","branch_id":"BR1","role":"teller","status":"active",'
        b'"effective_at":"2026-01-01T00:00:00Z"}'
    )
    assign = (
        b'{"staff_id":"S1","customer_id":"C1","relation":"backup",'
        b'"valid_from":"2026-01-01T00:00:00Z","valid_to":null}'
    )
    prof = (
        b'{"customer_id":"C1","home_branch_id":"BR1","segment":"retail","sensitivity":"pep",'
        b'"related_staff_ids":["S1"],"updated_at":"2026-01-01T00:00:00Z"}'
    )
    for kind, line, key in [
        ("staff", staff, b"S1"),
        ("assignments", assign, b"S1:C1"),
        ("profiles", prof, b"C1"),
    ]:
        (only,) = jsonl_results(b"\n" + line + b"\r\n\n", kind)
        assert isinstance(only, Accepted)
        assert (only.line, only.key, only.value) == (2, key, line)


def test_jsonl_nulls_follow_the_decoder_rules() -> None:
    base = {
        "staff_id": "S1",
        "branch_id": "BR1",
        "role": "teller",
        "status": "active",
        "effective_at": "2026-01-01T00:00:00Z",
    }
    null_shift = orjson.dumps({**base, "shift_start": None})  # null: the shift is unknown
    null_timezone = orjson.dumps({**base, "timezone": None})
    no_valid_to = orjson.dumps(
        {
            "staff_id": "S1",
            "customer_id": "C1",
            "relation": "backup",
            "valid_from": base["effective_at"],
        }
    )
    null_related = orjson.dumps(
        {
            "customer_id": "C1",
            "home_branch_id": "BR1",
            "segment": "retail",
            "sensitivity": "normal",
            "related_staff_ids": None,
            "updated_at": base["effective_at"],
        }
    )
    (shift,) = jsonl_results(null_shift, "staff")
    assert isinstance(shift, Accepted) and shift.value == null_shift
    assert decode_staff_record(shift.value).shift_start is None
    (zone,) = jsonl_results(null_timezone, "staff")
    assert isinstance(zone, Rejected) and (zone.code, zone.field) == ("wrong_type", "timezone")
    (valid_to,) = jsonl_results(no_valid_to, "assignments")
    assert isinstance(valid_to, Rejected)
    assert (valid_to.code, valid_to.field) == ("missing_field", "valid_to")
    (related,) = jsonl_results(null_related, "profiles")
    assert isinstance(related, Rejected)
    assert (related.code, related.field) == ("wrong_type", "related_staff_ids")


def test_jsonl_rejects_with_line_numbers() -> None:
    text = (
        b'{"customer_id":"C1","home_branch_id":"BR1","segment":"retail","sensitivity":"normal",'
        b'"related_staff_ids":[],"updated_at":"2026-01-01T00:00:00Z"}\n'
        b"not json\n"
        b"[1, 2]\n"
        b'{"customer_id":"C2","home_branch_id":"BR1","segment":"gold","sensitivity":"normal",'
        b'"related_staff_ids":[],"updated_at":"2026-01-01T00:00:00Z"}\n'
        b'{"customer_id":"C3","home_branch_id":"BR1","segment":"retail","sensitivity":"normal",'
        b'"related_staff_ids":"S1","updated_at":"2026-01-01T00:00:00+08:00"}\n'
        b'{"customer_id":"C4","home_branch_id":"BR1","segment":"retail","sensitivity":"normal",'
        b'"related_staff_ids":[]}\n'
        b'{"customer_id":"C5","home_branch_id":"BR1","segment":"retail","sensitivity":"normal",'
        b'"related_staff_ids":[],"updated_at":"2026-02-30T00:00:00Z"}\n'
    )
    results = jsonl_results(text, "profiles")
    assert [r.line for r in accepted(results)] == [1]
    assert [(r.line, r.code, r.field) for r in rejected(results)] == [
        (2, "malformed_json", None),
        (3, "not_an_object", None),
        (4, "unknown_enum", "segment"),
        (5, "wrong_type", "related_staff_ids"),
        (6, "missing_field", "updated_at"),
        (7, "bad_timestamp", "updated_at"),
    ]
    assert rejected(results)[0].original == "not json"


def test_format_of_extension() -> None:
    assert format_of("a/b/staff.CSV") == "csv"
    assert format_of("x.jsonl") == "jsonl"
    assert format_of("x.ndjson") == "jsonl"
    assert format_of("x.txt") is None
    assert format_of("noext") is None


def test_tally_counts_by_code_and_keeps_the_first_rejects() -> None:
    tally = Tally(keep=2)
    for i in range(5):
        tally.add(Rejected("f", i + 1, "unknown_enum" if i % 2 else "bad_timestamp", "m", None, ""))
    tally.add(Accepted("f", 6, b"k", b"v"))
    assert (tally.read, tally.valid, tally.rejected_total) == (6, 1, 5)
    assert tally.rejected == {"bad_timestamp": 3, "unknown_enum": 2}
    assert [r.line for r in tally.first_rejects] == [1, 2]


# --- the CLI, dry run (no broker) -------------------------------------------------------


def cli_args(tmp_path: Path, *files: str, **kw: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    publish.configure(parser)
    argv = [*files, "--dry-run"]
    for name, value in kw.items():
        argv += [f"--{name}", str(value)]
    return parser.parse_args(argv)


def test_dry_run_exit_codes_summary_and_rejects_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "staff.csv"
    good.write_text(STAFF_CSV)
    bad = tmp_path / "more.jsonl"
    bad.write_bytes(b'{"staff_id":"S9"}\n')
    rejects = tmp_path / "rejects.jsonl"

    assert publish.run(cli_args(tmp_path, str(good), kind="staff")) == 0
    out = capsys.readouterr().out
    assert "rows read: 2" in out and "published: 0 (dry run)" in out

    code = publish.run(cli_args(tmp_path, str(good), str(bad), kind="staff", rejects=rejects))
    assert code == 1
    out = capsys.readouterr().out
    assert "rejected:  1" in out and "missing_field: 1" in out
    assert f"{bad}:1: missing_field" in out
    (line,) = rejects.read_bytes().splitlines()
    assert orjson.loads(line)["code"] == "missing_field"
    assert orjson.loads(line)["line"] == 1


def test_dry_run_usage_and_io_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "staff.csv"
    good.write_text(STAFF_CSV)
    assert publish.run(cli_args(tmp_path, str(tmp_path / "missing.csv"), kind="staff")) == 2
    assert "no such file" in capsys.readouterr().err
    weird = tmp_path / "staff.txt"
    weird.write_text(STAFF_CSV)
    assert publish.run(cli_args(tmp_path, str(weird), kind="staff")) == 2
    assert "--format" in capsys.readouterr().err
    assert publish.run(cli_args(tmp_path, str(weird), kind="staff", format="csv")) == 0
    capsys.readouterr()
    assert publish.run(cli_args(tmp_path, str(good), kind="profiles")) == 2
    assert "customer_id" in capsys.readouterr().err


# --- publishing helper, with a fake producer (no broker) -----------------------------------


class FakeProducer:
    """Records sends in order; resolves each future at once, failing from ``fail_at`` on."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail_at = fail_at

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_at is not None and len(self.sent) >= self.fail_at:
            fut.set_exception(KafkaError("broker said no"))
        else:
            fut.set_result(None)
        self.sent.append((topic, key, value))
        return fut


async def test_send_batched_sends_in_order_and_counts_acks() -> None:
    producer = FakeProducer()
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(25)]
    progress = publish.Progress()
    sent = await publish.send_batched(producer, "t", records, chunk=4, progress=progress)
    assert sent == 25 and progress.acked == 25
    assert [(k, v) for _, k, v in producer.sent] == records


async def test_send_batched_failure_raises_and_keeps_a_lower_bound_of_acks() -> None:
    producer = FakeProducer(fail_at=10)
    records = [(b"k", b"v")] * 30
    progress = publish.Progress()
    with pytest.raises(KafkaError):
        await publish.send_batched(producer, "t", records, chunk=4, progress=progress)
    assert 0 < progress.acked <= 10
