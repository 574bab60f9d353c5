"""Drive the pipeline's pure core in-process over a simulation (no broker): for tuning.

The official figures come from :mod:`simbank.evaluate.run` over the real
pipeline; this runs the very same core through its library entry point
(:func:`pipeline.core.offline.run_offline`), fed with the bytes the topics
would carry, so the alerts match.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.core.offline import load_reference as _load_reference
from pipeline.core.offline import run_offline
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from simbank.simulate import Simulation


def reference_records(sim: Simulation) -> list[tuple[str, bytes | None, bytes | None]]:
    return [
        (r.topic, r.key.encode(), None if r.value is None else orjson.dumps(r.value))
        for r in sim.reference
    ]


def access_records(sim: Simulation) -> list[tuple[bytes | None, bytes | None]]:
    return [(ev["staff_id"].encode(), orjson.dumps(ev)) for ev in sim.events]


def load_reference(sim: Simulation) -> ReferenceState:
    return _load_reference(reference_records(sim))[0]


class SimulatedAnalyst:
    """Triages each day's new alerts by the labels: ``true_positive`` when an alert names an
    event of a malicious incident, ``benign_true_positive`` for a benign look-alike's event,
    else ``false_positive``; each alert once."""

    def __init__(self, sim: Simulation) -> None:
        self.malicious = {e for i in sim.incidents if not i.benign for e in i.event_ids}
        self.lookalike = {e for i in sim.incidents if i.benign for e in i.event_ids}
        self.verdicts: dict[str, str] = {}

    def verdict(self, alert: dict[str, Any]) -> str:
        ids = set(alert["event_ids"])
        if ids & self.malicious:
            return "true_positive"
        if ids & self.lookalike:
            return "benign_true_positive"
        return "false_positive"

    def triage(self, day: str, alerts: list[dict[str, Any]]) -> list[bytes]:
        out = []
        for a in alerts:
            if a["alert_id"] in self.verdicts:
                continue
            v = self.verdict(a)
            self.verdicts[a["alert_id"]] = v
            out.append(
                orjson.dumps(
                    {
                        "alert_id": a["alert_id"],
                        "verdict": v,
                        "analyst_id": "simulated-analyst",
                        "decided_at": datetime.now(UTC).isoformat(),
                    }
                )
            )
        return out


def run_core(
    sim: Simulation,
    analyst: SimulatedAnalyst | None = None,
    partitions: int = 4,
    settings: Settings | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Every alert revision the core emits for ``sim``, and the seconds it took."""
    s = (settings or Settings(pseudonym_key="offline")).replace(partitions=partitions)
    run = run_offline(
        reference_records(sim),
        access_records(sim),
        s,
        triage=analyst.triage if analyst is not None else None,
    )
    return run.alerts, run.seconds
