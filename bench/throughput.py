"""How many access events per second does a worker drain, against what Kafka and Faust allow?

One run, one broker, one topic of N access events (``--events``, default
150,000, from the simulated bank of ``simbank.simulate``: 200 staff, seed 7, the
first N events of 16 days; ``--partitions`` 4, keyed by ``staff_id`` as the
contract says), published once with simbank's own publisher together with the
bank's reference data. Then, one after the other, each of these consumers reads
the whole topic from the beginning in a consumer group of its own:

(a) ``raw``: one aiokafka consumer (from ``pipeline.broker.clients``, with the
    consumer settings the worker's Faust app passes to aiokafka: max poll
    records, max partition fetch size, fetch wait, CRC checks, no auto commit)
    calling ``getmany`` and ``orjson.loads`` on every value;
(b) ``noop``: a Faust app built by the worker's own ``create_app`` (so the
    same broker, consumer, commit and buffer settings) with one agent that
    takes batches as the worker's access agent does (``noack_take`` with the
    worker's batch size and wait), ``orjson.loads`` every value and
    acknowledges it; with Faust's own fetch loop (the worker's replacement,
    ``pipeline.worker.faust_drain``, taken out again): the framework as
    released;
(b') ``noop-eager``: the same agent with the worker's fetch loop;
(c) ``worker``: one real ``pipeline worker`` process (``simbank.workers.
    WorkerProcess``) with its default settings, so scoring in its child
    process (``PIPELINE_SCORING_PROCESS``): every detector on, reference data
    loaded before it scores, alerts to the alert topic and to Postgres (a
    schema of this run); its CPU seconds are both processes';
(c') ``worker-inprocess``: the same with ``PIPELINE_SCORING_PROCESS=false``
    (one process: Faust and the core on one event loop);
(d) ``workers2``: two such processes in one consumer group (``--modes``);
(e) ``workers4``: four (on 4 partitions, one each; on a 2-core machine they
    share the cores, so this measures the group's overhead, not its scaling);
(f) ``split-probe``: (b') shipping each batch to a child process that runs the
    pure core and replying with alerts and states (``bench/split_probe.py``: a
    probe of a scoring-process design, not the worker). Its CPU seconds are the
    Faust process's; the child's are reported beside them.

(a), (b) and (f) run in their own processes too (this script, ``--role``), so
every consumer has its own interpreter and event loop and the orchestrating
process stays idle meanwhile.

What is timed: from the first batch handed to the consumer's code to the
moment the last of the N events has been processed. (a), (b) and (f) time
themselves with ``time.perf_counter``. For the workers this process reads
every worker's ``/metrics`` page every ``--poll`` seconds (default 0.2):
the start is the first reading where ``pipeline_events_in_total`` is above
0; the end is, once the group has committed all N offsets (asked of the
broker: Faust commits acknowledged records only) and nothing has changed
for 2 s, the first reading where each worker's count of processed records
(``pipeline_batch_records_sum``: records the access agent finished, effects
published and acknowledged) had reached its final value. The figures are
therefore good to about one poll interval at each end. With two
workers the first one to join usually starts alone and a rebalance follows;
the run reports the whole span, and the *steady* rate from the first reading
where the two workers hold disjoint partitions covering the topic (records
counted as processed minus redelivered duplicates).

Besides events/s each mode reports the CPU seconds of the consuming
process(es) over the timed span, and the cores the whole machine was busy
(``/proc/stat``: the broker, Postgres and anything else running count too).
Prints a table, appends the run to ``bench/results/throughput.json`` (the
last five runs are kept: figures on a shared machine vary from run to run),
deletes the run's topics and its Postgres schema. Nothing is asserted.

    PYTHONPATH=. .venv/bin/python bench/throughput.py \\
        --bootstrap 127.0.0.1:19292 \\
        --database-url postgresql://pipeline:pipeline@127.0.0.1:15432/pipeline
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import kit  # bench/kit.py, beside this file (puts the repository on sys.path)
import orjson
import split_probe

from pipeline.settings import Settings
from simbank.broker import Publisher, ensure_topics
from simbank.evaluate.realrun import free_port
from simbank.simulate import SimConfig, generate
from simbank.workers import WorkerProcess

MODES: Final = (
    "raw",
    "noop",
    "noop-eager",
    "split-probe",
    "worker",
    "worker-inprocess",
    "workers2",
    "workers4",
)
ROLES: Final = ("raw", "noop", "noop-eager", "split-probe")
LABELS: Final = {
    "raw": "(a) aiokafka getmany + orjson.loads",
    "noop": "(b) Faust no-op agent, Faust's fetch loop",
    "noop-eager": "(b') Faust no-op agent, the worker's loop",
    "split-probe": "(f) (b') + the core in a child process",
    "worker": "(c) 1 pipeline worker, all detectors",
    "worker-inprocess": "(c') (c) with PIPELINE_SCORING_PROCESS=false",
    "workers2": "(d) 2 pipeline workers, one group",
    "workers4": "(e) 4 pipeline workers, one group",
}
WORKERS: Final = {"worker": 1, "worker-inprocess": 1, "workers2": 2, "workers4": 4}


# -- (a) and (b): run in a process of their own ----------------------------------------


def _role_settings(args: argparse.Namespace) -> Settings:
    return kit.base_settings(
        args.bootstrap,
        topic_prefix=args.prefix,
        app_id=args.group,
        partitions=args.partitions,
        web_port=free_port(),
        data_dir=Path(tempfile.mkdtemp(prefix=f"{args.group}-")),
    )


def _write_result(path: str, result: dict[str, Any]) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_bytes(orjson.dumps(result))
    tmp.rename(path)


async def _raw(args: argparse.Namespace) -> dict[str, Any]:
    """(a): aiokafka getmany + orjson.loads of every value, the worker's consumer settings."""
    from pipeline.broker import clients
    from pipeline.worker.app import create_app

    s = _role_settings(args)
    conf = create_app(s).conf  # the settings Faust hands to aiokafka for the worker
    consumer = clients.consumer(
        s,
        s.access_topic,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=conf.broker_max_poll_records,
        max_partition_fetch_bytes=conf.consumer_max_fetch_size,
        fetch_max_wait_ms=1500,  # what faust's aiokafka driver sets
        check_crcs=conf.broker_check_crcs,
    )
    await consumer.start()
    n = 0
    first = first_cpu = 0.0
    try:
        while n < args.events:
            batch = await consumer.getmany(
                timeout_ms=1000, max_records=conf.broker_max_poll_records
            )
            if not batch:
                continue
            if n == 0:
                first, first_cpu = time.perf_counter(), time.process_time()
            for records in batch.values():
                for r in records:
                    orjson.loads(r.value)
                n += len(records)
        seconds = time.perf_counter() - first
        cpu = time.process_time() - first_cpu
        await consumer.commit()
    finally:
        await consumer.stop()
    return {"events": n, "seconds": seconds, "cpu_seconds": cpu}


