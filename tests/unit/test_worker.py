"""The worker's thin agents (Faust's test_context) and services, on in-memory twins."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import msgspec
import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from pipeline.contract.decode import decode_alert
from pipeline.observability.metrics import WorkerMetrics
from pipeline.settings import Settings
from pipeline.sinks.base import MemorySink
from pipeline.worker import store as store_module
from pipeline.worker.access import (
    FLUSH_EVERY_S,
    IDLE_S,
    REWIND_ATTEMPTS,
    REWIND_WAIT_S,
    MemoryTable,
)
from pipeline.worker.agents import register
from pipeline.worker.app import create_app
from pipeline.worker.feedback import StaffVerdict, decode_staff_verdict
from pipeline.worker.health import STALL_S, Health
from pipeline.worker.publish import OutboxPublisher
from pipeline.worker.runtime import Runtime
from tests.unit.corekit import access

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
ALERT = (EXAMPLES / "alert" / "valid" / "minimal.json").read_bytes()


class FakeProducer:
    """Records what is sent; ``fail`` sends raise a broker timeout first."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.fail = fail

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> Any:
        if self.fail:
            self.fail -= 1
            raise KafkaTimeoutError("broker away")
        self.sent.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for t, k, v in self.sent if t == topic]


class FlakySink(MemorySink):
    """Fails the first ``n`` alert writes the way a Postgres failover does."""

    def __init__(self, n: int, exc: BaseException) -> None:
        super().__init__()
        self.n = n
        self.exc = exc
        self.closes = 0

    async def write_alerts(self, alerts: Any) -> Any:
        if self.n:
            self.n -= 1
            raise self.exc
        return await super().write_alerts(alerts)

    async def close(self) -> None:
        self.closes += 1


@pytest.fixture
def settings() -> Settings:
    return Settings(
        dev_mode=True, partitions=1, topic_prefix="tw.", app_id="tw", scoring_process=False
    )


@pytest.fixture(autouse=True)
def no_migrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def nothing(settings: Settings) -> list[str]:
        return []

    monkeypatch.setattr(store_module, "prepare_schema", nothing)
    yield


def worker(settings: Settings, sink: MemorySink, producer: FakeProducer) -> Any:
    app = create_app(settings)
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    rt = register(app, settings, producer=producer, backing=MemoryTable())

    async def connect(url: str) -> MemorySink:
        return sink

    rt.store._connect = connect  # type: ignore[assignment]
    rt.reference_tail.ready.set()
    rt.peer_tail.ready.set()
    return app, rt


def sample(rt: Any, name: str, **labels: str) -> float:
    value = rt.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


