"""What a full garbage collection costs a worker holding a bank's reference data, and
what ``gc.freeze()`` after the bootstrap (``Runtime.freeze_loaded_heap``) saves.

    .venv/bin/python bench/gc_freeze.py [--scale 0.1]

Loads ``bench/reference_scale.py``'s synthetic bank at ``--scale`` (1.0 = 50,000
staff, 1,000,000 assignments, 10,000,000 profiles) into a ReferenceState, then
times ``gc.collect()`` (process CPU, best of three) before and after ``gc.freeze()``.
A full collection walks every tracked object; the worker's reference objects live
as long as the worker, so after the freeze a collection walks only what is new.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import reference_scale as rs

from pipeline.reference.state import ReferenceState


def full_collection_cpu() -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        gc.collect()
        best = min(best, time.process_time() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    args = ap.parse_args()
    bank = rs.Bank(rs.Scale.of(args.scale, 42))
    state = ReferenceState()
    for kind, _ in rs.KINDS:
        for chunk in bank.chunks(kind):
            for _, value in chunk:
                rs.apply_reference_record(state, kind, None, value)
    gc.collect()
    tracked = len(gc.get_objects())
    before = full_collection_cpu()
    gc.freeze()
    after = full_collection_cpu()
    print(f"scale {args.scale}: {tracked:,} objects tracked by the collector")
    print(
        f"full collection: {before * 1000:.1f} ms CPU before gc.freeze(), {after * 1000:.1f} after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
