"""The pure core: raw access records in, effects out. No I/O.

The worker (``pipeline.worker``), the offline runner (``pipeline.core.offline``)
and the benchmarks drive this same :class:`Core`:

1. :meth:`Core.offer` takes raw records of the access topic, in each
   partition's order. Each is decoded and checked on arrival (contract, key =
   ``staff_id``, clock skew: more than ``max_event_skew_s`` ahead of the wall
   clock and of the partition's watermark, when it has one); a bad one
   becomes a dead letter, a good one joins its partition's queue.
2. :meth:`Core.drain` processes every queue as far as it can and returns an
   :class:`Outbox`: alert revisions (with their new evidence), dead letters,
   peer-statistics records, and the records fully handled.
3. The caller publishes the outbox, waits for the broker's acknowledgements,
   then writes :meth:`Store.pending_writes` to the state table, and only then
   acknowledges the handled records. A crash anywhere therefore replays records
   whose effects may already be out (duplicates, never loss), and the state
   says which records it already contains (``StaffState.applied``), so a replay
   changes nothing twice.

**The day barrier.** An access on bank day D is scored against the peer
statistics of the complete days up to D-1 (``pipeline.peers``). When a
partition's queue reaches its first access of day D it publishes its days
before D, and waits until every partition has published D-1; a partition with
nothing to do (its queue empty and its consumer caught up) publishes the days
that ended ``allowed_lateness_s`` before the newest access any partition has
seen. So what an access sees depends on the input, not on the timing:
workers may be 1 or 10, restarted or rebalanced (docs/detection.md).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from msgspec import Struct

from pipeline.alerts.ids import Pseudonymizer
from pipeline.alerts.incidents import Emitted, IncidentTracker, RiskConfig
from pipeline.contract.decode import DecodeError, dead_letter, decode_access_event_at
from pipeline.contract.records import AccessEvent, DeadLetter
from pipeline.core.calendar import calendar
from pipeline.core.recent import RecentIds
from pipeline.core.state import SKEW_REJECTED_CAP, PartitionState, StaffState
from pipeline.core.store import Store
from pipeline.detect.behaviour import (
    EXPORTS,
    PEAK,
    groups_of,
    model_due,
    model_evidence,
    observe,
    sample_hash,
    window_features,
)
from pipeline.detect.catalogue import POLICY_CODES, SOFT_CODES, spec
from pipeline.detect.model import GroupModels
from pipeline.detect.rules import evaluate_rules
from pipeline.detect.shift import local_minute, outside_shift
from pipeline.detect.signals import Signal
from pipeline.errors import PoisonError
from pipeline.peers.book import PeerBook, PeerView
from pipeline.peers.days import SAMPLES_PER_GROUP, GroupDay, PeerDay, PeerRecord, Sample, Watermark
from pipeline.reference.state import ReferenceState

log = logging.getLogger(__name__)

CLOSE_CHECK_S = 900.0  # open incidents are checked for closing at least this often (event time)
WATERMARK_EVERY_S = 900.0  # a partition publishes its watermark when it moved this much


class Inbound(NamedTuple):
    """One raw record of the access topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = -1  # the Kafka record timestamp, for the latency metric


@dataclass(frozen=True, slots=True)
class CoreConfig:
    partitions: int
    topic: str = "access-events"
    namespace: str = ""
    bank_timezone: str = "Asia/Shanghai"
    learn_until: float | None = None
    max_event_skew_s: float = 7 * 86400.0
    allowed_lateness_s: float = 3600.0
    risk: RiskConfig = field(default_factory=RiskConfig)


class Queued(Struct, gc=False):
    """An accepted access waiting in its partition's queue (one per access: a Struct,
    whose compiled constructor costs less than a dataclass's)."""

    rec: Inbound
    event: AccessEvent
    at: float
    day: int


@dataclass(slots=True)
class AlertOut:
    staff_id: str
    emitted: Emitted
    source_timestamp_ms: int  # of the access that triggered this revision


@dataclass
class Outbox:
    alerts: list[AlertOut] = field(default_factory=list)
    dead_letters: list[tuple[DeadLetter, bytes | None]] = field(default_factory=list)
    peer_records: list[PeerRecord] = field(default_factory=list)
    done: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.dead_letters or self.peer_records or self.done)


@dataclass
class CoreStats:
    events: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    peer_days: int = 0
    waits: int = 0  # times a partition's queue head waited for other partitions
    newest_event_at: float = 0.0