async def until(fn: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if fn():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_access_agent_scores_and_publishes(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.worker.publish")
    sink, producer = MemorySink(), FakeProducer()
    app, rt = worker(settings, sink, producer)
    async with app.agents["score-access"].test_context() as agent:
        await agent.put(key=b"S1", value=orjson.dumps(access(1, action="credit_report_query")))
        await agent.put(key=b"S1", value=b"{broken")
        await until(lambda: producer.on(settings.alerts_topic) and producer.on(settings.dlq_topic))
    (key, value), *_ = producer.on(settings.alerts_topic)
    assert key == b"S1" and decode_alert(value).event_ids == ["ev-S1-1"]
    assert producer.on(settings.evidence_topic), "evidence goes to the alert store"
    (fkey, fvalue), *_ = producer.on(settings.ocsf_topic)
    finding = orjson.loads(fvalue or b"")
    assert fkey == decode_alert(value).alert_id.encode()
    assert finding["class_uid"] == 2004 and finding["activity_name"] == "Create"
    letter = orjson.loads(producer.on(settings.dlq_topic)[0][1] or b"")
    assert letter["error"]["code"] == "malformed_json"
    await asyncio.sleep(FLUSH_EVERY_S)
    await rt.access.tick()  # the worker's timer: the state is written, then records acked
    assert rt.access.holding() == 0, "everything handled was acknowledged"
    # log lines carry the context fields a JSON log shipper indexes
    alert_lines = [r for r in caplog.records if getattr(r, "alert_id", None)]
    assert alert_lines and alert_lines[0].__dict__["staff_id"] == "S1"
    dl_lines = [r for r in caplog.records if getattr(r, "code", None) == "malformed_json"]
    assert dl_lines and dl_lines[0].__dict__["topic"] == settings.access_topic


async def test_store_agent_writes_alerts_and_dead_letters_what_it_cannot(
    settings: Settings,
) -> None:
    sink, producer = MemorySink(), FakeProducer()
    app, _ = worker(settings, sink, producer)
    async with app.agents["store-alerts"].test_context() as agent:
        await agent.put(key=b"S10234", value=ALERT)
        await agent.put(key=b"S1", value=b'{"alert_id": "x"}')
        await until(lambda: sink.rows and producer.on(settings.dlq_topic))
    assert list(sink.rows) == [orjson.loads(ALERT)["alert_id"]]
    letter = orjson.loads(producer.on(settings.dlq_topic)[0][1] or b"")
    assert letter["error"]["code"] == "missing_field"


async def test_a_verdict_before_its_alert_is_kept_and_routed_once_the_alert_is_stored(
    settings: Settings,
) -> None:
    sink, producer = MemorySink(), FakeProducer()
    app, rt = worker(settings, sink, producer)
    alert_id = orjson.loads(ALERT)["alert_id"]
    verdict = {
        "alert_id": alert_id,
        "verdict": "false_positive",
        "analyst_id": "soc-1",
        "decided_at": "2026-03-02T11:00:00+08:00",
    }
    async with app.agents["apply-feedback"].test_context() as agent:
        await agent.put(key=alert_id.encode(), value=orjson.dumps(verdict))
        await until(lambda: sink.feedback)
    assert producer.on(settings.staff_feedback_topic) == [], "no alert yet: nothing to route"
    async with app.agents["store-alerts"].test_context() as agent:
        await agent.put(key=b"S10234", value=ALERT)
        await until(lambda: producer.on(settings.staff_feedback_topic))
    ((key, value),) = producer.on(settings.staff_feedback_topic)
    routed = decode_staff_verdict(value)
    assert key == b"S10234"
    assert routed.alert_id == alert_id and routed.verdict == "false_positive"
    assert sink.rows[alert_id]["verdict"] == "false_positive"
    verdict_findings = [orjson.loads(v or b"") for _, v in producer.on(settings.ocsf_topic)]
    assert verdict_findings == [], "the verdict came before its alert: no finding to update yet"
    assert sample(rt, "pipeline_feedback_total", verdict="false_positive") == 1


async def test_a_routed_verdict_changes_the_employee_state_once(settings: Settings) -> None:
    sink, producer = MemorySink(), FakeProducer()
    app, rt = worker(settings, sink, producer)
    v = msgspec.json.encode(StaffVerdict("al-1", "false_positive", "S1", ["first_seen"]))
    async with app.agents["learn-from-feedback"].test_context() as agent:
        await agent.put(key=b"S1", value=v)
        await agent.put(key=b"S1", value=v)
        await until(
            lambda: (
                sample(rt, "pipeline_feedback_ignored_total", reason="repeated_or_policy_only") == 1
            )
        )
    assert sample(rt, "pipeline_feedback_learned_total") == 1
    assert rt.core.store.staff("S1", 0).behaviour.feedback == {"first_seen": 0.5}


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        # what a pooled connection the server terminated mid-transaction raised in CI
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
    ],
)
async def test_the_alert_store_retries_a_failover_and_drops_the_broken_pool(
    settings: Settings, exc: BaseException
) -> None:
    sink, producer = FlakySink(2, exc), FakeProducer()
    _, rt = worker(settings, sink, producer)
    stored = await rt.store.store_alerts([(ALERT, b"S10234", "tw.alerts", 0, 0)])
    assert [a.alert_id for a in stored] == [orjson.loads(ALERT)["alert_id"]]
    assert sample(rt, "pipeline_retries_total", operation="write_alerts") == 2
    assert sink.closes == 2


