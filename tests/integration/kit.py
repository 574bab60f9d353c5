"""Integration helpers: the real broker and database started by ``infra/``.

Every test gets its own topic prefix and consumer group, so tests share one
broker without seeing each other's data. Workers run as real subprocesses
(``python -m pipeline worker``), exactly as an operator would start them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("PIPELINE_KAFKA_BOOTSTRAP", "localhost:9092")
DATABASE_URL = os.environ.get(
    "PIPELINE_DATABASE_URL", "postgresql://pipeline:pipeline@localhost:5432/pipeline"
)
PARTITIONS = 4


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with the server setting search_path=schema (asyncpg passes it on)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def send_json(
    producer: AIOKafkaProducer, topic: str, key: str | None, value: Any, raw: bool = False
) -> None:
    payload = value if raw else (None if value is None else orjson.dumps(value))
    await producer.send_and_wait(topic, key=key.encode() if key else None, value=payload)


async def read_topic(
    topic: str,
    until: Any,
    timeout: float = 90.0,
) -> list[tuple[bytes | None, bytes | None]]:
    """Read ``topic`` from the beginning until ``until(records)`` is true."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer.topics()
            cluster = await consumer._client.fetch_all_metadata()
            parts = cluster.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend((r.key, r.value) for r in recs)
            if until(records):
                return records
        raise AssertionError(f"timed out reading {topic}; got {len(records)} records")
    finally:
        await consumer.stop()


async def wait_for(fn: Any, timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
