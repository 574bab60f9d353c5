"""Shared by the chaos tests: a small simulated bank, publishing it, reading the alerts back,
and comparing the worker's alerts with the in-process core's on the same input."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from pipeline.broker import clients
from pipeline.broker.topics import partition_counts
from pipeline.core.offline import run_offline
from pipeline.settings import Settings
from simbank.simulate import SimConfig, generate

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass
class Bank:
    reference: list[tuple[str, bytes | None, bytes | None]]  # (topic suffix, key, value)
    accesses: list[tuple[bytes | None, bytes | None]]  # (key, value), in publication order


def small_bank(seed: int = 11, staff: int = 40, days: int = 7, branches: int = 3) -> Bank:
    sim = generate(
        SimConfig(seed=seed, branches=branches, staff=staff, customers=staff * 75, days=days)
    )
    reference = [
        (r.topic, r.key.encode(), None if r.value is None else orjson.dumps(r.value))
        for r in sim.reference
    ]
    accesses: list[tuple[bytes | None, bytes | None]] = [
        (str(e["staff_id"]).encode(), orjson.dumps(e)) for e in sim.events
    ]
    return Bank(reference, accesses)


async def publish_reference(s: Settings, bank: Bank) -> None:
    producer = clients.producer(s, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(s.topic_prefix + suffix, value=value, key=key)
            for suffix, key, value in bank.reference
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_accesses(
    s: Settings, records: list[tuple[bytes | None, bytes | None]], rate: float | None = None
) -> None:
    """Publish access records in order; ``rate`` records per second (None: as fast as acked).

    A chunk the broker did not acknowledge (it restarts under us) is sent again with a
    new producer, as a core-banking producer with retries would: records may be
    duplicated, never lost."""
    chunk = 500
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    while i < len(records):
        producer = clients.producer(s, acks="all", enable_idempotence=True, linger_ms=5)
        try:
            await producer.start()
            while i < len(records):
                pending = []
                for j, (key, value) in enumerate(records[i : i + chunk]):
                    if rate is not None:
                        delay = start + (i + j) / rate - loop.time()
                        if delay > 0.002:
                            await asyncio.sleep(delay)
                    pending.append(await producer.send(s.access_topic, value=value, key=key))
                await asyncio.gather(*pending)
                i += chunk
        except KafkaError:
            await asyncio.sleep(1.0)  # the broker is away: resend this chunk
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()


async def read_all(s: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of ``topic`` up to its current end."""
    n = (await partition_counts(s, [topic]))[topic]
    tps = [TopicPartition(topic, p) for p in range(n)]
    consumer = clients.consumer(s, group_id=None)
    await consumer.start()
    out: list[tuple[bytes | None, bytes | None]] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, recs in batch.items():
                out.extend((r.key, r.value) for r in recs)
                if recs and recs[-1].offset + 1 >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


async def read_alerts(s: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in await read_all(s, s.alerts_topic) if v is not None]


def expected_alerts(bank: Bank, s: Settings) -> list[dict[str, Any]]:
    return run_offline(bank.reference, bank.accesses, s).alerts


def latest(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a["revision"] >= out.get(a["alert_id"], {"revision": 0})["revision"]:
            out[a["alert_id"]] = a
    return out


def dominance_problems(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[str]:
    """What the chaos tests require: every alert of the core is there, none with fewer
    events or a lower severity (duplicates and extra revisions allowed)."""
    g, w = latest(got), latest(want)
    problems = []
    for alert_id, a in sorted(w.items()):
        b = g.get(alert_id)
        if b is None:
            problems.append(f"missing {alert_id} ({a['staff_id']}, rev {a['revision']})")
            continue
        if b["event_count"] < a["event_count"]:
            problems.append(f"{alert_id}: {b['event_count']} events < {a['event_count']}")
        if SEVERITY_RANK[b["severity"]] < SEVERITY_RANK[a["severity"]]:
            problems.append(f"{alert_id}: severity {b['severity']} < {a['severity']}")
    return problems


def identity(alerts: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """What determinism compares: alert ids, revisions and event ids of every revision."""
    return {
        (a["alert_id"], a["revision"], tuple(a["event_ids"]), a.get("status", "open"))
        for a in alerts
    }


async def wait_until(fn: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fn() if asyncio.iscoroutinefunction(fn) else fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