async def test_the_publisher_retries_broker_errors(settings: Settings) -> None:
    sink, producer = MemorySink(), FakeProducer(fail=1)
    _, rt = worker(settings, sink, producer)
    rt.core.offer([])
    from pipeline.core.engine import Inbound

    rt.core.offer([Inbound(0, 0, b"S1", orjson.dumps(access(1, action="credit_report_query")))])
    await rt.publisher.publish(rt.core.drain())
    assert producer.on(settings.alerts_topic)
    assert sample(rt, "pipeline_retries_total", operation="publish") == 1


async def test_a_verdict_on_a_stored_alert_updates_its_ocsf_finding(settings: Settings) -> None:
    sink, producer = MemorySink(), FakeProducer()
    app, _ = worker(settings, sink, producer)
    await sink.write_alerts([decode_alert(ALERT)])
    alert_id = orjson.loads(ALERT)["alert_id"]
    verdict = {
        "alert_id": alert_id,
        "verdict": "benign_true_positive",
        "analyst_id": "soc-1",
        "decided_at": "2026-03-02T11:00:00+08:00",
    }
    async with app.agents["apply-feedback"].test_context() as agent:
        await agent.put(key=alert_id.encode(), value=orjson.dumps(verdict))
        await until(lambda: producer.on(settings.ocsf_topic))
    ((key, value),) = producer.on(settings.ocsf_topic)
    finding = orjson.loads(value or b"")
    assert key == alert_id.encode()
    assert finding["status"] == "Suppressed" and finding["finding_info"]["uid"] == alert_id


def test_health_reports_what_is_missing_and_stalled_agents() -> None:
    h = Health()
    assert "not joined the consumer group yet" in h.problems()
    h.joined = h.reference_ready = h.peers_ready = True
    h.progress("score-access", holding=5)
    assert h.report()[0] == 200
    assert h.problems(now=h.agents["score-access"].last_progress + STALL_S + 1)
    # the access agent reports when it last finished a record, not when it last ran
    h.progress("score-access", holding=5, at=time.monotonic() - STALL_S - 1)
    assert any("made no progress" in p for p in h.problems())
    h.progress("score-access", holding=0, at=time.monotonic() - STALL_S - 1)
    assert not h.problems(), "holding nothing is not a stall"
    h.failed("store-alerts")
    status, body = h.report()
    assert status == 503 and "agent store-alerts is down (1 failures)" in body["problems"]


def test_health_sees_a_batch_that_never_ends_and_a_reader_that_stopped_turning() -> None:
    h = Health()
    h.joined = h.reference_ready = h.peers_ready = True
    long_ago = time.monotonic() - STALL_S - 1
    token = h.busy("store-alerts", at=long_ago)  # a sink retrying for ever
    h.busy("store-alerts")  # another batch, started now, does not hide the first
    assert any("store-alerts has been in one batch" in p for p in h.problems())
    h.idle("store-alerts", token)
    assert not h.problems(), "the batch still in hand started just now"
    h.progress("reference", holding=1, at=long_ago)  # the reader's loop last turned then
    assert any("agent reference made no progress" in p for p in h.problems())
    h.progress("reference", holding=1)
    h.starving("score-access", (2, 3))
    assert h.report()[0] == 503
    assert any("partitions with records: 2, 3" in p for p in h.problems())


def test_liveness_leaves_out_a_postgres_outage_but_not_a_stalled_access_path() -> None:
    h = Health()
    h.joined = h.reference_ready = h.peers_ready = True
    long_ago = time.monotonic() - STALL_S - 1
    h.busy("store-alerts", at=long_ago)  # the alert store retrying while Postgres is away
    assert h.report()[0] == 503, "not ready: the alerts do not reach Postgres"
    assert h.report(live=True)[0] == 200, "a restart would not bring Postgres back"
    h.busy("score-access", at=long_ago)  # a cycle that never ends
    status, body = h.report(live=True)
    assert status == 503 and any("score-access" in p for p in body["problems"])
    h.failed("apply-feedback")
    assert any("apply-feedback is down" in p for p in h.problems(live=True))


class FixedHighwater:
    """A consumer whose every partition has records up to offset 99."""

    def highwater(self, partition: int) -> int | None:
        return 100

    def committed(self, partition: int) -> int:
        return 0


