"""Check that a change to the pure core leaves every output byte-identical.

    .venv/bin/python bench/core_identity.py                   # compare with the digests
    .venv/bin/python bench/core_identity.py --dump /tmp/ref   # also write the full outputs
    .venv/bin/python bench/core_identity.py --update          # record new digests

Runs the offline engine (:func:`simbank.evaluate.offline.run_core`, the worker's
``Core`` in-process) on simulated banks and collects everything the core puts
out for them:

* every alert revision, in emission order;
* the evidence rows (alert id, event id) and the dead letters;
* every peer-statistics record (peer days and watermarks) the core published;
* the final state table (staff and partition states, msgpack bytes, hex).

Fields derived from the wall clock are left out, because they differ between
any two runs: the alerts' ``created_at`` and the dead letters' ``received_at``.
Everything else derives from event time and must not change.

Banks (``--banks``, default ``1000,5003``): profile seeds of
:func:`simbank.evaluate.banks.drawn_banks` (1000-1999 the tune split,
5000-5999 the report split), 200 staff, 14 days from 2026-03-02, the first
7 days a learning period. The first bank also runs a simulated analyst whose
daily verdicts go back through the feedback path.

The SHA-256 of each bank's output (sorted-key JSON) is compared with
``bench/results/core_identity.json``; the exit status is 1 on any difference.
``--dump DIR`` writes each bank's output as ``DIR/<bank>.json``, so two dumps
(before and after a change) can be compared with ``cmp`` or ``diff``. A change
that is meant to change detection refreshes the digests with ``--update`` (and
says so in its commit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core.engine import Core, Outbox  # noqa: E402
from pipeline.core.offline import run_offline  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from simbank.evaluate.analyst import SimulatedAnalyst  # noqa: E402
from simbank.evaluate.banks import SPLITS, drawn_banks  # noqa: E402
from simbank.evaluate.offline import access_records, reference_records  # noqa: E402
from simbank.simulate import generate  # noqa: E402

START = "2026-03-02"
START_AT = datetime.fromisoformat(f"{START}T00:00:00+08:00")  # the bank's midnight
WALL_CLOCK_FIELDS = frozenset({"created_at", "received_at"})
DIGESTS = ROOT / "bench" / "results" / "core_identity.json"


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in WALL_CLOCK_FIELDS}


def bank_output(
    profile_seed: int, *, staff: int, days: int, learn_days: int, analyst: bool
) -> tuple[bytes, int, float]:
    """Everything the core put out for one bank (canonical JSON), the number of
    accesses, and the CPU seconds of the core run."""
    split = next(name for name, rng in SPLITS.items() if profile_seed in rng)
    bank = drawn_banks(split, 1, staff=staff, days=days, start=START, first=profile_seed)[0]
    sim = generate(bank.config)
    settings = Settings(
        partitions=4, pseudonym_key="x", learn_until=START_AT + timedelta(days=learn_days)
    )
    judge = (
        SimulatedAnalyst(sim.incidents, timezone=settings.bank_timezone, seed=bank.config.seed)
        if analyst
        else None
    )
    peer_records: list[Any] = []
    drain = Core.drain

    def tee(self: Core, *args: Any, **kwargs: Any) -> Outbox:
        out = drain(self, *args, **kwargs)
        peer_records.extend(msgspec.to_builtins(r) for r in out.peer_records)
        return out

    Core.drain = tee  # type: ignore[method-assign]
    t = time.process_time()
    try:
        run = run_offline(
            reference_records(sim),
            access_records(sim),
            settings,
            triage=None if judge is None else judge.triage,
        )
    finally:
        Core.drain = drain  # type: ignore[method-assign]
    cpu = time.process_time() - t
    assert run.core is not None
    backing: dict[str, bytes] = run.core.store.backing  # type: ignore[assignment]
    output = {
        "bank": profile_seed,
        "accesses": len(sim.events),
        "alerts": [_strip(a) for a in run.alerts],
        "evidence": run.evidence,
        "dead_letters": [_strip(d) for d in run.dead_letters],
        "feedback_applied": run.feedback_applied,
        "peer_records": peer_records,
        "state": {k: backing[k].hex() for k in sorted(backing)},
    }
    return orjson.dumps(output, option=orjson.OPT_SORT_KEYS), len(sim.events), cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--banks", default="1000,5003", help="profile seeds, comma-separated")
    ap.add_argument("--staff", type=int, default=200)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--learn-days", type=int, default=7)
    ap.add_argument("--dump", type=Path, help="write each bank's output to DIR/<bank>.json")
    ap.add_argument("--update", action="store_true", help="record the digests as the reference")
    args = ap.parse_args()
    seeds = [int(s) for s in args.banks.split(",")]
    key = f"staff={args.staff} days={args.days} learn_days={args.learn_days}"
    recorded: dict[str, dict[str, str]] = (
        json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    )
    expected = recorded.get(key, {})
    digests: dict[str, str] = {}
    differ = 0
    for i, seed in enumerate(seeds):
        blob, n, cpu = bank_output(
            seed, staff=args.staff, days=args.days, learn_days=args.learn_days, analyst=i == 0
        )
        digest = digests[str(seed)] = hashlib.sha256(blob).hexdigest()
        if args.dump is not None:
            args.dump.mkdir(parents=True, exist_ok=True)
            (args.dump / f"{seed}.json").write_bytes(blob)
        want = expected.get(str(seed))
        verdict = "no reference" if want is None else "identical" if want == digest else "DIFFERS"
        differ += want is not None and want != digest
        print(
            f"bank {seed}: {n} accesses, core {cpu:.1f} s CPU ({cpu / n * 1e6:.0f} µs/access), "
            f"sha256 {digest[:16]}: {verdict}",
            flush=True,
        )
    if args.update:
        recorded[key] = {**expected, **digests}
        DIGESTS.parent.mkdir(parents=True, exist_ok=True)
        DIGESTS.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        print(f"digests written to {DIGESTS.relative_to(ROOT)}")
        return 0
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
