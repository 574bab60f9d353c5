"""Engine: events in, newest alert revisions out; StaffStore write-behind and restarts."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest

from pipeline.alerts.ids import Pseudonymizer, alert_id_for
from pipeline.engine import Engine, StaffStore
from pipeline.records import AccessEvent, Alert, Assignment, StaffRecord
from pipeline.reference.state import ReferenceState
from pipeline.timeutil import parse_ts

T0 = parse_ts("2026-03-02T09:00:00+08:00")
MINUTE = 60.0
WALL = parse_ts("2026-05-01T00:00:00Z")


def reference() -> ReferenceState:
    state = ReferenceState()
    for sid, role in (("CM", "customer_manager"), ("TL", "teller")):
        state.apply_staff(StaffRecord(sid, f"BR-{sid}", role, "active", T0 - 86400.0))
    state.apply_assignment(Assignment("CM", "MINE", "relationship_manager", T0 - 86400.0, None))
    return state


def engine(store: StaffStore | None = None) -> Engine:
    return Engine(reference(), Pseudonymizer("k"), store=store, clock=lambda: WALL)


def ev(
    n: int, at: float, staff_id: str = "CM", action: str = "view_profile", customer: str = ""
) -> AccessEvent:
    return AccessEvent(
        event_id=f"{staff_id}-{n}",
        occurred_at=at,
        staff_id=staff_id,
        customer_id=customer or f"CUST-{n}",
        action=action,
        channel="crm_web",
        branch_id="BR-T",
    )


def stream() -> list[AccessEvent]:
    """Interleaved: CM looks up strangers; TL queries credit reports; noise in between."""
    out: list[AccessEvent] = []
    for i in range(1, 6):
        out.append(ev(i, T0 + i * MINUTE))
        out.append(ev(100 + i, T0 + i * MINUTE + 1, customer="MINE"))  # assigned: no signal
        out.append(ev(200 + i, T0 + i * MINUTE + 2, staff_id="TL"))  # teller view: no signal
        if i <= 3:
            out.append(ev(300 + i, T0 + i * MINUTE + 3, staff_id="TL", action="credit_report_query"))
    return out


def as_json(alerts: list[Alert]) -> list[dict[str, Any]]:
    return [a.to_json() for a in alerts]


def test_process_batch_keeps_only_newest_revision_per_alert() -> None:
    events = stream()
    one_by_one = engine()
    every = [a for a in (one_by_one.process(x) for x in events) if a is not None]
    newest: dict[str, Alert] = {}
    for a in every:
        newest[a.alert_id] = a
    assert len(every) > len(newest)

    batch = engine().process_batch(events)
    assert len(batch) == 2
    assert as_json(batch) == as_json(list(newest.values()))
    by_staff = {a.staff_id: a for a in batch}
    assert by_staff["CM"].revision == 4 and by_staff["CM"].event_count == 5
    assert by_staff["CM"].alert_id == alert_id_for("CM", "CM-1")
    assert by_staff["TL"].revision == 3 and by_staff["TL"].event_count == 3
    assert by_staff["TL"].alert_id == alert_id_for("TL", "TL-301")


def test_process_batch_keeps_two_incidents_of_one_staff() -> None:
    later = T0 + 5 * 86400.0
    events = [ev(1, T0), ev(2, T0 + MINUTE), ev(3, later), ev(4, later + MINUTE)]
    out = engine().process_batch(events)
    assert [a.alert_id for a in out] == [alert_id_for("CM", "CM-1"), alert_id_for("CM", "CM-3")]
    assert [a.revision for a in out] == [1, 1]


def test_process_batch_split_equals_one_batch() -> None:
    events = stream()
    eng = engine()
    parts = [eng.process_batch(events[:7]), eng.process_batch(events[7:])]
    final: dict[str, dict[str, Any]] = {}
    for part in parts:
        for a in part:
            final[a.alert_id] = a.to_json()
    assert list(final.values()) == as_json(engine().process_batch(events))


def test_stats_count_events_signals_alerts() -> None:
    eng = engine()
    events = stream()
    out = [eng.process(x) for x in events]
    assert eng.stats.events == len(events)
    assert eng.stats.signals == 5 + 3
    assert eng.stats.alerts == sum(1 for a in out if a is not None) == 4 + 3
    assert eng.stats.newest_event_at == max(x.occurred_at for x in events)


def test_staff_without_signals_leave_no_state() -> None:
    backing: dict[str, Any] = {}
    store = StaffStore(backing=backing)
    engine(store).process_batch([ev(1, T0, customer="MINE"), ev(2, T0, staff_id="TL")])
    assert store.flush() == 0
    assert backing == {}


def test_flush_writes_json_values_and_clears_dirty() -> None:
    backing: dict[str, Any] = {}
    store = StaffStore(backing=backing)
    engine(store).process_batch(stream())
    assert store.flush() == 2
    assert set(backing) == {"CM", "TL"}
    for value in backing.values():
        text = json.dumps(value, allow_nan=False)  # plain JSON: no pickles, no NaN
        assert json.loads(text) == orjson.loads(orjson.dumps(value))
    assert backing["CM"]["incident"]["revision"] == 4
    assert backing["TL"]["incident"]["event_count"] == 3
    assert not store.dirty
    assert store.flush() == 0


def _continue_after_restart(restored_backing: dict[str, Any]) -> None:
    events = stream()
    cut = 9
    reference_run = engine().process_batch(events)

    first_store = StaffStore(backing=restored_backing)
    first = engine(first_store)
    before = first.process_batch(events[:cut])
    first_store.flush()

    second = engine(StaffStore(backing=restored_backing))
    after = second.process_batch(events[cut:])
    merged: dict[str, dict[str, Any]] = {a.alert_id: a.to_json() for a in before}
    merged.update((a.alert_id, a.to_json()) for a in after)
    assert list(merged.values()) == as_json(reference_run)
    # The restarted engine continued the open incidents instead of opening new ones.
    before_ids = {a.alert_id for a in before}
    assert {a.alert_id for a in after} <= before_ids | {a.alert_id for a in reference_run}
    assert any(a.alert_id in before_ids and a.revision > 1 for a in after)


def test_new_engine_over_same_backing_continues_the_incident() -> None:
    _continue_after_restart({})


def test_restart_from_serialized_changelog_values() -> None:
    class JsonBacking:
        """Stores bytes, like a changelog topic does."""

        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        def get(self, key: str, /) -> Any:
            raw = self.data.get(key)
            return None if raw is None else orjson.loads(raw)

        def __setitem__(self, key: str, value: Any, /) -> None:
            self.data[key] = orjson.dumps(value)

    events = [ev(i, T0 + i * MINUTE) for i in range(1, 6)]
    backing = JsonBacking()
    a = engine(StaffStore(backing=backing))
    first = a.process_batch(events[:3])
    a.store.flush()
    b = engine(StaffStore(backing=backing))
    second = b.process_batch(events[3:])
    assert [x.revision for x in first] == [2]
    assert [(x.alert_id, x.revision, x.event_count) for x in second] == [
        (first[0].alert_id, 4, 5)
    ]
    # Redelivery of already-flushed events after the restart is a no-op.
    b.store.flush()
    c = engine(StaffStore(backing=backing))
    assert c.process_batch(events) == []


def test_forget_reloads_from_backing() -> None:
    backing: dict[str, Any] = {}
    store = StaffStore(backing=backing)
    eng = engine(store)
    eng.process_batch([ev(1, T0), ev(2, T0 + MINUTE)])
    store.flush()
    saved = copy.deepcopy(backing)
    store.forget()
    assert not store.cache and not store.dirty
    out = eng.process_batch([ev(3, T0 + 2 * MINUTE)])
    assert [(a.alert_id, a.revision) for a in out] == [(saved["CM"]["incident"]["alert_id"], 2)]


@pytest.mark.xfail(
    strict=True,
    reason="StaffStore.flush stores to_json() values that alias the live state's lists "
    "(incident event_ids/customers/reasons), so unflushed processing leaks into the backing "
    "half-way: a restart then drops the redelivered event as already seen",
)
def test_unflushed_work_does_not_leak_into_backing() -> None:
    backing: dict[str, Any] = {}
    first = engine(StaffStore(backing=backing))
    events = [ev(i, T0 + i * MINUTE) for i in range(1, 4)]
    first.process_batch(events[:2])
    first.store.flush()
    flushed = copy.deepcopy(backing)
    first.process_batch(events[2:])  # processed, then the worker dies before flushing
    assert backing == flushed
    # At-least-once: the restarted worker sees the last event again and must emit it.
    out = engine(StaffStore(backing=backing)).process_batch(events[2:])
    assert [(a.revision, a.event_count) for a in out] == [(2, 3)]
