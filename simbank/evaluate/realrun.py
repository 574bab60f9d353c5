"""A simulation through the real pipeline, day by day, with the analyst on the real topics.

Real broker, real ``pipeline worker`` subprocesses, real Postgres. Steps:

1. create simbank's topics and publish the reference data;
2. start the workers (their ``Settings`` carry the run's prefix, consumer group,
   partitions and learning period) and wait until they answer ``/health``;
3. for each bank-local day (``settings.bank_timezone``): publish that day's
   accesses, wait until the workers consumed them (their ``/metrics``
   ``pipeline_events_in_total`` reaches the number published) and the alert
   count (``pipeline_alerts_out_total``) has not changed for ``settle_s``
   seconds, then read the day's new alert revisions from ``{prefix}alerts``;
4. with an analyst: wait until the day's new alerts are in Postgres (the worker
   looks an alert's owner up there when a verdict arrives), publish the
   analyst's AlertFeedback records on ``{prefix}alert-feedback`` (key
   ``alert_id``), and wait until the workers applied them
   (``pipeline_feedback_total``) and learned the benign ones
   (``pipeline_feedback_learned_total``) before the next day is published.

Every figure comes from what the workers wrote to ``{prefix}alerts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from pipeline.settings import Settings
from simbank.broker import Publisher, TopicReader, ensure_topics
from simbank.evaluate.analyst import SimulatedAnalyst
from simbank.evaluate.offline import RunResult
from simbank.simulate import Simulation
from simbank.timestamps import local_day, parse_ts
from simbank.workers import WorkerProcess


def free_port() -> int:
    """A TCP port free on loopback now (each worker's web port: runs share a machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def days_of(sim: Simulation, timezone: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The accesses grouped by bank-local day, in order (events are sorted by time)."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for day, evs in itertools.groupby(
        sim.events, key=lambda e: local_day(parse_ts(e["occurred_at"]), timezone).isoformat()
    ):
        out.append((day, list(evs)))
    return out


async def _until(
    check: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    workers: Sequence[WorkerProcess],
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"a worker stopped while {what}; log:\n{w.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s {what}")
        await asyncio.sleep(0.25)


async def _metric(workers: Sequence[WorkerProcess], name: str) -> float:
    values = await asyncio.gather(*(asyncio.to_thread(w.metric, name) for w in workers))
    return float(sum(values))


class _Run:
    def __init__(
        self, s: Settings, workers: list[WorkerProcess], timeout: float, settle_s: float
    ) -> None:
        self.s = s
        self.workers = workers
        self.timeout = timeout
        self.settle_s = settle_s
        self.published = 0
        self.feedback_sent = 0
        self.benign_sent = 0

    async def drain(self) -> None:
        """Wait until every published access was consumed and alerts stopped changing."""
        published = self.published

        async def consumed() -> bool:
            return await _metric(self.workers, "pipeline_events_in_total") >= published

        await _until(consumed, self.timeout, f"draining {published} accesses", self.workers)
        last = -1.0
        since = time.monotonic()
        while True:
            out = await _metric(self.workers, "pipeline_alerts_out_total")
            if out != last:
                last, since = out, time.monotonic()
            elif time.monotonic() - since >= self.settle_s:
                return
            await asyncio.sleep(0.25)

    async def stored(self, conn: asyncpg.Connection, alert_ids: set[str]) -> None:
        ids = list(alert_ids)

        async def all_there() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM alerts WHERE alert_id = ANY($1::text[])", ids
            )
            return int(n) >= len(ids)

        await _until(all_there, self.timeout, f"storing {len(ids)} alerts", self.workers)

    async def feedback_applied(self) -> float:
        sent, benign = self.feedback_sent, self.benign_sent

        async def applied() -> bool:
            return await _metric(self.workers, "pipeline_feedback_total") >= sent

        await _until(applied, self.timeout, f"applying {sent} verdicts", self.workers)

        async def learned() -> bool:
            return await _metric(self.workers, "pipeline_feedback_learned_total") >= benign

        # an alert not stored yet when its verdict arrived is not learned: reported as
        # meta["feedback_learned"] < meta["feedback_benign"]
        with contextlib.suppress(TimeoutError):
            await _until(learned, 15.0, f"learning {benign} benign verdicts", self.workers)
        return await _metric(self.workers, "pipeline_feedback_learned_total")


async def run_real(
    sim: Simulation,
    s: Settings,
    out_dir: Path,
    *,
    workers: int = 1,
    analyst: SimulatedAnalyst | None = None,
    timeout: float = 900.0,
    settle_s: float = 3.0,
) -> RunResult:
    """Every alert revision the real workers write for ``sim`` (see the module doc)."""
    began = time.monotonic()
    await ensure_topics(s.kafka_bootstrap, s.topic_prefix, s.partitions, s.replication_factor)
    pub = Publisher(s.kafka_bootstrap, s.topic_prefix)
    await pub.start()
    procs: list[WorkerProcess] = []
    reader = TopicReader(s.kafka_bootstrap, s.alerts_topic)
    conn: asyncpg.Connection | None = None
    alerts: list[dict[str, Any]] = []
    learned = 0.0
    try:
        await pub.reference(sim)
        procs = [WorkerProcess(s, out_dir / f"worker-{i}.log", free_port()) for i in range(workers)]
        for w in procs:
            await asyncio.to_thread(w.wait_healthy, 300.0)
        healthy_s = time.monotonic() - began
        run = _Run(s, procs, timeout, settle_s)
        await reader.start()
        if analyst is not None:
            conn = await asyncpg.connect(s.database_url)
        for day, events in days_of(sim, s.bank_timezone):
            run.published += await pub.events(events)
            await run.drain()
            fresh = await reader.new_records()
            alerts.extend(fresh)
            if analyst is None or conn is None:
                continue
            verdicts = analyst.triage(day, fresh)
            if not verdicts:
                continue
            await run.stored(conn, {str(orjson.loads(v)["alert_id"]) for v in verdicts})
            run.feedback_sent += await pub.feedback(verdicts)
            run.benign_sent += sum(
                1 for v in verdicts if orjson.loads(v)["verdict"] != "true_positive"
            )
            learned = await run.feedback_applied()
        await run.drain()
        alerts.extend(await reader.new_records())
        stored = await _count_stored(s.database_url, {str(a["alert_id"]) for a in alerts})
    finally:
        if conn is not None:
            await conn.close()
        await reader.stop()
        await pub.stop()
        for w in procs:
            w.stop()
    meta: dict[str, Any] = {
        "mode": "real pipeline (Kafka, worker processes, Postgres), published day by day",
        "workers": workers,
        "partitions": s.partitions,
        "worker_healthy_seconds": round(healthy_s, 1),
        "run_seconds": round(time.monotonic() - began, 1),
        "alerts_in_postgres": stored,
    }
    if analyst is not None:
        meta["feedback_sent"] = run.feedback_sent
        meta["feedback_benign"] = run.benign_sent
        meta["feedback_learned"] = int(learned)
    return RunResult(alerts, meta)


async def _count_stored(database_url: str, alert_ids: set[str]) -> int | None:
    try:
        conn = await asyncpg.connect(database_url)
    except OSError:
        return None
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM alerts WHERE alert_id = ANY($1::text[])", list(alert_ids)
        )
        return int(n)
    finally:
        await conn.close()
