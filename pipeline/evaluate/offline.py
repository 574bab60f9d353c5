"""Drive the pure core in-process over a simulation (no broker): for tuning and benchmarks.

The official figures come from :mod:`pipeline.evaluate.run` over the real
pipeline; this runs the very same :class:`~pipeline.engine.Engine`, so the
alerts match, and it isolates the core's own cost from Kafka's.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from pipeline.alerts.ids import Pseudonymizer
from pipeline.decode import decode_access_event
from pipeline.engine import Engine
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import ReferenceState
from pipeline.simulate import Simulation

KIND_BY_TOPIC = {
    "staff-directory": "staff",
    "staff-assignments": "assignment",
    "customer-profiles": "profile",
}


def load_reference(sim: Simulation) -> ReferenceState:
    state = ReferenceState()
    for rec in sim.reference:
        value = None if rec.value is None else orjson.dumps(rec.value)
        apply_reference_record(state, KIND_BY_TOPIC[rec.topic], rec.key.encode(), value)
    return state


def run_core(sim: Simulation, batch: int = 1000) -> tuple[list[dict[str, Any]], float]:
    """All alert revisions the core emits for ``sim``, and the seconds it took (decode included)."""
    engine = Engine(load_reference(sim), Pseudonymizer("offline"))
    raw = [orjson.dumps(ev) for ev in sim.events]
    out: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i in range(0, len(raw), batch):
        events = [decode_access_event(r) for r in raw[i : i + batch]]
        out.extend(a.to_json() for a in engine.process_batch(events))
        engine.store.flush()
    return out, time.perf_counter() - start
