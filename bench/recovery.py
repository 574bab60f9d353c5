"""How long does the pipeline take to recover after a worker is killed with ``kill -9``?

A simulated bank (``simbank``: 200 staff, 14 days by default) is published to a
broker of its own topic prefix: the reference data, then the first
``--warmup-days`` of accesses at full speed (so that the per-employee state
and its changelog topic hold a week of history), then the remaining accesses
as live traffic at ``--rate`` accesses per second for the rest of the run. Real
``pipeline worker`` processes consume it (``simbank.workers.WorkerProcess``,
as the chaos suite starts them). For each variant and ``--repeats`` times, once
the group is steady, one worker gets SIGKILL and (in most variants) is
restarted at once, and the benchmark measures, in seconds from the kill:

* ``health``: the restarted worker's ``GET /health`` answers 200 (joined the
  group, state restored, reference data and peer statistics loaded);
* ``moving``: every partition of ``{prefix}access-events`` that stopped
  (records waiting and no commit for ``STALL_S``) commits again: the end of
  the last such stall, across partitions. The committed offsets are read
  from the broker by the benchmark itself (the group's OffsetFetch, every
  ``SAMPLE_S``), as ``kafka-consumer-groups`` or KEDA see them;
  ``first_event`` is when the restarted worker's
  ``pipeline_events_in_total`` first moves;
* ``caught_up``: the group's committed lag (sum over partitions of end
  offset minus committed offset) is back under the steady-state threshold:
  the larger of two seconds of traffic and the 95th percentile of the lag
  in the ``BASELINE_S`` before the kill (the workers commit every second,
  so a live lag is never exactly zero).

From the restarted worker's log it also takes a breakdown (its first log
line, group joined, state restore start and end, Faust "Worker ready",
reference data loaded) and which changelog partitions it restored, whose
records and bytes are then read from the broker (up to the offsets it
restored). The CPU share and resident memory of every worker over the
baseline window are recorded too, so that what standby replicas cost shows.

Variants (``--variants``, default all but the ``takeover`` ones):
``one-dynamic`` (one worker, no ``PIPELINE_INSTANCE_ID``, restarted with the
same settings and data dir), ``one-static`` (the same with a fixed
``PIPELINE_INSTANCE_ID``: static membership), ``one-static-fresh-dir``
(static, restarted on an empty ``PIPELINE_DATA_DIR``), ``two-dynamic`` and
``two-static`` (two workers, one killed and restarted),
``two-dynamic-standby`` (two dynamic workers with
``PIPELINE_STANDBY_REPLICAS=1``), ``two-takeover`` and
``two-takeover-standby`` (two dynamic workers, the killed one not restarted:
the survivor takes its partitions over; the killed one is started again,
unmeasured, before the next trial).

By default the benchmark creates the state changelog topic itself with
``segment.ms`` = ``--changelog-segment-ms`` (10 s) and
``min.cleanable.dirty.ratio`` 0.01, so that the broker compacts it while the
run goes on and every trial restores about the same amount (the live set
plus the last seconds of writes). ``--changelog-segment-ms 0`` leaves the
topic to Faust and the broker's defaults (compacted only once a 1 GiB or
7-day segment closes): then every trial restores every write made so far,
which grows by several MB per second of live traffic (bench/README.md).

Topics get a unique prefix and app id (``rec<time>``) and are deleted at the
end, as is the Postgres schema the workers write their alerts to
(``--keep`` keeps both). Results: printed, and written to
``bench/results/recovery.json`` with the date, command, machine and load
average.

    PIPELINE_KAFKA_PORT=19392 PIPELINE_KAFKA_CONTROLLER_PORT=19393 PIPELINE_PG_PORT=15433 \\
      INFRA_STATE_DIR=/tmp/recovery-infra bash infra/with-services.sh \\
      .venv/bin/python bench/recovery.py [--repeats 3] [--variants one-dynamic,one-static]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.broker import clients  # noqa: E402
from pipeline.broker.topics import ensure_topics  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from simbank.workers import WorkerProcess  # noqa: E402
from tests.chaos.harness import (  # noqa: E402
    Bank,
    publish_accesses,
    publish_reference,
    small_bank,
)
from tests.integration.kit import free_port  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results" / "recovery.json"
SAMPLE_S: Final = 0.25  # how often the committed and end offsets are read
STALL_S: Final = 3.0  # no commit for this long while records wait: the partition stopped
BASELINE_S: Final = 5.0  # steady window before each kill (lag threshold, CPU, memory)
STEADY_S: Final = 4.0  # the group must be steady this long before a kill
TRIAL_TIMEOUT_S: Final = 90.0  # recovery is expected in < 30 s
FIRST_SETTLE_S: Final = 420.0  # the first workers also drain the warm-up backlog
LOG_TS: Final = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[\w+\] (.*)$")
HIGHWATER_ROW: Final = re.compile(r"^\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|$")
LAG_LABEL: Final = re.compile(r'^pipeline_consumer_lag_messages\{[^}]*partition="(\d+)"')


@dataclass(frozen=True)
class Variant:
    name: str
    workers: int
    static: bool
    about: str
    fresh_dir: bool = False
    standby: int = 0
    restart: bool = True


VARIANTS: Final = {
    v.name: v
    for v in (
        Variant(
            "one-dynamic",
            1,
            False,
            "one worker, no PIPELINE_INSTANCE_ID; restarted with the same settings and data dir",
        ),
        Variant(
            "one-static",
            1,
            True,
            "one worker with PIPELINE_INSTANCE_ID (static membership); restarted under the same "
            "id and data dir",
        ),
        Variant(
            "one-static-fresh-dir",
            1,
            True,
            "as one-static, restarted on an empty PIPELINE_DATA_DIR",
            fresh_dir=True,
        ),
        Variant("two-dynamic", 2, False, "two workers, dynamic membership; one killed, restarted"),
        Variant(
            "two-static",
            2,
            True,
            "two workers with PIPELINE_INSTANCE_ID; one killed, restarted under its id",
        ),
        Variant(
            "two-dynamic-standby",
            2,
            False,
            "two-dynamic with PIPELINE_STANDBY_REPLICAS=1",
            standby=1,
        ),
        Variant(
            "two-takeover",
            2,
            False,
            "two dynamic workers; one killed and not restarted: the survivor takes over",
            restart=False,
        ),
        Variant(
            "two-takeover-standby",
            2,
            False,
            "two-takeover with PIPELINE_STANDBY_REPLICAS=1",
            standby=1,
            restart=False,
        ),
    )
}
DEFAULT_VARIANTS: Final = tuple(n for n, v in VARIANTS.items() if v.restart and not v.standby)


@dataclass
class Sample:
    at: float  # monotonic
    committed: dict[int, int]
    end: dict[int, int]

    @property
    def lag(self) -> int:
        return sum(max(0, self.end[p] - max(0, c)) for p, c in self.committed.items())


class GroupProbe:
    """Reads the group's committed offsets and the end offsets of the access topic."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.tps = [TopicPartition(s.access_topic, p) for p in range(s.partitions)]
        self.admin: AIOKafkaAdminClient = clients.admin(s)
        self.consumer: AIOKafkaConsumer = clients.consumer(s, group_id=None)
        self.coordinator: int | None = None
        self.samples: list[Sample] = []

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def sample(self) -> Sample:
        if self.coordinator is None:
            self.coordinator = await self.admin.find_coordinator(self.s.app_id)
        try:
            offsets = await self.admin.list_consumer_group_offsets(
                self.s.app_id, self.coordinator, self.tps
            )
        except KafkaError:
            self.coordinator = None
            raise
        end = await self.consumer.end_offsets(self.tps)
        return Sample(
            time.monotonic(),
            {tp.partition: offsets[tp].offset if tp in offsets else -1 for tp in self.tps},
            {tp.partition: int(end[tp]) for tp in self.tps},
        )

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            with contextlib.suppress(KafkaError, OSError):
                self.samples.append(await self.sample())
            await asyncio.sleep(max(0.0, SAMPLE_S - (time.monotonic() - started)))

    def since(self, t: float) -> list[Sample]:
        return [x for x in self.samples if x.at >= t]


