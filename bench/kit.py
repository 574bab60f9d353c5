"""Helpers shared by ``bench/throughput.py`` and ``bench/latency.py``.

Both benchmarks run against a real broker and Postgres, start real
``pipeline worker`` processes (:class:`simbank.workers.WorkerProcess`) and read
their ``/metrics`` page. What is common lives here: run names, settings, the
Postgres schema of a run, topic clean-up, reading the metrics page, CPU
counters from ``/proc`` and the description of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.broker.topics import start_admin  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from simbank.workers import WorkerProcess  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results"
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def run_name(kind: str) -> str:
    """A unique, sortable name for one run: ``bench-<kind>-<UTC time>-<pid>``. Topics,
    consumer groups and the Postgres schema of the run all start with it."""
    return f"bench-{kind}-{datetime.now(UTC):%Y%m%d%H%M%S}-{os.getpid()}"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def default_bootstrap() -> str:
    return os.environ.get("PIPELINE_KAFKA_BOOTSTRAP") or Settings().kafka_bootstrap


def default_database_url() -> str:
    return os.environ.get("PIPELINE_DATABASE_URL") or Settings().database_url


def base_settings(bootstrap: str, **changes: Any) -> Settings:
    """The environment's settings (Kafka TLS/SASL included) with this run's broker and
    ``changes``; a pseudonym key of its own so that a worker starts without dev mode."""
    changes.setdefault("pseudonym_key", "bench-pseudonym-key")
    return Settings.from_env().replace(kafka_bootstrap=bootstrap, **changes)


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with the server setting search_path=schema (asyncpg passes it on)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


async def create_schema(database_url: str, schema: str) -> str:
    """Create ``schema`` (the worker migrates it at start); return the DSN that uses it."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return with_search_path(database_url, schema)


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def delete_topics(settings: Settings, starting_with: str) -> list[str]:
    """Delete every topic whose name starts with ``starting_with`` (the run's contract
    topics, and the internal and changelog topics of its consumer groups)."""
    admin = await start_admin(settings)
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(starting_with))
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def committed(admin: Any, group: str, topic: str) -> int:
    """Sum over ``topic``'s partitions of the offsets ``group`` has committed: equal to the
    number of records when the topic holds nothing else and the group has read it all."""
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(max(0, int(o.offset)) for tp, o in offsets.items() if tp.topic == topic)


def schema_name(run: str) -> str:
    return run.replace("-", "_")


