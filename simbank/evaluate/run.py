"""``simbank evaluate``: a labelled simulation through the real pipeline, scored.

Real broker, real worker processes, real Postgres. Steps: generate the bank,
publish reference data and accesses, start the workers, time how long they
take to drain the stream, read every alert revision from the alerts topic,
compute the two baselines on the same data in-process, score all three, and
write ``report.json``, ``summary.md`` and ``chart.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition

from pipeline.broker import clients
from pipeline.broker.topics import ensure_topics, partition_counts
from pipeline.contract.decode import decode_access_event
from pipeline.reference.state import Enriched
from pipeline.settings import Settings
from simbank.evaluate.baselines import halfspacetrees, naive_rules
from simbank.evaluate.offline import SimulatedAnalyst, load_reference, run_core
from simbank.evaluate.report import format_console, write_report
from simbank.evaluate.score import Scorecard, score
from simbank.simulate import SimConfig, Simulation, generate
from simbank.simulate.config import add_size_arguments, config_from_args
from simbank.simulate.output import publish_kafka
from simbank.workers import WorkerProcess


def configure(parser: argparse.ArgumentParser) -> None:
    add_size_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="default reports/eval-<seed>")
    parser.add_argument("--timeout", type=float, default=900.0, help="max seconds to drain")
    parser.add_argument(
        "--feedback",
        action="store_true",
        help="also score the core with a simulated analyst's verdicts (4 h after each alert)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="run the pure core in-process instead of the real pipeline (tuning only)",
    )


def run(args: argparse.Namespace) -> int:
    return asyncio.run(evaluate(args))


def enrich_offline(sim: Simulation) -> Iterator[Enriched]:
    """The pipeline's own enrichment of every simulated access, in stream order."""
    state = load_reference(sim)
    for ev in sim.events:
        event = decode_access_event(orjson.dumps(ev))
        yield state.enrich(event, event.occurred_at.timestamp())