def stalls(samples: Sequence[Sample], partition: int) -> list[tuple[float, float]]:
    """(start, end) of each interval of at least STALL_S in which ``partition`` had records
    waiting and committed nothing; an open stall ends at +inf."""
    out: list[tuple[float, float]] = []
    if not samples:
        return out
    last_move = samples[0].at
    prev = samples[0]
    for x in samples[1:]:
        c, pc = x.committed[partition], prev.committed[partition]
        if c != pc:
            waiting = prev.end[partition] > max(0, pc)
            if waiting and x.at - last_move >= STALL_S:
                out.append((last_move, x.at))
            last_move = x.at
        elif x.end[partition] <= max(0, c):
            last_move = x.at  # nothing to do: idle, not stalled
        prev = x
    last = samples[-1]
    if last.end[partition] > max(0, last.committed[partition]) and last.at - last_move >= STALL_S:
        out.append((last_move, float("inf")))
    return out


def flowing(samples: Sequence[Sample], partitions: int, now: float) -> bool:
    """Every partition committed within STALL_S or has nothing waiting."""
    window = [x for x in samples if x.at >= now - STALL_S]
    if len(window) < 2:
        return False
    for p in range(partitions):
        if window[-1].end[p] <= max(0, window[-1].committed[p]):
            continue
        if window[0].committed[p] == window[-1].committed[p]:
            return False
    return True


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def log_events(path: Path, since_wall: float) -> list[tuple[float, str]]:
    """(wall time, message) of the log lines written at or after ``since_wall``."""
    out: list[tuple[float, str]] = []
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    for line in lines:
        m = LOG_TS.match(line)
        if m is None:
            if out:  # a continuation line (Faust's tables): keep it with its record
                out.append((out[-1][0], line))
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at >= since_wall - 0.001:
            out.append((at, m.group(2)))
    return out


