"""The simulated SOC analyst: a daily triage of new alerts, verdicts by the labels. Pure.

After each bank-local day, the analyst reviews every alert that got its first
revision that day (each alert once, on the union of event ids it named so far):

- ``true_positive`` when the alert names an event of a malicious incident;
- ``benign_true_positive`` when it names an event of a benign look-alike;
- ``false_positive`` otherwise.

``unreviewed_share`` of the alerts are left without a verdict, and with
probability ``error_rate`` a verdict is wrong (a true alert called
``false_positive``, any other called ``true_positive``); both draws come from
``seed``, so a run is reproducible. ``decided_at`` is the local midnight that
ends the day (the triage happens before the next day's accesses). The verdicts
are AlertFeedback records (``schemas/alert-feedback.schema.json``), returned
as JSON bytes keyed by ``alert_id``: the values the analyst publishes on
``{prefix}alert-feedback``, or hands to ``run_offline(..., triage=...)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import orjson

from simbank.simulate.model import Incident
from simbank.timestamps import DEFAULT_TIMEZONE, local_midnight, local_time

ANALYST_ID: Final = "sim-analyst-1"


@dataclass
class AnalystStats:
    reviewed: int = 0
    unreviewed: int = 0
    wrong: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)


class SimulatedAnalyst:
    def __init__(
        self,
        incidents: Iterable[Incident],
        *,
        timezone: str = DEFAULT_TIMEZONE,
        unreviewed_share: float = 0.0,
        error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= unreviewed_share <= 1.0 or not 0.0 <= error_rate <= 1.0:
            raise ValueError("unreviewed_share and error_rate must be in [0, 1]")
        self.malicious: set[str] = set()
        self.lookalike: set[str] = set()
        for inc in incidents:
            (self.lookalike if inc.benign else self.malicious).update(inc.event_ids)
        self.timezone = timezone
        self.unreviewed_share = unreviewed_share
        self.error_rate = error_rate
        self._rng = random.Random(f"analyst|{seed}")
        self._named: dict[str, set[str]] = {}
        self.seen: set[str] = set()
        self.verdicts: dict[str, str] = {}  # alert_id -> verdict published
        self.stats = AnalystStats()

    def verdict_for(self, event_ids: Iterable[str]) -> str:
        ids = set(event_ids)
        if ids & self.malicious:
            return "true_positive"
        if ids & self.lookalike:
            return "benign_true_positive"
        return "false_positive"

    def triage(self, day: str, revisions: Iterable[Mapping[str, Any]]) -> list[bytes]:
        """Verdicts (AlertFeedback JSON) on the alerts first seen in ``revisions``, the
        revisions emitted during bank-local ``day`` (YYYY-MM-DD)."""
        fresh: list[str] = []
        for rev in revisions:
            alert_id = str(rev["alert_id"])
            self._named.setdefault(alert_id, set()).update(str(e) for e in rev["event_ids"])
            if alert_id not in self.seen:
                self.seen.add(alert_id)
                fresh.append(alert_id)
        end = local_midnight(date.fromisoformat(day), self.timezone) + 86400.0
        decided_at = local_time(end, self.timezone).isoformat()
        out: list[bytes] = []
        for alert_id in sorted(fresh):
            if self.unreviewed_share and self._rng.random() < self.unreviewed_share:
                self.stats.unreviewed += 1
                continue
            verdict = self.verdict_for(self._named[alert_id])
            if self.error_rate and self._rng.random() < self.error_rate:
                verdict = "false_positive" if verdict == "true_positive" else "true_positive"
                self.stats.wrong += 1
            self.verdicts[alert_id] = verdict
            self.stats.reviewed += 1
            self.stats.verdicts[verdict] = self.stats.verdicts.get(verdict, 0) + 1
            record = {
                "alert_id": alert_id,
                "verdict": verdict,
                "analyst_id": ANALYST_ID,
                "comment": f"daily triage of {day}",
                "decided_at": decided_at,
            }
            out.append(orjson.dumps(record))
        return out