async def test_a_partition_with_records_that_gives_none_is_reported_starved(
    settings: Settings,
) -> None:
    _app, rt = worker(settings.model_copy(update={"partitions": 2}), MemorySink(), FakeProducer())
    proc = rt.access
    proc.consumer = FixedHighwater()  # type: ignore[assignment]
    proc.assign({0, 1})
    assert proc.starved(STALL_S) == (), "just assigned"
    proc._assigned_at = dict.fromkeys((0, 1), time.monotonic() - STALL_S - 1)
    assert proc.starved(STALL_S) == (0, 1), "records to read, none offered since assigned"
    await proc.handle(records(0, 1), no_ack)
    assert proc.starved(STALL_S) == (1,), "partition 0 gave records just now"
    proc.unreadable()  # recovering: the clocks start again at the next assignment
    assert proc.starved(STALL_S) == ()


async def test_a_failing_batch_is_counted_marks_the_agent_down_and_stops_the_worker(
    settings: Settings,
) -> None:
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    rt.health.joined = rt.health.reference_ready = rt.health.peers_ready = True
    stops: list[str] = []

    async def batch() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("a defect in the batch function")

    await rt.guard("store-alerts", batch(), lambda: stops.append("stop"))
    assert stops == ["stop"]  # the worker stops; the batch was never acknowledged
    assert sample(rt, "pipeline_batches_dropped_total", agent="store-alerts") == 1.0
    assert sample(rt, "pipeline_agent_up", agent="store-alerts") == 0.0
    status, body = rt.health.report()
    assert status == 503 and any("store-alerts" in p for p in body["problems"])


async def test_a_tail_that_raises_stops_the_worker(settings: Settings) -> None:
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    stops: list[str] = []

    async def broken_tail() -> None:
        raise ConnectionError("the reference consumer died")

    await rt.guard("reference", broken_tail(), lambda: stops.append("stop"))
    assert stops == ["stop"]
    assert sample(rt, "pipeline_batches_dropped_total", agent="reference") == 1.0
    assert rt.health.report()[0] == 503


async def test_a_cancelled_batch_is_not_a_failure(settings: Settings) -> None:
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    stops: list[str] = []

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await rt.guard("score-access", cancelled(), lambda: stops.append("stop"))
    assert stops == []
    assert sample(rt, "pipeline_batches_dropped_total", agent="score-access") == 0.0


def test_stopping_does_not_wait_for_records_held_at_the_day_barrier(settings: Settings) -> None:
    # Faust's default waits until every record taken is acknowledged before a
    # rebalance or a shutdown completes; the access agent holds records on purpose.
    app = create_app(settings)
    assert app.conf.stream_wait_empty is False


def test_the_loaded_heap_is_frozen_once_the_reference_data_is_in(settings: Settings) -> None:
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    rt.reference_tail.ready.clear()
    try:
        assert not rt.freeze_loaded_heap(), "not before the reference data is loaded"
        rt.reference_tail.ready.set()
        assert rt.freeze_loaded_heap()
        assert gc.get_freeze_count() > 0
        assert not rt.freeze_loaded_heap(), "only once"
    finally:
        gc.unfreeze()


class Resumed:
    """A consumer that resumed partition 0 from committed offset ``committed``, with
    ``high`` records in it."""

    def __init__(self, committed: int, high: int) -> None:
        self.offset, self.high = committed, high
        self.rewinds: list[tuple[int, int]] = []

    def highwater(self, partition: int) -> int | None:
        return self.high

    def committed(self, partition: int) -> int:
        return self.offset

    async def rewind(self, partition: int, offset: int) -> None:
        self.rewinds.append((partition, offset))

    def pause(self, partition: int) -> None: ...

    def resume(self, partition: int) -> None: ...


def test_a_restarted_caught_up_worker_is_not_reported_behind(settings: Settings) -> None:
    # Nothing is received after a restart when everything was committed: the committed
    # offset says the worker is not behind, and the lag gauge counts from there.
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    rt.access.consumer = Resumed(committed=5_000, high=5_000)
    assert rt.access.seen(0) == 4_999
    assert rt.access.last_offered(0) == -1
    assert rt.access.caught_up(0)


