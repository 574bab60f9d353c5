"""From an access event's publication to its alert: on the alert topic and in Postgres.

Real broker, one real ``pipeline worker`` (every detector on), real Postgres (a
schema of this run). Steps:

1. Simulate a bank (``simbank.simulate``: 200 staff, seed 7, ``--days``) and
   publish its reference data and its first ``--warmup-days`` of accesses.
2. Start the worker and time it catching up on that warm-up, read from
   ``/metrics`` as ``bench/throughput.py`` does (``pipeline_events_in_total``
   above 0 to the last record processed). That rate is the *capacity*
   unless ``--capacity`` or ``--rate`` gives one. Wait until it is caught up:
   the group has committed every offset and nothing has changed for 2 s.
   Then measure the worker's CPU while idle for ``--idle-seconds`` (10).
3. Publish the following accesses at a fixed rate, ``--load`` (default 0.5)
   times the capacity, for ``--duration`` seconds, from one aiokafka producer
   (``pipeline.broker.clients``; acks=all, idempotent, linger 5 ms as the
   worker's own producer), what is due sent every 5 ms. Each record's Kafka
   timestamp is the wall
   time at which it was handed to the producer: that instant is *publish*,
   and the worker's own ``pipeline_alert_latency_seconds`` histogram counts
   from it too.
4. Meanwhile this process reads ``{prefix}alerts`` (assigned, from its end)
   and polls ``alert_revisions`` every ``--pg-poll`` seconds (default 0.02)
   and notes when each revision first appears. Afterwards it waits until both
   have seen every revision the worker counted (``pipeline_alerts_out_total``,
   ``pipeline_alerts_written_total``).
5. Say whether the worker kept up: how long it took to finish after the last
   record was published, and the median latency of each 10 s of the live
   phase (first, last, lowest, highest). When it fell behind, the figures
   measure a queue.

Only an event that produces an alert revision can be timed. The live
accesses keep the simulator's own event times, so the bank's incidents and
its ordinary traffic are what they were, and the simulated clock runs much
faster than the wall clock (``time_lapse`` in the results). Into them go
*probes* (``--probe-share`` of the live records, default 1 %): a copy of a
real access by the same employee at the same instant, turned into a
``credit_report_query`` without ``authorization_ref``. That is a policy
violation (``credit_report_without_authorization``, docs/detection.md),
weighed fully from the first event: it opens an incident or, at least
``--probe-gap-hours`` of event time after that employee's previous probe
(default 2), re-emits the open one with new evidence. So most probes produce a
revision; the bank's own incidents produce a few more.

Each revision received (closing revisions excepted: no access triggers them)
is attributed to the access that triggered it: the newest-published of its
``event_ids`` (an employee's accesses share a partition, so the trigger is
the last of them the worker read). Latencies per revision: publish ->
record read from ``{prefix}alerts``; publish -> revision visible in
``alert_revisions`` (good to one poll interval). Reported: count, p50, p99,
p99.9 and max (nearest rank), and the worker's histogram over the live phase
only (the difference of two readings) with Prometheus's
``histogram_quantile`` interpolation, which says when the worker *sent* the
alert (before the broker acknowledged it).

Prints a table and writes the run into ``bench/results/latency.json``, under
its load (``load=0.5``, ``rate=800``, ...: runs at other loads are kept),
then deletes the run's topics and schema. Nothing is asserted.

    PYTHONPATH=. .venv/bin/python bench/latency.py \\
        --bootstrap 127.0.0.1:19292 \\
        --database-url postgresql://pipeline:pipeline@127.0.0.1:15432/pipeline
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import kit  # bench/kit.py, beside this file (puts the repository on sys.path)
import orjson
from aiokafka import TopicPartition

from pipeline.broker import clients
from pipeline.settings import Settings
from simbank.broker import Publisher, ensure_topics, partition_count
from simbank.evaluate.realrun import free_port
from simbank.simulate import SimConfig, generate
from simbank.timestamps import parse_ts
from simbank.workers import WorkerProcess

HISTOGRAM: Final = "pipeline_alert_latency_seconds"
QUANTILES: Final = (0.5, 0.99, 0.999)
WINDOW_S: Final = 10.0  # latency over time, per window of the live phase
TICK_S: Final = 0.005  # the publisher sends what is due every 5 ms
LINGER_MS: Final = 5  # as the worker's own producer


# -- the event stream --------------------------------------------------------------------


@dataclass
class Stream:
    """The live records, in publication order: (event_id, key, value, is_probe)."""

    records: list[tuple[str, bytes, bytes, bool]]
    probes: int
    event_seconds: float  # simulated time the records span


def live_stream(
    events: Sequence[dict[str, Any]], count: int, share: float, gap_hours: float
) -> Stream:
    """``count`` records: the simulator's accesses with probes among them (module doc)."""
    out: list[tuple[str, bytes, bytes, bool]] = []
    last_probe: dict[str, float] = {}
    owed = 0.0
    probes = 0
    for ev in events:
        if len(out) >= count:
            break
        out.append((str(ev["event_id"]), str(ev["staff_id"]).encode(), orjson.dumps(ev), False))
        owed += share
        at = parse_ts(ev["occurred_at"])
        staff = str(ev["staff_id"])
        if (
            owed >= 1.0
            and len(out) < count
            and ev.get("customer_id") is not None
            and at - last_probe.get(staff, float("-inf")) >= gap_hours * 3600.0
        ):
            probe = dict(ev)
            probe.update(
                event_id=f"probe-{probes:06d}",
                action="credit_report_query",
                authorization_ref=None,
                record_count=1,
                outcome="success",
            )
            out.append((probe["event_id"], staff.encode(), orjson.dumps(probe), True))
            last_probe[staff] = at
            owed -= 1.0
            probes += 1
    span = 0.0
    if out:
        first = parse_ts(orjson.loads(out[0][2])["occurred_at"])
        span = parse_ts(orjson.loads(out[-1][2])["occurred_at"]) - first
    return Stream(out, probes, span)


