"""The access agent's batch function: offer to the core, drain, publish, write state, ack.

One :class:`AccessProcessor` per worker, shared by the access agent, the
feedback-learning agent and the peer-statistics reader (which wakes it when
other partitions' days arrive), under one lock: the core is not re-entrant.

Order of effects (never change it without reading ``pipeline.core.engine``):
each cycle publishes its outbox and awaits every ack; a *flush* then writes
the dirty states to the table, awaits the broker's ack of each changelog
record, and only then acks the records handled since the previous flush.
Flushes are coalesced: one every ``FLUSH_EVERY_S``, or once ``FLUSH_AT``
handled records wait for one, and always after
:meth:`AccessProcessor.apply` (a verdict has no record to replay) and before
a revoke. An employee touched by many small live batches is then encoded and
written once per flush instead of once per batch. A crash between a cycle and
its flush replays the unacknowledged records on the older state: their alert
revisions come again, the same ones (duplicates, never loss). A cycle
interrupted between the core's drain and the broker's acks of its outbox (the
worker stopping cancels the agent) leaves the core ahead of what was
published: from then on this process writes no state and acks nothing (the
revoke at shutdown included), so the next owner replays those records on the
last state written (CI: a SIGTERM mid-publish, then a flush at the revoke,
restored an incident at revision 12 whose revisions 1-12 were never sent).

Records held back by the day barrier stay unacknowledged, so their offsets
are not committed; the consumer pauses a partition that holds more than
``PAUSE_AT`` of them and resumes it once they are processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from pipeline.core.engine import Core, Inbound
from pipeline.observability.metrics import WorkerMetrics
from pipeline.worker.publish import OutboxPublisher

log = logging.getLogger(__name__)

PAUSE_AT: Final = 20_000
FLUSH_EVERY_S: Final = 2.0  # state written (and records acked) at most this long after a cycle
FLUSH_AT: Final = 5_000  # ... or as soon as this many handled records wait for it
# A transactional producer's commit marker takes an offset that no consumer sees: a
# gap of one is not a skipped record.
CONTROL_GAP: Final = 1
IDLE_S: Final = 1.0  # a partition may close its days once nothing came for this long
REWIND_WAIT_S: Final = 1.0  # a rewind not answered by then is asked again...
REWIND_ATTEMPTS: Final = 10  # ... this many times, then the missing records are given up


class StateTable(Protocol):
    """Where flushed states go (the worker's Faust table; a :class:`MemoryTable` in tests)."""

    def get(self, key: str, /) -> bytes | None: ...

    async def write(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store ``items``; when it returns they are durable (in the worker: the broker
        acknowledged each changelog record)."""


class MemoryTable(dict[str, bytes]):
    """An in-process :class:`StateTable` (tests, offline runs)."""

    async def write(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.update(items)


class Consumer(Protocol):
    def highwater(self, partition: int) -> int | None: ...

    def committed(self, partition: int) -> int: ...

    async def rewind(self, partition: int, offset: int) -> None: ...

    def pause(self, partition: int) -> None: ...

    def resume(self, partition: int) -> None: ...


class Intake:
    """What the access agent keeps of the records it took, whoever scores them: offsets
    in sequence, rewinds, held events and their in-order acks, pauses, and the clocks of
    :meth:`caught_up` and :meth:`starved`. :class:`AccessProcessor` scores in this
    process; :class:`pipeline.worker.scorer_link.RemoteAccessProcessor` in a scoring
    process."""

    def __init__(self, consumer: Consumer, metrics: WorkerMetrics, topic: str) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.topic = topic
        self.lock = asyncio.Lock()
        self._held: dict[tuple[int, int], Any] = {}
        self._ack: Callable[[Any], Awaitable[Any]] | None = None
        self._last_offered: dict[int, int] = {}
        self._paused: set[int] = set()
        self._waiting_since: dict[int, float] = {}  # p -> since when records wait for peers
        self._done: list[tuple[int, int]] = []  # handled, acked at the next flush
        self._rewinds: dict[int, tuple[int, int, float]] = {}  # p -> (offset, attempts, at)
        self._offered_at: dict[int, float] = {}  # p -> when a record of it was last offered
        self._assigned_at: dict[int, float] = {}  # p -> since when it can be read here
        self._left_out: dict[int, int] = {}  # p -> first offset taken while not assigned
        self._flushed_at = time.monotonic()
        self._interrupted = False  # a cycle stopped between drain and publish: for good
        self.last_progress = time.monotonic()
        self._exported = {"duplicates": 0, "peer_days": 0}
        self._resets_exported: dict[tuple[str, str], int] = {}

    def caught_up(self, partition: int) -> bool:
        """Nothing more to fetch for ``partition``, and nothing came for ``IDLE_S`` (it may
        close its days when idle). The high watermark alone is not enough: a partition
        read as fast as it is written looks caught up between two fetches, and closing
        its days then, while other partitions are far ahead in event time, closed days
        it had not finished (CI: two workers, one a day behind the other)."""
        if time.monotonic() - self._offered_at.get(partition, float("-inf")) < IDLE_S:
            return False
        high = self.consumer.highwater(partition)
        if high is None:
            return False
        return self.seen(partition) + 1 >= high

    def _assigned(self, partitions: set[int]) -> None:
        now = time.monotonic()
        self._assigned_at = {p: self._assigned_at.get(p, now) for p in partitions}
        # Records left out of a partition that turns out to be this worker's again (a
        # rebalance that revoked it and gave it back: records came between the revoke
        # and this assign) are read again: nothing later in the partition may come to
        # show the gap (CI: the last records of a bank never scored after a 2 -> 1).
        for p, off in self._left_out.items():
            if p in partitions and p not in self._rewinds:
                start = min(off, self.consumer.committed(p))
                log.info(
                    "partition %d: records from %d were left out; reading them again", p, start
                )
                self._rewinds[p] = (start, 0, float("-inf"))
        self._left_out.clear()

    def unreadable(self) -> None:
        """Nothing can be read now (the tables are recovering): :meth:`starved`'s clocks
        start again at the next :meth:`assign`."""
        self._assigned_at.clear()

    def starved(self, after_s: float) -> tuple[int, ...]:
        """Assigned partitions that have records to read and gave none for ``after_s``
        seconds (nor since they were assigned), without being paused: the consumer stopped
        fetching them."""
        now = time.monotonic()
        out = []
        for p, since in sorted(self._assigned_at.items()):
            high = self.consumer.highwater(p)
            if high is None or p in self._paused or high <= self.seen(p) + 1:
                continue
            if now - max(since, self._offered_at.get(p, since)) > after_s:
                out.append(p)
        return tuple(out)

    def _take(self, events: list[Any], assigned: set[int]) -> list[Inbound]:
        """The records of one batch of Faust events to score, held until acked."""
        inbound = []
        now = time.monotonic()
        elsewhere = 0
        for ev in events:
            m = ev.message
            p, off = m.partition, m.offset
            if p not in assigned:
                # Taken from the stream before a rebalance handed the partition over:
                # its next owner reads it (not acked here, nor applied to a state
                # this worker would then write over the owner's; read again here if the
                # partition is given back, :meth:`_assigned`).
                elsewhere += 1
                if off < self._left_out.get(p, off + 1):
                    self._left_out[p] = off
                continue
            if not self._in_sequence(p, off):
                continue  # read again after a rewind
            self._held[(p, off)] = ev
            if off > self._last_offered.get(p, -1):
                self._last_offered[p] = off
            self._offered_at[p] = now
            ts = getattr(m, "timestamp", None)
            inbound.append(Inbound(p, off, m.key, m.value, int(ts * 1000) if ts else -1))
        if elsewhere:
            log.info("%d records of partitions no longer assigned here left out", elsewhere)
        self.metrics.events_in.labels(topic=self.topic).inc(len(inbound))
        return inbound

    def _in_sequence(self, p: int, off: int) -> bool:
        """Whether record ``off`` of partition ``p`` is the next one (or an earlier one,
        a harmless redelivery). Records after a gap are not taken: the partition is read
        again from the first missing offset (Faust, restarted under load, can hand the
        agent a partition's records from beyond its committed offset, and would then
        commit over the ones it skipped; seen in the kill -9 chaos test). The seeks are
        made by :meth:`_ask_rewinds`."""
        rewind = self._rewinds.get(p)
        if rewind is not None:
            start, attempts, at = rewind
            if off <= start:
                if off == start:
                    del self._rewinds[p]
                    log.info("partition %d: read again from offset %d", p, start)
                return True
            if attempts < REWIND_ATTEMPTS or time.monotonic() - at < REWIND_WAIT_S:
                return False
            del self._rewinds[p]
            self.metrics.offset_gaps.inc(off - start)
            log.error(
                "partition %d: offsets %d-%d could not be read again after %d attempts "
                "(deleted by retention, or an aborted transaction?); going on from %d",
                p,
                start,
                off - 1,
                attempts,
                off,
            )
            self._last_offered[p] = off - 1
            return True
        last = self._last_offered.get(p)
        expected = last + 1 if last is not None else self.consumer.committed(p)
        if expected <= 0 or off <= expected + CONTROL_GAP:
            return True
        log.warning(
            "partition %d: record %d came before %d-%d; reading the partition again from %d",
            p,
            off,
            expected,
            off - 1,
            expected,
        )
        self._rewinds[p] = (expected, 0, float("-inf"))
        return False

    async def _ask_rewinds(self) -> None:
        """Seek each rewinding partition back to its first missing offset: at once, then
        again every ``REWIND_WAIT_S`` while nothing comes back (Faust drops the records
        read again when a fetch in flight moved its read offset past them)."""
        now = time.monotonic()
        for p, (start, attempts, at) in list(self._rewinds.items()):
            if now - at >= REWIND_WAIT_S and attempts < REWIND_ATTEMPTS:
                self._rewinds[p] = (start, attempts + 1, now)
                self.metrics.rewinds.inc()
                await self.consumer.rewind(p, start)

    def _export_stats(
        self,
        duplicates: int,
        peer_days: int,
        resets: Mapping[tuple[str, str], int],
        newest_event_at: float,
    ) -> None:
        """The core counts in plain ints (it has no I/O); export what changed."""
        seen, m = self._exported, self.metrics
        if duplicates > seen["duplicates"]:
            m.events_duplicate.inc(duplicates - seen["duplicates"])
            seen["duplicates"] = duplicates
        if peer_days > seen["peer_days"]:
            m.peer_days_published.inc(peer_days - seen["peer_days"])
            seen["peer_days"] = peer_days
        for (kind, reason), n in resets.items():
            done = self._resets_exported.get((kind, reason), 0)
            if n > done:
                m.state_resets.labels(kind=kind, reason=reason).inc(n - done)
                self._resets_exported[(kind, reason)] = n
        if newest_event_at:
            m.processing_lag.set(max(0.0, time.time() - newest_event_at))

    async def _publish(self, sending: Awaitable[None], done: Sequence[tuple[int, int]]) -> None:
        """Await ``sending`` (a cycle's outbox to the broker), then count ``done`` as
        handled; a cancel meanwhile leaves the processor interrupted (module docstring)."""
        try:
            await sending
        except BaseException:
            self._interrupted = True  # for good: the core is ahead of what was sent
            raise
        self._done.extend(done)
        if done:
            self.last_progress = time.monotonic()

    def _observe_cycle(
        self, started: float, scored: float, published: float, written: float, done: float
    ) -> None:
        m = self.metrics
        m.batch_seconds.labels(agent="score-access").observe(done - started)
        phase = m.batch_phase_seconds
        phase.labels(phase="score").observe(scored - started)
        phase.labels(phase="publish").observe(published - scored)
        phase.labels(phase="state").observe(written - published)
        phase.labels(phase="ack").observe(done - written)

    def _flow_control(self, queues: Mapping[int, int]) -> None:
        """After a drain, what is left in a queue waits at the day barrier: pause a
        partition that holds too much, resume it once empty, and time each wait."""
        now = time.monotonic()
        for p, n in queues.items():
            since = self._waiting_since.get(p)
            if n and since is None:
                self._waiting_since[p] = now
            elif not n and since is not None:
                del self._waiting_since[p]
                self.metrics.peer_wait_seconds.observe(now - since)
            if n >= PAUSE_AT and p not in self._paused:
                self.consumer.pause(p)
                self._paused.add(p)
                log.info("partition %d paused: %d accesses wait for peer days", p, n)
            elif not n and p in self._paused:
                self.consumer.resume(p)
                self._paused.discard(p)
        self.metrics.partitions_waiting.set(sum(1 for n in queues.values() if n))

    def _due(self, pending: bool) -> bool:
        """Whether a flush is due (``pending``: a state may have changed since the last)."""
        if not self._done and not pending:
            return False
        return len(self._done) >= FLUSH_AT or time.monotonic() - self._flushed_at >= FLUSH_EVERY_S

    async def _ack_done(self, skip_acks: frozenset[int] = frozenset()) -> None:
        """Ack the records handled since the last flush, in order (except those of
        ``skip_acks`` partitions); call once their states are durable."""
        ready, self._done = self._in_order(self._done)
        ack = self._ack
        for tp in ready:
            ev = self._held.pop(tp, None)
            if ev is not None and ack is not None and tp[0] not in skip_acks:
                await ack(ev)
        self._flushed_at = time.monotonic()

    def _refuse_flush(self) -> bool:
        """True (and logged) after an interrupted cycle: its states hold revisions never
        sent, so nothing is written or acked from then on."""
        if self._interrupted:
            log.warning(
                "a cycle was interrupted before its alerts were acknowledged: no state is "
                "written and nothing acked; the partitions' records are read again"
            )
        return self._interrupted

    def _in_order(
        self, done: list[tuple[int, int]]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Split handled records into those that may be acked now, in offset order, and
        those that wait: a record is acked only once every record before it in its
        partition is handled. (A dead letter is handled on arrival, before the records
        the day barrier holds ahead of it; Faust would commit over a single unacked
        record at the head of a partition, faust-streaming/faust#606.)"""
        finished = set(done)
        floor: dict[int, int] = {}  # per partition: the lowest offset not handled yet
        for tp in self._held:
            if tp not in finished:
                p, off = tp
                if off < floor.get(p, off + 1):
                    floor[p] = off
        ready: list[tuple[int, int]] = []
        wait: list[tuple[int, int]] = []
        for tp in sorted(finished):
            p, off = tp
            (ready if p not in floor or off < floor[p] else wait).append(tp)
        return ready, wait

    def _forget(self, gone: frozenset[int]) -> None:
        """Drop what is kept of partitions handed over (their records are not acked)."""
        self._held = {tp: ev for tp, ev in self._held.items() if tp[0] not in gone}
        self._done = [tp for tp in self._done if tp[0] not in gone]
        for p in gone:
            self._last_offered.pop(p, None)
            self._rewinds.pop(p, None)
            self._offered_at.pop(p, None)
            self._assigned_at.pop(p, None)
            self._waiting_since.pop(p, None)
            self._paused.discard(p)

    def last_offered(self, partition: int) -> int:
        """The highest offset of ``partition`` handed to the core in this process (-1: none)."""
        return self._last_offered.get(partition, -1)

    def seen(self, partition: int) -> int:
        """The highest offset of ``partition`` this worker has offered in this process, or
        the last one committed before it resumed the partition (-1: none): a worker
        restarted after everything was committed receives nothing, yet is not behind.

        Not the restored state's ``arrived``: that offset can be ahead of the committed
        one (records handled, their state written, not yet committed), and those records
        come again. Counting them as seen made a restarted worker close its partition's
        day before re-reading them, from staff states that lacked them: a peer day
        published twice with different samples, and later risk scores changed (CI)."""
        return max(self.last_offered(partition), self.consumer.committed(partition) - 1)

    def holding(self) -> int:
        return len(self._held)


class AccessProcessor(Intake):
    """Scores in this process, with the worker's :class:`Core`."""

    def __init__(
        self,
        core: Core,
        publisher: OutboxPublisher,
        table: StateTable,
        consumer: Consumer,
        metrics: WorkerMetrics,
        topic: str,
    ) -> None:
        super().__init__(consumer, metrics, topic)
        self.core = core
        self.publisher = publisher
        self.table = table

    def caught_up(self, partition: int) -> bool:
        self.core.store.peek_partition(partition)  # load the restored state, if any
        return super().caught_up(partition)

    def assign(self, partitions: Iterable[int]) -> None:
        """The partitions this worker reads now."""
        parts = set(partitions)
        self.core.assign(parts)
        self._assigned(parts)

    def waiting(self) -> int:
        return self.core.waiting()

    async def handle(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """One batch from the access agent (Faust events, not acknowledged yet)."""
        self._ack = ack
        async with self.lock:
            inbound = self._take(events, self.core.assigned)
            if self._rewinds:
                await self._ask_rewinds()
            self.core.offer(inbound)
            await self._cycle()

    async def tick(self) -> None:
        """Run a cycle if something may have become possible (a peer day arrived, time);
        ask again for partitions whose rewind was not answered."""
        async with self.lock:
            await self._ask_rewinds()
            await self._cycle()

    async def apply(self, fn: Callable[[Core], Iterable[Any] | None]) -> bool:
        """Run ``fn(core)`` (e.g. feedback) under the lock, then a cycle to write its state;
        False when the state could not be written (after an interrupted cycle)."""
        async with self.lock:
            fn(self.core)
            await self._cycle(flush=True)
            return not self._interrupted

    async def _cycle(self, flush: bool = False) -> None:
        clock = time.perf_counter
        started = clock()
        out = self.core.drain(self.caught_up)
        scored = clock()
        await self._publish(self.publisher.publish(out), out.done)
        published = clock()
        writes = 0
        if flush or self._due(self.core.store.dirty()):
            writes = await self._flush()
        written = clock()
        self._flow_control({p: len(q) for p, q in self.core.queues.items()})
        self._observe_cycle(started, scored, published, written, clock())
        self.metrics.batch_records.observe(len(out.done))
        self.metrics.state_writes.inc(writes)
        stats = self.core.stats
        self._export_stats(
            stats.duplicates, stats.peer_days, self.core.store.resets, stats.newest_event_at
        )

    async def _flush(self, skip_acks: frozenset[int] = frozenset()) -> int:
        """Write every dirty state to the table, then ack the records handled since the
        last flush (except those of ``skip_acks`` partitions); return the writes.
        Nothing, after an interrupted cycle: its states hold revisions never sent."""
        if self._refuse_flush():
            return 0
        writes = self.core.store.pending_writes()
        if writes:
            await self.table.write(writes)
        await self._ack_done(skip_acks)
        return len(writes)

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Hand partitions over (call under :attr:`lock`): their state is written first, so
        the next owner finds the records they hold already applied; their records are not
        acked (the next owner reads them again and skips them as duplicates)."""
        gone = frozenset(partitions)
        self.metrics.state_writes.inc(await self._flush(skip_acks=gone))
        self.core.revoke(gone)
        self._forget(gone)