def _noop(args: argparse.Namespace) -> int:
    """(b): a Faust app from the worker's create_app, one agent that decodes and acks."""
    import faust

    from pipeline.worker import faust_drain
    from pipeline.worker.agents import ACCESS_BATCH, ACCESS_WITHIN
    from pipeline.worker.app import create_app
    from pipeline.worker.main import worker_options

    s = _role_settings(args).replace(log_level="warning")
    s.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(s)
    if args.role == "noop":
        faust_drain.uninstall()
    progress: dict[str, float] = {"n": 0, "first": 0.0, "first_cpu": 0.0}
    probe = split_probe.Probe(args, s) if args.role == "split-probe" else None

    def count(n: int) -> bool:
        progress["n"] += n
        return progress["n"] >= args.events

    async def finish() -> None:
        result: dict[str, Any] = {
            "events": int(progress["n"]),
            "seconds": time.perf_counter() - progress["first"],
            "cpu_seconds": time.process_time() - progress["first_cpu"],
        }
        if probe is not None:
            result["child"] = await probe.stop()
        _write_result(args.result, result)

    @app.agent(app.topic(s.access_topic, partitions=s.partitions), name="noop-decode")
    async def noop_decode(stream: Any) -> None:
        if probe is not None:
            alerts, states = app.topic(s.alerts_topic), app.topic(f"{s.topic_prefix}probe-states")
            app.add_future(probe.replies(alerts, states, stream.ack, count, finish))
        async for events in stream.noack_take(ACCESS_BATCH, within=ACCESS_WITHIN):
            if not progress["first"]:
                progress["first"] = time.perf_counter()
                progress["first_cpu"] = time.process_time()
            if probe is not None:
                await probe.ship(events)
                continue
            for ev in events:
                orjson.loads(ev.message.value)
            for ev in events:
                await stream.ack(ev)
            if count(len(events)):
                await finish()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    faust.Worker(app, loop=loop, **worker_options(s)).execute_from_commandline()
    return 0


