"""Scale benchmark of the reference state (staff, assignments, customer profiles).

Target scale (``--scale 1.0``): 50,000 staff, 1,000,000 assignments and
10,000,000 customer profiles, 5 % of them not ``normal``. Measures

a) the pure core: decode + apply of every record into ``ReferenceState`` from
   pre-encoded JSON bytes, the process's resident memory after loading, and the
   cost of ``state.enrich(event)`` over ~1M realistic accesses;
b) a real broker: publishing the same records (8 partitions per topic) and one
   the reference reader from start to ``ready`` (a worker's bootstrap), with RSS.

Each phase runs in a fresh interpreter (``--phase``, internal), so each RSS figure
belongs to that phase alone. Records are generated deterministically from
``--seed`` in chunks: no phase holds the whole data set twice as Python objects.
Results: a table on stdout, and ``bench/results/reference_scale.json`` (one entry
per scale; the core and broker parts are updated independently).

    .venv/bin/python bench/reference_scale.py --scale 0.01 --skip-kafka
    PIPELINE_KAFKA_PORT=19292 PIPELINE_KAFKA_CONTROLLER_PORT=19293 \\
        INFRA_STATE_DIR=/tmp/bench-infra bash infra/kafka.sh start
    .venv/bin/python bench/reference_scale.py --scale 1.0 --bootstrap 127.0.0.1:19292
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pipeline.contract.records import AccessEvent, DeadLetter
from pipeline.reference import snapshot
from pipeline.reference.reader import apply_reference_record, reference_reader
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.timeutil import format_ts, parse_ts

HERE: Final = Path(__file__).resolve().parent
RESULTS: Final = HERE / "results" / "reference_scale.json"
FULL_STAFF: Final = 50_000
FULL_ASSIGNMENTS: Final = 1_000_000
FULL_PROFILES: Final = 10_000_000
FULL_BRANCHES: Final = 400
NON_NORMAL_PER_10K: Final = 500  # 5 %
SECOND_VERSION_EVERY: Final = 20  # every 20th employee has a later HR record (a transfer)
CHUNK: Final = 50_000
PARTITIONS: Final = 8
BASE: Final = parse_ts("2026-03-01T00:00:00Z")  # accesses happen in the 30 days after
DAY: Final = 86_400.0
M64: Final = (1 << 64) - 1
STRIDE: Final = 1_000_003  # prime: customer of assignment j is (j * STRIDE) mod N, a bijection

# (kind as the reader names it, CLI/topic kind)
KINDS: Final = (("staff", "staff"), ("assignment", "assignments"), ("profile", "profiles"))


# --- deterministic data ------------------------------------------------------------


def _h(x: int) -> int:
    """splitmix64 finaliser: a well-mixed 64-bit hash of an int."""
    x &= M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


@functools.cache
def _ts(day: int) -> str:
    """RFC 3339 text of BASE + ``day`` days, 09:00 UTC (a few thousand distinct days)."""
    return format_ts(BASE + day * DAY + 9 * 3600)


def _pick(h: int, table: tuple[tuple[int, str], ...]) -> str:
    """Pick from cumulative percentages ``((upto, value), ...)`` with ``h % 100``."""
    r = h % 100
    for upto, value in table:
        if r < upto:
            return value
    return table[-1][1]


ROLES: Final = (
    (40, "customer_manager"),
    (65, "teller"),
    (75, "loan_officer"),
    (85, "operations"),
    (90, "branch_manager"),
    (95, "auditor"),
    (100, "it_support"),
)
STATUSES: Final = ((97, "active"), (98, "on_leave"), (99, "transferred"), (100, "terminated"))
SEGMENTS: Final = ((90, "retail"), (98, "private"), (100, "corporate"))
NON_NORMAL: Final = ((40, "vip"), (60, "pep"), (90, "employee"), (100, "restricted"))


@dataclass(frozen=True)
class Scale:
    fraction: float
    seed: int
    staff: int
    assignments: int
    profiles: int
    branches: int

    @classmethod
    def of(cls, fraction: float, seed: int) -> Scale:
        profiles = max(1000, round(FULL_PROFILES * fraction))
        if profiles % STRIDE == 0:
            profiles += 1
        return cls(
            fraction=fraction,
            seed=seed,
            staff=max(100, round(FULL_STAFF * fraction)),
            assignments=min(profiles, max(1000, round(FULL_ASSIGNMENTS * fraction))),
            profiles=profiles,
            branches=max(8, round(FULL_BRANCHES * fraction)),
        )

    @property
    def staff_records(self) -> int:
        return self.staff + math.ceil(self.staff / SECOND_VERSION_EVERY)

    def count(self, kind: str) -> int:
        return {
            "staff": self.staff_records,
            "assignment": self.assignments,
            "profile": self.profiles,
        }[kind]

    def hash(self, stream: int, i: int) -> int:
        return _h((self.seed << 44) ^ (stream << 36) ^ i)


class Bank:
    """The deterministic bank of one ``Scale``: any record can be rebuilt from its index."""

    def __init__(self, scale: Scale) -> None:
        self.s = scale
        self.roles = [_pick(scale.hash(1, i), ROLES) for i in range(scale.staff)]
        # Staff who hold customer portfolios, in index order.
        self.portfolio_staff = [
            i for i, r in enumerate(self.roles) if r in ("customer_manager", "loan_officer")
        ]

    # staff ------------------------------------------------------------------------
    def staff_record(self, j: int) -> tuple[bytes, bytes]:
        s = self.s
        if j < s.staff:
            i, h = j, s.hash(1, j)
            branch, day = i % s.branches, -30 - (h >> 20) % 1500
            status = _pick(h >> 8, STATUSES)
        else:  # a later version: moved to another branch 10 days into the access window
            i = (j - s.staff) * SECOND_VERSION_EVERY
            h = s.hash(1, i)
            branch, day, status = (i + 1) % s.branches, 10, "active"
        sid = f"S{i:06d}"
        extra = ""
        if (h >> 16) % 10 < 7:
            extra = ',"shift_start":"08:30","shift_end":"17:30"'
        if (h >> 24) % 10 == 0:
            extra += ',"timezone":"Asia/Hong_Kong"'
        value = (
            f'{{"staff_id":"{sid}","branch_id":"BR{branch:04d}","role":"{self.roles[i]}",'
            f'"status":"{status}","effective_at":"{_ts(day)}"{extra}}}'
        )
        return sid.encode(), value.encode()

    # assignments --------------------------------------------------------------------
    def assignment_pair(self, j: int) -> tuple[int, int]:
        staff = self.portfolio_staff[j % len(self.portfolio_staff)]
        return staff, (j * STRIDE + 7) % self.s.profiles

    def assignment_record(self, j: int) -> tuple[bytes, bytes]:
        staff, cust = self.assignment_pair(j)
        h = self.s.hash(2, j)
        if self.roles[staff] == "customer_manager":
            relation = "relationship_manager" if h % 10 < 8 else "backup"
        else:
            relation = "loan_officer" if h % 10 < 9 else "service_team"
        start = -((h >> 8) % 1000) - 1
        # 85 % open-ended; the rest end somewhere between before and after the window.
        end = f'"{_ts(start + 30 + (h >> 24) % 1000)}"' if (h >> 16) % 100 >= 85 else "null"
        sid, cid = f"S{staff:06d}", f"C{cust:09d}"
        value = (
            f'{{"staff_id":"{sid}","customer_id":"{cid}","relation":"{relation}",'
            f'"valid_from":"{_ts(start)}","valid_to":{end}}}'
        )
        return f"{sid}:{cid}".encode(), value.encode()

    # profiles -------------------------------------------------------------------------
    def profile_record(self, c: int) -> tuple[bytes, bytes]:
        s = self.s
        h = s.hash(3, c)
        sensitivity, related = "normal", ""
        if h % 10_000 < NON_NORMAL_PER_10K:
            sensitivity = _pick(h >> 14, NON_NORMAL)
            if sensitivity == "employee":
                related = f'"S{(h >> 24) % s.staff:06d}"'
                if (h >> 40) % 4 == 0:
                    related += f',"S{(h >> 44) % s.staff:06d}"'
        cid = f"C{c:09d}"
        value = (
            f'{{"customer_id":"{cid}","home_branch_id":"BR{c % s.branches:04d}",'
            f'"segment":"{_pick(h >> 20, SEGMENTS)}","sensitivity":"{sensitivity}",'
            f'"related_staff_ids":[{related}],"updated_at":"{_ts(-((h >> 30) % 2000))}"}}'
        )
        return cid.encode(), value.encode()

    def chunks(self, kind: str, size: int = CHUNK) -> Iterator[list[tuple[bytes, bytes]]]:
        make = {
            "staff": self.staff_record,
            "assignment": self.assignment_record,
            "profile": self.profile_record,
        }[kind]
        n = self.s.count(kind)
        for start in range(0, n, size):
            yield [make(j) for j in range(start, min(n, start + size))]

    # accesses ---------------------------------------------------------------------------
    def accesses(self, start: int, stop: int) -> list[AccessEvent]:
        """Realistic accesses: 55 % to an assigned pair (some assignments have ended),
        25 % a portfolio holder to a random customer, 10 % any staff to a random
        customer, 5 % an unknown customer, 3 % searches, 2 % an unknown operator."""
        s = self.s
        out: list[AccessEvent] = []
        for k in range(start, stop):
            h = s.hash(4, k)
            r = h % 100
            g = h >> 8
            customer: str | None
            action = "view_balance"
            if r < 55:
                staff, cust = self.assignment_pair(g % s.assignments)
                sid, customer = f"S{staff:06d}", f"C{cust:09d}"
            elif r < 80:
                sid = f"S{self.portfolio_staff[g % len(self.portfolio_staff)]:06d}"
                customer = f"C{(g >> 20) % s.profiles:09d}"
            elif r < 90:
                sid, customer = f"S{g % s.staff:06d}", f"C{(g >> 20) % s.profiles:09d}"
            elif r < 95:
                sid, customer = f"S{g % s.staff:06d}", f"X{g % 10**9:09d}"
            elif r < 98:
                sid, customer, action = f"S{g % s.staff:06d}", None, "search_customers"
            else:
                sid, customer = f"U{g % 10**6:06d}", f"C{(g >> 20) % s.profiles:09d}"
            at = BASE + (h >> 40) % int(30 * DAY)
            when = datetime.fromtimestamp(at, UTC)
            out.append(AccessEvent(f"e{k}", when, sid, customer, action, "crm_web", "BR0000", "T1"))
        return out


# --- measurement helpers -------------------------------------------------------------


def proc_status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS: resident now; VmHWM: peak)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mib() -> float:
    return proc_status_kib("VmRSS") / 1024


def peak_mib() -> float:
    return proc_status_kib("VmHWM") / 1024


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# --- phase a: pure core -----------------------------------------------------------------


def phase_core(scale: Scale, lookups: int) -> dict[str, Any]:
    bank = Bank(scale)
    gc.collect()
    rss_before = rss_mib()
    state = ReferenceState()
    out: dict[str, Any] = {"apply": {}, "rss_mib": {"before": round(rss_before, 1)}}
    total_seconds = total_cpu = 0.0
    total_records = 0
    total_bytes = 0
    for kind, _ in KINDS:
        seconds = cpu = 0.0
        n = 0
        nbytes = 0
        for chunk in bank.chunks(kind):
            values = [v for _, v in chunk]
            del chunk
            c0, t0 = time.process_time(), time.perf_counter()
            for value in values:
                apply_reference_record(state, kind, None, value)
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            n += len(values)
            nbytes += sum(map(len, values))
            del values
        gc.collect()
        out["apply"][kind] = {
            "records": n,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "us_per_record": round(seconds / n * 1e6, 2),
            "cpu_us_per_record": round(cpu / n * 1e6, 2),
            "mean_value_bytes": round(nbytes / n, 1),
        }
        out["rss_mib"][f"after_{kind}"] = round(rss_mib(), 1)
        total_seconds += seconds
        total_cpu += cpu
        total_records += n
        total_bytes += nbytes
    rss_after = rss_mib()
    out["apply"]["total"] = {
        "records": total_records,
        "seconds": round(total_seconds, 2),
        "cpu_seconds": round(total_cpu, 2),
        "records_per_second": round(total_records / total_seconds),
        "records_per_cpu_second": round(total_records / total_cpu),
        "value_mib": round(total_bytes / 2**20, 1),
    }
    out["rss_mib"].update(
        after=round(rss_after, 1), delta=round(rss_after - rss_before, 1), peak=round(peak_mib(), 1)
    )
    out["state_counts"] = state.counts()
    out["enrich"] = measure_enrich(state, bank, lookups)
    return out


def measure_enrich(state: ReferenceState, bank: Bank, lookups: int) -> dict[str, Any]:
    enrich = state.enrich
    seconds = cpu = 0.0
    assigned = known_customer = known_staff = sensitive = 0
    per_call: list[float] = []
    step = 100_000
    for start in range(0, lookups, step):
        # enrich takes the access's epoch time too (the engine converts it once)
        events = [
            (ev, ev.occurred_at.timestamp())
            for ev in bank.accesses(start, min(lookups, start + step))
        ]
        c0, t0 = time.process_time(), time.perf_counter()
        for ev, at in events:
            enrich(ev, at)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        for ev, at in events:  # untimed: what the accesses turned out to be
            e = enrich(ev, at)
            assigned += e.assigned
            known_customer += e.known_customer
            known_staff += e.known_staff
            sensitive += e.sensitivity not in (None, "normal")
        if start == 0:  # one chunk timed call by call, for the distribution
            clock = time.perf_counter_ns
            for ev, at in events:
                t = clock()
                enrich(ev, at)
                per_call.append((clock() - t) / 1000)
    per_call.sort()
    return {
        "lookups": lookups,
        "us_per_lookup": round(seconds / lookups * 1e6, 3),
        "cpu_us_per_lookup": round(cpu / lookups * 1e6, 3),
        "per_call_us": {
            "sample": len(per_call),
            "p50": round(_percentile(per_call, 0.50), 2),
            "p99": round(_percentile(per_call, 0.99), 2),
            "p999": round(_percentile(per_call, 0.999), 2),
            "max": round(per_call[-1], 1),
            "mean": round(statistics.fmean(per_call), 3),
        },
        "share": {
            "assigned": round(assigned / lookups, 3),
            "known_customer": round(known_customer / lookups, 3),
            "known_staff": round(known_staff / lookups, 3),
            "non_normal_customer": round(sensitive / lookups, 3),
        },
        "target_us": 10.0,
    }


# --- phase b: real broker ---------------------------------------------------------------


def _settings(bootstrap: str, prefix: str, **changes: Any) -> Settings:
    """The environment's settings (Kafka security included) with this run's broker and prefix."""
    return Settings.from_env().replace(kafka_bootstrap=bootstrap, topic_prefix=prefix, **changes)


async def _publish(scale: Scale, bootstrap: str, prefix: str) -> dict[str, Any]:
    from pipeline.broker.topics import ensure_topics
    from pipeline.reference.publish import compression, make_producer, send_batched, topic_for

    bank = Bank(scale)
    settings = _settings(bootstrap, prefix, partitions=PARTITIONS)
    await ensure_topics(settings, PARTITIONS)
    producer = make_producer(settings)
    await producer.start()
    out: dict[str, Any] = {"compression": compression() or "none", "partitions": PARTITIONS}
    total_n = 0
    total_s = 0.0
    try:
        for kind, topic_kind in KINDS:
            topic = topic_for(settings, topic_kind)
            t0 = time.perf_counter()
            n = 0
            for chunk in bank.chunks(kind):
                n += await send_batched(producer, topic, chunk)
            seconds = time.perf_counter() - t0
            out[kind] = {
                "records": n,
                "seconds": round(seconds, 1),
                "records_per_second": round(n / seconds),
            }
            total_n += n
            total_s += seconds
    finally:
        await producer.stop()
    out["total"] = {
        "records": total_n,
        "seconds": round(total_s, 1),
        "records_per_second": round(total_n / total_s),
        "note": "includes generating the records (same process, same loop)",
    }
    return out


async def _bootstrap(bootstrap: str, prefix: str, data_dir: str, restart: bool) -> dict[str, Any]:
    """One reader to ``ready``. Cold (``restart`` False): from the beginning of the topics,
    without a snapshot; then the snapshot it would write, written and timed. Restart: a
    new reader over that data directory, going on from the snapshot."""
    every = Settings().reference_snapshot_records if restart else 0
    settings = _settings(
        bootstrap, prefix, data_dir=Path(data_dir), reference_snapshot_records=every
    )
    gc.collect()
    rss_before = rss_mib()
    state = ReferenceState()
    dead: list[str] = []

    async def dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        dead.append(letter.error.code)

    applied_by_kind: dict[str, int] = {}

    def counted(kind: str) -> None:
        applied_by_kind[kind] = applied_by_kind.get(kind, 0) + 1

    reader = reference_reader(settings, state, dead_letter, counted)
    t0 = time.perf_counter()
    task = asyncio.create_task(reader.run())
    ready = asyncio.create_task(reader.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    wall = time.perf_counter() - t0
    if task.done():  # the reader stopped before it was ready: report why
        ready.cancel()
        task.result()
        raise RuntimeError("reader stopped before ready")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    gc.collect()
    rss_after = rss_mib()
    applied = sum(applied_by_kind.values())
    seconds = reader.bootstrap_seconds or wall
    out: dict[str, Any] = {
        "bootstrap_seconds": round(seconds, 1),
        "wall_seconds": round(wall, 1),
        "state_counts": state.counts(),
        "dead_letters": len(dead),
        "records_applied": applied,
        "records_per_second": round(applied / seconds),
        "resumed_from_records": reader.resumed_from,
        "rss_mib": {
            "before": round(rss_before, 1),
            "after": round(rss_after, 1),
            "delta": round(rss_after - rss_before, 1),
            "peak": round(peak_mib(), 1),
        },
    }
    if not restart:
        c0, t0 = time.process_time(), time.perf_counter()
        path = snapshot.path_in(settings.data_dir)
        size = snapshot.write(path, state.image(), reader.positions())
        out["snapshot"] = {
            "bytes": size,
            "write_seconds": round(time.perf_counter() - t0, 1),
            "write_cpu_seconds": round(time.process_time() - c0, 1),
            "peak_rss_mib_after_write": round(peak_mib(), 1),
        }
    return out


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    from pipeline.broker.topics import contract_topics, start_admin

    settings = _settings(bootstrap, prefix)
    admin = await start_admin(settings)
    try:
        await admin.delete_topics(list(contract_topics(settings)))
    finally:
        await admin.close()


# --- driver -----------------------------------------------------------------------------


def _run_phase(argv: list[str], phase: str, extra: list[str]) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--phase", phase, *extra]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        model = platform.processor()
    return {
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def _save(scale: Scale, section: str, data: dict[str, Any], command: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"benchmark": "reference_scale", "runs": {}}
    if RESULTS.exists():
        doc = json.loads(RESULTS.read_text())
    run = doc["runs"].setdefault(f"scale={scale.fraction:g}", {})
    run["scale"] = asdict(scale)
    run[section] = {
        **data,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "machine": _machine(),
    }
    RESULTS.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _table(scale: Scale, core: dict[str, Any] | None, kafka: dict[str, Any] | None) -> str:
    rows: list[tuple[str, str]] = [
        (
            "scale",
            f"{scale.fraction:g}: {scale.staff:,} staff ({scale.staff_records:,} records), "
            f"{scale.assignments:,} assignments, {scale.profiles:,} profiles",
        )
    ]
    if core is not None:
        a, r, e = core["apply"], core["rss_mib"], core["enrich"]
        rows += [
            (
                "core: decode+apply",
                f"{a['total']['records']:,} records in {a['total']['seconds']} s wall, "
                f"{a['total']['cpu_seconds']} s CPU "
                f"({a['total']['records_per_cpu_second']:,}/CPU-s)",
            ),
            *(
                (
                    f"  {k}",
                    f"{a[k]['cpu_us_per_record']} us CPU/record "
                    f"({a[k]['us_per_record']} wall, {a[k]['mean_value_bytes']} B/value)",
                )
                for k, _ in KINDS
            ),
            (
                "core: RSS",
                f"{r['before']} MiB before, {r['after']} MiB after "
                f"(+{r['delta']} MiB), peak {r['peak']} MiB",
            ),
            *((f"  after {k}", f"{r[f'after_{k}']} MiB") for k, _ in KINDS),
            (
                "core: enrich",
                f"{e['cpu_us_per_lookup']} us CPU/lookup over {e['lookups']:,} "
                f"({e['us_per_lookup']} wall; per call p50 {e['per_call_us']['p50']}, "
                f"p99 {e['per_call_us']['p99']} us; target <= {e['target_us']:g})",
            ),
            ("  access mix", ", ".join(f"{k} {v:.1%}" for k, v in e["share"].items())),
        ]
    if kafka is not None:
        p, b = kafka["publish"], kafka["bootstrap"]
        rows += [
            (
                "kafka: publish",
                f"{p['total']['records']:,} records in {p['total']['seconds']} s "
                f"({p['total']['records_per_second']:,}/s, compression {p['compression']})",
            ),
            (
                "kafka: bootstrap",
                f"one ReferenceReader to ready in {b['bootstrap_seconds']} s "
                f"({b['records_per_second']:,} records/s)",
            ),
            (
                "kafka: RSS",
                f"{b['rss_mib']['before']} MiB before, {b['rss_mib']['after']} MiB after "
                f"(+{b['rss_mib']['delta']} MiB), peak {b['rss_mib']['peak']} MiB",
            ),
        ]
        snap, r = b.get("snapshot"), kafka.get("restart")
        if snap and r:
            rows += [
                (
                    "snapshot: write",
                    f"{snap['bytes'] / 1e6:,.1f} MB in {snap['write_seconds']} s "
                    f"({snap['write_cpu_seconds']} s CPU), peak RSS since start "
                    f"{snap['peak_rss_mib_after_write']} MiB",
                ),
                (
                    "snapshot: restart",
                    f"a new reader to ready in {r['bootstrap_seconds']} s "
                    f"(from {r['resumed_from_records']:,} records' offsets, "
                    f"{r['records_applied']:,} read), RSS +{r['rss_mib']['delta']} MiB, "
                    f"peak {r['rss_mib']['peak']} MiB",
                ),
            ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the target scale")
    parser.add_argument("--skip-kafka", action="store_true", help="pure core only")
    parser.add_argument("--skip-core", action="store_true", help="real broker only")
    parser.add_argument("--bootstrap", default="127.0.0.1:19292", help="Kafka for part b")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument(
        "--phase", choices=("core", "publish", "bootstrap", "restart"), help=argparse.SUPPRESS
    )
    parser.add_argument("--prefix", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0 < args.scale <= 1.0:
        parser.error("--scale must be in (0, 1]")
    scale = Scale.of(args.scale, args.seed)

    if args.phase == "core":
        print(json.dumps(phase_core(scale, args.lookups)))
        return 0
    if args.phase == "publish":
        print(json.dumps(asyncio.run(_publish(scale, args.bootstrap, args.prefix))))
        return 0
    if args.phase in ("bootstrap", "restart"):
        restart = args.phase == "restart"
        result = asyncio.run(_bootstrap(args.bootstrap, args.prefix, args.data_dir, restart))
        print(json.dumps(result))
        return 0

    command = shlex.join(["python", "bench/reference_scale.py", *sys.argv[1:]])
    base = ["--scale", repr(args.scale), "--seed", str(args.seed), "--lookups", str(args.lookups)]
    core = kafka = None
    if not args.skip_core:
        print(f"core: scale {args.scale:g} ...", file=sys.stderr, flush=True)
        core = _run_phase(base, "core", [])
        _save(scale, "core", core, command)
    if not args.skip_kafka:
        prefix = f"bench-{args.scale:g}-{int(time.time())}."
        data_dir = tempfile.mkdtemp(prefix="reference-scale-")
        extra = ["--bootstrap", args.bootstrap, "--prefix", prefix, "--data-dir", data_dir]
        print(f"kafka: publishing to {args.bootstrap} ({prefix}*) ...", file=sys.stderr, flush=True)
        try:
            published = _run_phase(base, "publish", extra)
            print("kafka: bootstrapping one reader ...", file=sys.stderr, flush=True)
            booted = _run_phase(base, "bootstrap", extra)
            print("kafka: restarting it from its snapshot ...", file=sys.stderr, flush=True)
            restarted = _run_phase(base, "restart", extra)
        finally:
            asyncio.run(_delete_topics(args.bootstrap, prefix))
            shutil.rmtree(data_dir, ignore_errors=True)
        kafka = {
            "publish": published,
            "bootstrap": booted,
            "restart": restarted,
            "bootstrap_server": args.bootstrap,
        }
        _save(scale, "kafka", kafka, command)
    print(_table(scale, core, kafka))
    print(f"results: {RESULTS.relative_to(HERE.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