BREAKDOWN: Final = (
    ("first_log", None),
    ("joined", "Joined group"),
    ("restore_start", "Restoring state from changelog topics"),
    ("restore_end", "Done reading from changelog topics"),
    ("faust_ready", "Worker ready"),
    ("reference_loaded", "reference data: loaded"),
)


def breakdown(events: list[tuple[float, str]], kill_wall: float) -> dict[str, float | None]:
    """Seconds from the kill to the first log line of each step."""
    out: dict[str, float | None] = {}
    for name, needle in BREAKDOWN:
        hit = next((at for at, msg in events if needle is None or needle in msg), None)
        out[name] = None if hit is None else round(hit - kill_wall, 2)
    return out


TABLES: Final = {
    "Highwater for active changelog partitions": ("active", 1),
    "active offsets at start of reading": ("active", 0),
    "Highwater for standby changelog partitions": ("standby", 1),
    "standby offsets at start of reading": ("standby", 0),
}


def restored_ranges(
    events: list[tuple[float, str]], changelog: str
) -> dict[str, dict[int, tuple[int, int]]]:
    """Which changelog records the worker read in its recoveries after the kill, from
    Faust's tables ("Reading Starts At", "Highwater"), as ``{"active"|"standby": {partition:
    (first offset read - 1, last offset)}}``; partitions with nothing to read are left out."""
    seen: dict[str, dict[int, list[int]]] = {}
    current: tuple[str, int] | None = None
    topic = ""
    for _, msg in events:
        line = msg.strip()
        m = HIGHWATER_ROW.match(line)
        if current is not None and m is not None:
            topic = topic if m.group(1) == "〃" else m.group(1)
            if topic == changelog:
                kind, column = current
                entry = seen.setdefault(kind, {}).setdefault(int(m.group(2)), [-1, -1])
                value = int(m.group(3))
                if column == 0:  # the first start offset after the kill
                    entry[0] = value if entry[0] == -1 else min(entry[0], value)
                else:  # the last highwater
                    entry[1] = max(entry[1], value)
            continue
        if line.startswith(("+", "|")) and current is not None:
            continue  # the table's frame and header
        current = next((v for k, v in TABLES.items() if k in msg), None)
    return {
        kind: {p: (a, b) for p, (a, b) in parts.items() if b > a} for kind, parts in seen.items()
    }


