"""The simulator's public records: reference records, labelled incidents, the simulation."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from simbank.simulate.clock import local_date
from simbank.simulate.config import SimConfig
from simbank.timestamps import DEFAULT_TIMEZONE, parse_ts


@dataclass(frozen=True)
class RefRecord:
    """One record for a compacted reference topic (topic name without the prefix)."""

    topic: str  # "staff-directory" | "staff-assignments" | "customer-profiles"
    key: str  # staff_id | "staff_id:customer_id" | customer_id
    value: dict[str, Any] | None  # the contract record; None = tombstone

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "key": self.key, "value": self.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RefRecord:
        return cls(str(data["topic"]), str(data["key"]), data["value"])


@dataclass(frozen=True)
class Incident:
    """Ground truth: a labelled run of events by one member of staff."""

    incident_id: str
    kind: str
    benign: bool  # True for labelled benign look-alikes
    staff_id: str
    event_ids: tuple[str, ...]
    start: float  # epoch seconds of the first event
    end: float  # epoch seconds of the last event
    within_session: bool  # happens within one session (detection target <= 5 min)

    def to_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "kind": self.kind,
            "benign": self.benign,
            "staff_id": self.staff_id,
            "event_ids": list(self.event_ids),
            "start": self.start,
            "end": self.end,
            "within_session": self.within_session,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        return cls(
            incident_id=str(data["incident_id"]),
            kind=str(data["kind"]),
            benign=bool(data["benign"]),
            staff_id=str(data["staff_id"]),
            event_ids=tuple(str(e) for e in data["event_ids"]),
            start=float(data["start"]),
            end=float(data["end"]),
            within_session=bool(data["within_session"]),
        )


@dataclass
class Simulation:
    config: SimConfig
    reference: list[RefRecord]  # publication order: initial state, then changes
    events: list[dict[str, Any]]  # AccessEvent JSON dicts, sorted by occurred_at
    incidents: list[Incident]

    def active_staff_days(self) -> int:
        """(staff, local day) pairs with at least one event; the local day is taken in the
        timezone of the staff record in force at the event."""
        return sum(self.active_staff_days_by_date().values())

    def active_staff_days_by_date(self) -> dict[date, int]:
        """Active staff-days (see :meth:`active_staff_days`) per local date."""
        zones: dict[str, tuple[list[float], list[str]]] = {}
        for r in self.reference:
            if r.topic == "staff-directory" and r.value is not None:
                at = parse_ts(r.value["effective_at"])
                times, tzs = zones.setdefault(r.key, ([], []))
                i = bisect.bisect_right(times, at)
                times.insert(i, at)
                tzs.insert(i, r.value.get("timezone") or DEFAULT_TIMEZONE)
        seen: set[tuple[str, date]] = set()
        for ev in self.events:
            sid = ev["staff_id"]
            at = parse_ts(ev["occurred_at"])
            times, tzs = zones.get(sid, ([], []))
            i = bisect.bisect_right(times, at) - 1
            tz = tzs[i] if i >= 0 else (tzs[0] if tzs else DEFAULT_TIMEZONE)
            seen.add((sid, local_date(round(at * 1000), tz)))
        return dict(sorted(Counter(day for _, day in seen).items()))

    def summary(self) -> dict[str, Any]:
        """Counts describing the simulation (deterministic)."""
        topics = Counter(r.topic for r in self.reference)
        staff_ids = {r.key for r in self.reference if r.topic == "staff-directory"}
        malicious = Counter(i.kind for i in self.incidents if not i.benign)
        benign = Counter(i.kind for i in self.incidents if i.benign)
        return {
            "config": self.config.to_json(),
            "staff": len(staff_ids),
            "customers": topics.get("customer-profiles", 0),
            "reference_records": dict(sorted(topics.items())),
            "events": len(self.events),
            "events_by_action": dict(sorted(Counter(e["action"] for e in self.events).items())),
            "events_by_channel": dict(sorted(Counter(e["channel"] for e in self.events).items())),
            "first_event_at": self.events[0]["occurred_at"] if self.events else None,
            "last_event_at": self.events[-1]["occurred_at"] if self.events else None,
            "incidents_malicious": dict(sorted(malicious.items())),
            "incidents_benign": dict(sorted(benign.items())),
            "labelled_events": sum(len(i.event_ids) for i in self.incidents),
        }
