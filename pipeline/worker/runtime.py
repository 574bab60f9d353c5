"""Everything one worker holds, wired together; the Faust specifics stay in ``agents``.

:class:`Runtime` builds the core and the services from the settings and a few
adapters over the Faust app (producer, table, consumer), so each service can
be tested on its own with in-memory twins.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson

from pipeline.alerts.ids import Pseudonymizer
from pipeline.alerts.ocsf import detection_finding
from pipeline.broker.tail import Tail
from pipeline.contract.decode import DecodeError, dead_letter
from pipeline.core.engine import Core
from pipeline.core.offline import core_config
from pipeline.core.store import Store
from pipeline.observability.metrics import WorkerMetrics
from pipeline.peers.book import PeerBook
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.sinks.base import EvidenceRow
from pipeline.worker.access import AccessProcessor, Consumer, StateTable
from pipeline.worker.feedback import FeedbackService, decode_staff_verdict, learn
from pipeline.worker.health import Health
from pipeline.worker.publish import DeadLetterSender, OutboxPublisher, Producer
from pipeline.worker.readers import reader_tails
from pipeline.worker.scorer_link import (
    RemoteAccessProcessor,
    RemoteStatus,
    ScorerExited,
    ScorerLink,
)
from pipeline.worker.store import AlertStore

log = logging.getLogger(__name__)


def finding_bytes(alert: dict[str, Any], verdict: str | None) -> bytes:
    """One alert revision (and the latest verdict) as an OCSF Detection Finding."""
    return orjson.dumps(detection_finding(alert, verdict=verdict))


class Runtime:
    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        table: StateTable,
        consumer: Consumer,
        metrics: WorkerMetrics | None = None,
        ocsf: Callable[[dict[str, Any], str | None], bytes] | None = finding_bytes,
        fatal: Callable[[], None] | None = None,
    ) -> None:
        """``fatal``: called when the scoring process fails (the worker stops)."""
        s = settings
        self.settings = s
        self.metrics = metrics or WorkerMetrics()
        self.health = Health()
        self._heap_frozen = False
        self.pseudonymizer = Pseudonymizer(s.pseudonym_key, raw=s.raw_customer_ids)
        self.dead_letters = DeadLetterSender(producer, s, self.metrics)
        self.publisher = OutboxPublisher(producer, s, self.metrics, ocsf)
        self.fatal = fatal
        self.access: AccessProcessor | RemoteAccessProcessor
        self.reference_tail: Tail | RemoteStatus.View
        self.peer_tail: Tail | RemoteStatus.View
        self.remote: RemoteStatus | None = None
        if s.scoring_process:
            # The core, the reference data and the peer statistics live in the scoring
            # process (pipeline.worker.scorer); this one keeps Faust's side.
            link = ScorerLink(s, table)
            self.remote = RemoteStatus(link)
            self.access = RemoteAccessProcessor(
                link,
                self.publisher,
                table,
                consumer,
                self.metrics,
                s.access_topic,
                s.partitions,
                self._scorer_failed,
            )
            self.reference_tail, self.peer_tail = self.remote.reference, self.remote.peers
        else:
            self.reference = ReferenceState()
            self.book = PeerBook(s.partitions)
            self.core = Core(
                self.reference,
                core_config(s),
                Store(table, s.partitions),
                self.book,
                self.pseudonymizer,
            )
            self.access = AccessProcessor(
                self.core, self.publisher, table, consumer, self.metrics, s.access_topic
            )
            self.reference_tail, self.peer_tail = reader_tails(
                s, self.reference, self.book, self.dead_letters, self.metrics
            )
        self.store = AlertStore(s, self.metrics, self.dead_letters)
        self.feedback = FeedbackService(
            self.store,
            producer,
            s.staff_feedback_topic,
            self.metrics,
            self.dead_letters,
            ocsf,
            s.ocsf_topic,
        )

    def _scorer_failed(self, exc: BaseException) -> None:
        self.metrics.agent_up.labels(agent="score-access").set(0)
        self.health.failed("score-access")
        log.critical("the scoring process failed (%s); stopping the worker", exc)
        if self.fatal is not None:
            self.fatal()

    async def run_reference(self) -> None:
        """The reference reader's loop (with a scoring process: the child's life)."""
        if self.remote is not None:
            await self.remote.run()
        else:
            assert isinstance(self.reference_tail, Tail)
            await self.reference_tail.run()

    async def run_peers(self) -> None:
        if self.remote is not None:
            await self.remote.link.closed.wait()
            raise ScorerExited(str(self.remote.link.failure))
        assert isinstance(self.peer_tail, Tail)
        await self.peer_tail.run()

    def reference_counts(self) -> dict[str, int]:
        return self.remote.counts if self.remote is not None else self.reference.counts()

    async def render_metrics(self) -> bytes:
        """The metrics page: with a scoring process, its counters added to this one's."""
        if self.remote is None:
            return self.metrics.render()
        return self.metrics.render(extra=await self.remote.metrics())

    def freeze_loaded_heap(self) -> bool:
        """Once the reference data and peer statistics are loaded, move every object then
        alive to the collector's permanent generation (``gc.freeze``): they live as long
        as the worker, and a full collection would otherwise walk them all again and
        again (tens of ms per million profiles, during which nothing is scored).
        Returns True the one time it froze."""
        if self._heap_frozen or not self.ready:
            return False
        self._heap_frozen = True
        gc.collect()
        gc.freeze()
        log.info("reference data loaded: %d objects frozen out of the GC", gc.get_freeze_count())
        return True

    @property
    def ready(self) -> bool:
        return self.reference_tail.ready.is_set() and self.peer_tail.ready.is_set()

    async def wait_ready(self) -> None:
        await self.reference_tail.ready.wait()
        await self.peer_tail.ready.wait()

    async def guard(
        self,
        agent: str,
        work: Awaitable[None],
        fatal: Callable[[], None],
        progress: bool = True,
        batch: bool = True,
    ) -> None:
        """Run one batch of an agent. A failure is counted, marks the agent down and calls
        ``fatal`` (the worker stops; the batch was not acknowledged and is read again after
        the restart, so nothing is lost). ``progress``: a batch that returns counts as
        progress for ``/health`` (False for the access agent, whose batches may only hold
        records at the day barrier: the tick reports its progress). ``batch``: ``work``
        is one batch, and one that lasts longer than ``STALL_S`` is a stall (False for a
        reader's loop, which runs for the worker's life: the tick reports its turns)."""
        token = self.health.busy(agent) if batch else None
        try:
            await work
            if progress:
                self.health.progress(agent)
            self.metrics.agent_up.labels(agent=agent).set(1)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.batches_dropped.labels(agent=agent).inc()
            self.metrics.agent_up.labels(agent=agent).set(0)
            self.health.failed(agent)
            log.critical("agent %s failed; stopping the worker", agent, exc_info=True)
            fatal()
        finally:
            if token is not None:
                self.health.idle(agent, token)

    # -- the agents' batch functions (Faust events in, acknowledged when done) ----------
    async def on_alerts(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        stored = await self.store.store_alerts([_record(e) for e in events])
        await self.feedback.route(sorted({a.alert_id for a in stored}))
        for e in events:
            await ack(e)

    async def on_evidence(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        rows = []
        for e in events:
            try:
                rows.extend(evidence_rows(e.message.value, self.pseudonymizer))
            except DecodeError as err:
                m = e.message
                await self.dead_letters(
                    dead_letter(m.value, m.key, m.topic, m.partition, m.offset, err, time.time()),
                    m.key,
                )
        if rows:
            await self.store.run("write_evidence", lambda sink: sink.write_evidence(rows))
        for e in events:
            await ack(e)

    async def on_feedback(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        await self.feedback.on_feedback([_record(e) for e in events])
        for e in events:
            await ack(e)

    async def on_staff_verdicts(
        self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]
    ) -> None:
        verdicts = []
        for e in events:
            m = e.message
            try:
                verdicts.append((decode_staff_verdict(m.value), m.partition))
            except DecodeError as err:
                await self.dead_letters(
                    dead_letter(m.value, m.key, m.topic, m.partition, m.offset, err, time.time()),
                    m.key,
                )
        access = self.access
        written = True
        if verdicts and isinstance(access, RemoteAccessProcessor):
            found = await access.learn(
                [(v.staff_id, p, v.alert_id, v.verdict, list(v.codes)) for v, p in verdicts]
            )
            if found is not None:
                applied = iter(found)
                learn(verdicts, lambda *_: next(applied), self.metrics)
            written = found is not None
        elif verdicts and isinstance(access, AccessProcessor):
            written = await access.apply(
                lambda core: learn(verdicts, core.apply_feedback, self.metrics)
            )
        if not written:
            # After an interrupted cycle no state is written: the verdicts are not acked
            # either, and the partitions' next owner applies them.
            log.warning("%d verdicts left unacknowledged: their state was not written", len(events))
            return
        for e in events:
            await ack(e)


def _record(event: Any) -> tuple[bytes | None, bytes | None, str, int, int]:
    m = event.message
    return m.value, m.key, m.topic, m.partition, m.offset


_EVIDENCE_DEC = msgspec.json.Decoder()


def evidence_rows(raw: bytes | None, pseudonymizer: Pseudonymizer) -> list[EvidenceRow]:
    """The rows of one internal evidence record (raises DecodeError when unreadable)."""
    try:
        data = _EVIDENCE_DEC.decode(raw or b"")
        return [
            EvidenceRow(
                alert_id=str(data["alert_id"]),
                revision=int(data["revision"]),
                staff_id=str(data["staff_id"]),
                event_id=str(ev["event_id"]),
                at=float(ev["at"]),
                customer_ref=None
                if ev["customer_id"] is None
                else pseudonymizer.ref(ev["customer_id"]),
                customer_id=ev["customer_id"],
                action=str(ev["action"]),
                channel=str(ev["channel"]),
                branch_id=str(ev["branch_id"]),
                record_count=int(ev["record_count"]),
                outcome=str(ev["outcome"]),
                codes=[str(c) for c in ev["codes"]],
            )
            for ev in data["events"]
        ]
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
        raise DecodeError("invalid_value", f"not an evidence record: {exc}") from None
