"""State survives restarts and rebalances: changelog recovery on the real broker."""

from __future__ import annotations

import signal
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.alerts.ids import Pseudonymizer
from pipeline.contract.decode import decode_access_event
from pipeline.core.engine import Engine, StaffStore
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from simbank.workers import WorkerProcess
from tests.integration.kit import free_port, read_topic, send_json, wait_for

STAFF = [f"S{i:02d}" for i in range(1, 13)]


def staff_record(staff_id: str, role: str = "customer_manager") -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "branch_id": "BR01",
        "role": role,
        "status": "active",
        "effective_at": "2026-01-01T00:00:00+08:00",
    }


def profile(customer_id: str, branch: str = "BR02") -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "home_branch_id": branch,
        "segment": "retail",
        "sensitivity": "normal",
        "related_staff_ids": [],
        "updated_at": "2026-01-01T00:00:00+08:00",
    }


def lookup(staff_id: str, n: int) -> dict[str, Any]:
    """An unassigned look-up of another branch's customer (weight 15 each)."""
    return {
        "event_id": f"rc-{staff_id}-{n}",
        "occurred_at": f"2026-03-02T10:{n:02d}:00+08:00",
        "staff_id": staff_id,
        "customer_id": f"C{n}",
        "action": "view_profile",
        "channel": "crm_web",
        "branch_id": "BR01",
    }


async def publish_reference(
    producer: AIOKafkaProducer,
    s: Settings,
    staff: list[str],
    role: str = "customer_manager",
    branch: str = "BR02",
) -> None:
    for sid in staff:
        await send_json(producer, s.staff_topic, sid, staff_record(sid, role))
    for n in range(1, 10):
        home = branch if n < 5 else "BR02"
        await send_json(producer, s.profiles_topic, f"C{n}", profile(f"C{n}", home))


def by_staff_latest(records: list[tuple[bytes | None, bytes | None]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for _, v in records:
        a = orjson.loads(v)
        if a["revision"] >= latest.get(a["staff_id"], {"revision": 0})["revision"]:
            latest[a["staff_id"]] = a
    return latest


async def test_restarted_worker_resumes_with_what_it_had_learned(
    topics: Settings, producer: AIOKafkaProducer, start_worker: Any
) -> None:
    s = topics
    await publish_reference(producer, s, ["S01"])
    first = start_worker()
    first.wait_healthy()
    # Two look-ups: 30 risk points, under the threshold, kept as pending evidence.
    for n in (1, 2):
        await send_json(producer, s.access_topic, "S01", lookup("S01", n))

    async def consumed_two() -> bool:
        return first.metric("pipeline_events_in_total") >= 2

    await wait_for(consumed_two)
    assert first.stop(signal.SIGTERM) == 0

    second = start_worker()
    second.wait_healthy()
    for n in (3, 4):
        await send_json(producer, s.access_topic, "S01", lookup("S01", n))
    records = await read_topic(s.alerts_topic, until=lambda recs: len(recs) >= 1)
    alert = orjson.loads(records[0][1])
    # Only the recovered evidence of events 1-2 brings risk over the threshold at event 4.
    assert alert["event_ids"] == [f"rc-S01-{n}" for n in (1, 2, 3, 4)]
    assert alert["revision"] == 1


async def test_two_workers_give_the_same_alerts_as_the_core_alone(
    topics: Settings, producer: AIOKafkaProducer, start_worker: Any
) -> None:
    s = topics
    await publish_reference(producer, s, STAFF, role="branch_manager", branch="BR01")
    workers: list[WorkerProcess] = [start_worker(), start_worker(free_port())]
    for w in workers:
        w.wait_healthy()
    # Alternating: a credit query without authorization (a policy rule) and a
    # look-up of another branch's customer (weighed against the partition's peers).
    events = [
        {**lookup(sid, n), "customer_id": f"C{n + 3}", "action": action}
        for n in range(1, 7)
        for sid in STAFF
        for action in (["view_profile"] if n % 2 else ["credit_report_query"])
    ]
    for ev in events:
        await send_json(producer, s.access_topic, ev["staff_id"], ev)

    records = await read_topic(
        s.alerts_topic,
        until=lambda recs: (
            {sid for sid, a in by_staff_latest(recs).items() if a["event_count"] == 5} == set(STAFF)
        ),
    )
    pipeline_alerts = by_staff_latest(records)

    async def all_consumed() -> bool:
        return sum(w.metric("pipeline_events_in_total") for w in workers) >= len(events)

    await wait_for(all_consumed)
    assert all(w.metric("pipeline_events_in_total") > 0 for w in workers), "both shared the work"

    # The same records through the pure core in one process.
    state = ReferenceState()
    for sid in STAFF:
        record = staff_record(sid, "branch_manager")
        apply_reference_record(state, "staff", sid.encode(), orjson.dumps(record))
    for n in range(1, 10):
        record = profile(f"C{n}", "BR01" if n < 5 else "BR02")
        apply_reference_record(state, "profile", b"C", orjson.dumps(record))
    core = Engine(
        state,
        Pseudonymizer(s.pseudonym_key),
        StaffStore(partitions=s.partitions),
        namespace=s.app_id,
    )
    expected = {}
    for a in core.process_batch(decode_access_event(orjson.dumps(ev)) for ev in events):
        expected[a.staff_id] = a.to_json()
    assert set(expected) == set(pipeline_alerts) == set(STAFF)
    for sid in STAFF:
        got, want = pipeline_alerts[sid], expected[sid]
        for field in ("alert_id", "revision", "event_ids", "event_count", "reasons", "risk_score"):
            assert got[field] == want[field], (sid, field)
