"""Small worlds for the core's unit tests: reference data, access records, a Core on dicts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.alerts.ids import Pseudonymizer
from pipeline.broker.partitioning import partition_for
from pipeline.contract.records import Assignment, CustomerProfile, StaffRecord
from pipeline.core.engine import Core, CoreConfig, Inbound, Outbox
from pipeline.core.store import Store
from pipeline.peers.book import PeerBook
from pipeline.reference.state import ReferenceState

# Monday 2026-03-02 10:00 in Asia/Shanghai (the bank's default timezone).
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
EPOCH0 = T0.timestamp()
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def world(
    staff: Iterable[tuple[str, str, str]] = (("S1", "BR1", "customer_manager"),),
    customers: Iterable[tuple[str, str, str]] = (),
    assigned: Iterable[tuple[str, str]] = (),
    status: dict[str, tuple[str, datetime]] | None = None,
) -> ReferenceState:
    """``staff``: (id, branch, role); ``customers``: (id, home branch, sensitivity)."""
    ref = ReferenceState()
    for sid, branch, role in staff:
        ref.apply_staff(StaffRecord(sid, branch, role, "active", LONG_AGO, "08:30", "17:30"))
        if status and sid in status:
            st, at = status[sid]
            ref.apply_staff(StaffRecord(sid, branch, role, st, at, "08:30", "17:30"))  # type: ignore[arg-type]
    for cid, home, sens in customers:
        ref.apply_profile(CustomerProfile(cid, home, "retail", sens, [], LONG_AGO))  # type: ignore[arg-type]
    for sid, cid in assigned:
        ref.apply_assignment(Assignment(sid, cid, "relationship_manager", LONG_AGO, None))
    return ref


def access(
    n: int,
    staff_id: str = "S1",
    customer: str | None = "C1",
    *,
    at: datetime | None = None,
    minutes: float = 0.0,
    action: str = "view_profile",
    **extra: Any,
) -> dict[str, Any]:
    when = (at or T0) + timedelta(minutes=minutes)
    return {
        "event_id": f"ev-{staff_id}-{n}",
        "occurred_at": when.isoformat(),
        "staff_id": staff_id,
        "customer_id": customer,
        "action": action,
        "channel": "crm_web",
        "branch_id": "BR1",
        **extra,
    }


def core(
    ref: ReferenceState, partitions: int = 1, now: float = 1_800_000_000.0, **config: Any
) -> Core:
    """A core on dicts; ``now`` is its wall clock (default: after every test event)."""
    return Core(
        ref,
        CoreConfig(partitions=partitions, namespace="test", **config),
        Store({}, partitions),
        PeerBook(partitions),
        Pseudonymizer("test-key"),
        clock=lambda: now,
    )


class Feeder:
    """Offers records to a core with per-partition offsets, as a consumer would."""

    def __init__(self, c: Core) -> None:
        self.core = c
        self.offsets = [0] * c.config.partitions
        self.out: list[Outbox] = []

    def inbound(self, value: Any, key: bytes | str | None = "auto") -> Inbound:
        raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
        if key == "auto":
            k: bytes | None = str(value["staff_id"]).encode() if isinstance(value, dict) else None
        elif isinstance(key, str):
            k = key.encode()
        else:
            k = key
        p = partition_for(k, self.core.config.partitions) if k is not None else 0
        rec = Inbound(p, self.offsets[p], k, raw)
        self.offsets[p] += 1
        return rec

    def feed(self, *values: Any, key: bytes | str | None = "auto") -> Outbox:
        self.core.offer([self.inbound(v, key) for v in values])
        out = self.core.drain()
        self.core.store.flush()
        self.out.append(out)
        return out

    def alerts(self) -> list[dict[str, Any]]:
        import msgspec

        return [msgspec.to_builtins(a.emitted.alert) for o in self.out for a in o.alerts]
