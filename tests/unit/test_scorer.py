"""Scoring in a child process: the wire, the child's request handler against the core
itself, and the worker's agents over a real child (``tests.unit.scorer_child``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import msgspec
import orjson
import pytest

from pipeline.alerts.ids import Pseudonymizer
from pipeline.broker.partitioning import partition_for
from pipeline.contract.decode import decode_alert
from pipeline.core.engine import Core, Inbound
from pipeline.core.offline import core_config, load_reference
from pipeline.core.state import StaffState, decode_staff, encode
from pipeline.core.store import Store
from pipeline.observability.metrics import WorkerMetrics
from pipeline.peers.book import PeerBook
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.sinks.base import MemorySink
from pipeline.worker import scorer_wire as wire
from pipeline.worker.access import FLUSH_EVERY_S
from pipeline.worker.feedback import StaffVerdict
from pipeline.worker.publish import encode_outbox
from pipeline.worker.runtime import finding_bytes
from pipeline.worker.scorer import Scorer, ShippedBacking, families
from simbank.simulate import SimConfig, generate
from tests.unit.corekit import access
from tests.unit.test_worker import FakeProducer, sample, until, worker

CHILD = [sys.executable, "-m", "tests.unit.scorer_child"]


@pytest.fixture
def settings() -> Settings:
    return Settings(dev_mode=True, partitions=1, topic_prefix="ts.", app_id="ts")


@pytest.fixture(scope="module")
def bank() -> Any:
    sim = generate(SimConfig(seed=5, staff=40, days=5, customers=4000, branches=3))
    reference = [
        (r.topic, r.key.encode(), None if r.value is None else orjson.dumps(r.value))
        for r in sim.reference
    ]
    inbound, offsets = [], [0, 0]
    for e in sim.events:
        key = str(e["staff_id"]).encode()
        p = partition_for(key, 2)
        inbound.append(Inbound(p, offsets[p], key, orjson.dumps(e), -1))
        offsets[p] += 1
    return reference, inbound


def test_every_message_goes_through_the_wire_unchanged() -> None:
    requests: list[Any] = [
        wire.Start(b'{"partitions": 2}'),
        wire.Batch(
            [Inbound(1, 7, b"S1", b"{}", 12)], [("S1", 1, None), ("S2", 1, b"x")], [0], True
        ),
        wire.Assign([0, 3]),
        wire.Revoke([3]),
        wire.Learn([("S1", 1, "al-1", "false_positive", ["first_seen"])], []),
        wire.Status(metrics=True),
        wire.Value("S1", b"state"),
        wire.Stop(),
    ]
    for msg in requests:
        assert wire.request_decoder.decode(wire.frame(msg)[wire.HEADER.size :]) == msg
    replies: list[Any] = [
        wire.Done(),
        wire.Revoked([("S1", b"s")]),
        wire.Learned([True, False]),
        wire.State(
            True, False, 1.5, 2.5, {"staff": 3}, 4, [("m", "counter", [("m_total", {}, 1.0)])]
        ),
        wire.Get("S9"),
        wire.Stopped(3.25),
    ]
    for msg in replies:
        assert wire.reply_decoder.decode(wire.frame(msg)[wire.HEADER.size :]) == msg
    with pytest.raises(ValueError, match="broken"):
        wire.frame_size(wire.HEADER.pack(wire.MAX_FRAME + 1))


def test_the_scorer_publishes_and_writes_what_the_core_does(bank: Any) -> None:
    """The same batches through the worker's own core and through the scoring process's
    request handler give the same records to publish and the same states; the handler
    is sent only some states with the batches and asks for the others."""
    reference, inbound = bank
    s = Settings(dev_mode=True, partitions=2, topic_prefix="sc.")
    clock = lambda: 2e9  # noqa: E731 (after every simulated day: nothing is clock-skewed)
    ref_local, _ = load_reference(reference)
    ref_remote, _ = load_reference(reference)
    local_table: dict[str, bytes] = {}
    local = Core(
        ref_local,
        core_config(s),
        Store(local_table, 2),
        PeerBook(2),
        Pseudonymizer(s.pseudonym_key),
        clock=clock,
    )
    remote_table: dict[str, bytes] = {}
    scorer = Scorer(s, ref_remote, PeerBook(2), remote_table.get, clock=clock)
    want: list[Any] = []
    got: list[Any] = []
    shipped: set[str] = set()
    for i, start in enumerate(range(0, len(inbound), 700)):
        chunk = inbound[start : start + 700]
        flush = i % 3 == 2
        local.offer(chunk)
        out = local.drain()
        want.extend(encode_outbox(out, s, finding_bytes).items)
        if flush:
            local_table.update(local.store.pending_writes())
        keys = sorted({(r.key.decode(), r.partition) for r in chunk if r.key})
        states = [(k, p, remote_table.get(k)) for k, p in keys[::2] if k not in shipped]
        shipped.update(k for k, _, _ in states)
        reply = scorer.handle(wire.Batch(chunk, states, [0, 1], flush))
        assert isinstance(reply, wire.Cycle)
        assert (reply.writes is not None) == flush
        if reply.writes:
            remote_table.update(reply.writes)
        got.extend(reply.outbox.items)
        assert sorted(reply.done) == sorted(out.done)
        assert reply.queues == {p: len(q) for p, q in local.queues.items()}
    alerts = [v for t, _, v in want if t == s.alerts_topic]
    assert len(alerts) > 5, "the bank raises alerts"
    assert got == want
    assert scorer.backing.asked > 0, "states not sent with a batch were asked for"
    local_table.update(local.store.pending_writes())
    revoked = scorer.handle(wire.Revoke([0, 1]))
    assert isinstance(revoked, wire.Revoked)
    remote_table.update(revoked.writes)
    assert remote_table == local_table
    assert scorer.store.cached_staff() == 0, "a revoke forgets the partitions' states"


def test_a_state_in_use_is_not_replaced_by_one_sent_later() -> None:
    asked: list[str] = []
    backing = ShippedBacking(lambda key: asked.append(key) or None)
    backing.put("S1", 0, b"v1")
    backing.put("S2", 1, b"v2")
    assert backing.get("S1") == b"v1"
    assert backing.get("S1") is None and asked == ["S1"], "a sent state is used once"
    backing.forget([1])
    assert len(backing) == 0
    s = Settings(dev_mode=True, partitions=1)
    scorer = Scorer(s, load_reference([])[0], PeerBook(1), lambda key: None)
    st = scorer.store.staff("S1", 0)
    st.applied = 41
    scorer.handle(wire.Batch([], [("S1", 0, b"an older copy")], [0], False))
    assert scorer.store.staff("S1", 0).applied == 41
    assert len(scorer.backing) == 0


def test_the_metrics_page_adds_the_scoring_process_counters() -> None:
    mine, theirs = WorkerMetrics(), WorkerMetrics()
    mine.alerts_out.inc(2)
    theirs.alerts_out.inc(3)
    theirs.reference_records.labels(kind="staff").inc(7)
    mine.processing_lag.set(5.0)
    theirs.processing_lag.set(99.0)
    theirs.alert_latency.observe(0.2)
    extra = families(theirs)  # as the scoring process ships them
    from prometheus_client.parser import text_string_to_metric_families

    page = mine.render(extra=extra).decode()
    values = {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for f in text_string_to_metric_families(page)
        for x in f.samples
    }
    assert values[("pipeline_alerts_out_total", ())] == 5
    assert values[("pipeline_reference_records_total", (("kind", "staff"),))] == 7
    assert values[("pipeline_processing_lag_seconds", ())] == 5, "a gauge is this process's"
    assert values[("pipeline_alert_latency_seconds_count", ())] == 1
    assert mine.render().decode().count("pipeline_alerts_out_total 2.0") == 1


async def test_the_access_agent_scores_in_the_child(settings: Settings) -> None:
    """The worker's agents with ``scoring_process``: alerts, dead letters, state writes
    and acks as without; a verdict changes the state the child writes; the child's
    counters are on the metrics page; a child killed stops the worker."""
    s = settings.replace(scoring_process=True)
    producer = FakeProducer()
    app, rt = worker(s, MemorySink(), producer)
    stopped: list[bool] = []
    rt.fatal = lambda: stopped.append(True)
    assert rt.remote is not None
    link = rt.remote.link
    link.argv = CHILD
    # the worker's reference task: starts the child, follows its status while it lives
    task = asyncio.create_task(
        rt.guard("reference", rt.run_reference(), lambda: stopped.append(True), batch=False)
    )
    await until(lambda: link.proc is not None)
    restored = StaffState()
    restored.applied = 10  # as written before a restart: records up to 10 are applied
    rt.access.table["S2"] = encode(restored)
    try:
        async with app.agents["score-access"].test_context() as agent:
            await agent.put(key=b"S1", value=orjson.dumps(access(1, action="credit_report_query")))
            await agent.put(key=b"S1", value=b"{broken")
            await agent.put(key=b"S2", value=orjson.dumps(access(2, staff_id="S2")))
            await until(
                lambda: producer.on(s.alerts_topic) and producer.on(s.dlq_topic), timeout=30
            )
            await until(lambda: sample(rt, "pipeline_events_duplicate_total") == 1)
        (key, value), *_ = producer.on(s.alerts_topic)
        alert = decode_alert(value)
        assert key == b"S1" and alert.event_ids == ["ev-S1-1"]
        assert producer.on(s.evidence_topic) and producer.on(s.ocsf_topic)
        letter = orjson.loads(producer.on(s.dlq_topic)[0][1] or b"")
        assert letter["error"]["code"] == "malformed_json"
        await asyncio.sleep(FLUSH_EVERY_S)
        await rt.access.tick()
        await until(lambda: rt.access.holding() == 0, timeout=10)
        assert rt.access.table.get("S1") is not None, "the child's state was written"

        v = msgspec.json.encode(
            StaffVerdict(alert.alert_id, "false_positive", "S1", ["first_seen"])
        )
        async with app.agents["learn-from-feedback"].test_context() as agent:
            await agent.put(key=b"S1", value=v)
            await until(lambda: sample(rt, "pipeline_feedback_learned_total") == 1)
        state = decode_staff(rt.access.table.get("S1"))
        assert state.behaviour.feedback == {"first_seen": 0.5}

        page = (await rt.render_metrics()).decode()
        assert 'pipeline_reference_records_total{kind="staff"} 3.0' in page
        assert rt.reference_counts() == ReferenceState().counts(), "the child's, empty"

        # a revoke writes the child's pending states, then the partition is forgotten
        done = sample(rt, "pipeline_batch_records_sum")
        async with app.agents["score-access"].test_context() as agent:
            await agent.put(key=b"S3", value=orjson.dumps(access(3, staff_id="S3")))
            await until(lambda: sample(rt, "pipeline_batch_records_sum") == done + 1)
        assert rt.access.holding() == 1 and rt.access.table.get("S3") is None, "not flushed"
        async with rt.access.lock:
            await rt.access.revoke([0])
        written = rt.access.table.get("S3")
        assert written is not None and decode_staff(written).behaviour is not None
        assert rt.access.holding() == 0, "its record is left to the next owner"

        assert link.proc is not None
        os.kill(link.proc.pid, signal.SIGKILL)
        await until(lambda: bool(stopped), timeout=10)
        assert link.failure is not None and "exit code -9" in str(link.failure)
        assert sample(rt, "pipeline_agent_up", agent="reference") == 0
    finally:
        task.cancel()
        await link.close()
