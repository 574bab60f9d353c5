"""Integration helpers: the real broker and database started by ``infra/``.

Every test gets its own topic prefix and consumer group, so tests share one
broker without seeing each other's data. Workers run as real subprocesses
(``python -m pipeline worker``), exactly as an operator would start them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("PIPELINE_KAFKA_BOOTSTRAP", "localhost:9092")
DATABASE_URL = os.environ.get(
    "PIPELINE_DATABASE_URL", "postgresql://pipeline:pipeline@localhost:5432/pipeline"
)
PARTITIONS = 4


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


def worker_env(s: Settings, web_port: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PIPELINE_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
        PIPELINE_DATABASE_URL=s.database_url,
        PIPELINE_TOPIC_PREFIX=s.topic_prefix,
        PIPELINE_APP_ID=s.app_id,
        PIPELINE_WEB_PORT=str(web_port or s.web_port),
        PIPELINE_DATA_DIR=str(s.data_dir),
        PIPELINE_PARTITIONS=str(s.partitions),
        PIPELINE_PSEUDONYM_KEY=s.pseudonym_key,
        PIPELINE_LOG_LEVEL="info",
    )
    return env


class WorkerProcess:
    """A real ``pipeline worker`` subprocess."""

    def __init__(self, s: Settings, log_path: Path, web_port: int | None = None) -> None:
        self.port = web_port or s.web_port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            env=worker_env(s, self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )

    def health(self) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def wait_healthy(self, timeout: float = 120.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early; log:\n{self.tail()}")
            if self.health()[0] == 200:
                return time.monotonic() - start
            time.sleep(0.5)
        raise AssertionError(f"worker not healthy after {timeout}s; log:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


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
