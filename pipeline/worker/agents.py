"""Thin Faust agents: each takes batches and hands them to one function of the Runtime.

* ``score-access``: access events -> the core -> alerts, evidence, peer days
  (:class:`pipeline.worker.access.AccessProcessor`);
* ``store-alerts``, ``store-evidence``: alerts and evidence -> Postgres;
* ``apply-feedback``: analyst verdicts -> Postgres -> routed to the employee's worker;
* ``learn-from-feedback``: routed verdicts -> the employee's state;
* tasks reading the reference topics and the peer statistics (global tables),
  and a timer that lets partitions waiting at a day boundary go on.

Every agent takes its input in batches that are handed over as soon as nothing
more is ready (:func:`pipeline.worker.faust_take.take_ready`) and acknowledges
it only after its effects are acknowledged; an agent that fails stops the
worker, so its unacknowledged input is read again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any, Final

import faust
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted

from pipeline.settings import Settings
from pipeline.worker.access import StateTable
from pipeline.worker.faust_take import take_ready
from pipeline.worker.health import STALL_S
from pipeline.worker.runtime import Runtime

log = logging.getLogger(__name__)

ACCESS_BATCH: Final = 5000
# A batch is handed over once nothing more is ready (faust_take); this bounds how long one
# gathers while records keep coming.
ACCESS_WITHIN: Final = 0.1
STORE_BATCH: Final = 500
# ... and a store batch (bench/latency.py measures the time to the topic and to Postgres).
STORE_WITHIN: Final = 0.1
TICK_S: Final = 0.25
EXIT_AGENT_FAILED: Final = 70


class FaustProducer:
    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> Any:
        return await self.app.producer.send(topic, key, value, None, None, None)


class TableBacking:
    """str-keyed view of the bytes-keyed, bytes-valued state table.

    :meth:`write` sets the table's local store and sends the changelog records
    itself, all at once, and awaits their acks. ``table[key] = value`` would queue
    each record in Faust's producer buffer, which sends them one at a time and,
    past 100 waiting, holds every stream's delivery until it has drained (the
    ~200 states of a live flush stopped the access stream ~0.1 s each time; the
    latency benchmark's lag then never caught up). The records are those Faust
    writes (raw key and value, partitioned by the producer's partitioner on the
    key, as ``use_partitioner=True``), so recovery and standbys read them alike."""

    def __init__(self, table: Any, app: faust.App) -> None:
        self.table = table
        self.app = app

    def get(self, key: str, /) -> bytes | None:
        value = self.table.get(key.encode())
        return None if value is None else bytes(value)

    async def write(self, items: Sequence[tuple[str, bytes]]) -> None:
        data, send = self.table.data, self.app.producer.send
        topic = self.table.changelog_topic.get_topic_name()
        futures = []
        for key, value in items:
            k = key.encode()
            data[k] = value
            futures.append(await send(topic, k, value, None, None, None))
        await asyncio.gather(*futures)


class FaustConsumer:
    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    def _tp(self, partition: int) -> Any:
        return faust.types.TP(self.topic, partition)

    def highwater(self, partition: int) -> int | None:
        """The partition's high watermark, or None while it is not (or no longer) ours.

        aiokafka asserts (AssertionError) on a partition that a rebalance just took
        away, so assignment is checked first; the exceptions cover a consumer that is
        starting or stopping between the check and the call."""
        tp = self._tp(partition)
        try:
            if tp not in self.app.consumer.assignment():
                return None
            high = self.app.consumer.highwater(tp)
        except (IllegalStateError, ConsumerNotStarted, AssertionError):
            return None
        return None if high is None else int(high)

    def committed(self, partition: int) -> int:
        """The partition's committed offset as Faust holds it (the next record to read:
        set when the partition was assigned, raised by each commit), 0 when none.

        Faust keeps it in ``Consumer._committed_offset`` (no public accessor; asking the
        broker would be a round trip per call)."""
        try:
            committed: Any = self.app.consumer._committed_offset  # type: ignore[attr-defined]
            offset = committed.get(self._tp(partition))
        except (ConsumerNotStarted, AttributeError):
            return 0
        return int(offset) if offset else 0

    async def rewind(self, partition: int, offset: int) -> None:
        """Read ``partition`` again from ``offset``. Faust's own list of offsets it took
        for a gap (and would commit as done) is cut from there: those records come again."""
        tp = self._tp(partition)
        consumer: Any = self.app.consumer
        gaps = consumer._gap.get(tp)
        if gaps:
            gaps.chop(offset, 2**63)
        await consumer.seek(tp, offset)

    def pause(self, partition: int) -> None:
        self.app.consumer.pause_partitions({self._tp(partition)})

    def resume(self, partition: int) -> None:
        self.app.consumer.resume_partitions({self._tp(partition)})

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topic}


def _exit() -> None:
    logging.shutdown()
    os._exit(EXIT_AGENT_FAILED)


def register(
    app: faust.App, s: Settings, producer: Any = None, backing: StateTable | None = None
) -> Runtime:
    """Declare the table, agents, tasks, timer and pages. Tests (Faust's
    ``test_context``, where no producer runs) pass a ``producer`` and a state
    ``backing`` (a :class:`MemoryTable`) instead of Faust's producer and the table."""
    table = app.Table(
        "staff-state",
        default=None,
        partitions=s.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
        help="per-employee and per-partition state (versioned msgpack, pipeline.core.state)",
    )
    consumer = FaustConsumer(app, s.access_topic)
    rt = Runtime(
        s,
        producer or FaustProducer(app),
        backing if backing is not None else TableBacking(table, app),
        consumer,
        fatal=_exit,
    )

    def topic(name: str) -> Any:
        return app.topic(name, partitions=s.partitions)

    @app.agent(topic(s.access_topic), name="score-access")
    async def score_access(stream: Any) -> None:
        await rt.wait_ready()
        async for events in take_ready(stream, ACCESS_BATCH, ACCESS_WITHIN):
            work = rt.access.handle(events, stream.ack)
            await rt.guard("score-access", work, _exit, progress=False)

    @app.agent(topic(s.alerts_topic), name="store-alerts")
    async def store_alerts(stream: Any) -> None:
        async for events in take_ready(stream, STORE_BATCH, STORE_WITHIN):
            await rt.guard("store-alerts", rt.on_alerts(events, stream.ack), _exit)

    @app.agent(topic(s.evidence_topic), name="store-evidence")
    async def store_evidence(stream: Any) -> None:
        async for events in take_ready(stream, STORE_BATCH, STORE_WITHIN):
            await rt.guard("store-evidence", rt.on_evidence(events, stream.ack), _exit)

    @app.agent(topic(s.feedback_topic), name="apply-feedback")
    async def apply_feedback(stream: Any) -> None:
        async for events in take_ready(stream, STORE_BATCH, STORE_WITHIN):
            await rt.guard("apply-feedback", rt.on_feedback(events, stream.ack), _exit)

    @app.agent(topic(s.staff_feedback_topic), name="learn-from-feedback")
    async def learn_from_feedback(stream: Any) -> None:
        await rt.wait_ready()
        async for events in take_ready(stream, STORE_BATCH, STORE_WITHIN):
            await rt.guard("learn-from-feedback", rt.on_staff_verdicts(events, stream.ack), _exit)

    # The tails run for the worker's life; one that raises stops the worker like an agent
    # (a worker whose reference data stopped moving must not go on answering 200).
    @app.task  # type: ignore[untyped-decorator]
    async def reference() -> None:
        await rt.guard("reference", rt.run_reference(), _exit, batch=False)

    @app.task  # type: ignore[untyped-decorator]
    async def peers() -> None:
        await rt.guard("peers", rt.run_peers(), _exit, batch=False)

    @app.timer(TICK_S)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        h = rt.health
        h.reference_ready = rt.reference_tail.ready.is_set()
        h.peers_ready = rt.peer_tail.ready.is_set()
        # A reader always waits for records: its loop must keep turning.
        h.progress("reference", holding=1, at=rt.reference_tail.polled_at)
        h.progress("peers", holding=1, at=rt.peer_tail.polled_at)
        if app.in_recovery or not rt.ready:
            rt.access.unreadable()
            return
        rt.freeze_loaded_heap()
        rt.access.assign(consumer.assigned())
        await rt.guard("score-access", rt.access.tick(), _exit, progress=False)
        # Progress is a record finished, not a cycle run: records held at the day barrier
        # for longer than STALL_S with nothing finished turn /health to 503.
        h.progress("score-access", rt.access.holding(), at=rt.access.last_progress)
        h.starving("score-access", rt.access.starved(STALL_S))

    def on_joined(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        rt.health.joined = True

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        gone = {tp.partition for tp in revoked if tp.topic == s.access_topic}
        # Under the access lock: a cycle in flight (published, state not yet written)
        # finishes first, so a revoke never lands between an alert and its state.
        async with rt.access.lock:
            await rt.access.revoke(gone)
        rt.metrics.prune_consumer_lag(
            (s.access_topic, p) for p in consumer.assigned() if p not in gone
        )

    app.on_rebalance_complete.connect(on_joined)
    app.on_partitions_revoked.connect(on_revoked)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        status, body = rt.health.report()
        body["reference"] = rt.reference_counts()
        body["waiting"] = rt.access.waiting()
        return web.json(body, status=status)

    @app.page("/live")
    async def live(web: Any, request: Any) -> Any:
        status, body = rt.health.report(live=True)
        return web.json(body, status=status)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        assigned = consumer.assigned()
        for p in assigned:
            high = consumer.highwater(p)
            if high is not None:
                rt.metrics.set_consumer_lag(s.access_topic, p, high - rt.access.seen(p) - 1)
        rt.metrics.prune_consumer_lag((s.access_topic, p) for p in assigned)
        rt.metrics.reference_ready.set(1.0 if rt.reference_tail.ready.is_set() else 0.0)
        # aiohttp takes the charset apart from the media type.
        media_type = rt.metrics.content_type.split(";")[0].strip()
        return web.bytes(await rt.render_metrics(), content_type=f"{media_type}; version=0.0.4")

    return rt