async def changelog_size(
    s: Settings, topic: str, ranges: dict[int, tuple[int, int]]
) -> dict[str, Any]:
    """Records and bytes (keys + values) now in ``topic`` in the given offset ranges (start
    exclusive, end inclusive): what a recovery read, less what compaction removed since."""
    wanted = {TopicPartition(topic, p): r for p, r in ranges.items()}
    if not wanted:
        return {"partitions": [], "records": 0, "bytes": 0}
    consumer = clients.consumer(
        s, group_id=None, max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20
    )
    await consumer.start()
    records = size = 0
    try:
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start + 1)
        pending = set(wanted)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
            for tp, recs in batch.items():
                last = wanted[tp][1]
                for r in recs:
                    if r.offset <= last:
                        records += 1
                        size += len(r.key or b"") + len(r.value or b"")
            for tp in list(pending):
                if await consumer.position(tp) > wanted[tp][1]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return {"partitions": sorted(ranges), "records": records, "bytes": size}


@dataclass
class Worker:
    name: str
    settings: Settings
    port: int
    logs: Path
    proc: WorkerProcess | None = None
    starts: int = 0

    def start(self) -> WorkerProcess:
        self.proc = WorkerProcess(
            self.settings, self.logs / f"{self.name}-{self.starts}.log", self.port
        )
        self.starts += 1
        return self.proc

    def assigned(self) -> list[int]:
        assert self.proc is not None
        return sorted(
            {
                int(m.group(1))
                for ln in self.proc.metrics().splitlines()
                if (m := LAG_LABEL.match(ln))
            }
        )