def role_main(args: argparse.Namespace) -> int:
    if args.role == "raw":
        _write_result(args.result, asyncio.run(_raw(args)))
        return 0
    return _noop(args)


async def run_role(
    role: str, args: argparse.Namespace, prefix: str, group: str, events: int, log_dir: Path
) -> dict[str, Any]:
    """Start this script as ``--role`` and wait for its result file."""
    result = log_dir / f"{role}.json"
    log = log_dir / f"{role}.log"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        role,
        "--bootstrap",
        args.bootstrap,
        "--prefix",
        prefix,
        "--group",
        group,
        "--events",
        str(events),
        "--partitions",
        str(args.partitions),
        "--result",
        str(result),
        "--seed",
        str(args.seed),
        "--staff",
        str(args.staff),
        "--days",
        str(args.days),
        "--probe-io",
        args.probe_io,
        "--probe-depth",
        str(args.probe_depth),
    ]
    cpu0 = kit.machine_cpu()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + args.timeout
            while not result.exists():
                if proc.poll() is not None:
                    raise RuntimeError(f"{role} exited with {proc.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{role} did not finish in {args.timeout:.0f} s; see {log}")
                await asyncio.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
    cpu1 = kit.machine_cpu()
    data: dict[str, Any] = orjson.loads(result.read_bytes())
    # the machine's busy cores over the whole life of the process (start-up included)
    data["machine_busy_cores_process_lifetime"] = kit.busy_cores(cpu0, cpu1)
    return data


# -- (c) and (d): real worker processes --------------------------------------------------


async def run_workers(
    count: int, s: Settings, events: int, log_dir: Path, poll: float, timeout: float
) -> dict[str, Any]:
    """Start ``count`` workers at once; time them draining the topic (module docstring)."""
    procs: list[WorkerProcess] = []
    began = time.monotonic()
    try:
        for i in range(count):
            ws = s.replace(data_dir=log_dir / f"{s.app_id}-data-{i}")
            procs.append(WorkerProcess(ws, log_dir / f"{s.app_id}-{i}.log", free_port()))
        healthy: list[float | None] = [None] * count
        readings = await kit.watch_drain(
            procs, s, events, poll=poll, timeout=timeout, healthy=healthy, began=began
        )
        return _worker_figures(readings, s, events, healthy)
    finally:
        for w in procs:
            w.stop()


def _worker_figures(
    readings: list[kit.Reading],
    s: Settings,
    events: int,
    healthy: list[float | None],
) -> dict[str, Any]:
    topic = s.access_topic
    start, end = kit.drain_span(readings, topic)
    final = [kit.processed(x) for x in readings[-1].scrapes]
    a, b = readings[start], readings[end]
    seconds = b.at - a.at
    last = readings[-1].scrapes
    out: dict[str, Any] = {
        "events": events,
        "seconds": seconds,
        "cpu_seconds": sum(y.cpu - x.cpu for x, y in zip(a.scrapes, b.scrapes, strict=True)),
        "machine_busy_cores": kit.busy_cores(a.machine, b.machine),
        "seconds_to_healthy": [None if h is None else round(h, 1) for h in healthy],
        "records_processed": sum(final),
        "events_consumed": sum(x.total("pipeline_events_in_total", topic=topic) for x in last),
        "duplicates_skipped": sum(x.total("pipeline_events_duplicate_total") for x in last),
        "dead_lettered": sum(x.total("pipeline_events_dead_lettered_total") for x in last),
        "alerts_out": sum(x.total("pipeline_alerts_out_total") for x in last),
        "state_writes": sum(x.total("pipeline_state_writes_total") for x in last),
        "batches_dropped": sum(x.total("pipeline_batches_dropped_total") for x in last),
        "poll_seconds": round(readings[1].at - readings[0].at, 3) if len(readings) > 1 else None,
        "batch_phase_seconds": {
            phase: round(
                sum(x.total("pipeline_batch_phase_seconds_sum", phase=phase) for x in last), 2
            )
            for phase in ("score", "publish", "state", "ack")
        },
        "access_batches": sum(
            x.total("pipeline_batch_seconds_count", agent="score-access") for x in last
        ),
        "postgres_write_seconds": round(
            sum(x.total("pipeline_postgres_write_seconds_sum") for x in last), 2
        ),
    }
    if len(final) > 1:
        out.update(_steady(readings[start : end + 1], s.partitions))
    return out