# -- observers: the alert topic and the alert_revisions table ----------------------------


@dataclass
class Seen:
    topic: dict[tuple[str, int], float] = field(default_factory=dict)
    alerts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    postgres: dict[tuple[str, int], float] = field(default_factory=dict)
    postgres_received_at: dict[tuple[str, int], float] = field(default_factory=dict)
    duplicates_on_topic: int = 0
    pg_polls: int = 0


async def read_alerts(s: Settings, seen: Seen, started: asyncio.Event) -> None:
    """Every record written to ``{prefix}alerts`` from now on, with the time it was read."""
    consumer = clients.consumer(s, group_id=None, fetch_max_wait_ms=100, enable_auto_commit=False)
    await consumer.start()
    try:
        n = await partition_count(s.kafka_bootstrap, s.alerts_topic)
        tps = [TopicPartition(s.alerts_topic, p) for p in range(n)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is published
            await consumer.position(tp)
        started.set()
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for r in records:
                    if r.value is None:
                        continue
                    alert = orjson.loads(r.value)
                    key = (str(alert["alert_id"]), int(alert["revision"]))
                    if key in seen.topic:
                        seen.duplicates_on_topic += 1
                        continue
                    seen.topic[key] = now
                    seen.alerts[key] = {
                        "status": alert.get("status", "open"),
                        "event_ids": alert["event_ids"],
                    }
    finally:
        await consumer.stop()


async def poll_postgres(url: str, seen: Seen, interval: float, started: asyncio.Event) -> None:
    """Every ``interval`` s, look up by primary key the revisions read from the alert
    topic but not yet seen in ``alert_revisions``; note when each first shows. (The
    worker's sink writes what it reads from that topic, so a row cannot be missed; one
    written before this process read its record is timed from its first lookup.)"""
    conn = await asyncpg.connect(url)
    try:
        started.set()
        while True:
            pending = [k for k in seen.topic if k not in seen.postgres]
            if pending:
                rows = await conn.fetch(
                    "SELECT r.alert_id, r.revision, r.received_at FROM alert_revisions r "
                    "JOIN unnest($1::text[], $2::int[]) AS k(alert_id, revision) "
                    "USING (alert_id, revision)",
                    [k[0] for k in pending],
                    [k[1] for k in pending],
                )
                now = time.time()
                seen.pg_polls += 1
                for r in rows:
                    key = (str(r["alert_id"]), int(r["revision"]))
                    seen.postgres[key] = now
                    seen.postgres_received_at[key] = r["received_at"].timestamp()
            await asyncio.sleep(interval)
    finally:
        await conn.close()


async def until_stored(worker: WorkerProcess, timeout: float) -> None:
    """Wait until the worker has written to Postgres every alert revision it sent."""
    deadline = time.monotonic() + timeout
    while True:
        x = await asyncio.to_thread(kit.scrape, worker)
        if x.total("pipeline_alerts_written_total") >= x.total("pipeline_alerts_out_total"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not store its alerts in time")
        await asyncio.sleep(0.2)


# -- publishing at a fixed rate ------------------------------------------------------------


@dataclass
class Published:
    at: dict[str, float]  # event_id -> publish time (time.time())
    seconds: float
    max_behind_s: float  # how far the producer fell behind its schedule at worst


async def publish_at_rate(s: Settings, stream: Stream, rate: float) -> Published:
    producer = clients.producer(s, acks="all", enable_idempotence=True, linger_ms=LINGER_MS)
    await producer.start()
    at: dict[str, float] = {}
    futures: list[asyncio.Future[Any]] = []
    behind = 0.0
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = 0
        total = len(stream.records)
        while sent < total:
            elapsed = loop.time() - t0
            due = min(total, int(elapsed * rate) + 1)
            if due > sent:
                behind = max(behind, elapsed - sent / rate)
            for event_id, key, value, _ in stream.records[sent:due]:
                now = time.time()
                futures.append(
                    await producer.send(
                        s.access_topic, value=value, key=key, timestamp_ms=int(now * 1000)
                    )
                )
                at[event_id] = now
            sent = max(sent, due)
            next_due = t0 + sent / rate
            await asyncio.sleep(max(TICK_S, next_due - loop.time()))
        await asyncio.gather(*futures)
        seconds = loop.time() - t0
    finally:
        await producer.stop()
    return Published(at, seconds, behind)


# -- figures ----------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    out: dict[str, Any] = {"samples": len(ordered)}
    for q in QUANTILES:
        v = kit.percentile(ordered, q)
        out[f"p{q * 100:g}"] = None if v is None else round(v, 4)
    out["max"] = round(ordered[-1], 4) if ordered else None
    out["mean"] = round(sum(ordered) / len(ordered), 4) if ordered else None
    return out


def attribute(seen: Seen, published: Published, probes: set[str]) -> dict[str, Any]:
    """Per timed revision: the trigger (newest-published of its events) and latencies."""
    topic_lat: list[float] = []
    pg_lat: list[float] = []
    pg_received_lat: list[float] = []
    by_kind = {"probe": 0, "background": 0}
    closing = untimed = 0
    windows: dict[int, list[float]] = {}
    start = min(published.at.values()) if published.at else 0.0
    for key, received in seen.topic.items():
        alert = seen.alerts[key]
        if alert["status"] == "closed":
            closing += 1
            continue
        times = [(published.at[e], e) for e in alert["event_ids"] if e in published.at]
        if not times:
            untimed += 1
            continue
        pub, trigger = max(times)
        by_kind["probe" if trigger in probes else "background"] += 1
        topic_lat.append(received - pub)
        windows.setdefault(int((pub - start) // WINDOW_S), []).append(received - pub)
        if key in seen.postgres:
            pg_lat.append(seen.postgres[key] - pub)
            pg_received_lat.append(seen.postgres_received_at[key] - pub)
    return {
        "publish_to_alert_topic_s": summary(topic_lat),
        "publish_to_postgres_row_s": summary(pg_lat),
        "publish_to_postgres_received_at_s": summary(pg_received_lat),
        "timed_revisions_by_trigger": by_kind,
        "closing_revisions_not_timed": closing,
        "revisions_without_a_live_trigger": untimed,
        "topic_latency_by_window": [
            {
                "from_s": int(w * WINDOW_S),
                "samples": len(v),
                "p50": round(kit.percentile(sorted(v), 0.5) or 0.0, 4),
                "max": round(max(v), 4),
            }
            for w, v in sorted(windows.items())
        ],
    }


def worker_histogram(before: kit.Scrape, after: kit.Scrape) -> dict[str, Any]:
    buckets = kit.diff_buckets(
        kit.histogram_buckets(after, HISTOGRAM), kit.histogram_buckets(before, HISTOGRAM)
    )
    out: dict[str, Any] = {"observations": int(buckets[-1][1]) if buckets else 0}
    for q in QUANTILES:
        v = kit.histogram_quantile(buckets, q)
        out[f"p{q * 100:g}"] = None if v is None else round(v, 4)
    total = after.total(f"{HISTOGRAM}_sum") - before.total(f"{HISTOGRAM}_sum")
    out["mean"] = round(total / out["observations"], 4) if out["observations"] else None
    out["buckets"] = [[b, int(c)] for b, c in buckets]
    return out


def deltas(before: kit.Scrape, after: kit.Scrape) -> dict[str, Any]:
    def d(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    def mean(name: str, **labels: str) -> float | None:
        n = d(f"{name}_count", **labels)
        return round(d(f"{name}_sum", **labels) / n, 4) if n else None

    return {
        "alerts_out": d("pipeline_alerts_out_total"),
        "alerts_written": d("pipeline_alerts_written_total"),
        "dead_lettered": d("pipeline_events_dead_lettered_total"),
        "batches_dropped": d("pipeline_batches_dropped_total"),
        "access_batches": d("pipeline_batch_seconds_count", agent="score-access"),
        "access_batch_mean_s": mean("pipeline_batch_seconds", agent="score-access"),
        "access_records_per_batch": mean("pipeline_batch_records"),
        "postgres_write_alerts_mean_s": mean(
            "pipeline_postgres_write_seconds", operation="write_alerts"
        ),
        "state_writes": d("pipeline_state_writes_total"),
        "access_cycle_phase_seconds": {
            phase: round(d("pipeline_batch_phase_seconds_sum", phase=phase), 2)
            for phase in ("score", "publish", "state", "ack")
        },
        "peer_wait_count": d("pipeline_peer_wait_seconds_count"),
        "peer_wait_mean_s": mean("pipeline_peer_wait_seconds"),
        "worker_cpu_seconds": round(after.cpu - before.cpu, 1),
    }


# -- the run ----------------------------------------------------------------------------------


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    run = kit.run_name("lat")
    prefix = f"{run}."
    schema = kit.schema_name(run)
    started = kit.now_utc()
    load_before = kit.load_average()
    log_dir = Path(tempfile.mkdtemp(prefix=f"{run}-"))
    print(f"run {run}; logs in {log_dir}", flush=True)

    sim = generate(
        SimConfig(seed=args.seed, staff=args.staff, days=args.days, customers=args.staff * 100)
    )
    split = parse_ts(sim.events[0]["occurred_at"]) + args.warmup_days * 86400.0
    warmup = [e for e in sim.events if parse_ts(e["occurred_at"]) < split]
    later = sim.events[len(warmup) :]
    print(f"simulated {len(sim.events):,} events; warm-up {len(warmup):,}", flush=True)

    base = kit.base_settings(args.bootstrap, topic_prefix=prefix, partitions=args.partitions)
    db_url = await kit.create_schema(args.database_url, schema)
    s = base.replace(
        app_id=f"{run}-worker",
        database_url=db_url,
        data_dir=log_dir / "data",
        scoring_process=not args.in_process,
    )
    worker: WorkerProcess | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await ensure_topics(args.bootstrap, prefix, args.partitions, s.replication_factor)
        pub = Publisher(args.bootstrap, prefix)
        await pub.start()
        try:
            await pub.reference(sim)
            await pub.events(warmup)
        finally:
            await pub.stop()

        # -- 2. catch up on the warm-up: the capacity ------------------------------------
        began = time.monotonic()
        worker = WorkerProcess(s, log_dir / "worker.log", free_port())
        healthy: list[float | None] = [None]
        readings = await kit.watch_drain(
            [worker], s, len(warmup), poll=0.2, timeout=args.timeout, healthy=healthy, began=began
        )
        i, j = kit.drain_span(readings, s.access_topic)
        await until_stored(worker, args.timeout)
        catch_up_s = readings[j].at - readings[i].at
        measured = len(warmup) / catch_up_s
        capacity = args.capacity or measured
        rate = args.rate or capacity * args.load
        print(
            f"warm-up: {len(warmup):,} events caught up in {catch_up_s:.1f} s "
            f"({measured:,.0f}/s); publishing at {rate:,.0f}/s",
            flush=True,
        )

        # -- 3. and 4. the live phase -------------------------------------------------------
        want = int(rate * args.duration)
        stream = live_stream(later, want, args.probe_share, args.probe_gap_hours)
        if len(stream.records) < want:
            print(
                f"only {len(stream.records):,} records for {want:,} wanted: "
                f"{len(stream.records) / rate:.0f} s instead of {args.duration:.0f} s "
                "(raise --days)",
                flush=True,
            )
        # the worker's CPU with nothing to do: what a live stream pays before any event
        idle0 = await asyncio.to_thread(kit.scrape, worker)
        await asyncio.sleep(args.idle_seconds)
        idle1 = await asyncio.to_thread(kit.scrape, worker)
        idle_cores = (idle1.cpu - idle0.cpu) / (idle1.at - idle0.at)

        seen = Seen()
        ready = [asyncio.Event(), asyncio.Event()]
        tasks = [
            asyncio.create_task(read_alerts(s, seen, ready[0])),
            asyncio.create_task(poll_postgres(db_url, seen, args.pg_poll, ready[1])),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
        before = await asyncio.to_thread(kit.scrape, worker)
        load_live = kit.load_average()
        cpu0, own0 = kit.machine_cpu(), time.process_time()
        published = await publish_at_rate(s, stream, rate)
        cpu1, own1 = kit.machine_cpu(), time.process_time()
        published_at = time.time()
        print(
            f"published {len(stream.records):,} records ({stream.probes:,} probes) in "
            f"{published.seconds:.1f} s; waiting for the worker",
            flush=True,
        )
        tail = await kit.watch_drain(
            [worker], s, len(warmup) + len(stream.records), poll=0.2, timeout=args.timeout
        )
        finished_after_s = tail[kit.drain_span(tail, s.access_topic)[1]].at - published_at
        after = await asyncio.to_thread(kit.scrape, worker)
        counted = deltas(before, after)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            len(seen.topic) < counted["alerts_out"]
            or len(seen.postgres) < counted["alerts_written"]
        ):
            await asyncio.sleep(0.2)
        probes = {e for e, _, _, p in stream.records if p}
        figures = attribute(seen, published, probes)
        windows = figures["topic_latency_by_window"]
        figures["kept_up"] = {
            "worker_finished_after_last_publish_s": round(finished_after_s, 2),
            "first_window_p50_s": windows[0]["p50"] if windows else None,
            "last_window_p50_s": windows[-1]["p50"] if windows else None,
            "window_p50_range_s": [
                min((w["p50"] for w in windows), default=None),
                max((w["p50"] for w in windows), default=None),
            ],
        }
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if worker is not None:
            worker.stop()
        if not args.keep:
            with contextlib.suppress(Exception):
                deleted = await kit.delete_topics(base, run)
                print(f"deleted {len(deleted)} topics", flush=True)
            with contextlib.suppress(Exception):
                await kit.drop_schema(args.database_url, schema)

    return {
        "benchmark": "latency",
        "date": started,
        "command": kit.command_line(),
        "machine": kit.machine(),
        "load_average_1_5_15": {
            "before": load_before,
            "live_phase_start": load_live,
            "after": kit.load_average(),
        },
        "setup": {
            "partitions": args.partitions,
            "scoring_process": not args.in_process,
            "simulation": {"seed": args.seed, "staff": args.staff, "days": args.days},
            "warmup_events": len(warmup),
            "worker_seconds_to_healthy": healthy[0],
            "worker_idle_cores": round(idle_cores, 3),
            "idle_seconds": args.idle_seconds,
            "catch_up_seconds": round(catch_up_s, 1),
            "catch_up_events_per_second": round(measured),
            "capacity_events_per_second": round(capacity),
            "capacity_from": "--rate"
            if args.rate
            else ("--capacity" if args.capacity else "warm-up catch-up"),
            "rate_events_per_second": round(rate),
            "records": len(stream.records),
            "probes": stream.probes,
            "probe_share": args.probe_share,
            "probe_gap_hours": args.probe_gap_hours,
            "publish_seconds": round(published.seconds, 1),
            "achieved_rate_events_per_second": round(len(stream.records) / published.seconds),
            "publisher_max_behind_schedule_s": round(published.max_behind_s, 4),
            "time_lapse": round(stream.event_seconds / published.seconds)
            if published.seconds
            else None,
            "pg_poll_seconds": args.pg_poll,
            "pg_polls": seen.pg_polls,
            "machine_busy_cores_live": kit.busy_cores(cpu0, cpu1),
            "harness_cpu_seconds_live": round(own1 - own0, 1),
        },
        "latency": figures,
        "worker_histogram_s": worker_histogram(before, after),
        "worker_counters_live_phase": counted,
        "alerts_seen": {
            "topic": len(seen.topic),
            "postgres": len(seen.postgres),
            "duplicates_on_topic": seen.duplicates_on_topic,
        },
    }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:,.0f}"


def table(doc: dict[str, Any]) -> str:
    st, lat, h = doc["setup"], doc["latency"], doc["worker_histogram_s"]
    rows = [("milliseconds", "samples", "p50", "p99", "p99.9", "max")]
    for label, key in (
        ("publish -> record on the alert topic", "publish_to_alert_topic_s"),
        ("publish -> row in alert_revisions", "publish_to_postgres_row_s"),
    ):
        x = lat[key]
        rows.append(
            (
                label,
                f"{x['samples']:,}",
                _ms(x["p50"]),
                _ms(x["p99"]),
                _ms(x["p99.9"]),
                _ms(x["max"]),
            )
        )
    rows.append(
        (
            "worker histogram: publish -> alert sent",
            f"{h['observations']:,}",
            _ms(h["p50"]),
            _ms(h["p99"]),
            _ms(h["p99.9"]),
            "",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    kinds = lat["timed_revisions_by_trigger"]
    lines += [
        f"rate {st['rate_events_per_second']:,}/s (capacity {st['capacity_events_per_second']:,}/s "
        f"from {st['capacity_from']}; achieved {st['achieved_rate_events_per_second']:,}/s), "
        f"{st['records']:,} records in {st['publish_seconds']} s, {st['probes']:,} probes; "
        f"simulated time ran {st['time_lapse']}x the wall clock",
        f"timed revisions: {kinds['probe']:,} triggered by probes, {kinds['background']:,} by the "
        f"bank's own accesses; {lat['closing_revisions_not_timed']} closing revisions not timed",
        f"load average {doc['load_average_1_5_15']}; machine busy cores in the live phase "
        f"{st['machine_busy_cores_live']} (worker CPU "
        f"{doc['worker_counters_live_phase']['worker_cpu_seconds']} s, this process "
        f"{st['harness_cpu_seconds_live']} s); the idle worker used {st['worker_idle_cores']} "
        "cores",
    ]
    k = lat["kept_up"]
    verdict = (
        "kept up"
        if k["worker_finished_after_last_publish_s"] < 2.0
        else "DID NOT keep up (the figures measure a growing queue)"
    )
    low, high = k["window_p50_range_s"]
    lines.append(
        f"worker {verdict}: finished {k['worker_finished_after_last_publish_s']} s after the "
        f"last publish; median latency {k['first_window_p50_s']} s in the first 10 s, "
        f"{k['last_window_p50_s']} s in the last, {low}-{high} s across the 10 s windows"
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bootstrap", default=kit.default_bootstrap(), help="default: $PIPELINE_KAFKA_BOOTSTRAP"
    )
    ap.add_argument(
        "--database-url", default=kit.default_database_url(), help="default: $PIPELINE_DATABASE_URL"
    )
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--staff", type=int, default=200)
    ap.add_argument("--days", type=int, default=35, help="simulated days (warm-up and live)")
    ap.add_argument("--warmup-days", type=float, default=7.0)
    ap.add_argument("--capacity", type=float, help="events/s; default: the warm-up catch-up rate")
    ap.add_argument("--load", type=float, default=0.5, help="fraction of the capacity to publish")
    ap.add_argument("--rate", type=float, help="events/s to publish (overrides --load)")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of the live phase")
    ap.add_argument("--probe-share", type=float, default=0.01)
    ap.add_argument("--probe-gap-hours", type=float, default=2.0)
    ap.add_argument(
        "--idle-seconds", type=float, default=10.0, help="worker CPU measured idle this long"
    )
    ap.add_argument("--pg-poll", type=float, default=0.02, help="seconds between polls of Postgres")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument(
        "--in-process", action="store_true", help="PIPELINE_SCORING_PROCESS=false for the worker"
    )
    ap.add_argument("--keep", action="store_true", help="keep the topics and the schema")
    ap.add_argument("--out", type=Path, default=kit.RESULTS / "latency.json")
    args = ap.parse_args()
    doc = asyncio.run(orchestrate(args))
    print()
    print(table(doc))
    save(args.out, run_key(args), doc)
    print(f"wrote {args.out} ({run_key(args)})")
    return 0


def run_key(args: argparse.Namespace) -> str:
    """Runs at different loads are kept side by side in the results file."""
    if args.rate:
        return f"rate={args.rate:g}"
    if args.capacity:
        return f"capacity={args.capacity:g},load={args.load:g}"
    return f"load={args.load:g}"


def save(path: Path, key: str, doc: dict[str, Any]) -> None:
    """Put ``doc`` under ``runs[key]`` of the results file, keeping the other runs."""
    out: dict[str, Any] = {"benchmark": "latency", "runs": {}}
    if path.exists():
        with contextlib.suppress(ValueError, KeyError):
            old = json.loads(path.read_text())
            out["runs"] = dict(old["runs"])
    out["runs"][key] = doc
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
