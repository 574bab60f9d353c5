"""The baselines' view of each simulated access: who, whose data, assigned or not. Pure.

simbank reads its own simulated records (it does not borrow the pipeline's enrichment):
the reference records are read with the contract's semantics,

- a StaffRecord holds from its ``effective_at`` until the next record of that employee;
- an access is *assigned* when an ``assign`` record for the pair covers its time
  (``valid_from <= t < valid_to``); a ``revoke`` record ends the pair's earlier intervals
  at its ``valid_from``; a later ``assign`` with the same ``valid_from`` replaces one;
- a CustomerProfile is the customer's latest record.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from simbank.simulate.model import Simulation
from simbank.timestamps import DEFAULT_TIMEZONE, parse_ts

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Access:
    """The AccessEvent fields the baselines read (``occurred_at`` in epoch seconds)."""

    event_id: str
    occurred_at: float
    staff_id: str
    customer_id: str | None
    action: str
    channel: str
    branch_id: str
    authorization_ref: str | None = None
    record_count: int = 1
    outcome: str = "success"

    @classmethod
    def from_json(cls, ev: dict[str, Any]) -> Access:
        return cls(
            event_id=str(ev["event_id"]),
            occurred_at=parse_ts(str(ev["occurred_at"])),
            staff_id=str(ev["staff_id"]),
            customer_id=ev.get("customer_id"),
            action=str(ev["action"]),
            channel=str(ev["channel"]),
            branch_id=str(ev["branch_id"]),
            authorization_ref=ev.get("authorization_ref"),
            record_count=int(ev.get("record_count", 1)),
            outcome=str(ev.get("outcome", "success")),
        )


@dataclass(frozen=True, slots=True)
class Enriched:
    """An access with the reference data in force at its time."""

    event: Access
    staff_branch_id: str | None  # None: no staff record in force
    role: str | None
    status: str | None
    timezone: str
    assigned: bool
    home_branch_id: str | None  # None: unknown customer (or a search)
    sensitivity: str | None


class GroundTruth:
    """The reference records of a simulation, queryable at any event time."""

    def __init__(self, sim: Simulation) -> None:
        self._staff_times: dict[str, list[float]] = {}
        self._staff: dict[str, list[dict[str, Any]]] = {}
        self._spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._customers: dict[str, dict[str, Any]] = {}
        for r in sim.reference:
            v = r.value
            if v is None:
                continue
            if r.topic == "staff-directory":
                at = parse_ts(v["effective_at"])
                times = self._staff_times.setdefault(r.key, [])
                recs = self._staff.setdefault(r.key, [])
                i = bisect.bisect_right(times, at)
                times.insert(i, at)
                recs.insert(i, v)
            elif r.topic == "customer-profiles":
                self._customers[r.key] = v
            elif r.topic == "staff-assignments":
                self._assignment(v)

    def _assignment(self, v: dict[str, Any]) -> None:
        key = (str(v["staff_id"]), str(v["customer_id"]))
        start = parse_ts(v["valid_from"])
        old = self._spans.get(key, [])
        if v.get("op", "assign") == "revoke":
            self._spans[key] = [(a, min(b, start)) for a, b in old if a < start]
        else:
            end = parse_ts(v["valid_to"]) if v.get("valid_to") else INF
            self._spans[key] = [iv for iv in old if iv[0] != start] + [(start, end)]

    def staff_at(self, staff_id: str, at: float) -> dict[str, Any] | None:
        times = self._staff_times.get(staff_id)
        if not times:
            return None
        i = bisect.bisect_right(times, at)
        return self._staff[staff_id][i - 1] if i else None

    def assigned(self, staff_id: str, customer_id: str, at: float) -> bool:
        return any(a <= at < b for a, b in self._spans.get((staff_id, customer_id), ()))

    def enrich(self, ev: Access) -> Enriched:
        staff = self.staff_at(ev.staff_id, ev.occurred_at)
        cust = self._customers.get(ev.customer_id) if ev.customer_id is not None else None
        return Enriched(
            event=ev,
            staff_branch_id=None if staff is None else str(staff["branch_id"]),
            role=None if staff is None else str(staff["role"]),
            status=None if staff is None else str(staff["status"]),
            timezone=str((staff or {}).get("timezone") or DEFAULT_TIMEZONE),
            assigned=ev.customer_id is not None
            and self.assigned(ev.staff_id, ev.customer_id, ev.occurred_at),
            home_branch_id=None if cust is None else str(cust["home_branch_id"]),
            sensitivity=None if cust is None else str(cust["sensitivity"]),
        )


def enrich_simulation(sim: Simulation) -> Iterator[Enriched]:
    """Every simulated access with its reference data, in stream (event-time) order."""
    truth = GroundTruth(sim)
    for ev in sim.events:
        yield truth.enrich(Access.from_json(ev))
