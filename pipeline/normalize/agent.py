"""``pipeline normalize``: a core-banking CDC topic -> ``{prefix}access-events``.

    pipeline normalize [--mapping FILE] [--source-topic TOPIC] [--check]

Reads the source topic (``PIPELINE_NORMALIZE_SOURCE_TOPIC`` or
``--source-topic``) in its own consumer group, ``{app_id}-normalize``, maps
every record with the mapping file (``PIPELINE_NORMALIZE_MAPPING_FILE`` or
``--mapping``; format in ``docs/ingestion.md``) and writes the AccessEvents
to ``{prefix}access-events`` keyed by ``staff_id``, and the records it cannot
map to ``{prefix}access-events.dlq`` as DeadLetters (original key kept).
``--check`` only loads and checks the mapping file.

Delivery is at least once: a batch's offsets are committed only after every
record produced for it (events and dead letters) is acknowledged by the
broker (``acks=all``, idempotent producer). A failed produce stops the agent
without committing, so a restart resumes from the last committed batch; a
rebalance between produce and commit can re-deliver a batch (the event ids
are the same, so downstream sees a replay). A bad record never stops it: it
becomes a dead letter. Stop it with SIGTERM or SIGINT; it finishes the batch
in hand, commits, and exits 0.

A plain aiokafka loop rather than a Faust app: the job is a stateless map
with no tables or changelogs, and committing strictly after the produced
records are acknowledged is explicit here (Faust commits on its own
schedule, and with ``concurrency > 1`` can commit past unfinished events).
Scale it like any consumer group: more processes, up to the source topic's
partition count.

Exit status: 0 stopped by a signal; 1 Kafka failed (nothing past the last
commit is lost); 2 usage error (no mapping file or source topic, a mapping
that does not check out, Kafka unreachable at start).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

import pipeline.broker.clients as clients
from pipeline.broker.topics import ensure_topics
from pipeline.contract.decode import dead_letter, encode
from pipeline.errors import PoisonError, RetriableError
from pipeline.normalize.mapping import (
    Emit,
    Mapping,
    MappingError,
    NormalizeError,
    Reject,
    Result,
    load_mapping,
    normalize,
)
from pipeline.settings import Settings

log = logging.getLogger("pipeline.normalize")

BATCH_RECORDS: Final = 500
POLL_MS: Final = 500
REPORT_EVERY_S: Final = 30.0
# A dead letter larger than this would not fit the broker's default
# message.max.bytes (1 MiB); it is sent without the original value.
MAX_DEAD_LETTER_BYTES: Final = 900_000
# Kafka refuses record timestamps too far ahead (message.timestamp.after.max.ms).
MAX_FUTURE_TIMESTAMP_MS: Final = 10 * 60 * 1000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mapping", metavar="FILE", default=None, help="mapping file (YAML or JSON)"
    )
    parser.add_argument("--source-topic", metavar="TOPIC", default=None, help="CDC topic to read")
    parser.add_argument("--check", action="store_true", help="check the mapping file and exit")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    mapping_file: Path | None = (
        Path(args.mapping) if args.mapping else settings.normalize_mapping_file
    )
    source_topic = args.source_topic or settings.normalize_source_topic
    if mapping_file is None:
        print(
            "normalize: no mapping file (PIPELINE_NORMALIZE_MAPPING_FILE or --mapping)",
            file=sys.stderr,
        )
        return 2
    try:
        mapping = load_mapping(mapping_file)
    except MappingError as exc:
        print(f"normalize: {exc}", file=sys.stderr)
        return 2
    if args.check:
        names = ", ".join(s.target for s in mapping.fields)
        print(f"{mapping_file}: ok ({mapping.envelope} envelope; fields: {names})")
        return 0
    if not source_topic:
        print(
            "normalize: no source topic (PIPELINE_NORMALIZE_SOURCE_TOPIC or --source-topic)",
            file=sys.stderr,
        )
        return 2
    agent = NormalizeAgent(settings, mapping, source_topic)
    try:
        return asyncio.run(agent.run())
    except RetriableError as exc:
        print(f"normalize: {exc}", file=sys.stderr)
        return 2


@dataclass
class Tally:
    read: int = 0
    emitted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        dead = ", ".join(f"{c}={n}" for c, n in sorted(self.dead_lettered.items()))
        skipped = ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items()))
        return (
            f"read {self.read}, emitted {self.emitted}, "
            f"dead-lettered {sum(self.dead_lettered.values())} ({dead or 'none'}), "
            f"skipped {sum(self.skipped.values())} ({skipped or 'none'})"
        )


class NormalizeAgent:
    def __init__(self, settings: Settings, mapping: Mapping, source_topic: str) -> None:
        self.settings = settings
        self.mapping = mapping
        self.source_topic = source_topic
        self.group_id = f"{settings.app_id}-normalize"
        self.tally = Tally()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        await ensure_topics(self.settings)
        consumer = clients.consumer(
            self.settings,
            self.source_topic,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=BATCH_RECORDS,
        )
        producer = clients.producer(
            self.settings,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await producer.start()
        try:
            await consumer.start()
            try:
                log.info(
                    "normalize: %s -> %s (group %s)",
                    self.source_topic,
                    self.settings.access_topic,
                    self.group_id,
                )
                await self._loop(consumer, producer)
            finally:
                await consumer.stop()
        except KafkaError as exc:
            log.error("normalize: Kafka failed, stopping without committing: %s", exc)
            return 1
        finally:
            await producer.stop()
            log.info("normalize: %s", self.tally.summary())
        return 0

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        reported = time.monotonic()
        while not self._stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH_RECORDS)
            if batch:
                offsets = await self.process(producer, batch)
                try:
                    await consumer.commit(offsets)
                except CommitFailedError as exc:
                    # A rebalance took the partitions away: their new owner reprocesses
                    # the batch (at least once).
                    log.warning("normalize: commit failed, batch will be redelivered: %s", exc)
            if time.monotonic() - reported >= REPORT_EVERY_S:
                reported = time.monotonic()
                log.info("normalize: %s", self.tally.summary())

    async def process(
        self, producer: AIOKafkaProducer, batch: dict[TopicPartition, list[Any]]
    ) -> dict[TopicPartition, int]:
        """Produce everything for ``batch`` and wait for every ack; the offsets to commit."""
        pending: list[asyncio.Future[Any]] = []
        offsets: dict[TopicPartition, int] = {}
        now_ms = int(time.time() * 1000)
        for tp, records in batch.items():
            for record in records:
                self.tally.read += 1
                result = self._normalize(record.value, record.key)
                if isinstance(result, Emit):
                    self.tally.emitted += 1
                    stamp = result.timestamp_ms
                    pending.append(
                        await producer.send(
                            self.settings.access_topic,
                            value=result.value,
                            key=result.key,
                            timestamp_ms=stamp
                            if stamp <= now_ms + MAX_FUTURE_TIMESTAMP_MS
                            else None,
                        )
                    )
                elif isinstance(result, Reject):
                    self.tally.dead_lettered[result.error.code] += 1
                    value = self._dead_letter(record, result.error)
                    pending.append(
                        await producer.send(self.settings.dlq_topic, value=value, key=record.key)
                    )
                else:
                    self.tally.skipped[result.reason] += 1
            offsets[tp] = records[-1].offset + 1
        if pending:
            await asyncio.gather(*pending)
        return offsets

    def _normalize(self, value: bytes | None, key: bytes | None) -> Result:
        try:
            return normalize(self.mapping, value, key)
        except Exception as exc:  # deliberate: one record's bug must not stop the agent
            log.exception("normalize: unexpected failure on one record")
            return Reject(NormalizeError("normalize_failed", f"{type(exc).__name__}: {exc}"))

    def _dead_letter(self, record: Any, error: PoisonError) -> bytes:
        args = (record.topic, record.partition, record.offset, error, time.time())
        value = encode(dead_letter(record.value, record.key, *args))
        if len(value) <= MAX_DEAD_LETTER_BYTES:
            return value
        size = len(record.value) if record.value is not None else 0
        note = NormalizeError(
            error.code,
            f"{error.message} (the original value, {size} bytes, is not kept: its dead "
            "letter would exceed the topic's message size)",
        )
        return encode(dead_letter(b"", record.key, *args[:3], note, args[4]))