# -- machine -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def busy_cores(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Cores the whole machine kept busy between two :func:`machine_cpu` readings."""
    busy = after[0] - before[0]
    total = after[1] - before[1]
    return round(busy / total * (os.cpu_count() or 1), 2) if total > 0 else 0.0


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) and of its live
    children (a worker's scoring process)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    total = (int(rest[11]) + int(rest[12])) / CLOCK_TICKS
    with (
        contextlib.suppress(OSError),
        open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f,
    ):
        for child in f.read().split():
            with contextlib.suppress(OSError):
                total += process_cpu(int(child))
    return total


# -- a worker's /metrics page -----------------------------------------------------------


@dataclass
class Scrape:
    """One reading of a worker's ``/metrics`` page."""

    at: float
    cpu: float  # the worker process's CPU seconds at that moment
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def total(self, name: str, **labels: str) -> float:
        return sum(
            v
            for lab, v in self.samples.get(name, [])
            if all(lab.get(k) == want for k, want in labels.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        return {lab[label]: v for lab, v in self.samples.get(name, []) if label in lab}


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def scrape(worker: WorkerProcess) -> Scrape:
    text = worker.metrics()  # "" when the page does not answer
    at = time.time()
    cpu = process_cpu(worker.proc.pid) if worker.proc.poll() is None else 0.0
    return Scrape(at, cpu, parse_metrics(text) if text else {})


async def scrape_all(workers: Sequence[WorkerProcess]) -> list[Scrape]:
    return list(await asyncio.gather(*(asyncio.to_thread(scrape, w) for w in workers)))


def check_alive(workers: Iterable[WorkerProcess]) -> None:
    for w in workers:
        if w.proc.poll() is not None:
            raise RuntimeError(f"a worker exited (status {w.proc.returncode}); log:\n{w.tail()}")


def histogram_buckets(s: Scrape, name: str) -> list[tuple[float, float]]:
    """Cumulative ``(upper bound, count)`` of a histogram without labels, in order."""
    out = [(float(lab["le"]), v) for lab, v in s.samples.get(f"{name}_bucket", []) if "le" in lab]
    return sorted(out)


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket that
    holds the q-quantile; the highest finite bound when it falls in ``+Inf``."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def diff_buckets(
    after: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The observations between two readings of the same cumulative histogram."""
    old = dict(before)
    return [(b, c - old.get(b, 0.0)) for b, c in after]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when empty)."""
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


# -- watching workers drain a topic ---------------------------------------------------------


@dataclass
class Reading:
    """The ``/metrics`` pages of every worker, and the machine's CPU counters, at ``at``."""

    at: float
    scrapes: list[Scrape]
    machine: tuple[float, float]


def processed(x: Scrape) -> float:
    """Access records the worker finished: effects published, state written, acked."""
    return x.total("pipeline_batch_records_sum")


def unchanged_for(readings: Sequence[Reading], seconds: float) -> bool:
    """Nothing processed and no alert sent by any worker during the last ``seconds``."""

    def key(r: Reading) -> list[tuple[float, float]]:
        return [(processed(x), x.total("pipeline_alerts_out_total")) for x in r.scrapes]

    last = readings[-1]
    for r in reversed(readings):
        if key(r) != key(last):
            return False
        if last.at - r.at >= seconds:
            return True
    return False


async def watch_drain(
    workers: Sequence[WorkerProcess],
    settings: Settings,
    target: int,
    *,
    poll: float,
    timeout: float,
    settle: float = 2.0,
    healthy: list[float | None] | None = None,
    began: float | None = None,
) -> list[Reading]:
    """Read every worker's ``/metrics`` every ``poll`` s until the group has committed
    ``target`` offsets of the access topic and nothing changed for ``settle`` s.

    The group's committed offsets (Faust commits acknowledged records only) say when
    the topic is drained, not the workers' lag gauge, which stays at the high watermark
    for a partition a worker holds but never received a record of. ``healthy``, when
    given, gets the seconds since ``began`` at which each worker answered ``/health``
    with 200 (readings start at once: a worker consumes as soon as it is healthy)."""
    admin = await start_admin(settings)
    readings: list[Reading] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            check_alive(workers)
            if healthy is not None:
                for i, w in enumerate(workers):
                    if healthy[i] is None and (await asyncio.to_thread(w.health))[0] == 200:
                        healthy[i] = time.monotonic() - (began or 0.0)
            scrapes = await scrape_all(workers)
            readings.append(Reading(time.time(), scrapes, machine_cpu()))
            consumed = sum(
                x.total("pipeline_events_in_total", topic=settings.access_topic) for x in scrapes
            )
            if (
                consumed > 0
                and unchanged_for(readings, settle)
                and await committed(admin, settings.app_id, settings.access_topic) >= target
            ):
                return readings
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers did not drain {target} events in {timeout:.0f} s")
            await asyncio.sleep(poll)
    finally:
        await admin.close()


def drain_span(readings: Sequence[Reading], topic: str) -> tuple[int, int]:
    """Indexes of the first reading where a worker had consumed a record of ``topic``
    and of the first where every worker had processed all it ever processed."""
    start = next(
        i
        for i, r in enumerate(readings)
        if any(x.total("pipeline_events_in_total", topic=topic) > 0 for x in r.scrapes)
    )
    final = [processed(x) for x in readings[-1].scrapes]
    end = max(
        next(i for i, r in enumerate(readings) if processed(r.scrapes[k]) >= final[k])
        for k in range(len(final))
        if final[k] > 0
    )
    return start, end
