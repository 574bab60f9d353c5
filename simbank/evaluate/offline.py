"""Drive the pure core in-process over a simulation (no broker): for tuning and benchmarks.

The official figures come from :mod:`simbank.evaluate.run` over the real
pipeline; this runs the very same :class:`~pipeline.core.engine.Engine`, so the
alerts match, and it isolates the core's own cost from Kafka's.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

import orjson

from pipeline.alerts.ids import Pseudonymizer
from pipeline.contract.decode import decode_access_event
from pipeline.core.engine import Engine, StaffStore
from pipeline.reference.reader import apply_reference_record
from pipeline.reference.state import ReferenceState
from pipeline.timeutil import parse_ts
from simbank.simulate import Simulation

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


class SimulatedAnalyst:
    """Reviews each alert once, ``delay_s`` of event time after its first revision.

    The verdict follows the labels: ``true_positive`` when the alert names an
    event of a malicious incident, ``benign_true_positive`` when it names a
    benign look-alike's event, else ``false_positive``.
    """

    def __init__(self, sim: Simulation, delay_s: float = 4 * 3600.0) -> None:
        self.delay_s = delay_s
        self.malicious = {e for i in sim.incidents if not i.benign for e in i.event_ids}
        self.lookalike = {e for i in sim.incidents if i.benign for e in i.event_ids}
        self.reviewed: set[str] = set()
        self.queue: list[tuple[float, str, str, list[str], str]] = []
        self.verdicts: dict[str, str] = {}

    def see(self, alert: dict[str, Any]) -> None:
        if alert["alert_id"] in self.reviewed:
            return
        self.reviewed.add(alert["alert_id"])
        ids = set(alert["event_ids"])
        if ids & self.malicious:
            verdict = "true_positive"
        elif ids & self.lookalike:
            verdict = "benign_true_positive"
        else:
            verdict = "false_positive"
        due = parse_ts(alert["last_event_at"]) + self.delay_s
        codes = [r["code"] for r in alert["reasons"]]
        heapq.heappush(self.queue, (due, alert["alert_id"], alert["staff_id"], codes, verdict))

    def decide_until(self, engine: Engine, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, alert_id, staff_id, codes, verdict = heapq.heappop(self.queue)
            self.verdicts[alert_id] = verdict
            if verdict != "true_positive":
                engine.apply_feedback(staff_id, codes)


def run_core(
    sim: Simulation,
    batch: int = 1000,
    analyst: SimulatedAnalyst | None = None,
    partitions: int = 4,
) -> tuple[list[dict[str, Any]], float]:
    """All alert revisions the core emits for ``sim``, and the seconds it took (decode included).

    Events are assigned to ``partitions`` as a producer keyed by staff_id would
    (peer baselines are per partition). With an ``analyst``, verdicts reach the
    engine as event time passes their due time.
    """
    engine = Engine(
        load_reference(sim), Pseudonymizer("offline"), StaffStore(partitions=partitions)
    )
    raw = [orjson.dumps(ev) for ev in sim.events]
    out: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i in range(0, len(raw), batch):
        events = [decode_access_event(r) for r in raw[i : i + batch]]
        if analyst is not None and events:
            analyst.decide_until(engine, events[0].occurred_at)
        alerts = [a.to_json() for a in engine.process_batch(events)]
        if analyst is not None:
            for a in alerts:
                analyst.see(a)
        out.extend(alerts)
        engine.store.flush()
    return out, time.perf_counter() - start
