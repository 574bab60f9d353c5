"""The access agent's batch function: offer to the core, drain, publish, write state, ack.

One :class:`AccessProcessor` per worker, shared by the access agent, the
feedback-learning agent and the peer-statistics reader (which wakes it when
other partitions' days arrive), under one lock: the core is not re-entrant.

Order of effects in :meth:`cycle` (never change it without reading
``pipeline.core.engine``): publish the outbox and await every ack, then write
the dirty states to the table, then ack the records the core has handled.
Records held back by the day barrier stay unacknowledged, so their offsets
are not committed; the consumer pauses a partition that holds more than
``PAUSE_AT`` of them and resumes it once they are processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Protocol

from pipeline.core.engine import Core, Inbound
from pipeline.observability.metrics import WorkerMetrics
from pipeline.worker.publish import OutboxPublisher

log = logging.getLogger(__name__)

PAUSE_AT: Final = 20_000


class StateTable(Protocol):
    def __setitem__(self, key: str, value: bytes, /) -> None: ...


class Consumer(Protocol):
    def highwater(self, partition: int) -> int | None: ...

    def pause(self, partition: int) -> None: ...

    def resume(self, partition: int) -> None: ...


class AccessProcessor:
    def __init__(
        self,
        core: Core,
        publisher: OutboxPublisher,
        table: StateTable,
        consumer: Consumer,
        metrics: WorkerMetrics,
        topic: str,
    ) -> None:
        self.core = core
        self.publisher = publisher
        self.table = table
        self.consumer = consumer
        self.metrics = metrics
        self.topic = topic
        self.lock = asyncio.Lock()
        self._held: dict[tuple[int, int], Any] = {}
        self._ack: Callable[[Any], Awaitable[Any]] | None = None
        self._last_offered: dict[int, int] = {}
        self._paused: set[int] = set()
        self.last_progress = time.monotonic()
        self._exported = {"duplicates": 0, "peer_days": 0}
        self._resets_exported: dict[tuple[str, str], int] = {}

    def caught_up(self, partition: int) -> bool:
        """Nothing more to fetch now for ``partition`` (it may close its days when idle)."""
        high = self.consumer.highwater(partition)
        if high is None:
            return False
        self.core.store.partition(partition)  # load the restored state, if any
        return self.seen(partition) + 1 >= high

    async def handle(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """One batch from the access agent (Faust events, not acknowledged yet)."""
        self._ack = ack
        async with self.lock:
            inbound = []
            for ev in events:
                m = ev.message
                p, off = m.partition, m.offset
                self._held[(p, off)] = ev
                if off > self._last_offered.get(p, -1):
                    self._last_offered[p] = off
                ts = getattr(m, "timestamp", None)
                inbound.append(Inbound(p, off, m.key, m.value, int(ts * 1000) if ts else -1))
            self.metrics.events_in.labels(topic=self.topic).inc(len(inbound))
            self.core.offer(inbound)
            await self._cycle()

    async def tick(self) -> None:
        """Run a cycle if something may have become possible (a peer day arrived, time)."""
        async with self.lock:
            await self._cycle()

    async def apply(self, fn: Callable[[Core], Iterable[Any] | None]) -> None:
        """Run ``fn(core)`` (e.g. feedback) under the lock, then a cycle to write its state."""
        async with self.lock:
            fn(self.core)
            await self._cycle()

    async def _cycle(self) -> None:
        clock = time.perf_counter
        started = clock()
        out = self.core.drain(self.caught_up)
        scored = clock()
        await self.publisher.publish(out)
        published = clock()
        writes = self.core.store.pending_writes()
        for key, value in writes:
            self.table[key] = value
        written = clock()
        ack = self._ack
        for tp in out.done:
            ev = self._held.pop(tp, None)
            if ev is not None and ack is not None:
                await ack(ev)
        if out.done:
            self.last_progress = time.monotonic()
        self._flow_control()
        done = clock()
        m = self.metrics
        m.batch_seconds.labels(agent="score-access").observe(done - started)
        phase = m.batch_phase_seconds
        phase.labels(phase="score").observe(scored - started)
        phase.labels(phase="publish").observe(published - scored)
        phase.labels(phase="state").observe(written - published)
        phase.labels(phase="ack").observe(done - written)
        m.batch_records.observe(len(out.done))
        m.state_writes.inc(len(writes))
        self._export_core_stats()
        stats = self.core.stats
        if stats.newest_event_at:
            m.processing_lag.set(max(0.0, time.time() - stats.newest_event_at))
        m.partitions_waiting.set(len(self._waiting_partitions()))

    def _export_core_stats(self) -> None:
        """The core counts in plain ints (it has no I/O); export what changed."""
        stats, seen, m = self.core.stats, self._exported, self.metrics
        if stats.duplicates > seen["duplicates"]:
            m.events_duplicate.inc(stats.duplicates - seen["duplicates"])
            seen["duplicates"] = stats.duplicates
        if stats.peer_days > seen["peer_days"]:
            m.peer_days_published.inc(stats.peer_days - seen["peer_days"])
            seen["peer_days"] = stats.peer_days
        for (kind, reason), n in self.core.store.resets.items():
            done = self._resets_exported.get((kind, reason), 0)
            if n > done:
                m.state_resets.labels(kind=kind, reason=reason).inc(n - done)
                self._resets_exported[(kind, reason)] = n

    def _waiting_partitions(self) -> list[int]:
        return [p for p, q in self.core.queues.items() if q]

    def _flow_control(self) -> None:
        for p, q in self.core.queues.items():
            if len(q) >= PAUSE_AT and p not in self._paused:
                self.consumer.pause(p)
                self._paused.add(p)
                log.info("partition %d paused: %d accesses wait for peer days", p, len(q))
            elif not q and p in self._paused:
                self.consumer.resume(p)
                self._paused.discard(p)

    def revoke(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.core.revoke(gone)
        self._held = {tp: ev for tp, ev in self._held.items() if tp[0] not in gone}
        for p in gone:
            self._last_offered.pop(p, None)
            self._paused.discard(p)

    def last_offered(self, partition: int) -> int:
        """The highest offset of ``partition`` handed to the core in this process (-1: none)."""
        return self._last_offered.get(partition, -1)

    def seen(self, partition: int) -> int:
        """The highest offset of ``partition`` this worker has, in this process or in the
        state it restored (-1: none): a worker restarted after everything was committed
        receives nothing, yet is not behind."""
        ps = self.core.store.loaded_partition(partition)
        return max(self.last_offered(partition), -1 if ps is None else ps.arrived)

    def holding(self) -> int:
        return len(self._held)
