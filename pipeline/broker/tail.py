"""Reading whole topics into memory and following them: the global tables of a worker.

A :class:`Tail` reads every partition of its topics with a group-less
consumer, from the beginning up to the end offsets it saw when it started,
then sets ``ready``, and keeps applying records as they arrive. The
reference tables and the peer statistics are read this way by every worker.

``apply`` must not raise for a bad record (it dead-letters it); any exception
escaping it is a defect, logged and counted, and the record is skipped, so a
single record never stops the reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from pipeline.broker import clients
from pipeline.broker.topics import partition_counts
from pipeline.settings import Settings

log = logging.getLogger(__name__)

Apply = Callable[[str, int, int, bytes | None, bytes | None], Awaitable[None]]


class Tail:
    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        apply: Apply,
        name: str,
        ready: asyncio.Event | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.apply = apply
        self.name = name
        self.ready = ready if ready is not None else asyncio.Event()
        self.on_error = on_error
        self.bootstrap_seconds: float | None = None
        self.records = 0
        self.polled_at = time.monotonic()  # when its loop last asked for records

    async def _partitions(self) -> list[TopicPartition]:
        counts: dict[str, int] = {}
        for _ in range(60):
            counts = await partition_counts(self.settings, self.topics)
            if all(counts.values()):
                break
            await asyncio.sleep(1.0)
        missing = [t for t, n in counts.items() if not n]
        if missing:
            raise KafkaError(f"{self.name}: topics do not exist: {', '.join(missing)}")
        return [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]

    async def run(self) -> None:
        started = time.monotonic()
        consumer = clients.consumer(
            self.settings,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tps = await self._partitions()
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp, off in end.items() if off > 0}
            log.info("%s: loading %d records", self.name, sum(end.values()))
            if not pending:
                self._mark_ready(started)
            while True:
                self.polled_at = time.monotonic()
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for tp, records in batches.items():
                    for rec in records:
                        await self._apply_one(tp, rec)
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

    async def _apply_one(self, tp: TopicPartition, rec: Any) -> None:
        self.records += 1
        try:
            await self.apply(tp.topic, tp.partition, rec.offset, rec.key, rec.value)
        except Exception:  # a defect: never let one record stop the reader
            log.exception(
                "%s: applying %s[%d]@%d failed", self.name, tp.topic, tp.partition, rec.offset
            )
            if self.on_error is not None:
                self.on_error()

    def _mark_ready(self, started: float) -> None:
        self.bootstrap_seconds = time.monotonic() - started
        self.ready.set()
        log.info("%s: loaded in %.1f s", self.name, self.bootstrap_seconds)
