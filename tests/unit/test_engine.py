"""Engine: events in, newest alert revisions out; StaffStore write-behind and restarts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pipeline.alerts.ids import Pseudonymizer, alert_id_for
from pipeline.alerts.incidents import RiskConfig
from pipeline.broker.partitioning import key_for_partition
from pipeline.contract.records import AccessEvent, Alert, Assignment, StaffRecord
from pipeline.core.engine import Engine, StaffStore
from pipeline.detect.behaviour import FEEDBACK_FACTOR
from pipeline.detect.catalogue import CATALOGUE
from pipeline.reference.state import ReferenceState
from pipeline.timeutil import parse_ts

# 09:00 local (Asia/Shanghai): inside the default shift, so only the rules below fire.
T0 = parse_ts("2026-03-02T09:00:00+08:00")
CFG = RiskConfig()
STEP = CFG.reemit_after_s  # events this far apart are each re-emitted
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
    n: int,
    at: float,
    staff_id: str = "CM",
    action: str = "credit_report_query",
    customer: str = "MINE",
) -> AccessEvent:
    return AccessEvent(
        event_id=f"{staff_id}-{n}",
        occurred_at=at,
        staff_id=staff_id,
        customer_id=customer,
        action=action,
        channel="crm_web",
        branch_id="BR-T",
    )


def stream() -> list[AccessEvent]:
    """Interleaved: CM and TL query credit reports without authorization; harmless views between.

    Each credit query is the only signal of its event and alone opens an incident.
    """
    out: list[AccessEvent] = []
    for i in range(1, 6):
        at = T0 + i * STEP
        out.append(ev(i, at))
        out.append(ev(100 + i, at + 1, action="view_balance"))  # assigned customer: no signal
        if i <= 3:
            out.append(ev(200 + i, at + 2, staff_id="TL", customer=f"WALKIN-{i}"))
        out.append(ev(300 + i, at + 3, staff_id="TL", action="view_profile", customer="W"))
    return out


def as_json(alerts: list[Alert]) -> list[dict[str, Any]]:
    return [a.to_json() for a in alerts]


def test_assumptions_of_this_module() -> None:
    assert CATALOGUE["credit_report_without_authorization"].weight >= CFG.fast_open
    eng = engine()
    first = eng.process(ev(1, T0))
    assert first is not None and first.revision == 1
    assert [r.code for r in first.reasons] == ["credit_report_without_authorization"]
    assert eng.process(ev(2, T0 + 1, action="view_balance")) is None
    assert eng.process(ev(3, T0 + 2, staff_id="TL", action="view_profile", customer="W")) is None


def test_process_batch_returns_every_revision_in_order() -> None:
    """Each revision carries its own event time: a batch must not hide the early ones."""
    events = stream()
    one_by_one = engine()
    every = [a for a in (one_by_one.process(x) for x in events) if a is not None]
    assert len(every) == 5 + 3

    batch = engine().process_batch(events)
    assert as_json(batch) == as_json(every)
    newest = {a.staff_id: a for a in batch}
    assert set(newest) == {"CM", "TL"}
    assert (newest["CM"].revision, newest["CM"].event_count) == (5, 5)
    assert newest["CM"].alert_id == alert_id_for("CM", "CM-1")
    assert (newest["TL"].revision, newest["TL"].event_count) == (3, 3)
    assert newest["TL"].alert_id == alert_id_for("TL", "TL-201")
    assert [a.revision for a in batch if a.staff_id == "CM"] == [1, 2, 3, 4, 5]


def test_process_batch_keeps_two_incidents_of_one_staff() -> None:
    later = T0 + 20 * CFG.slow_half_life_s  # the first incident has long closed
    events = [ev(i, T0 + i * STEP) for i in range(1, 3)]
    events += [ev(i, later + i * STEP) for i in range(3, 9)]
    one_by_one = engine()
    every = [a for a in (one_by_one.process(x) for x in events) if a is not None]
    newest: dict[str, Alert] = {}
    for a in every:
        newest[a.alert_id] = a
    batch = engine().process_batch(events)
    assert as_json(batch) == as_json(every)
    out = list(newest_per_alert(batch).values())
    assert len(out) == 2 < len(every)
    assert out[0].alert_id == alert_id_for("CM", "CM-1")
    assert out[0].revision == 2 and out[0].event_ids == ["CM-1", "CM-2"]
    assert out[1].alert_id != out[0].alert_id
    assert set(out[1].event_ids) <= {f"CM-{i}" for i in range(3, 9)}


def newest_per_alert(alerts: list[Alert]) -> dict[str, Alert]:
    newest: dict[str, Alert] = {}
    for a in alerts:
        newest[a.alert_id] = a
    return newest


def test_process_batch_of_nothing() -> None:
    assert engine().process_batch([]) == []


def test_split_batches_give_the_same_final_alerts() -> None:
    events = stream()
    eng = engine()
    final: dict[str, dict[str, Any]] = {}
    for part in (events[:7], events[7:11], events[11:]):
        for a in eng.process_batch(part):
            final[a.alert_id] = a.to_json()
    whole = newest_per_alert(engine().process_batch(events))
    assert list(final.values()) == [a.to_json() for a in whole.values()]


def test_stats_count_events_signals_alerts() -> None:
    eng = engine()
    events = stream()
    out = [eng.process(x) for x in events]
    assert eng.stats.events == len(events)
    assert eng.stats.signals == 5 + 3
    assert eng.stats.alerts == sum(1 for a in out if a is not None) == 5 + 3
    assert eng.stats.newest_event_at == max(x.occurred_at for x in events)


def test_flush_writes_json_values_and_clears_dirty() -> None:
    backing: dict[str, Any] = {}
    store = StaffStore(backing=backing)
    engine(store).process_batch(stream())
    assert store.flush() == 2
    # the two employees, the peer baselines of their partition (one partition here),
    # and its online model's first checkpoint
    assert set(backing) == {
        "CM",
        "TL",
        key_for_partition("peers", 0, 1),
        key_for_partition("model", 0, 1),
    }
    for value in backing.values():
        assert isinstance(value, bytes)
        decoded = json.loads(value)  # plain UTF-8 JSON: no pickles
        assert json.dumps(decoded, allow_nan=False)  # and no NaN
    assert not store.dirty
    assert store.flush() == 0


def _run_with_restart(backing: Any, cut: int) -> list[dict[str, Any]]:
    """Process the stream with a fresh engine after ``cut`` events; newest alerts."""
    events = stream()
    first = engine(StaffStore(backing=backing))
    before = first.process_batch(events[:cut])
    first.store.flush()
    second = engine(StaffStore(backing=backing))
    after = second.process_batch(events[cut:])
    merged = {a.alert_id: a.to_json() for a in before}
    merged.update((a.alert_id, a.to_json()) for a in after)
    return list(merged.values())


class BytesBacking:
    """Stores serialized bytes, as the changelog topic does."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str, /) -> Any:
        return self.data.get(key)

    def __setitem__(self, key: str, value: Any, /) -> None:
        assert isinstance(value, bytes)
        self.data[key] = bytes(value)  # what a changelog record holds