def _partitions_held(x: kit.Scrape) -> set[str]:
    return set(x.by_label("pipeline_consumer_lag_messages", "partition"))


def _unique_done(r: kit.Reading) -> float:
    return sum(kit.processed(x) - x.total("pipeline_events_duplicate_total") for x in r.scrapes)


def _steady(readings: list[kit.Reading], partitions: int) -> dict[str, Any]:
    """The rate once every worker holds partitions, disjoint and covering the topic."""
    every = {str(p) for p in range(partitions)}
    for r in readings:
        held = [_partitions_held(x) for x in r.scrapes]
        disjoint = sum(len(h) for h in held) == len(set().union(*held))
        if all(held) and disjoint and set().union(*held) == every:
            a, b = r, readings[-1]
            n = _unique_done(b) - _unique_done(a)
            span = b.at - a.at
            return {
                "steady_from_seconds": round(a.at - readings[0].at, 2),
                "steady_events": n,
                "steady_seconds": span,
                "steady_events_per_second": round(n / span) if span > 0 else None,
                "split": [sorted(h, key=int) for h in held],
            }
    return {"steady_events_per_second": None, "split": None}


# -- the run ---------------------------------------------------------------------------


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    run = kit.run_name("tp")
    prefix = f"{run}."
    schema = kit.schema_name(run)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    started = kit.now_utc()
    load_before = kit.load_average()
    log_dir = Path(tempfile.mkdtemp(prefix=f"{run}-"))
    print(f"run {run}; logs in {log_dir}", flush=True)

    t0 = time.perf_counter()
    sim = generate(
        SimConfig(seed=args.seed, staff=args.staff, days=args.days, customers=args.staff * 100)
    )
    events = sim.events[: args.events]
    if len(events) < args.events:
        print(f"the simulation has only {len(events)} events (raise --days)", flush=True)
    n = len(events)
    print(f"simulated {len(sim.events):,} events in {time.perf_counter() - t0:.1f} s", flush=True)

    base = kit.base_settings(args.bootstrap, topic_prefix=prefix, partitions=args.partitions)
    results: dict[str, dict[str, Any]] = {}
    db_url: str | None = None
    try:
        await ensure_topics(args.bootstrap, prefix, args.partitions, base.replication_factor)
        pub = Publisher(args.bootstrap, prefix)
        await pub.start()
        try:
            t0 = time.perf_counter()
            refs = await pub.reference(sim)
            await pub.events(events)
            publish_s = time.perf_counter() - t0
        finally:
            await pub.stop()
        print(f"published {refs:,} reference records and {n:,} events in {publish_s:.1f} s")
        if set(WORKERS) & set(modes):
            db_url = await kit.create_schema(args.database_url, schema)
        for mode in modes:
            await asyncio.sleep(args.pause)  # let the broker settle between consumers
            group = f"{run}-{mode}"
            load = kit.load_average()
            print(f"{LABELS[mode]} ...", flush=True)
            if mode in ROLES:
                r = await run_role(mode, args, prefix, group, n, log_dir)
            else:
                assert db_url is not None
                ws = base.replace(app_id=group, database_url=db_url)
                if mode == "worker-inprocess":
                    ws = ws.replace(scoring_process=False)
                count = WORKERS[mode]
                r = await run_workers(count, ws, n, log_dir, args.poll, args.timeout)
            r["load_average_before"] = load
            r["events_per_second"] = round(r["events"] / r["seconds"]) if r["seconds"] else None
            if r.get("cpu_seconds"):
                r["events_per_cpu_second"] = round(r["events"] / r["cpu_seconds"])
            results[mode] = r
            print(f"  {r['events']:,} events in {r['seconds']:.2f} s: {r['events_per_second']:,}/s")
    finally:
        if not args.keep:
            with contextlib.suppress(Exception):
                deleted = await kit.delete_topics(base, run)
                print(f"deleted {len(deleted)} topics", flush=True)
            if db_url is not None:
                with contextlib.suppress(Exception):
                    await kit.drop_schema(args.database_url, schema)
    return {
        "benchmark": "throughput",
        "date": started,
        "command": kit.command_line(),
        "machine": kit.machine(),
        "load_average_1_5_15": {"before": load_before, "after": kit.load_average()},
        "setup": {
            "events": n,
            "reference_records": refs,
            "partitions": args.partitions,
            "simulation": {"seed": args.seed, "staff": args.staff, "days": args.days},
            "publish_seconds": round(publish_s, 1),
            "poll_seconds": args.poll,
        },
        "modes": results,
        "ratios": _ratios(results),
    }


