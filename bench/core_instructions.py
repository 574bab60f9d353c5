"""Instructions the pure core executes per access: a figure the machine's load cannot move.

    .venv/bin/python bench/core_instructions.py [--days 7] [--limit N]

CPU time on a shared machine varies by ±10-30 % from run to run, which hides a change
of a few per cent. This benchmark counts instructions instead, with valgrind's
cachegrind (``apt-get install valgrind``): it writes the simulated bank of
``core_cost.py`` (``--staff``, ``--days``, ``--seed``) to a temporary file, then runs
two child processes under cachegrind, with ``PYTHONHASHSEED=0``: each loads the file
and the reference data, and one of them also runs the core (offer, drain and the state
encoding, in batches of ``--batch``, every detector on) over the first ``--limit``
accesses (default: all of them). The difference of their instruction counts, divided
by the accesses, is the core's cost per access. Under cachegrind Python runs ~50x
slower: the 67,446 accesses of the default bank take about six minutes. Run it over the
whole bank: the first two days have no group model yet (it needs two days of peer
samples), and they cost ~25 % fewer instructions per access than the week.

Instructions are not time (a cache miss costs more than an add), so compare figures of
this benchmark with each other, before and after a change.
"""

from __future__ import annotations

import argparse
import compileall
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Data = tuple[list[tuple[str, bytes, bytes | None]], list[tuple[bytes, bytes]]]


def write_data(path: Path, staff: int, days: int, seed: int) -> int:
    import orjson

    from simbank.simulate import SimConfig, generate

    sim = generate(SimConfig(seed=seed, staff=staff, days=days, customers=staff * 100))
    reference = [
        (r.topic, r.key.encode(), None if r.value is None else orjson.dumps(r.value))
        for r in sim.reference
    ]
    accesses = [(str(e["staff_id"]).encode(), orjson.dumps(e)) for e in sim.events]
    with path.open("wb") as f:
        pickle.dump((reference, accesses), f)
    return len(accesses)


def child(path: Path, limit: int, batch: int) -> None:
    """Load the data and the reference; run the core over ``limit`` accesses."""
    from pipeline.broker.partitioning import partition_for
    from pipeline.core.engine import Inbound
    from pipeline.core.offline import load_reference, new_core
    from pipeline.settings import Settings

    with path.open("rb") as f:
        reference, accesses = pickle.load(f)
    state, _ = load_reference(reference)
    settings = Settings(partitions=4, pseudonym_key="bench")
    offsets = [0] * settings.partitions
    inbound = []
    for key, value in accesses[:limit]:
        p = partition_for(key, settings.partitions)
        inbound.append(Inbound(p, offsets[p], key, value))
        offsets[p] += 1
    core = new_core(state, settings)  # built in both children: its cost cancels out
    for i in range(0, len(inbound), batch):
        core.offer(inbound[i : i + batch])
        core.drain()
        core.store.pending_writes()


def instructions(path: Path, limit: int, batch: int) -> int:
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(path),
        "--limit",
        str(limit),
        "--batch",
        str(batch),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"cachegrind run failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staff", type=int, default=200)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--limit", type=int, default=0, help="accesses the core runs over (0: all of them)"
    )
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.limit, args.batch)
        return 0
    # Stale bytecode would be compiled by whichever child imports it first, and counted
    # there: compile it now, so both children only load it.
    compileall.compile_dir(ROOT / "pipeline", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.pickle"
        n = write_data(path, args.staff, args.days, args.seed)
        limit = min(args.limit, n) if args.limit > 0 else n
        base = instructions(path, 0, args.batch)
        full = instructions(path, limit, args.batch)
    print(
        f"{limit} of {n} accesses ({args.staff} staff, {args.days} days, seed {args.seed}): "
        f"{(full - base) / limit:,.0f} instructions per access "
        f"(cachegrind: {full:,} with the core, {base:,} without)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