def resumed(settings: Settings, committed: int, high: int) -> tuple[Runtime, Any, Resumed]:
    """A worker whose access agent resumed partition 0 from ``committed``."""
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    proc = rt.access
    proc.consumer = consumer = Resumed(committed=committed, high=high)
    proc.table = RecordingTable()
    return rt, proc, consumer


def records(*offsets: int) -> list[Event]:
    """Events of partition 0 at these offsets, one access of S1 each."""
    return [Event(Message(0, o, b"S1", orjson.dumps(access(o)))) for o in offsets]


async def no_ack(ev: Event) -> None: ...


async def test_a_restarted_worker_is_caught_up_only_once_it_read_again_what_was_not_committed(
    settings: Settings,
) -> None:
    # The restored state has seen offsets up to 9 (handled, state written), but only 0-4
    # were committed: 5-9 come again. Counting them as seen closed the day before they
    # were read again, from staff states that lacked them (CI: a peer day published
    # twice with different samples).
    rt, proc, _ = resumed(settings, committed=5, high=10)
    rt.core.store.partition(0).arrived = 9  # as restored from the changelog
    assert not proc.caught_up(0)
    await proc.handle(records(*range(5, 10)), no_ack)
    assert not proc.caught_up(0), "records just came: not idle yet"
    proc._offered_at[0] -= IDLE_S
    assert proc.caught_up(0)


async def test_records_after_a_gap_are_read_again_from_the_first_missing_one(
    settings: Settings,
) -> None:
    # Restarted under load, Faust handed the agent partitions from ~88 records beyond
    # their committed offset, then committed over the skipped ones (CI, kill -9 test).
    rt, proc, consumer = resumed(settings, committed=5, high=20)

    await proc.handle(records(10, 11), no_ack)
    assert consumer.rewinds == [(0, 5)] and proc.holding() == 0
    await proc.handle(records(12), no_ack)  # still in Faust's buffers: dropped, comes again
    assert consumer.rewinds == [(0, 5)] and proc.holding() == 0
    await proc.handle(records(*range(5, 13)), no_ack)
    assert proc.core.stats.processed == 8 and proc.last_offered(0) == 12
    await proc.handle(records(14), no_ack)  # one offset missing: a transaction marker's
    assert consumer.rewinds == [(0, 5)] and proc.last_offered(0) == 14
    await proc.handle(records(17), no_ack)  # a gap while running: 15 is read again
    assert consumer.rewinds == [(0, 5), (0, 15)]
    assert sample(rt, "pipeline_rewinds_total") == 2


async def test_an_unanswered_rewind_is_asked_again_then_given_up_and_counted(
    settings: Settings,
) -> None:
    rt, proc, consumer = resumed(settings, committed=5, high=20)

    def overdue() -> None:
        start, attempts, at = proc._rewinds[0]
        proc._rewinds[0] = (start, attempts, at - REWIND_WAIT_S)

    await proc.handle(records(10), no_ack)
    overdue()
    await proc.tick()  # nothing came back: asked again
    assert consumer.rewinds == [(0, 5), (0, 5)]
    for _ in range(REWIND_ATTEMPTS):
        overdue()
        await proc.tick()
    assert len(consumer.rewinds) == REWIND_ATTEMPTS, "asked at most REWIND_ATTEMPTS times"
    overdue()
    await proc.handle(records(10), no_ack)  # records 5-9 are gone (retention): given up
    assert sample(rt, "pipeline_offset_gaps_total") == 5
    assert proc.last_offered(0) == 10 and proc.core.stats.processed == 1


class Message(NamedTuple):
    partition: int
    offset: int
    key: bytes
    value: bytes
    topic: str = "tw.access-events"
    timestamp: float | None = None


class Event(NamedTuple):
    message: Message


class StillFetching:
    """A consumer with more to fetch on every partition (no idle day closing) but those
    in ``empty`` (nothing in them: they close their days when idle)."""

    def __init__(self) -> None:
        self.empty: set[int] = set()

    def highwater(self, partition: int) -> int | None:
        return 0 if partition in self.empty else None

    def committed(self, partition: int) -> int:
        return 0

    async def rewind(self, partition: int, offset: int) -> None:
        raise AssertionError("no gap expected")

    def pause(self, partition: int) -> None: ...

    def resume(self, partition: int) -> None: ...


