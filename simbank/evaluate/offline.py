"""A simulation through the pure core in-process (no broker): for tuning and benchmarks.

Uses the product's library entry point :func:`pipeline.core.offline.run_offline`
over the raw records a topic would carry, so the alerts are the worker's for the
same settings (partitions, learning period, bank timezone). The simulated analyst's
daily triage goes in through ``triage``, as it would go through the feedback topic.
The official figures come from the real pipeline (:mod:`simbank.evaluate.realrun`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.core.offline import run_offline
from pipeline.settings import Settings
from simbank.evaluate.analyst import SimulatedAnalyst
from simbank.simulate import Simulation


@dataclass
class RunResult:
    """What one pipeline run gave: every alert revision, and how the run went."""

    alerts: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def reference_records(sim: Simulation) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    for r in sim.reference:
        yield r.topic, r.key.encode(), None if r.value is None else orjson.dumps(r.value)


def access_records(sim: Simulation) -> Iterator[tuple[bytes | None, bytes | None]]:
    for ev in sim.events:
        yield str(ev["staff_id"]).encode(), orjson.dumps(ev)


def run_core(
    sim: Simulation, settings: Settings, analyst: SimulatedAnalyst | None = None
) -> RunResult:
    """All alert revisions the core emits for ``sim`` under ``settings``."""
    run = run_offline(
        reference_records(sim),
        access_records(sim),
        settings,
        triage=None if analyst is None else analyst.triage,
    )
    meta: dict[str, Any] = {
        "mode": "offline (pure core, no broker)",
        "core_seconds": round(run.seconds, 1),
        "throughput_events_per_second": round(len(sim.events) / run.seconds)
        if run.seconds > 0
        else None,
        "dead_letters": len(run.dead_letters),
    }
    if analyst is not None:
        meta["feedback_applied"] = run.feedback_applied
    return RunResult(run.alerts, meta)
