"""CPU cost of the pure core per access, stage by stage, on a simulated bank.

    .venv/bin/python bench/core_cost.py [--staff 200] [--days 21] [--repeat 3]

Stages, each measured over every access of the bank (CPU time, median of
``--repeat`` runs, so another process on the machine changes little):

* ``decode``: bytes -> AccessEvent (msgspec, with the contract's checks);
* ``decode+enrich``: plus the reference lookups at the access's time;
* ``core (no model)``: what a worker's access agent computes per batch of
  ``--batch`` records: ``Core.offer``, ``Core.drain`` (arrival checks, day
  barrier, rules, behaviour, risk, incidents, peer days) and the encoding of
  the states to write, with the group model switched off;
* ``core``: the same with the River group models.

Records are placed on partitions beforehand, as Kafka would have; loading the
reference data is not counted.

Prints one line per stage and writes ``bench/results/core_cost.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.broker.partitioning import partition_for  # noqa: E402
from pipeline.contract.decode import decode_access_event  # noqa: E402
from pipeline.core import engine  # noqa: E402
from pipeline.core.engine import Inbound  # noqa: E402
from pipeline.core.offline import load_reference, new_core  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from simbank.simulate import SimConfig, generate  # noqa: E402


def cpu(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--staff", type=int, default=200)
    ap.add_argument("--days", type=int, default=21)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "core_cost.json")
    args = ap.parse_args()
    sim = generate(
        SimConfig(seed=args.seed, staff=args.staff, days=args.days, customers=args.staff * 100)
    )
    reference = [
        (r.topic, r.key.encode(), None if r.value is None else orjson.dumps(r.value))
        for r in sim.reference
    ]
    accesses = [(str(e["staff_id"]).encode(), orjson.dumps(e)) for e in sim.events]
    values = [v for _, v in accesses]
    n = len(values)
    state, _ = load_reference(reference)
    settings = Settings(partitions=4, pseudonym_key="bench")

    def decode() -> None:
        for v in values:
            decode_access_event(v)

    def decode_enrich() -> None:
        for v in values:
            ev = decode_access_event(v)
            state.enrich(ev, ev.occurred_at.timestamp())

    inbound: list[Inbound] = []
    offsets = [0] * settings.partitions
    for key, value in accesses:
        p = partition_for(key, settings.partitions)
        inbound.append(Inbound(p, offsets[p], key, value))
        offsets[p] += 1

    def core() -> None:
        c = new_core(state, settings)
        for i in range(0, n, args.batch):
            c.offer(inbound[i : i + args.batch])
            c.drain()
            c.store.pending_writes()

    results: dict[str, float] = {}
    results["decode"] = cpu(decode, args.repeat) / n * 1e6
    results["decode+enrich"] = cpu(decode_enrich, args.repeat) / n * 1e6
    due = engine.model_due
    engine.model_due = lambda b, e: False  # type: ignore[assignment]
    try:
        results["core (no model)"] = cpu(core, args.repeat) / n * 1e6
    finally:
        engine.model_due = due  # type: ignore[assignment]
    results["core"] = cpu(core, args.repeat) / n * 1e6
    print(f"{n} accesses ({args.staff} staff, {args.days} days), CPU µs per access:")
    for stage, us in results.items():
        print(f"  {stage:<18} {us:7.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"accesses": n, "staff": args.staff, "days": args.days, "us_per_access": results},
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
