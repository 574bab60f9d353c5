"""Reading whole topics into memory and following them: the global tables of a worker.

A :class:`Tail` reads every partition of its topics with a group-less
consumer, from the beginning up to the end offsets it saw when it started,
then sets ``ready``, and keeps applying records as they arrive. The
reference tables and the peer statistics are read this way by every worker.

``apply`` must not raise for a bad record (it dead-letters it); any exception
escaping it is a defect, logged and counted, and the record is skipped, so a
single record never stops the reader.

A tail can also go on from where a snapshot of what it applied left off
(``resume``, ``discard``, ``checkpoint``; :mod:`pipeline.reference.snapshot`):
it reads each partition again from the record before the snapshot's offset,
and goes on only if that record's checksum is the snapshot's; otherwise it
calls ``discard`` and reads every partition from the beginning.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from pipeline.broker import clients
from pipeline.broker.topics import partition_counts
from pipeline.settings import Settings

log = logging.getLogger(__name__)

Apply = Callable[[str, int, int, bytes | None, bytes | None], Awaitable[None]]
# (topic, partition) -> (next offset, checksum of the record at next offset - 1)
Positions = dict[tuple[str, int], tuple[int, int]]
CHECK_TIMEOUT_S = 10.0  # a record to check that does not come by then: read everything


def record_checksum(key: bytes | None, value: bytes | None) -> int:
    """CRC-32 of a record's key and value (a missing key or value differs from an empty one)."""
    crc = zlib.crc32(b"\x00" if key is None else b"\x01" + key)
    return zlib.crc32(b"\x00" if value is None else b"\x01" + value, crc)


