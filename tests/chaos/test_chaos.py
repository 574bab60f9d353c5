"""Chaos on the real broker and database: kill -9, scaling, broker and Postgres restarts,
fuzzed input. Each run's final alerts are compared with the in-process core's on the
same input: nothing missing, nothing with fewer events or a lower severity (duplicates
of a revision are allowed). The pipeline being deterministic, the tests also check the
stronger property: the same set of (alert id, revision, event ids, status)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from typing import Any

import asyncpg
import orjson

from pipeline.settings import Settings
from tests.chaos.conftest import Workers
from tests.chaos.harness import (
    Bank,
    dominance_problems,
    expected_alerts,
    identity,
    latest,
    publish_accesses,
    publish_reference,
    read_alerts,
    read_all,
    small_bank,
    wait_until,
)
from tests.integration.kit import DATABASE_URL

RATE = 1500.0  # accesses per second while the chaos happens


async def settle(s: Settings, want: list[dict[str, Any]], timeout: float = 180.0) -> list[Any]:
    """Wait until every expected revision is on the alert topic (or ``timeout``); return
    what is there, for :func:`check` to say what differs."""

    async def complete() -> bool:
        return identity(await read_alerts(s)) >= identity(want)

    with contextlib.suppress(AssertionError):
        await wait_until(complete, timeout, 2.0)
    return await read_alerts(s)


def check(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert dominance_problems(got, want) == []
    missing = sorted(identity(want) - identity(got))
    unexpected = sorted(identity(got) - identity(want))
    assert not missing and not unexpected, (
        f"{len(missing)} revisions missing, {len(unexpected)} unexpected; "
        f"first missing: {[m[:2] for m in missing[:5]]}; "
        f"first unexpected: {[u[:2] for u in unexpected[:5]]}"
    )


async def test_repeated_kill_9_under_load(topics: Settings, workers: Workers) -> None:
    s = topics
    bank = small_bank(seed=11, staff=40, days=7)
    want = expected_alerts(bank, s)
    await publish_reference(s, bank)
    await asyncio.to_thread(workers.start("w").wait_healthy)
    publishing = asyncio.create_task(publish_accesses(s, bank.accesses, rate=RATE))
    restarts = []
    for _ in range(3):
        await asyncio.sleep(2.5)
        workers.kill("w", signal.SIGKILL)
        started = time.monotonic()
        w = workers.start("w")
        await asyncio.to_thread(w.wait_healthy)
        restarts.append(time.monotonic() - started)
    await publishing
    check(await settle(s, want), want)
    assert all(t < 60 for t in restarts), restarts


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        return [int(c) for c in f.read().split()]


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_kill_9_of_the_scoring_process_and_of_its_worker(
    topics: Settings, workers: Workers
) -> None:
    """With ``PIPELINE_SCORING_PROCESS=true``: the scoring process killed twice under load
    stops its worker each time (exit 70, restarted like any crash), the worker killed
    takes its scoring process with it, and the alerts are still the core's."""
    s = topics
    bank = small_bank(seed=14, staff=40, days=7)
    want = expected_alerts(bank, s)
    await publish_reference(s, bank)
    await asyncio.to_thread(workers.start("w", scoring_process=True).wait_healthy)
    publishing = asyncio.create_task(publish_accesses(s, bank.accesses, rate=RATE))
    for _ in range(2):
        await asyncio.sleep(2.5)
        w = workers.live.pop("w")
        (scorer,) = children(w.proc.pid)
        os.kill(scorer, signal.SIGKILL)
        assert await asyncio.to_thread(w.proc.wait, 60) == 70, "the worker stops by itself"
        await asyncio.to_thread(workers.start("w", scoring_process=True).wait_healthy)
    await asyncio.sleep(2.5)
    (scorer,) = children(workers.live["w"].proc.pid)
    workers.kill("w", signal.SIGKILL)
    await wait_until(lambda: not alive(scorer), 30)
    await asyncio.to_thread(workers.start("w", scoring_process=True).wait_healthy)
    await publishing
    check(await settle(s, want), want)


async def test_one_two_one_workers_mid_stream(topics: Settings, workers: Workers) -> None:
    s = topics
    bank = small_bank(seed=12, staff=40, days=7)
    want = expected_alerts(bank, s)
    await publish_reference(s, bank)
    await asyncio.to_thread(workers.start("a").wait_healthy)
    publishing = asyncio.create_task(publish_accesses(s, bank.accesses, rate=RATE))
    await asyncio.sleep(2.5)
    b = workers.start("b")
    await asyncio.to_thread(b.wait_healthy)
    await asyncio.sleep(2.5)
    assert workers.kill("b", signal.SIGTERM) == 0
    await publishing
    check(await settle(s, want), want)
    assert sum(w.metric("pipeline_events_in_total") for w in workers.all[:1]) > 0


async def test_broker_restart_mid_stream(
    topics: Settings, workers: Workers, infra_control: Any
) -> None:
    s = topics
    bank = small_bank(seed=13, staff=40, days=7)
    want = expected_alerts(bank, s)
    await publish_reference(s, bank)
    w = workers.start("w")
    await asyncio.to_thread(w.wait_healthy)
    publishing = asyncio.create_task(publish_accesses(s, bank.accesses, rate=RATE))
    await asyncio.sleep(3.0)
    await asyncio.to_thread(infra_control, "kafka", "stop")
    await asyncio.sleep(3.0)
    await asyncio.to_thread(infra_control, "kafka", "start")
    await publishing
    # The worker rides the outage out (aiokafka reconnects; the producer retries).
    assert w.proc.poll() is None, f"the worker exited ({w.proc.returncode}) in the outage"
    check(await settle(s, want), want)


