"""Loads the reference topics into :class:`ReferenceState` and keeps tailing them.

Where the state lives and why: every worker reads *all* partitions of the
three reference topics with its own group-less consumer (a global table).
Customer profiles and assignments are not keyed by ``staff_id`` as a whole,
so they cannot be co-partitioned with the access stream without a
repartition hop per access; staff records are small. The lookup an access
needs is then a dict access in the worker's memory.

Recovery: the compacted reference topics are the changelog. A starting or
restarting worker reads them from the beginning up to the end offsets it saw
when it started, and only then declares itself ready (``ready``); the access
agent waits for that before scoring anything. Later records apply as they
arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.broker.topics import partition_counts
from pipeline.contract.decode import (
    DecodeError,
    decode_assignment,
    decode_customer_profile,
    decode_staff_record,
)
from pipeline.observability.metrics import Metrics
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DeadLetterFn = Callable[[bytes | None, bytes | None, str, int, int, DecodeError], Awaitable[None]]


def apply_reference_record(
    state: ReferenceState, kind: str, key: bytes | None, value: bytes | None
) -> None:
    """Apply one raw record of a reference topic. Raises DecodeError when unusable.

    ``kind`` is one of ``staff``, ``assignment``, ``profile``.
    """
    if value is None:
        if key is None:
            raise DecodeError("tombstone", "tombstone without a key names nothing")
        k = key.decode("utf-8", errors="replace")
        if kind == "staff":
            state.delete_staff(k)
        elif kind == "assignment":
            state.delete_assignment_key(k)
        else:
            state.delete_profile(k)
        return
    if kind == "staff":
        state.apply_staff(decode_staff_record(value))
    elif kind == "assignment":
        state.apply_assignment(decode_assignment(value))
    else:
        state.apply_profile(decode_customer_profile(value))


class ReferenceReader:
    def __init__(
        self,
        settings: Settings,
        state: ReferenceState,
        metrics: Metrics,
        dead_letter: DeadLetterFn,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.ready = ready if ready is not None else asyncio.Event()
        self.kinds = {
            settings.staff_topic: "staff",
            settings.assignments_topic: "assignment",
            settings.profiles_topic: "profile",
        }
        self.bootstrap_seconds: float | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _partitions(self) -> list[TopicPartition]:
        counts: dict[str, int] = {}
        for _ in range(60):
            counts = await partition_counts(self.settings.kafka_bootstrap, list(self.kinds))
            if all(counts.values()):
                break
            await asyncio.sleep(1.0)
        missing = [t for t, n in counts.items() if not n]
        if missing:
            raise KafkaError(f"reference topics do not exist: {', '.join(missing)}")
        return [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]

    async def run(self) -> None:
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self._consumer = consumer
        await consumer.start()
        try:
            tps = await self._partitions()
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp, off in end.items() if off > 0}
            log.info("loading reference data: %d records", sum(end.values()))
            if not pending:
                self._mark_ready(started)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for tp, records in batches.items():
                    kind = self.kinds[tp.topic]
                    for rec in records:
                        await self._apply(kind, tp, rec.offset, rec.key, rec.value)
                    if tp in pending and records and records[-1].offset + 1 >= end[tp]:
                        pending.discard(tp)
                if pending and not batches:
                    for tp in list(pending):
                        if await consumer.position(tp) >= end[tp]:
                            pending.discard(tp)
                if not pending and not self.ready.is_set():
                    self._mark_ready(started)
                await asyncio.sleep(0)
        finally:
            await consumer.stop()

    def _mark_ready(self, started: float) -> None:
        self.bootstrap_seconds = time.monotonic() - started
        self.ready.set()
        self.metrics.set("pipeline_reference_ready", 1.0)
        log.info("reference data loaded in %.1f s: %s", self.bootstrap_seconds, self.state.counts())

    async def _apply(
        self, kind: str, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        try:
            apply_reference_record(self.state, kind, key, value)
        except DecodeError as err:
            self.metrics.inc("pipeline_events_dead_lettered_total", code=err.code, topic=tp.topic)
            await self.dead_letter(value, key, tp.topic, tp.partition, offset, err)
            return
        self.metrics.inc("pipeline_reference_records_total", kind=kind)