class Core:
    def __init__(
        self,
        reference: ReferenceState,
        config: CoreConfig,
        store: Store,
        book: PeerBook,
        pseudonymizer: Pseudonymizer,
        clock: Callable[[], float] = time.time,
        models: GroupModels | None = None,
    ) -> None:
        self.reference = reference
        self.config = config
        self.store = store
        self.book = book
        self.clock = clock
        self.models = models or GroupModels()
        self.tracker = IncidentTracker(config.risk, pseudonymizer, config.namespace)
        self.calendar = calendar(config.bank_timezone)
        self.queues: dict[int, deque[Queued]] = {}
        self.assigned: set[int] = set(range(config.partitions))
        self.stats = CoreStats()
        self._active: dict[tuple[int, int], set[str]] = {}
        self._recent = RecentIds()
        self._out = Outbox()

    # -- assignment -------------------------------------------------------------
    def assign(self, partitions: Iterable[int]) -> None:
        self.assigned = set(partitions)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions: their queued records go to the next owner."""
        gone = set(partitions)
        for p in gone:
            self.queues.pop(p, None)
        self.assigned -= gone
        self._active = {k: v for k, v in self._active.items() if k[0] not in gone}
        self.store.forget(gone)
        self._recent.clear()  # (it would hold the forgotten states until evicted)

    def waiting(self) -> int:
        """Queued records not yet processed (held back by the day barrier)."""
        return sum(len(q) for q in self.queues.values())

    # -- arrival -----------------------------------------------------------------
    def offer(self, records: Iterable[Inbound]) -> None:
        for rec in records:
            self._arrive(rec)

    def _reject(self, rec: Inbound, err: PoisonError) -> None:
        self.stats.dead_lettered[err.code] += 1
        dl = dead_letter(
            rec.value, rec.key, self.config.topic, rec.partition, rec.offset, err, self.clock()
        )
        self._out.dead_letters.append((dl, rec.key))
        self._out.done.append((rec.partition, rec.offset))

    def _arrive(self, rec: Inbound) -> None:
        self.stats.events += 1
        ps = self.store.partition(rec.partition)
        try:
            ev, at = decode_access_event_at(rec.value)
        except DecodeError as err:
            self._reject(rec, err)
            ps.arrived = max(ps.arrived, rec.offset)
            return
        if rec.key is None or rec.key != ev.staff_id.encode():
            self._reject(
                rec,
                PoisonError("key_mismatch", "the message key is not the access's staff_id"),
            )
            ps.arrived = max(ps.arrived, rec.offset)
            return
        if rec.offset <= ps.arrived:
            # Seen before a restart: decide as then (the watermark has moved since).
            if rec.offset in ps.skew_rejected:
                self._reject(rec, _skew(at, ps.watermark, self.config.max_event_skew_s))
                return
        else:
            ps.arrived = rec.offset
            skew = self.config.max_event_skew_s
            # Ahead of the wall clock, and of the partition's newest access when it has
            # one: a fresh partition's first record is judged by the clock alone.
            if at > self.clock() + skew and (not ps.watermark or at > ps.watermark + skew):
                ps.skew_rejected.append(rec.offset)
                del ps.skew_rejected[:-SKEW_REJECTED_CAP]
                self._reject(rec, _skew(at, ps.watermark, self.config.max_event_skew_s))
                return
            if at > ps.watermark:
                ps.watermark = at
        q = self.queues.get(rec.partition)
        if q is None:
            q = self.queues[rec.partition] = deque()
        q.append(Queued(rec, ev, at, self.calendar.day(at)))

    # -- processing ---------------------------------------------------------------
    def drain(self, caught_up: Callable[[int], bool] = lambda p: True) -> Outbox:
        """Process every queue as far as the day barrier allows; return the effects.

        ``caught_up(p)``: partition ``p``'s consumer has nothing more to fetch now.
        """
        progress = True
        while progress:
            progress = False
            for p, q in list(self.queues.items()):
                if not q:
                    continue
                ps = self.store.peek_partition(p)
                while q:
                    item = q[0]
                    # (the day barrier's test, inlined for the usual case: a day already
                    # started here, and the day before it complete everywhere)
                    complete = self.book.complete_through()
                    if (
                        complete is None or complete < item.day - 1 or item.day > ps.day
                    ) and not self._ready(p, item):
                        break
                    q.popleft()
                    self._process(p, item)
                    progress = True
            for p in sorted(self.assigned):
                if not self.queues.get(p) and caught_up(p) and self._close_idle(p):
                    progress = True
        out, self._out = self._out, Outbox()
        self.stats.alerts += len(out.alerts)
        return out

    def _ready(self, p: int, item: Queued) -> bool:
        ps = self.store.peek_partition(p)  # marked to be written only when it changes
        day = item.day
        if day > ps.day:
            self.store.partition(p)
            if ps.day >= 0:
                self._close_through(p, ps, day - 1)
            ps.day = day
        complete = self.book.complete_through()
        if complete is not None and complete >= day - 1:
            return True
        if ps.closed_through is None or ps.closed_through < day - 1:
            # first access of this partition: nothing before it needs publishing
            self._close_through(p, self.store.partition(p), day - 1)
            complete = self.book.complete_through()
            if complete is not None and complete >= day - 1:
                return True
        self.stats.waits += 1
        return False

    def _close_idle(self, p: int) -> bool:
        w = max(self.book.global_watermark() or 0.0, self._local_watermark())
        if not w:
            return False
        last = self.calendar.day(w - self.config.allowed_lateness_s) - 1
        ps = self.store.peek_partition(p)
        if ps.closed_through is not None and ps.closed_through >= last:
            return False
        self._close_through(p, self.store.partition(p), last)
        return True

    def _local_watermark(self) -> float:
        w = 0.0
        for p in self.assigned:
            ps = self.store.peek_partition(p)
            if ps.watermark > w:
                w = ps.watermark
        return w

    def _close_through(self, p: int, ps: PartitionState, last: int) -> None:
        """Publish partition ``p``'s bank days up to ``last`` to the peer statistics."""
        if ps.closed_through is not None and ps.closed_through >= last:
            return
        for day in sorted(d for d in ps.active if d <= last):
            staff = ps.active.pop(day)
            self._active.pop((p, day), None)
            if self.book.has_day(p, day):
                # Published before a crash or a handover, from the state as it was then; the
                # state restored may differ (the partition's written before its staff's,
                # or not at all): recomputing it would change the day for later accesses.
                continue
            rec = self._peer_day(p, day, staff)
            self._out.peer_records.append(rec)
            self.book.add(rec)
            self.stats.peer_days += 1
        ps.closed_through = last
        wm = Watermark(p, ps.watermark, last)
        ps.published_watermark = ps.watermark
        self._out.peer_records.append(wm)
        self.book.add(wm)

    def _peer_day(self, p: int, day: int, staff: list[str]) -> PeerDay:
        groups: dict[str, GroupDay] = {}
        samples: dict[str, list[Sample]] = {}
        for sid in sorted(staff):
            summary = self.store.peek_staff(sid, p).behaviour.day_summary(day)
            if summary is None:
                continue
            for g in summary.groups:
                gd = groups.get(g)
                if gd is None:
                    gd = groups[g] = GroupDay(0, {}, {})
                gd.staff_days += 1
                for code, v in summary.counts.items():
                    gd.sums[code] = gd.sums.get(code, 0.0) + v
                    gd.squares[code] = gd.squares.get(code, 0.0) + v * v
            if summary.groups and summary.samples:
                role = summary.groups[0]
                bucket = samples.setdefault(role, [])
                bucket.extend(Sample(sample_hash(sid, day, s.hour), s.x) for s in summary.samples)
        for bucket in samples.values():
            bucket.sort(key=lambda s: s.h)
            del bucket[SAMPLES_PER_GROUP:]
        return PeerDay(p, day, groups, samples)

    def _process(self, p: int, item: Queued) -> None:
        rec, ev = item.rec, item.event
        ps = self.store.partition(p)
        staff_id = ev.staff_id
        st = self.store.staff(staff_id, p)
        self._out.done.append((p, rec.offset))
        self.stats.processed += 1
        if item.at > self.stats.newest_event_at:
            self.stats.newest_event_at = item.at
        duplicate = rec.offset <= st.applied or self._recent.seen(staff_id, st, ev.event_id)
        if duplicate:
            self.stats.duplicates += 1
        else:
            try:
                self._score(p, item, st)
            except Exception as exc:  # a defect must not stop the partition
                log.exception("processing %s[%d]@%d failed", self.config.topic, p, rec.offset)
                self._out.done.pop()
                self._reject(rec, PoisonError("processing_error", f"{type(exc).__name__}: {exc}"))
            st.applied = rec.offset
            self._recent.remember(staff_id, st, ev.event_id)
        # partition-level effects, idempotent (also for a replayed record)
        key = (p, item.day)
        active = self._active.get(key)
        if active is None:
            active = self._active[key] = set(ps.active.get(item.day, ()))
        if staff_id not in active and item.day > (ps.closed_through or -(2**31)):
            active.add(staff_id)
            ps.active.setdefault(item.day, []).append(staff_id)
        if st.risk.incident is not None and staff_id not in ps.open_incidents:
            ps.open_incidents.append(staff_id)
        if item.at - ps.checked_at >= CLOSE_CHECK_S:
            ps.checked_at = item.at
            self._close_quiet_incidents(p, ps, item.at)
        if ps.watermark - ps.published_watermark >= WATERMARK_EVERY_S:
            ps.published_watermark = ps.watermark
            closed = ps.closed_through if ps.closed_through is not None else -(2**31)
            wm = Watermark(p, ps.watermark, closed)
            self._out.peer_records.append(wm)
            self.book.add(wm)

    def _close_quiet_incidents(self, p: int, ps: PartitionState, at: float) -> None:
        """Emit the closing revision of incidents whose risk decayed by event time ``at``."""
        still = []
        day = self.calendar.day(at)
        for sid in ps.open_incidents:
            st = self.store.staff(sid, p)
            if st.risk.incident is None:
                continue
            self.tracker.advance(st.risk, at, day)
            closing = self.tracker.close_if_ended(st.risk, sid, self.clock())
            if closing is None:
                still.append(sid)
            else:
                self._out.alerts.append(AlertOut(sid, closing, -1))
        ps.open_incidents = still

    def _score(self, p: int, item: Queued, st: StaffState) -> None:
        ev = item.event
        e = self.reference.enrich(ev, item.at)
        b = st.behaviour
        if item.day > b.day:  # (roll ignores an access of its current day or an earlier one)
            b.roll(item.day, groups_of(e), self._view(item.day))
        signals = evaluate_rules(e)
        off_shift = (
            ev.customer_id is not None
            and not e.assigned
            and outside_shift(local_minute(e), e.shift_start, e.shift_end)
        )
        flagged = st.risk.incident is not None
        weighted = observe(b, e, signals, off_shift, flagged)
        learning = self.config.learn_until is not None and item.at < self.config.learn_until
        if learning:
            weighted = [s for s in weighted if s.code in POLICY_CODES]
        info = None
        if (
            e.role is not None
            and not learning
            and self.book.complete_through() is not None
            and model_due(b, e)
        ):
            model = self.models.model(self.book.view(item.day - 1), e.role)
            if model is not None:
                result = model.score(window_features(b), b.feature_means or None)
                weight = 0.0
                if result.anomalous:
                    scale = b.feedback.get("behaviour_anomaly", 1.0)
                    weight = model_evidence(b, spec("behaviour_anomaly").weight * scale)
                if weight > 0.0:
                    parts = ", ".join(
                        f"{f.feature} {f.value:g} (peers {f.baseline:g}"
                        + (f", own {f.own_baseline:g})" if f.own_baseline is not None else ")")
                        for f in result.top_features
                    )
                    weighted.append(
                        Signal(
                            "behaviour_anomaly",
                            weight,
                            f"unusual hour for the {e.role} peer group (score "
                            f"{result.score:.3f} > {result.threshold:.3f}): {parts}",
                        )
                    )
                    info = model.info(result)
        slow = None
        if not learning:
            # The slow accumulator: the week's evidence, or today's strongest soft code
            # once it is stronger (day_level 1.0 opens an incident as slow_open does).
            slow = b.slow_level()
            day = self.tracker.config.slow_open * b.day_level()
            if day > slow:
                slow = day
        if not weighted and st.risk.incident is None:  # (most accesses)
            self.tracker.settle(st.risk, item.at, item.day, slow)
            return
        for em in self.tracker.observe(
            st.risk, ev.staff_id, e, weighted, item.day, self.clock(), info, slow
        ):
            self._out.alerts.append(AlertOut(ev.staff_id, em, item.rec.timestamp_ms))

    def _view(self, day: int) -> PeerView | None:
        """The peer view of the day before ``day`` (ready: complete through it, _ready)."""
        return self.book.view(day - 1) if self.book.complete_through() is not None else None

    # -- feedback -----------------------------------------------------------------
    def apply_feedback(
        self, staff_id: str, partition: int, alert_id: str, verdict: str, codes: list[str]
    ) -> bool:
        """An analyst's verdict on one of ``staff_id``'s alerts (once per alert)."""
        st = self.store.staff(staff_id, partition)
        inc = st.risk.incident
        if inc is not None and inc.alert_id == alert_id:
            inc.verdict = verdict  # later revisions tell the SIEM it was reviewed
        return st.behaviour.apply_feedback(alert_id, verdict, codes)


def _skew(at: float, watermark: float, skew: float) -> PoisonError:
    if not watermark:
        return PoisonError(
            "clock_skew",
            f"occurred_at is more than {skew / 3600:.0f} h ahead of the clock, on a partition "
            "with no accepted access yet",
        )
    return PoisonError(
        "clock_skew",
        f"occurred_at is {(at - watermark) / 3600:.1f} h ahead of the partition's newest "
        f"accepted access (limit {skew / 3600:.0f} h)",
    )


__all__ = ["EXPORTS", "PEAK", "SOFT_CODES", "Core", "CoreConfig", "Inbound", "Outbox"]