class RecordingTable(MemoryTable):
    """Records the keys written; a write returns only once ``gate`` is set (the broker's
    acks of the changelog records)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.writes.extend(k for k, _ in items)
        await self.gate.wait()
        await super().write(items)


class Recorded(NamedTuple):
    proc: Any
    table: RecordingTable
    acked: list[int]
    ack: Any


def recorded_processor(settings: Settings) -> Recorded:
    """The access processor of a test worker, writing to a :class:`RecordingTable` and
    recording the offsets its ``ack`` is called with."""
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    proc = rt.access
    proc.consumer = StillFetching()
    proc.table = RecordingTable()
    acked: list[int] = []

    async def ack(ev: Event) -> None:
        acked.append(ev.message.offset)

    return Recorded(proc, proc.table, acked, ack)


async def test_state_writes_are_coalesced_and_records_acked_only_after_them(
    settings: Settings,
) -> None:
    proc, table, acked, ack = recorded_processor(settings)

    def staff_writes() -> int:
        return sum(1 for k in table.writes if k == "S1")

    proc._flushed_at = time.monotonic()
    await proc.handle(records(0, 1), ack)
    await proc.handle(records(2), ack)
    assert proc.core.stats.processed == 3
    assert table.writes == [] and acked == [], "nothing written or acked before a flush"
    assert proc.holding() == 3

    proc._flushed_at -= FLUSH_EVERY_S  # the flush is due
    table.gate.clear()  # the changelog records are not acknowledged yet
    flush = asyncio.create_task(proc.tick())
    await until(lambda: staff_writes() == 1)
    for _ in range(10):
        await asyncio.sleep(0)
    assert acked == [], "no record is acked before its state is durable"
    table.gate.set()
    await flush
    assert staff_writes() == 1, "the employee's state is written once for both batches"
    assert acked == [0, 1, 2], "acked after the state that covers them"
    assert proc.holding() == 0

    # a verdict (or any apply) has no record to replay: its state is written at once
    await proc.handle(records(3), ack)
    assert acked == [0, 1, 2]
    await proc.apply(lambda core: None)
    assert staff_writes() == 2 and acked == [0, 1, 2, 3]

    # a revoke writes the state first and leaves the partition's records unacked
    await proc.handle(records(4), ack)
    async with proc.lock:
        await proc.revoke([0])
    assert staff_writes() == 3 and acked == [0, 1, 2, 3], "record 4 goes to the next owner"
    assert proc.holding() == 0


class StuckPublisher:
    """A broker that never acknowledges the outbox."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def publish(self, out: Any) -> None:
        self.called.set()
        await asyncio.Event().wait()


async def test_a_cycle_cancelled_before_its_alerts_are_acked_writes_no_state(
    settings: Settings,
) -> None:
    # CI: a worker stopped mid-publish, then wrote its state at the revoke; the next
    # owner restored an incident at revision 12 whose revisions 1-12 were never sent.
    proc, table, acked, ack = recorded_processor(settings)

    await proc.handle(records(0, 1), ack)
    proc.publisher = stuck = StuckPublisher()  # type: ignore[assignment]
    batch = asyncio.create_task(proc.handle(records(2), ack))
    await stuck.called.wait()
    batch.cancel()  # the worker stops: Faust cancels the agent
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert proc.core.store.dirty(), "the core moved on: its state is ahead of the topic"
    proc.publisher = OutboxPublisher(FakeProducer(), settings, WorkerMetrics())
    await proc.handle(records(3), ack)  # a later cycle publishes fine: still nothing written
    assert await proc.apply(lambda core: None) is False, "a verdict's state is not written"
    async with proc.lock:
        await proc.revoke([0])
    assert table.writes == [] and acked == [], "the next owner replays 0-3 on the old state"