async def test_postgres_restart_mid_write(
    topics: Settings, workers: Workers, infra_control: Any
) -> None:
    s = topics
    bank = small_bank(seed=14, staff=40, days=7)
    want = expected_alerts(bank, s)
    await publish_reference(s, bank)
    w = workers.start("w")
    await asyncio.to_thread(w.wait_healthy)
    publishing = asyncio.create_task(publish_accesses(s, bank.accesses, rate=RATE))
    await asyncio.sleep(2.0)
    await asyncio.to_thread(infra_control, "postgres", "stop")
    await asyncio.sleep(4.0)
    await asyncio.to_thread(infra_control, "postgres", "start")
    await publishing
    check(await settle(s, want), want)
    final = latest(want)

    async def stored() -> bool:
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            rows = await conn.fetch(
                "SELECT alert_id, revision FROM alerts WHERE alert_id = ANY($1::text[])",
                list(final),
            )
        finally:
            await conn.close()
        return {r["alert_id"]: r["revision"] for r in rows} == {
            k: v["revision"] for k, v in final.items()
        }

    await wait_until(stored, 120, 1.0)
    assert w.metric("pipeline_retries_total") > 0, "the store retried while Postgres was away"
    assert w.metric("pipeline_batches_dropped_total") == 0


def fuzz(
    rng: random.Random, good: list[tuple[bytes | None, bytes]], n: int
) -> list[tuple[bytes | None, bytes | None]]:
    """Raw bytes, broken JSON and records with one field made wrong. A mangled record keeps
    its key (so that it is ordered with the record it came from); garbage gets any key."""
    out: list[tuple[bytes | None, bytes | None]] = []
    for _ in range(n):
        key, base = rng.choice(good)
        kind = rng.randrange(6)
        if kind == 0:
            garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            out.append((rng.choice([b"x" * 70_000, b"\xff\xfe", b"nobody"]), garbage))
        elif kind == 1:
            out.append((key, base[: rng.randrange(1, len(base))]))
        elif kind == 2:
            doc = orjson.loads(base)
            field = rng.choice(sorted(doc))
            doc[field] = rng.choice([1e308, -1, "x" * 5000, [], {}, True])
            out.append((key, orjson.dumps(doc)))
        elif kind == 3:
            out.append((key, b"[" + base + b"]"))
        elif kind == 4:
            out.append((key, base.replace(b'"', b"'", 3)))
        else:
            out.append((key, b"\xff" * 600_000))
    return out


async def test_fuzzed_bytes_on_every_input_topic(topics: Settings, workers: Workers) -> None:
    s = topics
    rng = random.Random(2024)
    clean = small_bank(seed=15, staff=24, days=5, branches=2)
    ref_fuzz: list[tuple[str, bytes | None, bytes | None]] = []
    for suffix in ("staff-directory", "staff-assignments", "customer-profiles"):
        good = [(k, v) for t, k, v in clean.reference if t == suffix and v is not None][:50]
        ref_fuzz += [(suffix, k, v) for k, v in fuzz(rng, good, 15)]
    access_good = [(k, v) for k, v in clean.accesses if v is not None][:200]
    accesses = list(clean.accesses)
    for k, v in fuzz(rng, access_good, 60):
        accesses.insert(rng.randrange(len(accesses)), (k, v))
    accesses.insert(rng.randrange(len(accesses)), (None, access_good[0][1]))  # no key
    accesses.insert(rng.randrange(len(accesses)), (b"S-other", access_good[1][1]))  # wrong key
    bank = Bank(clean.reference + ref_fuzz, accesses)
    want = expected_alerts(bank, s)

    await publish_reference(s, bank)
    w = workers.start("w")
    await asyncio.to_thread(w.wait_healthy)
    feedback = fuzz(rng, [(b"a", b'{"alert_id": "a", "verdict": "false_positive"}')], 20)
    producer_done = asyncio.create_task(publish_accesses(s, accesses))
    from pipeline.broker import clients

    p = clients.producer(s)
    await p.start()
    try:
        for k, v in feedback:
            await p.send_and_wait(s.feedback_topic, value=v, key=k)
    finally:
        await p.stop()
    await producer_done
    got = await settle(s, want)
    check(got, want)
    assert w.proc.poll() is None, "the worker is still running"
    assert w.health()[0] == 200
    assert w.live()[0] == 200
    assert w.metric("pipeline_batches_dropped_total") == 0
    letters = [orjson.loads(v or b"") for _, v in await read_all(s, s.dlq_topic)]
    by_topic: dict[str, int] = {}
    for letter in letters:
        by_topic[letter["topic"]] = by_topic.get(letter["topic"], 0) + 1
    assert by_topic.get(s.access_topic, 0) >= 40
    assert by_topic.get(s.feedback_topic, 0) >= 15
    assert sum(n for t, n in by_topic.items() if t in s.reference_topics) >= 30
    assert all(len(orjson.dumps(letter)) < 1_000_000 for letter in letters)