def _ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    def rate(mode: str) -> float | None:
        r = results.get(mode)
        return None if r is None else r.get("events_per_second")

    out: dict[str, float] = {}
    for num, den in (
        ("worker", "noop"),
        ("worker", "noop-eager"),
        ("noop-eager", "noop"),
        ("split-probe", "noop-eager"),
        ("worker", "raw"),
        ("worker-inprocess", "noop-eager"),
        ("worker", "worker-inprocess"),
        ("noop", "raw"),
        ("workers2", "worker"),
        ("workers2", "noop"),
        ("workers4", "worker"),
        ("workers4", "workers2"),
    ):
        a, b = rate(num), rate(den)
        if a and b:
            out[f"{num}/{den}"] = round(a / b, 3)
    return out


def table(doc: dict[str, Any]) -> str:
    rows = [("mode", "events", "seconds", "events/s", "CPU s", "ev/CPU-s", "busy cores")]
    for mode, r in doc["modes"].items():
        rows.append(
            (
                LABELS[mode],
                f"{r['events']:,}",
                f"{r['seconds']:.2f}",
                f"{r['events_per_second']:,}",
                f"{r['cpu_seconds']:.1f}",
                f"{r.get('events_per_cpu_second', 0):,}",
                str(r.get("machine_busy_cores", r.get("machine_busy_cores_process_lifetime"))),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for mode in ("workers2", "workers4"):
        w = doc["modes"].get(mode)
        if w and w.get("steady_events_per_second"):
            lines.append(
                f"{LABELS[mode][:3]} steady, from {w['steady_from_seconds']} s on, partitions "
                f"{w['split']}: {w['steady_events_per_second']:,} events/s"
            )
    child = doc["modes"].get("split-probe", {}).get("child")
    if child:
        lines.append(
            f"(f) child process: {child['cpu_seconds']:.1f} CPU s for {child['events']:,} events "
            f"({child['handled']:,} handled)"
        )
    lines.append("ratios: " + ", ".join(f"{k} = {v:.3f}" for k, v in doc["ratios"].items()))
    la = doc["load_average_1_5_15"]
    lines.append(f"load average before {la['before']}, after {la['after']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--bootstrap", default=kit.default_bootstrap(), help="default: $PIPELINE_KAFKA_BOOTSTRAP"
    )
    ap.add_argument(
        "--database-url", default=kit.default_database_url(), help="default: $PIPELINE_DATABASE_URL"
    )
    ap.add_argument("--events", type=int, default=150_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--staff", type=int, default=200)
    ap.add_argument("--days", type=int, default=16)
    ap.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}"
    )
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between /metrics readings")
    ap.add_argument("--pause", type=float, default=3.0, help="seconds between two modes")
    ap.add_argument("--timeout", type=float, default=300.0, help="per mode")
    ap.add_argument("--keep", action="store_true", help="keep the topics and the schema")
    ap.add_argument(
        "--probe-io",
        choices=("loop", "threads"),
        default="loop",
        help="(f): frames through the pipe on the event loop, or in executor threads",
    )
    ap.add_argument(
        "--probe-depth", type=int, default=split_probe.DEPTH, help="(f): batches in flight"
    )
    ap.add_argument("--out", type=Path, default=kit.RESULTS / "throughput.json")
    # internal: one consumer of (a) or (b), started by the run itself
    ap.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        return role_main(args)
    doc = asyncio.run(orchestrate(args))
    print()
    print(table(doc))
    save(args.out, doc)
    print(f"wrote {args.out}")
    return 0


KEEP_RUNS: Final = 5


def save(path: Path, doc: dict[str, Any]) -> None:
    """Append ``doc`` to the runs of the results file (the last KEEP_RUNS are kept)."""
    runs: list[dict[str, Any]] = []
    if path.exists():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            runs = list(json.loads(path.read_text())["runs"])
    runs = [*runs, doc][-KEEP_RUNS:]
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": "throughput", "runs": runs}
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