class Tail:
    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        apply: Apply,
        name: str,
        ready: asyncio.Event | None = None,
        on_error: Callable[[], None] | None = None,
        resume: Callable[[], Positions | None] | None = None,
        discard: Callable[[], None] | None = None,
        checkpoint: Callable[[Positions], None] | None = None,
        checkpoint_every: int = 0,
    ) -> None:
        """``resume``: load a snapshot, return its positions (None: there is none);
        ``discard``: forget what it loaded; ``checkpoint``: write one, with these
        positions, once ready (if anything was applied), after ``checkpoint_every``
        more records, and when the tail stops."""
        self.settings = settings
        self.topics = list(topics)
        self.apply = apply
        self.name = name
        self.ready = ready if ready is not None else asyncio.Event()
        self.on_error = on_error
        self.resume = resume
        self.discard = discard
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.bootstrap_seconds: float | None = None
        self.records = 0
        self.resumed_from: int | None = None  # the sum of the snapshot's offsets, if used
        self.polled_at = time.monotonic()  # when its loop last asked for records
        self._base: Positions = {}  # the snapshot's positions, while nothing came after
        self._last: dict[tuple[str, int], tuple[int, bytes | None, bytes | None]] = {}
        self._since_checkpoint = 0
        self._writer: threading.Thread | None = None

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
            end = await consumer.end_offsets(tps)
            checking = await self._start(consumer, tps, end)
            checking_since = time.monotonic()
            pending = {tp for tp, off in end.items() if off > self._next(tp)} | set(checking)
            log.info("%s: loading %d records", self.name, sum(end.values()))
            if not pending:
                self._mark_ready(started)
            while True:
                self.polled_at = time.monotonic()
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for tp, records in batches.items():
                    if not records:
                        continue
                    last = records[-1].offset
                    if tp in checking:
                        off, crc = checking.pop(tp)
                        first = records[0]
                        if first.offset != off or record_checksum(first.key, first.value) != crc:
                            why = f"{tp.topic}[{tp.partition}]@{off} is not the snapshot's"
                            checking = {}
                            pending = await self._from_beginning(consumer, tps, end, why)
                            break
                        records = records[1:]
                    for rec in records:
                        await self._apply_one(tp, rec)
                    if tp in pending and tp not in checking and last + 1 >= end[tp]:
                        pending.discard(tp)
                if checking and time.monotonic() - checking_since > CHECK_TIMEOUT_S:
                    why = f"{len(checking)} records to check did not come"
                    checking = {}
                    pending = await self._from_beginning(consumer, tps, end, why)
                if pending and not batches:
                    for tp in list(pending - set(checking)):
                        if await consumer.position(tp) >= end[tp]:
                            pending.discard(tp)
                if not pending and not self.ready.is_set():
                    self._mark_ready(started)
                    if self._since_checkpoint:
                        await self._checkpoint_in_thread()
                elif self.ready.is_set() and 0 < self.checkpoint_every <= self._since_checkpoint:
                    await self._checkpoint_in_thread()
                await asyncio.sleep(0)
        finally:
            if self._writer is not None:
                self._writer.join()  # a snapshot still being written
            if self.ready.is_set() and self._since_checkpoint:
                self._checkpoint()  # stopping: nothing else to serve meanwhile
            await consumer.stop()

    async def _start(
        self, consumer: Any, tps: list[TopicPartition], end: dict[TopicPartition, int]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """Seek every partition to where it starts; return the records to check first
        (partition -> offset and checksum of the record before the snapshot's offset)."""
        # In a thread: at 10M profiles loading takes ~20 s, which the event loop (the
        # group's heartbeats, the health page) must not wait for. Nothing reads the
        # state before ``ready``.
        base = await asyncio.to_thread(self.resume) if self.resume is not None else None
        if base is None:
            await consumer.seek_to_beginning(*tps)
            return {}
        known = {(tp.topic, tp.partition): tp for tp in tps}
        gone = [k for k, (off, _) in base.items() if k not in known or off > end[known[k]]]
        if gone:
            t, p = gone[0]
            why = f"{t}[{p}] is behind the snapshot, or not read here"
            await self._from_beginning(consumer, tps, end, why)
            return {}
        self._base = dict(base)
        self.resumed_from = sum(off for off, _ in base.values())
        checking: dict[TopicPartition, tuple[int, int]] = {}
        for tp in tps:
            off, crc = base.get((tp.topic, tp.partition), (0, 0))
            if off > 0:
                consumer.seek(tp, off - 1)
                checking[tp] = (off - 1, crc)
            else:
                await consumer.seek_to_beginning(tp)
        log.info("%s: going on from a snapshot of %d records", self.name, self.resumed_from)
        return checking

    async def _from_beginning(
        self, consumer: Any, tps: list[TopicPartition], end: dict[TopicPartition, int], why: str
    ) -> set[TopicPartition]:
        """Forget the snapshot and what was applied over it; read everything again."""
        log.warning("%s: snapshot not used (%s); reading every record", self.name, why)
        if self.discard is not None:
            self.discard()
        self._base, self._last, self.resumed_from = {}, {}, None
        await consumer.seek_to_beginning(*tps)
        return {tp for tp, off in end.items() if off > 0}

    def _next(self, tp: TopicPartition) -> int:
        return self._base.get((tp.topic, tp.partition), (0, 0))[0]

    def positions(self) -> Positions:
        """Per partition: the offset to go on from and the checksum of the record before."""
        out = dict(self._base)
        for k, (off, key, value) in self._last.items():
            out[k] = (off, record_checksum(key, value))
        return out

    async def _checkpoint_in_thread(self) -> None:
        """Write a snapshot without holding the event loop (~17 s at 10M profiles): the
        accesses go on being scored meanwhile, and since this loop waits for it, no
        record is applied while the state is being copied. A tail stopped meanwhile
        waits for the thread before it writes its last snapshot (``run``)."""
        writer = self._writer = threading.Thread(
            target=self._checkpoint, name=f"{self.name} snapshot", daemon=True
        )
        writer.start()
        while writer.is_alive():
            await asyncio.sleep(0.05)
        self._writer = None

    def _checkpoint(self) -> None:
        self._since_checkpoint = 0
        if self.checkpoint is None:
            return
        try:
            self.checkpoint(self.positions())
        except Exception:  # a full disk must not stop the reader: the next one may do
            log.exception("%s: snapshot not written (the last one stays)", self.name)

    async def _apply_one(self, tp: TopicPartition, rec: Any) -> None:
        self.records += 1
        self._since_checkpoint += 1
        try:
            await self.apply(tp.topic, tp.partition, rec.offset, rec.key, rec.value)
            # Only once applied (a dead letter sent): a record whose apply was cancelled
            # is read again after a restart, never skipped.
            self._last[tp.topic, tp.partition] = (rec.offset + 1, rec.key, rec.value)
        except Exception:  # a defect: never let one record stop the reader
            log.exception(
                "%s: applying %s[%d]@%d failed", self.name, tp.topic, tp.partition, rec.offset
            )
            self._last[tp.topic, tp.partition] = (rec.offset + 1, rec.key, rec.value)
            if self.on_error is not None:
                self.on_error()

    def _mark_ready(self, started: float) -> None:
        self.bootstrap_seconds = time.monotonic() - started
        self.ready.set()
        log.info("%s: loaded in %.1f s", self.name, self.bootstrap_seconds)
