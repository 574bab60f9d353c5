# mypy: disable-error-code="import-untyped"
"""pipeline.normalize.mapping over Debezium-, Connect- and flat-shaped core-banking records."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml

from pipeline.contract.decode import dead_letter, decode_access_event
from pipeline.normalize.mapping import (
    Emit,
    Mapping,
    MappingError,
    Reject,
    Skip,
    load_mapping,
    normalize,
    parse_mapping,
)
from tests.unit.test_schemas import EcmaValidator, load_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MAPPING = ROOT / "docs" / "ingestion" / "core-banking-audit.yaml"
DOC: dict[str, Any] = yaml.safe_load(EXAMPLE_MAPPING.read_text(encoding="utf-8"))
DEAD_LETTER = EcmaValidator(load_schema("dead-letter"))

# One row of cbs.audit_trail as Debezium's JSON converter writes it: event_ts is a
# TIMESTAMP WITHOUT TIME ZONE in microseconds (io.debezium.time.MicroTimestamp) holding
# the bank's wall clock; CHAR columns come padded.
ROW = {
    "audit_id": 881234,
    "event_ts": 1772443815123456,  # 2026-03-02 09:30:15.123456 in Shanghai
    "operator_id": "S10234  ",
    "cust_no": "C000123",
    "txn_code": "AC11",
    "channel_cd": "BRT",
    "branch_cd": "BR-SH-0012",
    "term_id": "T-07",
    "client_ip": "10.1.2.3",
    "session_id": None,
    "auth_ref": None,
    "row_count": 25,
    "result_cd": "00",
}
SOURCE = {
    "version": "2.7.3.Final",
    "connector": "postgresql",
    "name": "cbs",
    "ts_ms": 1772443816000,
    "snapshot": "false",
    "db": "cbs",
    "schema": "cbs",
    "table": "audit_trail",
    "txId": 5521,
    "lsn": 24023128,
}
EXPECTED = {
    "event_id": "cbs-881234",
    "occurred_at": "2026-03-02T01:30:15.123456Z",
    "staff_id": "S10234",
    "customer_id": "C000123",
    "action": "view_transactions",
    "channel": "branch_terminal",
    "branch_id": "BR-SH-0012",
    "terminal_id": "T-07",
    "source_ip": "10.1.2.3",
    "record_count": 25,
    "outcome": "success",
}
ROW_SCHEMA = {
    "type": "struct",
    "name": "cbs.cbs.audit_trail.Envelope",
    "optional": False,
    "fields": [{"field": "before", "type": "struct"}, {"field": "after", "type": "struct"}],
}
KEY = {"audit_id": 881234}
STRUCT_KEY = {
    "schema": {"type": "struct", "fields": [{"field": "audit_id", "type": "int64"}]},
    "payload": KEY,
}


def mapping(**changes: Any) -> Mapping:
    doc = copy.deepcopy(DOC)
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return parse_mapping(doc)


def envelope(op: str = "c", after: Any = ROW, before: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "before": before,
        "after": copy.deepcopy(after),
        "source": dict(SOURCE, snapshot="true" if op == "r" else "false"),
        "op": op,
        "ts_ms": 1772443816123,
        "transaction": None,
        **extra,
    }


def run(value: Any, key: Any = KEY, m: Mapping | None = None) -> Any:
    raw = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
    raw_key = key if key is None or isinstance(key, bytes) else orjson.dumps(key)
    return normalize(m or mapping(), raw, raw_key)


def emitted(result: Any) -> dict[str, Any]:
    assert isinstance(result, Emit), result
    event = decode_access_event(result.value)  # the pipeline's own decoder accepts it
    assert result.key == event.staff_id.encode()
    assert result.timestamp_ms == int(event.occurred_at.timestamp() * 1000)
    out: dict[str, Any] = orjson.loads(result.value)
    return out


def rejected(result: Any, code: str) -> str:
    assert isinstance(result, Reject), result
    assert result.error.code == code, result.error
    return result.error.message


# --- rows that become events ------------------------------------------------------------


@pytest.mark.parametrize("op", ["c", "r", "u"])
def test_create_snapshot_read_and_update_emit_the_row_after(op: str) -> None:
    before = ROW if op == "u" else None
    assert emitted(run(envelope(op, before=before))) == EXPECTED


def test_schema_wrapped_and_bare_json_give_the_same_event() -> None:
    bare = run(envelope())
    wrapped = run({"schema": ROW_SCHEMA, "payload": envelope()}, key=STRUCT_KEY)
    assert isinstance(bare, Emit) and isinstance(wrapped, Emit)
    assert bare == wrapped
    assert emitted(wrapped) == EXPECTED


@pytest.mark.parametrize("key", [STRUCT_KEY, KEY, b"881234", None, b"\xff not json"])
def test_any_source_key_is_replaced_by_the_staff_id(key: Any) -> None:
    result = run(envelope(), key=key)
    assert isinstance(result, Emit) and result.key == b"S10234"


def test_a_struct_key_field_can_feed_a_field() -> None:
    m = mapping(fields__event_id={"template": "cbs-{#audit_id}-{@source.lsn}"})
    assert m.uses_key
    row = {k: v for k, v in ROW.items() if k != "audit_id"}  # e.g. only in the key
    assert emitted(run(envelope(after=row), key=STRUCT_KEY, m=m))["event_id"] == (
        "cbs-881234-24023128"
    )
    assert emitted(run(envelope(after=row), key=KEY, m=m))["event_id"] == "cbs-881234-24023128"
    rejected(run(envelope(after=row), key=None, m=m), "missing_field")


@pytest.mark.parametrize(
    ("time", "value", "zone", "expected"),
    [
        ("epoch_us", 1772443815123456, "Asia/Shanghai", "2026-03-02T01:30:15.123456Z"),
        ("epoch_us", 1772415015123456, None, "2026-03-02T01:30:15.123456Z"),
        ("epoch_ms", 1772415015123, None, "2026-03-02T01:30:15.123Z"),
        ("epoch_ms", 1772443815123, "Asia/Shanghai", "2026-03-02T01:30:15.123Z"),
        ("epoch_ms", "1772415015123", None, "2026-03-02T01:30:15.123Z"),
        ("epoch_s", 1772415015, None, "2026-03-02T01:30:15.000Z"),
        ("epoch_s", 1772415015.5, None, "2026-03-02T01:30:15.500Z"),
        ("epoch_ns", 1772415015123456789, None, "2026-03-02T01:30:15.123456Z"),
        ("iso", "2026-03-02T09:30:15.123456+08:00", None, "2026-03-02T01:30:15.123456Z"),
        ("iso", "2026-03-02T01:30:15Z", None, "2026-03-02T01:30:15.000Z"),
        ("iso", "2026-03-02 09:30:15", "Asia/Shanghai", "2026-03-02T01:30:15.000Z"),
    ],
)
def test_timestamps_become_rfc3339_utc(
    time: str, value: Any, zone: str | None, expected: str
) -> None:
    spec: dict[str, Any] = {"from": "event_ts", "time": time}
    if zone:
        spec["naive_timezone"] = zone
    m = mapping(fields__occurred_at=spec)
    assert emitted(run(envelope(after={**ROW, "event_ts": value}), m=m))["occurred_at"] == expected


@pytest.mark.parametrize(
    ("time", "value"),
    [
        ("iso", "2026-03-02 09:30:15"),  # no offset and no naive_timezone
        ("iso", "yesterday"),
        ("iso", 1772415015),
        ("epoch_ms", "soon"),
        ("epoch_ms", True),
        ("epoch_s", 10**13),  # year 318857: beyond what a timestamp can be
    ],
)
def test_unreadable_times_are_bad_timestamps(time: str, value: Any) -> None:
    m = mapping(fields__occurred_at={"from": "event_ts", "time": time})
    rejected(run(envelope(after={**ROW, "event_ts": value}), m=m), "bad_timestamp")


def test_numbers_become_text_and_counts_integers() -> None:
    row = {**ROW, "operator_id": 10234, "branch_cd": 12.0, "row_count": "7", "cust_no": 123}
    out = emitted(run(envelope(after=row)))
    assert (out["staff_id"], out["branch_id"], out["customer_id"]) == ("10234", "12", "123")
    assert out["record_count"] == 7
    rejected(run(envelope(after={**ROW, "row_count": "many"})), "wrong_type")
    rejected(run(envelope(after={**ROW, "branch_cd": {"id": 1}})), "wrong_type")


def test_defaults_constants_and_absent_optionals() -> None:
    row = {k: v for k, v in ROW.items() if k not in ("row_count", "result_cd", "term_id")}
    out = emitted(run(envelope(after=row)))
    assert out["record_count"] == 1 and out["outcome"] == "success"
    assert "terminal_id" not in out and "session_id" not in out
    m = mapping(fields__channel={"const": "back_office_batch"})
    assert emitted(run(envelope(after={**ROW, "channel_cd": None}), m=m))["channel"] == (
        "back_office_batch"
    )


def test_code_maps_with_a_fallback() -> None:
    assert emitted(run(envelope(after={**ROW, "result_cd": "05"})))["outcome"] == "denied"
    assert emitted(run(envelope(after={**ROW, "txn_code": "CR30"})))["action"] == (
        "credit_report_query"
    )


def test_search_without_customer_is_an_event_a_view_without_one_is_not() -> None:
    out = emitted(run(envelope(after={**ROW, "txn_code": "CS00", "cust_no": None})))
    assert out["action"] == "search_customers" and out["customer_id"] is None
    # the decoder's own code for what the contract forbids
    message = rejected(run(envelope(after={**ROW, "cust_no": None})), "invalid_value")
    assert "customer_id" in message


# --- rows that do not ---------------------------------------------------------------------


def test_unknown_action_code() -> None:
    message = rejected(run(envelope(after={**ROW, "txn_code": "ZZ99"})), "unmapped_action")
    assert "ZZ99" in message and "txn_code" in message
    rejected(run(envelope(after={**ROW, "channel_cd": "ATM"})), "unmapped_channel")


@pytest.mark.parametrize("staff", [None, "", "        "])
def test_missing_staff(staff: Any) -> None:
    message = rejected(run(envelope(after={**ROW, "operator_id": staff})), "missing_field")
    assert "staff_id" in message and "operator_id" in message
    row = {k: v for k, v in ROW.items() if k != "operator_id"}
    rejected(run(envelope(after=row)), "missing_field")


def test_deletes_truncates_and_tombstones() -> None:
    delete = envelope("d", after=None, before=ROW)
    rejected(run(delete), "cdc_delete")
    rejected(run(envelope("t", after=None)), "cdc_truncate")
    assert run(None) == Skip("tombstone")
    rejected(run(None, m=mapping(on_tombstone="dead_letter")), "tombstone")
    lenient = mapping(on_delete="skip")
    assert run(delete, m=lenient) == Skip("delete")
    assert run(envelope("t", after=None), m=lenient) == Skip("truncate")
    assert run(envelope("u", before=ROW), m=mapping(on_update="skip")) == Skip("update")


def test_flat_rows_from_extract_new_record_state() -> None:
    flat = mapping(envelope="flat")
    assert emitted(run(ROW, m=flat)) == EXPECTED
    assert emitted(run({"schema": ROW_SCHEMA, "payload": ROW}, m=flat)) == EXPECTED
    assert emitted(run(ROW, m=mapping(envelope="auto"))) == EXPECTED
    assert emitted(run(envelope(), m=mapping(envelope="auto"))) == EXPECTED
    rejected(run({**ROW, "__deleted": "true"}, m=flat), "cdc_delete")
    connect = mapping(envelope="connect")
    assert emitted(run({"schema": ROW_SCHEMA, "payload": ROW}, m=connect)) == EXPECTED
    rejected(run(ROW, m=connect), "not_an_envelope")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "not_utf8"),
        (b"[1, 2]", "not_an_object"),
        (ROW, "not_an_envelope"),  # a flat row where a Debezium envelope is configured
        ({**envelope(), "op": "m"}, "not_an_envelope"),  # a logical-decoding message
        (envelope("c", after=None), "not_an_envelope"),
        ({"schema": ROW_SCHEMA, "payload": [1]}, "not_an_envelope"),
        (b'{"pad": "' + b"x" * (1024 * 1024) + b'"}', "value_too_large"),
    ],
)
def test_values_that_are_not_records(value: Any, code: str) -> None:
    rejected(run(value), code)


def test_a_reject_makes_a_valid_dead_letter() -> None:
    raw, key = orjson.dumps(envelope(after={**ROW, "txn_code": "ZZ99"})), orjson.dumps(STRUCT_KEY)
    result = normalize(mapping(), raw, key)
    assert isinstance(result, Reject)
    letter = msgspec.to_builtins(
        dead_letter(raw, key, "cbs.cbs.audit_trail", 3, 1042, result.error, 1772415015.0)
    )
    assert not list(DEAD_LETTER.iter_errors(letter))
    assert letter["error"]["code"] == "unmapped_action"
    assert letter["original"] == raw.decode() and letter["key"] == key.decode()


def test_deterministic() -> None:
    value = orjson.dumps(envelope())
    assert normalize(mapping(), value, None) == normalize(mapping(), value, b"x")


# --- the mapping file ---------------------------------------------------------------------


def test_the_documented_example_loads_as_yaml_and_as_json(tmp_path: Path) -> None:
    from_yaml = load_mapping(EXAMPLE_MAPPING)
    as_json = tmp_path / "m.json"
    as_json.write_text(json.dumps(DOC), encoding="utf-8")
    assert load_mapping(as_json) == from_yaml
    assert from_yaml.envelope == "debezium" and from_yaml.on_delete == "dead_letter"


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"fields__actor": "operator_id"}, "not AccessEvent fields"),
        ({"fields__staff_id": None}, "column name or an object"),
        ({"maps__actions__CI01": "peek"}, "not contract values"),
        ({"fields__action": {"from": "txn_code", "map": "verbs"}}, "not defined"),
        ({"fields__occurred_at": {"from": "event_ts"}}, "time"),
        ({"fields__occurred_at": {"from": "event_ts", "time": "epoch_min"}}, "time"),
        (
            {"fields__occurred_at": {"from": "event_ts", "time": "iso", "naive_timezone": "Mars"}},
            "IANA",
        ),
        ({"fields__event_id": {"template": "no placeholders"}}, "placeholders"),
        ({"fields__event_id": {"from": "audit_id", "const": "x"}}, "exactly one"),
        ({"fields__channel": {"const": "carrier_pigeon"}}, "carrier_pigeon"),
        ({"fields__staff_id": {"from": ""}}, "non-empty"),
        ({"envelope": "avro"}, "envelope"),
        ({"on_delete": "ignore"}, "on_delete"),
        ({"version": 2}, "version"),
        ({"colour": "blue"}, "unknown key"),
    ],
)
def test_mapping_mistakes_are_named(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(MappingError, match=needle):
        mapping(**changes)


def test_a_required_field_must_be_mapped() -> None:
    doc = copy.deepcopy(DOC)
    del doc["fields"]["branch_id"]
    with pytest.raises(MappingError, match="branch_id"):
        parse_mapping(doc)


def test_unquoted_yaml_codes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8").replace('"00": success', "00: success")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match="quote codes"):
        load_mapping(path)


def test_unreadable_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")
    odd = tmp_path / "m.toml"
    odd.write_text("x = 1", encoding="utf-8")
    with pytest.raises(MappingError, match=r"\.yaml"):
        load_mapping(odd)
    broken = tmp_path / "m.yaml"
    broken.write_text("fields: [", encoding="utf-8")
    with pytest.raises(MappingError, match="YAML"):
        load_mapping(broken)


# --- the documentation ------------------------------------------------------------------


def test_the_ingestion_doc_shows_the_shipped_files() -> None:
    import re

    doc = (ROOT / "docs" / "ingestion.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, flags=re.DOTALL)
    assert ("yaml", EXAMPLE_MAPPING.read_text(encoding="utf-8")) in blocks
    connector_file = ROOT / "docs" / "ingestion" / "debezium-postgres-audit-trail.json"
    connector = json.loads(connector_file.read_text(encoding="utf-8"))
    assert connector in [json.loads(text) for lang, text in blocks if lang == "json"]
    config = connector["config"]
    topic = f"{config['topic.prefix']}.{config['table.include.list']}"
    assert topic == "cdc.cbs.audit_trail" and f"`{topic}`" in doc
    assert config["value.converter.schemas.enable"] == "true"  # {schema, payload}: unwrapped
    for code in (
        "cdc_delete",
        "cdc_truncate",
        "tombstone",
        "not_an_envelope",
        "missing_field",
        "unmapped_action",
        "bad_timestamp",
        "wrong_type",
        "value_too_large",
    ):
        assert f"`{code}`" in doc, code