@dataclass
class Run:
    args: argparse.Namespace
    base: Settings
    bank: Bank
    probe: GroupProbe
    work: Path
    publisher: asyncio.Task[None] | None = None
    results: dict[str, Any] = field(default_factory=dict)
    _steady: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: bool = False

    @property
    def changelog(self) -> str:
        return f"{self.base.app_id}-staff-state-changelog"

    def threshold(self, baseline: Sequence[Sample]) -> int:
        floor = int(self.args.rate * 2)
        return max(floor, int(pct([x.lag for x in baseline], 0.95)) if baseline else floor)

    async def settle(self, workers: list[Worker], timeout: float) -> list[Sample]:
        """Wait until every worker answers 200 and the group has been steady (flowing, lag
        under two seconds of traffic) for STEADY_S; return the BASELINE_S of samples after."""
        deadline = time.monotonic() + timeout
        steady_since: float | None = None
        while True:
            if self.publisher is not None and self.publisher.done():
                raise SystemExit("the live traffic ran out: raise --days or lower --rate")
            now = time.monotonic()
            healthy = True
            for w in workers:
                if w.proc is None or (await asyncio.to_thread(w.proc.health))[0] != 200:
                    healthy = False
                    break
            recent = self.probe.since(now - STALL_S - 1)
            ok = (
                healthy
                and bool(recent)
                and flowing(recent, self.base.partitions, now)
                and recent[-1].lag <= self.args.rate * 2
            )
            steady_since = (steady_since or now) if ok else None
            if steady_since is not None and now - steady_since >= STEADY_S:
                break
            if now > deadline:
                tails = "\n".join(w.proc.tail(20) for w in workers if w.proc is not None)
                raise SystemExit(f"the group did not settle in {timeout:.0f} s; logs:\n{tails}")
            await asyncio.sleep(0.5)
        start = time.monotonic()
        cpu0 = {w.name: proc_cpu_s(w.proc.proc.pid) for w in workers if w.proc}
        await asyncio.sleep(BASELINE_S)
        span = time.monotonic() - start
        self._steady = {
            w.name: {
                "cpu_percent": round(100 * (proc_cpu_s(w.proc.proc.pid) - cpu0[w.name]) / span, 1),
                "rss_mib": round(proc_rss_mib(w.proc.proc.pid), 1),
            }
            for w in workers
            if w.proc
        }
        return self.probe.since(start)

    async def dump(self, workers: list[Worker], kill: float, label: str) -> None:
        """What a failed trial leaves for diagnosis: the samples since a minute before the kill
        (``{label}.samples.jsonl``), and each worker's /health and pipeline metrics
        (``{label}.state.txt``)."""
        with (self.work / f"{label}.samples.jsonl").open("w") as f:
            for x in self.probe.since(kill - 60):
                row = {"t": round(x.at - kill, 2), "committed": x.committed, "end": x.end}
                f.write(json.dumps(row) + "\n")
        with (self.work / f"{label}.state.txt").open("w") as f:
            for w in workers:
                if w.proc is None:
                    continue
                status, body = await asyncio.to_thread(w.proc.health)
                f.write(f"--- {w.name} (pid {w.proc.proc.pid}): {status} {body.decode()}\n")
                metrics = await asyncio.to_thread(w.proc.metrics)
                f.write("".join(ln + "\n" for ln in metrics.splitlines() if ln.startswith("pipe")))

    async def trial(self, variant: Variant, workers: list[Worker], first: bool) -> dict[str, Any]:
        baseline = await self.settle(workers, FIRST_SETTLE_S if first else 180.0)
        threshold = self.threshold(baseline)
        victim = workers[0]
        assert victim.proc is not None
        owned = victim.assigned()
        others = [w for w in workers if w is not victim]
        kill_wall, kill = time.time(), time.monotonic()
        await asyncio.to_thread(victim.proc.stop, signal.SIGKILL)
        if variant.fresh_dir:
            fresh = self.work / f"data-{victim.name}-{victim.starts}"
            victim.settings = victim.settings.replace(data_dir=fresh)
        restarted = victim.start() if variant.restart else None
        health_at = first_event_at = None
        deadline = kill + TRIAL_TIMEOUT_S
        done_at: float | None = None
        recovered = True
        while time.monotonic() < deadline:
            now = time.monotonic()
            if restarted is not None:
                if restarted.proc.poll() is not None:
                    raise SystemExit(f"the restarted worker exited:\n{restarted.tail()}")
                if health_at is None and (await asyncio.to_thread(restarted.health))[0] == 200:
                    health_at = time.monotonic()
                if first_event_at is None:
                    n = await asyncio.to_thread(restarted.metric, "pipeline_events_in_total")
                    if n > 0:
                        first_event_at = time.monotonic()
            recent = self.probe.since(now - STALL_S - 1)
            ready = restarted is None or (health_at is not None and first_event_at is not None)
            if (
                now - kill >= STALL_S + 1
                and ready
                and recent
                and flowing(recent, self.base.partitions, now)
                and recent[-1].lag <= threshold
            ):
                if done_at is None:
                    done_at = now
                elif now - done_at >= 2.0:
                    break
            else:
                done_at = None
            await asyncio.sleep(SAMPLE_S)
        else:
            recovered = False
        window = self.probe.since(kill - BASELINE_S)
        stuck: dict[int, dict[str, Any]] = {}
        if not recovered:
            # Diagnosis kept with the logs: which partitions still wait, and whether the
            # worker holding them goes on reading them (its own lag gauge).
            self.failed = True
            label = f"{variant.name}-{victim.starts}"
            await self.dump(workers, kill, label)
            last = window[-1]
            gauges = {}
            for w in workers:
                if w.proc is not None:
                    text = await asyncio.to_thread(w.proc.metrics)
                    for ln in text.splitlines():
                        if (m := LAG_LABEL.match(ln)) is not None:
                            gauges[int(m.group(1))] = (w.name, float(ln.rsplit(" ", 1)[1]))
            for p in range(self.base.partitions):
                if any(end == float("inf") for _, end in stalls(window, p)):
                    owner, gauge = gauges.get(p, (None, None))
                    stuck[p] = {
                        "committed": last.committed[p],
                        "end": last.end[p],
                        "owner": owner,
                        "owner_lag_gauge": gauge,
                    }
            print(
                f"{variant.name}: NOT recovered {TRIAL_TIMEOUT_S:.0f} s after the kill; "
                f"partitions not committing: {stuck}; diagnosis in {self.work}/{label}.*",
                flush=True,
            )
        window = self.probe.since(kill - BASELINE_S)
        ends: dict[int, float] = {}
        for p in range(self.base.partitions):
            after = [end for _, end in stalls(window, p) if end > kill]
            if after:
                ends[p] = max(after)
        moving = max(ends.values()) if ends else None
        caught_up = None
        if moving is not None:
            caught_up = next((x.at for x in window if x.at >= moving and x.lag <= threshold), None)
        if not recovered:
            moving = caught_up = None
        out: dict[str, Any] = {
            "recovered": recovered,
            "stuck_partitions": stuck,
            "health_s": None if health_at is None else round(health_at - kill, 2),
            "first_event_s": None if first_event_at is None else round(first_event_at - kill, 2),
            "moving_s": None if moving is None else round(moving - kill, 2),
            "caught_up_s": None if caught_up is None else round(caught_up - kill, 2),
            "stalled_partitions": sorted(ends),
            "killed_worker_partitions": owned,
            "peak_lag": max(x.lag for x in window),
            "lag_threshold": threshold,
            "steady": self._steady,
        }
        if restarted is not None:
            events = log_events(restarted.log_path, kill_wall)
            out["restarted"] = breakdown(events, kill_wall)
            restored = restored_ranges(events, self.changelog)
        else:
            out["restarted"] = None
            restored = {}
        for w in others:
            assert w.proc is not None
            events = log_events(w.proc.log_path, kill_wall)
            b = breakdown(events, kill_wall)
            out.setdefault("survivors", {})[w.name] = {
                k: b[k] for k in ("restore_start", "restore_end")
            }
            if restarted is None:
                restored = restored_ranges(events, self.changelog)
        out["restored"] = {}
        for kind, ranges in restored.items():
            out["restored"][kind] = await changelog_size(self.base, self.changelog, ranges)
        if restarted is None:  # put the group back as it was, unmeasured
            victim.start()
        if not recovered:  # a clean restart of every worker clears it (unmeasured)
            for w in workers:
                if w.proc is not None:
                    await asyncio.to_thread(w.proc.stop)
                w.start()
        return out


def summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    def stat(values: Iterable[Any]) -> dict[str, float] | None:
        got = [float(v) for v in values if v is not None]
        if not got:
            return None
        return {"median": round(statistics.median(got), 2), "max": round(max(got), 2)}

    def restore_s(t: dict[str, Any]) -> float | None:
        b = t["restarted"] or {}
        if b.get("restore_start") is None or b.get("restore_end") is None:
            return None
        return float(b["restore_end"]) - float(b["restore_start"])

    def restored_mb(t: dict[str, Any]) -> float:
        return sum(int(r["bytes"]) for r in t["restored"].values()) / 1e6

    return {
        "recovered": f"{sum(1 for t in trials if t['recovered'])}/{len(trials)}",
        "health_s": stat(t["health_s"] for t in trials),
        "first_event_s": stat(t["first_event_s"] for t in trials),
        "moving_s": stat(t["moving_s"] for t in trials),
        "caught_up_s": stat(t["caught_up_s"] for t in trials),
        "joined_s": stat((t["restarted"] or {}).get("joined") for t in trials),
        "restore_s": stat(restore_s(t) for t in trials),
        "restored_mb": stat(restored_mb(t) for t in trials),
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def create_changelog(s: Settings, name: str, segment_ms: int) -> None:
    """The state table's changelog, compacted eagerly (Faust finds it and uses it)."""
    admin = clients.admin(s)
    await admin.start()
    try:
        config = {
            "cleanup.policy": "compact",
            "segment.ms": str(segment_ms),
            "min.cleanable.dirty.ratio": "0.01",
        }
        await admin.create_topics([clients.new_topic(s, name, s.partitions, config)])
    finally:
        await admin.close()


async def delete_topics(s: Settings) -> list[str]:
    admin = clients.admin(s)
    await admin.start()
    try:
        names = [
            t
            for t in await admin.list_topics()
            if t.startswith(s.topic_prefix) or t.startswith(f"{s.app_id}-")
        ]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def table(results: dict[str, Any]) -> str:
    cols = ("health_s", "moving_s", "caught_up_s", "joined_s", "restore_s", "restored_mb")
    head = f"{'variant':<22}" + "".join(f"{c.removesuffix('_s'):>16}" for c in cols)
    lines = [head, f"{'':<22}" + "".join(f"{'median / max':>16}" for _ in cols)]
    for name, v in results["variants"].items():
        row = f"{name:<22}"
        for c in cols:
            st = v["summary"][c]
            row += f"{'-':>16}" if st is None else f"{st['median']:>8.1f} / {st['max']:<5.1f}"
        lines.append(row)
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    run_id = f"rec{int(time.time())}"
    schema = f"bench_{run_id}"
    sep = "&" if "?" in args.database_url else "?"
    work = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    base = Settings.from_env().replace(
        kafka_bootstrap=args.bootstrap,
        database_url=f"{args.database_url}{sep}search_path={schema}",
        topic_prefix=f"{run_id}.",
        app_id=run_id,
        pseudonym_key="bench-recovery-key",
        session_timeout_s=args.session_timeout,
        partitions=8,
        data_dir=work / "data",
    )
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_before = load()
    began = time.perf_counter()
    print(f"load average {load_before} on {os.cpu_count()} CPUs; work dir {work}", flush=True)

    t0 = time.perf_counter()
    bank = small_bank(seed=args.seed, staff=args.staff, days=args.days, branches=args.branches)
    split = len(bank.accesses) * args.warmup_days // args.days
    print(
        f"bank: {args.staff} staff, {args.days} days, {len(bank.reference):,} reference records, "
        f"{len(bank.accesses):,} accesses ({split:,} warm-up) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    db = await asyncpg.connect(args.database_url)
    await db.execute(f"CREATE SCHEMA {schema}")
    await ensure_topics(base, replay=True)
    if args.changelog_segment_ms > 0:
        await create_changelog(base, f"{run_id}-staff-state-changelog", args.changelog_segment_ms)
    probe = GroupProbe(base)
    run = Run(args, base, bank, probe, work)
    sampler: asyncio.Task[None] | None = None
    workers: list[Worker] = []
    try:
        t0 = time.perf_counter()
        await publish_reference(base, bank)
        await publish_accesses(base, bank.accesses[:split])
        print(f"published reference and warm-up in {time.perf_counter() - t0:.1f} s", flush=True)
        await probe.start()
        sampler = asyncio.create_task(probe.run())
        run.publisher = asyncio.create_task(
            publish_accesses(base, bank.accesses[split:], rate=args.rate)
        )
        run.results = {"variants": {}}
        first = True
        for name in names:
            variant = VARIANTS[name]
            workers = []
            for i in range(variant.workers):
                wname = f"{name}-{i}"
                s = base.replace(
                    data_dir=work / f"data-{wname}",
                    standby_replicas=variant.standby,
                    instance_id=f"{run_id}-{wname}" if variant.static else None,
                )
                workers.append(Worker(wname, s, free_port(), work))
            for i, w in enumerate(workers):
                w.start()
                if i < len(workers) - 1:
                    # One at a time: two workers started together on a backlog spend minutes
                    # in rebalances (bench/README.md), which is not what is measured here.
                    await run.settle(workers[: i + 1], FIRST_SETTLE_S if first else 180.0)
            trials: list[dict[str, Any]] = []
            for k in range(args.repeats):
                try:
                    t = await run.trial(variant, workers, first)
                except SystemExit as exc:  # keep what was measured; say why it stopped
                    run.results["aborted"] = f"{name} #{k + 1}: {str(exc).splitlines()[0]}"
                    print(run.results["aborted"], flush=True)
                    break
                first = False
                trials.append(t)
                restored = sum(r["bytes"] for r in t["restored"].values()) / 1e6
                print(
                    f"{name} #{k + 1}: health {t['health_s']} s, moving {t['moving_s']} s, "
                    f"caught up {t['caught_up_s']} s (peak lag {t['peak_lag']:,}, threshold "
                    f"{t['lag_threshold']:,}); restored {restored:.1f} MB; "
                    f"steps {t['restarted']}; load {load()[0]}",
                    flush=True,
                )
            for w in workers:
                if w.proc is not None:
                    await asyncio.to_thread(w.proc.stop)
            workers = []
            if trials:
                run.results["variants"][name] = {
                    "about": variant.about,
                    "variant": asdict(variant),
                    "trials": trials,
                    "summary": summary(trials),
                }
            if "aborted" in run.results:
                break
        return run.results
    finally:
        for w in workers:
            if w.proc is not None:
                await asyncio.to_thread(w.proc.stop)
        for task in (run.publisher, sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if sampler is not None:
            await probe.stop()
        run.results.update(
            {
                "benchmark": "recovery",
                "date": started_at,
                "command": shlex.join(["python", "bench/recovery.py", *sys.argv[1:]]),
                "machine": machine(),
                "load_average_before": load_before,
                "load_average_after": load(),
                "seconds": round(time.perf_counter() - began, 1),
                "config": {
                    "staff": args.staff,
                    "days": args.days,
                    "warmup_days": args.warmup_days,
                    "accesses": len(bank.accesses),
                    "rate": args.rate,
                    "repeats": args.repeats,
                    "partitions": base.partitions,
                    "session_timeout_s": base.session_timeout_s,
                    "changelog_segment_ms": args.changelog_segment_ms,
                    "stall_s": STALL_S,
                    "sample_s": SAMPLE_S,
                },
            }
        )
        if not args.keep:
            deleted = await delete_topics(base)
            await db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            if sys.exc_info()[0] is None and not run.failed:  # keep the logs of failures
                shutil.rmtree(work, ignore_errors=True)
            print(f"deleted {len(deleted)} topics and schema {schema}", flush=True)
        await db.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("PIPELINE_KAFKA_BOOTSTRAP", "localhost:9092")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "PIPELINE_DATABASE_URL", "postgresql://pipeline:pipeline@localhost:5432/pipeline"
        ),
    )
    parser.add_argument("--repeats", type=int, default=3, help="kills per variant")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--staff", type=int, default=200)
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--warmup-days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=100.0, help="live accesses per second")
    parser.add_argument("--session-timeout", type=float, default=Settings().session_timeout_s)
    parser.add_argument(
        "--changelog-segment-ms",
        type=int,
        default=10_000,
        help="create the state changelog with this segment.ms (eager compaction); 0: "
        "Faust's and the broker's defaults",
    )
    parser.add_argument("--keep", action="store_true", help="keep topics, schema and logs")
    parser.add_argument("--json", type=Path, default=RESULTS)
    ns = parser.parse_args(argv)
    if not 0 < ns.warmup_days < ns.days:
        parser.error("--warmup-days must be between 1 and --days - 1")
    return ns


def save(path: Path, out: dict[str, Any]) -> None:
    """Merge this run's variants into ``path``: each variant keeps the figures of the
    latest run that measured it, with that run's date, command and load average."""
    doc: dict[str, Any] = {"benchmark": "recovery", "variants": {}}
    if path.exists():
        doc = json.loads(path.read_text())
    run = {k: v for k, v in out.items() if k != "variants"}
    suffix = "" if out["config"]["changelog_segment_ms"] else " (changelog: broker defaults)"
    for name, v in out["variants"].items():
        doc["variants"][name + suffix] = {**v, "run": run}
    doc["machine"] = out["machine"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


async def cancellable(args: argparse.Namespace) -> dict[str, Any]:
    """``main``, cancelled (so that it stops its workers and deletes its topics) on SIGTERM
    or SIGINT, also when started in the background, where SIGINT is ignored."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await main(args)


if __name__ == "__main__":
    ns = parse_args()
    out = asyncio.run(cancellable(ns))
    print(table(out))
    save(ns.json, out)
    print(f"wrote {ns.json}")