async def test_a_dead_letter_behind_a_held_record_is_acked_only_after_it() -> None:
    # Partition 0's access waits at the day barrier for partition 1's previous day; the
    # malformed record after it is dead-lettered at once. Acking it first would let
    # Faust commit over the held record (faust-streaming/faust#606): lost on a crash.
    settings = Settings(
        dev_mode=True, partitions=2, topic_prefix="tw.", app_id="tw", scoring_process=False
    )
    producer = FakeProducer()
    _app, rt = worker(settings, MemorySink(), producer)
    proc = rt.access
    proc.consumer = consumer = StillFetching()
    proc.table = RecordingTable()
    rt.core.assign({0, 1})
    acked: list[int] = []

    async def ack(ev: Event) -> None:
        acked.append(ev.message.offset)

    held = Event(Message(0, 0, b"S1", orjson.dumps(access(0))))
    broken = Event(Message(0, 1, b"S1", b"{broken"))
    await proc.handle([held, broken], ack)
    assert rt.core.waiting() == 1 and producer.on(settings.dlq_topic)
    proc._flushed_at -= FLUSH_EVERY_S
    await proc.tick()
    assert acked == [], "the dead letter waits for the record held before it"
    assert proc.holding() == 2

    waits = "pipeline_peer_wait_seconds_count"
    assert not rt.metrics.registry.get_sample_value(waits), "still waiting"

    consumer.empty.add(1)  # partition 1 turns out empty: it closes its days, the barrier opens
    await proc.apply(lambda core: None)
    assert acked == [0, 1]
    assert proc.holding() == 0
    assert rt.metrics.registry.get_sample_value(waits) == 1, "the wait is timed once it ends"


async def test_records_of_a_partition_handed_over_meanwhile_are_left_to_its_owner() -> None:
    # A batch can hold records taken from the stream before a rebalance: applied here,
    # their employee's state would be written over the one the new owner builds.
    settings = Settings(
        dev_mode=True, partitions=2, topic_prefix="tw.", app_id="tw", scoring_process=False
    )
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    proc = rt.access
    proc.consumer = StillFetching()
    proc.table = RecordingTable()
    rt.core.assign({0})
    acked: list[tuple[int, int]] = []

    async def ack(ev: Event) -> None:
        acked.append((ev.message.partition, ev.message.offset))

    ours = Event(Message(0, 0, b"S1", orjson.dumps(access(0))))
    theirs = Event(Message(1, 0, b"S2", orjson.dumps(access(1, staff_id="S2"))))
    await proc.handle([ours, theirs], ack)
    await proc.apply(lambda core: None)
    assert rt.core.stats.events == 1, "only partition 0's record reached the core"
    assert (1, 0) not in acked, "partition 1's record is not acked: its owner reads it"
    assert proc.holding() == 1, "partition 0's record is held (at the day barrier)"
    assert all(not k.startswith("S2") for k in proc.table.writes), "no state of S2 written"


async def test_records_left_out_of_a_partition_given_back_are_read_again() -> None:
    # Between a revoke and the next assign, the stream hands over records of a partition
    # that turns out to be this worker's again: left out then, they are read again (the
    # last records of a partition would otherwise wait for a later record to show the gap).
    settings = Settings(
        dev_mode=True, partitions=2, topic_prefix="tw.", app_id="tw", scoring_process=False
    )
    _app, rt = worker(settings, MemorySink(), FakeProducer())
    proc = rt.access
    proc.consumer = consumer = Resumed(committed=3, high=9)
    proc.assign({0})

    async def ack(ev: Event) -> None: ...

    def records(*offsets: int) -> list[Event]:
        return [
            Event(Message(1, off, b"S2", orjson.dumps(access(off, staff_id="S2"))))
            for off in offsets
        ]

    await proc.handle(records(5, 6), ack)
    proc.assign({0})  # partition 1 went to another worker: left to it, not read again
    await proc.tick()
    await proc.handle(records(5, 6), ack)
    assert rt.core.stats.events == 0 and consumer.rewinds == []
    proc.assign({0, 1})  # ... and then came back here
    await proc.tick()
    assert consumer.rewinds == [(1, 3)], "partition 1 is read again from its committed offset"
    await proc.handle(records(3, 4, 5, 6), ack)
    assert rt.core.stats.events == 4, "the records read again are scored"
