"""``simbank demo``: a small simulated bank through the real pipeline, alerts shown as they arrive.

Uses the broker and database of the environment (``make up`` starts them on
loopback), a fresh topic prefix and consumer group per run, and one real
worker subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition

import pipeline.broker.clients as clients
from pipeline.settings import Settings
from simbank.broker import partition_count, publish_kafka
from simbank.simulate import SimConfig, generate
from simbank.simulate.config import add_size_arguments, config_from_args
from simbank.workers import WorkerProcess, worker_env

# A small bank: a demo shows alerts within seconds.
DEMO_BANK = SimConfig(seed=11, branches=3, staff=40, customers=3000, days=7)
SEVERITY_MARK = {"low": ".", "medium": "!", "high": "!!", "critical": "!!!"}


def configure(parser: argparse.ArgumentParser) -> None:
    add_size_arguments(parser, DEMO_BANK)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--idle", type=float, default=8.0, help="stop after this many quiet seconds"
    )
    parser.add_argument("--log-dir", type=Path, default=Path(".pipeline-data/demo"))
    parser.add_argument(
        "--console-seconds",
        type=float,
        default=None,
        help="then serve the analysts' console for this long (default: until Ctrl-C on a "
        "terminal, 20 s otherwise; 0: no console)",
    )


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args))


def _line(a: dict[str, Any]) -> str:
    codes = ",".join(r["code"] for r in a["reasons"])
    return (
        f"{a['severity']:>8} {SEVERITY_MARK[a['severity']]:<3} {a['staff_id']:<8} "
        f"rev {a['revision']:<3} risk {a['risk_score']:5.1f}  events {a['event_count']:<4} "
        f"[{codes}]  {a['last_event_at'][:16]}"
    )


async def _demo(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    run_id = time.strftime("%Y%m%d%H%M%S")
    s = base.replace(
        topic_prefix=f"demo-{run_id}.",
        app_id=f"access-watch-demo-{run_id}",
        partitions=args.partitions,
        web_port=base.web_port,
        data_dir=args.log_dir / run_id,
        # A simulated bank: the placeholder pseudonym key is fine here.
        dev_mode=True,
    )
    print(f"demo run {run_id}: Kafka {s.kafka_bootstrap}, Postgres {s.database_url.split('@')[-1]}")
    t0 = time.monotonic()
    sim = generate(config_from_args(args))
    malicious = [i for i in sim.incidents if not i.benign]
    print(
        f"simulated bank: {args.staff} staff, {args.customers} customers, {args.days} days, "
        f"{len(sim.events)} accesses, {len(malicious)} planted incidents "
        f"({time.monotonic() - t0:.1f} s)"
    )
    await publish_kafka(sim, s.kafka_bootstrap, s.topic_prefix, None, args.partitions)
    print(f"published reference data and accesses to {s.topic_prefix}* ")

    worker = WorkerProcess(s, s.data_dir / "worker.log")
    try:
        healthy = await asyncio.to_thread(worker.wait_healthy)
        print(f"worker healthy after {healthy:.1f} s (log: {worker.log_path})")
        print(
            "alerts as they arrive (severity, staff, revision, risk, events, reasons, last event):"
        )
        alerts = await _follow_alerts(s, worker, len(sim.events), args.idle)
        await _summary(s, alerts, malicious)
        # the worker keeps running: verdicts sent from the console reach it
        await _console(s, args.console_seconds)
    finally:
        worker.stop()
    return 0


async def _console(s: Settings, seconds: float | None) -> None:
    """Serve the analysts' console on this run's alerts (demo login), as its own
    ``pipeline console`` process, the way an operator runs it."""
    if seconds is None:
        seconds = None if sys.stdin.isatty() else 20.0
    if seconds == 0:
        return
    cs = s.replace(
        dev_mode=True,  # the console's local demo login
        console_identity_header="",
        console_secret=s.console_secret or secrets.token_urlsafe(24),
    )
    command = [sys.executable, "-m", "pipeline", "console"]
    if seconds is not None:
        command += ["--stop-after", f"{seconds:g}"]
    until = "Ctrl-C stops the demo" if seconds is None else f"it stops after {seconds:g} s"
    print(f"\nthe analysts' console: sign in with any name (demo login); {until}", flush=True)
    proc = await asyncio.create_subprocess_exec(*command, env=worker_env(cs))
    try:
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _summary(s: Settings, alerts: list[dict[str, Any]], malicious: list[Any]) -> None:
    """How many alerts, how many name a planted incident, and the Postgres table."""
    latest: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a["revision"] >= latest.get(a["alert_id"], {"revision": 0})["revision"]:
            latest[a["alert_id"]] = a
    planted = {e for i in malicious for e in i.event_ids}
    caught = [
        i for i in malicious if set(i.event_ids) & {e for a in alerts for e in a["event_ids"]}
    ]
    true_alerts = [a for a in latest.values() if set(a["event_ids"]) & planted]
    print(
        f"\n{len(latest)} alerts ({len(alerts)} revisions); {len(true_alerts)} name a planted "
        f"incident; {len(caught)}/{len(malicious)} planted incidents caught"
    )
    await _show_table(s, list(latest))


async def _follow_alerts(
    s: Settings, worker: WorkerProcess, expected_events: int, idle: float
) -> list[dict[str, Any]]:
    consumer = clients.consumer(s, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    alerts: list[dict[str, Any]] = []
    try:
        n = await partition_count(s.kafka_bootstrap, s.alerts_topic)
        tps = [TopicPartition(s.alerts_topic, p) for p in range(n)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_since = time.monotonic()
        shown: dict[str, str] = {}  # alert_id -> severity last printed
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    a = orjson.loads(rec.value)
                    alerts.append(a)
                    quiet_since = time.monotonic()
                    # new incidents and severity changes; other revisions only counted
                    if shown.get(a["alert_id"]) != a["severity"]:
                        shown[a["alert_id"]] = a["severity"]
                        print(_line(a), flush=True)
            drained = await asyncio.to_thread(worker.metric, "pipeline_events_in_total")
            if drained >= expected_events and time.monotonic() - quiet_since > idle:
                return alerts
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker stopped; log:\n{worker.tail()}")
    finally:
        await consumer.stop()


async def _show_table(s: Settings, alert_ids: list[str]) -> None:
    try:
        conn = await asyncpg.connect(s.database_url)
    except OSError as exc:
        print(f"(Postgres not reachable: {exc})")
        return
    try:
        rows = await conn.fetch(
            "SELECT severity, count(*) AS n, max(revision) AS max_rev FROM alerts "
            "WHERE alert_id = ANY($1::text[]) GROUP BY severity ORDER BY n DESC",
            alert_ids,
        )
    finally:
        await conn.close()
    print("Postgres table `alerts` for this run:")
    for r in rows:
        print(f"  {r['severity']:>8}: {r['n']} alerts (highest revision {r['max_rev']})")
