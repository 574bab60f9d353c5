# mypy: disable-error-code="import-untyped"
"""`pipeline normalize` on the real broker: Debezium-shaped records in, AccessEvents and
dead letters out, offsets committed so that a restart resumes where it stopped."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.contract.decode import decode_access_event
from pipeline.settings import Settings
from simbank.workers import worker_env
from tests.integration.kit import BOOTSTRAP, ROOT, read_topic
from tests.unit.test_schemas import EcmaValidator, load_schema

MAPPING = ROOT / "docs" / "ingestion" / "core-banking-audit.yaml"
DEAD_LETTER = EcmaValidator(load_schema("dead-letter"))
ROW_SCHEMA = {"type": "struct", "name": "cbs.cbs.audit_trail.Envelope", "fields": []}
KEY_SCHEMA = {"type": "struct", "fields": [{"field": "audit_id", "type": "int64"}]}


def row(audit_id: int, staff: Any, txn: str = "AC11", **extra: Any) -> dict[str, Any]:
    return {
        "audit_id": audit_id,
        "event_ts": 1772443815123456 + audit_id * 1_000_000,
        "operator_id": staff,
        "cust_no": f"C{audit_id:06d}",
        "txn_code": txn,
        "channel_cd": "BRT",
        "branch_cd": "BR-SH-0012",
        "term_id": "T-07",
        "client_ip": "10.1.2.3",
        "session_id": None,
        "auth_ref": None,
        "row_count": 1,
        "result_cd": "00",
        **extra,
    }


def change(op: str, after: Any, before: Any = None) -> dict[str, Any]:
    source = {"connector": "postgresql", "db": "cbs", "table": "audit_trail", "lsn": 1}
    return {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}


def struct_key(audit_id: int) -> bytes:
    return orjson.dumps({"schema": KEY_SCHEMA, "payload": {"audit_id": audit_id}})


def first_batch() -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) pairs; the comments say what each must become."""
    r5 = row(5, "S5")
    return [
        (struct_key(1), orjson.dumps(change("c", row(1, "S1")))),  # event
        (struct_key(2), orjson.dumps(change("c", row(2, "S2  ")))),  # event (CHAR padding)
        (orjson.dumps({"audit_id": 3}), orjson.dumps(change("r", row(3, "S3")))),  # event
        (struct_key(4), orjson.dumps({"schema": ROW_SCHEMA, "payload": change("c", row(4, "S1"))})),
        (struct_key(5), orjson.dumps(change("u", r5, before=copy.deepcopy(r5)))),  # event
        (struct_key(5), orjson.dumps(change("d", None, before=r5))),  # dlq cdc_delete
        (struct_key(5), None),  # tombstone: skipped
        (struct_key(6), orjson.dumps(change("c", row(6, "S6", txn="ZZ99")))),  # unmapped_action
        (struct_key(7), orjson.dumps(change("c", row(7, None)))),  # missing_field
        (b"8", b"{not json"),  # malformed_json
    ]


EVENTS_FIRST = {"cbs-1": "S1", "cbs-2": "S2", "cbs-3": "S3", "cbs-4": "S1", "cbs-5": "S5"}
DEAD_FIRST = ["cdc_delete", "unmapped_action", "missing_field", "malformed_json"]


async def create_source(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()


async def publish(topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, key=key, value=value, partition=0)
    finally:
        await producer.stop()


def start_agent(settings: Settings, topic: str, log: Path) -> subprocess.Popen[bytes]:
    env = worker_env(settings)
    env["PIPELINE_NORMALIZE_SOURCE_TOPIC"] = topic
    env["PIPELINE_NORMALIZE_MAPPING_FILE"] = str(MAPPING)
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "normalize"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop_agent(proc: subprocess.Popen[bytes], log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert rc == 0, text[-3000:]
    return text


async def count_records(topic: str) -> int:
    """Every record ever written to ``topic`` (its end offsets: no transactions, no compaction)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        parts = cluster.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        await consumer.stop()


def events_of(records: list[tuple[bytes | None, bytes | None]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in records:
        event = decode_access_event(value)  # the pipeline's own decoder accepts every one
        assert key == event.staff_id.encode()
        assert event.event_id not in out, f"{event.event_id} emitted twice"
        out[event.event_id] = event.staff_id
    return out


async def test_normalize_agent_end_to_end(topics: Settings, tmp_path: Path) -> None:
    settings = topics
    source = f"{settings.topic_prefix}cdc.cbs.audit_trail"
    await create_source(source)
    batch = first_batch()
    await publish(source, batch)
    log = tmp_path / "normalize.log"

    proc = start_agent(settings, source, log)
    try:
        await read_topic(settings.access_topic, lambda r: len(r) >= len(EVENTS_FIRST))
        await read_topic(settings.dlq_topic, lambda r: len(r) >= len(DEAD_FIRST))
    finally:
        text = stop_agent(proc, log)
    assert "emitted 5, dead-lettered 4" in text and "skipped 1 (tombstone=1)" in text
    assert await count_records(settings.access_topic) == len(EVENTS_FIRST)

    events = await read_topic(settings.access_topic, lambda r: len(r) >= len(EVENTS_FIRST))
    assert events_of(events) == EVENTS_FIRST
    first = orjson.loads(next(v for k, v in events if k == b"S3" and v is not None))
    assert first["occurred_at"] == "2026-03-02T01:30:18.123456Z"  # Shanghai wall clock -> UTC
    assert first["action"] == "view_transactions" and first["channel"] == "branch_terminal"

    dead = await read_topic(settings.dlq_topic, lambda r: len(r) >= len(DEAD_FIRST))
    letters = [json.loads(v) for _, v in dead if v is not None]
    for letter in letters:
        assert not list(DEAD_LETTER.iter_errors(letter)), letter
        assert letter["topic"] == source and letter["partition"] == 0
    assert [d["error"]["code"] for d in sorted(letters, key=lambda d: d["offset"])] == DEAD_FIRST
    by_code = {d["error"]["code"]: (d, k) for (k, _), d in zip(dead, letters, strict=True)}
    letter, key = by_code["unmapped_action"]
    assert letter["offset"] == 7 and key == struct_key(6)  # the original key is kept
    assert letter["key"] == struct_key(6).decode()
    assert json.loads(letter["original"])["after"]["txn_code"] == "ZZ99"
    assert by_code["malformed_json"][0]["original"] == "{not json"

    # A second run resumes after the committed offsets: only the new records come out.
    await publish(
        source,
        [
            (struct_key(9), orjson.dumps(change("c", row(9, "S9", txn="CR30")))),
            (struct_key(10), orjson.dumps(change("c", row(10, "S1", txn="CS00", cust_no=None)))),
        ],
    )
    proc = start_agent(settings, source, log)
    try:
        await read_topic(settings.access_topic, lambda r: len(r) >= len(EVENTS_FIRST) + 2)
    finally:
        stop_agent(proc, log)
    final = await read_topic(settings.access_topic, lambda r: len(r) >= len(EVENTS_FIRST) + 2)
    assert events_of(final) == {**EVENTS_FIRST, "cbs-9": "S9", "cbs-10": "S1"}
    assert await count_records(settings.access_topic) == len(EVENTS_FIRST) + 2  # nothing twice
    assert await count_records(settings.dlq_topic) == len(DEAD_FIRST)