@pytest.mark.parametrize("kind", ["dict", "bytes"])
def test_new_engine_over_same_backing_continues_the_incidents(kind: str) -> None:
    expected = [a.to_json() for a in newest_per_alert(engine().process_batch(stream())).values()]
    for cut in range(1, len(stream())):
        backing: Any = {} if kind == "dict" else BytesBacking()
        assert _run_with_restart(backing, cut) == expected, cut


def test_restart_then_redelivery_is_a_no_op() -> None:
    backing = BytesBacking()
    first = engine(StaffStore(backing=backing))
    first.process_batch(stream())
    first.store.flush()
    again = engine(StaffStore(backing=backing))
    assert again.process_batch(stream()) == []
    assert again.stats.events == len(stream())


def test_forget_reloads_from_backing() -> None:
    backing: dict[str, Any] = {}
    store = StaffStore(backing=backing)
    eng = engine(store)
    opened = eng.process_batch([ev(1, T0)])
    store.flush()
    store.forget()
    assert not store.cache and not store.dirty
    out = eng.process_batch([ev(2, T0 + STEP)])
    assert [(a.alert_id, a.revision, a.event_count) for a in out] == [(opened[0].alert_id, 2, 2)]


def test_feedback_is_kept_in_the_staff_state() -> None:
    backing = BytesBacking()
    eng = engine(StaffStore(backing=backing))
    eng.apply_feedback("CM", ["credit_report_without_authorization"])
    eng.store.flush()
    assert "CM" in backing.data
    restarted = engine(StaffStore(backing=backing))
    restarted.process(ev(1, T0))
    weight = CATALOGUE["credit_report_without_authorization"].weight
    assert restarted.store.get("CM").risk.risk == pytest.approx(weight * FEEDBACK_FACTOR)
    # Someone else's weight is untouched.
    restarted.process(ev(2, T0, staff_id="TL", customer="X"))
    assert restarted.store.get("TL").risk.risk == pytest.approx(weight)


def test_unflushed_work_does_not_leak_into_backing() -> None:
    backing: dict[str, Any] = {}
    first = engine(StaffStore(backing=backing))
    events = [ev(1, T0), ev(2, T0 + STEP)]
    first.process_batch(events[:1])
    first.store.flush()
    flushed = copy.deepcopy(backing)
    first.process_batch(events[1:])  # processed, then the worker dies before flushing
    assert backing == flushed
    # At-least-once: the restarted worker gets the last event again and must emit it.
    out = engine(StaffStore(backing=backing)).process_batch(events[1:])
    assert [(a.revision, a.event_count) for a in out] == [(2, 2)]
