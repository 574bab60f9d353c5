"""Integration helpers: the real broker and database started by ``infra/``.

Every test gets its own topic prefix and consumer group, so tests share one
broker without seeing each other's data. Workers run as real subprocesses
(``python -m pipeline worker``), exactly as an operator would start them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition

from pipeline.broker import clients
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("PIPELINE_KAFKA_BOOTSTRAP", "localhost:9092")
DATABASE_URL = os.environ.get(
    "PIPELINE_DATABASE_URL", "postgresql://pipeline:pipeline@localhost:5432/pipeline"
)
PARTITIONS = 4


def broker_settings() -> Settings:
    """Settings of the shared test broker (PLAINTEXT, from the environment)."""
    return Settings(kafka_bootstrap=BOOTSTRAP)


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
    settings: Settings | None = None,
) -> list[tuple[bytes | None, bytes | None]]:
    """Read ``topic`` from the beginning until ``until(records)`` is true (on the broker
    of ``settings``, default the shared test broker)."""
    consumer = clients.consumer(
        settings or broker_settings(), group_id=None, auto_offset_reset="earliest"
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


def with_login(url: str, user: str, password: str, database: str) -> str:
    """``url`` with another user, password and database."""
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname or 'localhost'}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


@dataclass(frozen=True)
class Roles:
    """A throwaway database owned by the dev role, and a throwaway worker login role."""

    database: str
    worker_role: str
    owner_url: str
    worker_url: str


def migrate_as_owner(r: Roles, *args: str) -> subprocess.CompletedProcess[str]:
    """``pipeline migrate ARGS`` with the owner's DSN in PIPELINE_MIGRATE_DATABASE_URL."""
    env = {
        **os.environ,
        # The workers' DSN: were migrate to use it, every CREATE would fail.
        "PIPELINE_DATABASE_URL": r.worker_url,
        "PIPELINE_MIGRATE_DATABASE_URL": r.owner_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "migrate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