async def read_all(s: Settings, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` up to its current end."""
    n = (await partition_counts(s, [topic]))[topic]
    tps = [TopicPartition(topic, p) for p in range(n)]
    consumer = clients.consumer(s, group_id=None)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                out.extend(orjson.loads(r.value) for r in records)
                if records and records[-1].offset + 1 >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


async def _drain(
    workers: list[WorkerProcess], expected: int, timeout: float, s: Settings
) -> tuple[float, int]:
    """Wait until the workers consumed every access and alerts stopped changing."""
    start = time.monotonic()
    last_alerts = -1.0
    stable_since = time.monotonic()
    while time.monotonic() - start < timeout:
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"a worker stopped; log:\n{w.tail()}")
        counts = await asyncio.gather(
            *(asyncio.to_thread(w.metric, "pipeline_events_in_total") for w in workers)
        )
        consumed = int(sum(counts))
        if consumed >= expected:
            drained_at = time.monotonic() - start
            # let the alert sink and the last batches settle
            while True:
                written = sum(
                    await asyncio.gather(
                        *(asyncio.to_thread(w.metric, "pipeline_alerts_out_total") for w in workers)
                    )
                )
                if written == last_alerts and time.monotonic() - stable_since > 3.0:
                    return drained_at, consumed
                if written != last_alerts:
                    last_alerts, stable_since = written, time.monotonic()
                await asyncio.sleep(0.5)
        await asyncio.sleep(0.5)
    raise TimeoutError(f"workers did not drain {expected} events in {timeout}s")


async def evaluate(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    run_id = time.strftime("%Y%m%d%H%M%S")
    out_dir = args.out or Path("reports") / f"eval-{args.seed}"
    s = base.replace(
        topic_prefix=f"eval-{run_id}.",
        app_id=f"access-watch-eval-{run_id}",
        partitions=args.partitions,
        data_dir=out_dir / "workers",
        # A simulated bank: the placeholder pseudonym key is fine here.
        dev_mode=True,
    )
    config = config_from_args(args)
    t = time.monotonic()
    sim = generate(config)
    gen_s = time.monotonic() - t
    print(
        f"simulated {len(sim.events)} accesses, {len(sim.incidents)} labelled incidents "
        f"in {gen_s:.1f} s"
    )

    if args.offline:
        alerts, core_s = run_core(sim, partitions=args.partitions)
        meta_run: dict[str, Any] = {
            "mode": "offline (pure core, no broker)",
            "drain_seconds": round(core_s, 1),
            "throughput_events_per_second": round(len(sim.events) / core_s),
        }
    else:
        alerts, meta_run = await _run_real(args, s, sim, out_dir)
    return _finish(args, config, sim, alerts, meta_run, gen_s, s, out_dir)


async def _run_real(
    args: argparse.Namespace, s: Settings, sim: Simulation, out_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    await ensure_topics(s, args.partitions, replay=True)
    t = time.monotonic()
    await publish_kafka(sim, s, None, args.partitions)
    pub_s = time.monotonic() - t
    print(f"published to {s.topic_prefix}* in {pub_s:.1f} s")

    workers = [
        WorkerProcess(s, out_dir / "workers" / f"worker-{i}.log", s.web_port + i)
        for i in range(args.workers)
    ]
    try:
        t = time.monotonic()
        for w in workers:
            await asyncio.to_thread(w.wait_healthy, 300.0)
        healthy_s = time.monotonic() - t
        print(f"{len(workers)} worker(s) healthy after {healthy_s:.1f} s; draining ...")
        drain_s, consumed = await _drain(workers, len(sim.events), args.timeout, s)
    finally:
        for w in workers:
            w.stop()
    throughput = consumed / drain_s if drain_s > 0 else float("nan")
    print(f"drained {consumed} accesses in {drain_s:.1f} s ({throughput:,.0f} events/s)")

    alerts = await read_all(s, s.alerts_topic)
    stored = await _stored_alerts(s.database_url, {a["alert_id"] for a in alerts})
    return alerts, {
        "mode": "real pipeline (Kafka, worker processes, Postgres)",
        "workers": args.workers,
        "partitions": args.partitions,
        "publish_seconds": round(pub_s, 1),
        "worker_healthy_seconds": round(healthy_s, 1),
        "drain_seconds": round(drain_s, 1),
        "throughput_events_per_second": round(throughput),
        "alerts_in_postgres": stored,
    }


def _finish(
    args: argparse.Namespace,
    config: SimConfig,
    sim: Simulation,
    alerts: list[dict[str, Any]],
    meta_run: dict[str, Any],
    gen_s: float,
    s: Settings,
    out_dir: Path,
) -> int:
    staff_days = sim.active_staff_days()
    cards: list[Scorecard] = [score("pipeline", sim.incidents, alerts, staff_days)]
    if args.feedback:
        analyst = SimulatedAnalyst(sim)
        fb_alerts, _ = run_core(sim, analyst=analyst, partitions=args.partitions)
        card = score("pipeline+feedback", sim.incidents, fb_alerts, staff_days)
        verdicts = list(analyst.verdicts.values())
        card.extra["verdicts"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
        cards.append(card)
    for name, fn in (("naive_rules", naive_rules), ("halfspacetrees", halfspacetrees)):
        t = time.monotonic()
        base_alerts = fn(enrich_offline(sim))
        card = score(name, sim.incidents, base_alerts, staff_days)
        card.extra["seconds"] = round(time.monotonic() - t, 2)
        cards.append(card)

    meta: dict[str, Any] = {
        "seed": args.seed,
        "size": dataclasses.asdict(config),
        "events": len(sim.events),
        "incidents": len([i for i in sim.incidents if not i.benign]),
        "benign_lookalikes": len([i for i in sim.incidents if i.benign]),
        "active_staff_days": staff_days,
        "generate_seconds": round(gen_s, 1),
        "alert_revisions": len(alerts),
        **meta_run,
    }
    paths = write_report(cards, meta, out_dir)
    print(format_console(cards, meta))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


async def _stored_alerts(database_url: str, alert_ids: set[str]) -> int | None:
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
