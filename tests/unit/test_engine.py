"""The pure core: arrival checks, the day barrier, replays, determinism, closing, learning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import orjson
import pytest

from pipeline.core import engine as engine_module
from pipeline.core.state import StaffState, decode_staff
from pipeline.detect.behaviour import DAY_SURPRISE
from pipeline.detect.surprise import surprise
from pipeline.peers.days import PeerDay, Watermark
from tests.unit.corekit import T0, Feeder, access, core, world

CREDIT = "credit_report_without_authorization"


def credit(n: int, staff: str = "S1", **kw: Any) -> dict[str, Any]:
    return access(n, staff, "C1", action="credit_report_query", **kw)


def ids(alerts: list[dict[str, Any]]) -> list[tuple[str, int, tuple[str, ...], str]]:
    """What determinism compares: every revision's id, number, events and status."""
    return sorted(
        (a["alert_id"], a["revision"], tuple(a["event_ids"]), a.get("status", "open"))
        for a in alerts
    )


# -- arrival ---------------------------------------------------------------------------


def test_a_policy_violation_alerts_at_the_first_access() -> None:
    f = Feeder(core(world(customers=[("C1", "BR1", "normal")])))
    out = f.feed(credit(1))
    assert [a.emitted.alert.revision for a in out.alerts] == [1]
    alert = out.alerts[0].emitted.alert
    assert alert.event_ids == ["ev-S1-1"]
    assert alert.severity == "medium", "one missing authorization: the form may be on file"
    assert [r.code for r in alert.reasons] == [CREDIT]
    assert out.done == [(0, 0)]
    assert [e.event_id for e in out.alerts[0].emitted.evidence] == ["ev-S1-1"]


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (b"{not json", "S1", "malformed_json"),
        (orjson.dumps({**access(1), "action": "steal"}), "S1", "unknown_enum"),
        (orjson.dumps(access(1)), "S2", "key_mismatch"),
        (orjson.dumps(access(1)), None, "key_mismatch"),
        (orjson.dumps({**access(1), "occurred_at": "2150-01-01T00:00:00Z"}), "S1", "bad_timestamp"),
        (orjson.dumps({**access(1), "record_count": 1e308}), "S1", "wrong_type"),
        (
            orjson.dumps(access(1))[:-1] + b',"record_count":18446744073709551616}',
            "S1",
            "invalid_value",
        ),
        (orjson.dumps({**access(1), "branch_id": "B" * 60_000}), "S1", "invalid_value"),
        (None, "S1", "tombstone"),
    ],
)
def test_bad_records_are_dead_lettered_and_the_partition_goes_on(
    value: bytes | None, key: str | None, code: str
) -> None:
    f = Feeder(core(world(customers=[("C1", "BR1", "normal")])))
    f.core.offer([f.inbound(value, key=key if key is None else key.encode())])
    f.core.offer([f.inbound(credit(2))])
    out = f.core.drain()
    assert [dl.error.code for dl, _ in out.dead_letters] == [code]
    assert sorted(out.done) == [(0, 0), (0, 1)]
    assert [a.emitted.alert.event_ids for a in out.alerts] == [["ev-S1-2"]]


LIVE = (T0 + timedelta(minutes=30)).timestamp()  # a wall clock just after the events


def test_an_access_far_ahead_of_the_partition_watermark_and_the_clock_is_dead_lettered() -> None:
    ref = world(customers=[("C1", "BR1", "normal")])
    f = Feeder(core(ref, now=LIVE, max_event_skew_s=86400.0))
    f.feed(access(1))
    out = f.feed(credit(2, at=T0 + timedelta(days=3)), credit(3, minutes=5))
    assert [dl.error.code for dl, _ in out.dead_letters] == ["clock_skew"]
    assert [a.emitted.alert.event_ids for a in out.alerts] == [["ev-S1-3"]]
    ps = f.core.store.partition(0)
    assert ps.watermark == pytest.approx((T0 + timedelta(minutes=5)).timestamp())
    assert ps.skew_rejected == [1]


def test_a_far_future_first_record_of_a_partition_is_dead_lettered() -> None:
    ref = world(customers=[("C1", "BR1", "normal")])
    f = Feeder(core(ref, now=LIVE, max_event_skew_s=86400.0))
    out = f.feed(credit(1, at=T0 + timedelta(days=3)), credit(2, minutes=5))
    assert [dl.error.code for dl, _ in out.dead_letters] == ["clock_skew"]
    assert "no accepted access yet" in out.dead_letters[0][0].error.message
    assert [a.emitted.alert.event_ids for a in out.alerts] == [["ev-S1-2"]]
    ps = f.core.store.partition(0)
    assert ps.watermark == pytest.approx((T0 + timedelta(minutes=5)).timestamp())


def test_a_redelivered_skew_rejection_is_rejected_again() -> None:
    ref = world(customers=[("C1", "BR1", "normal")])
    f = Feeder(core(ref, now=LIVE, max_event_skew_s=86400.0))
    far = credit(2, at=T0 + timedelta(days=3))
    f.feed(access(1), far)
    f.feed(*(access(10 + i, minutes=i * 10) for i in range(3)))  # the watermark moves on
    replay = core(ref, now=LIVE + 86400.0 * 10, max_event_skew_s=86400.0)
    replay.store.backing = f.core.store.backing
    replay.offer([engine_module.Inbound(0, 1, b"S1", orjson.dumps(far))])
    out = replay.drain()
    assert [dl.error.code for dl, _ in out.dead_letters] == ["clock_skew"]


def test_a_long_quiet_spell_in_history_is_not_clock_skew() -> None:
    f = Feeder(core(world(customers=[("C1", "BR1", "normal")]), max_event_skew_s=86400.0))
    f.feed(access(1))
    out = f.feed(credit(2, at=T0 + timedelta(days=20)))  # three quiet weeks, long ago
    assert out.dead_letters == [] and out.alerts


def test_a_defect_on_one_record_is_dead_lettered_and_the_next_records_processed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = engine_module.evaluate_rules

    def flaky(e: Any) -> Any:
        if e.event.event_id == "ev-S1-1":
            raise ZeroDivisionError("boom")
        return real(e)

    monkeypatch.setattr(engine_module, "evaluate_rules", flaky)
    f = Feeder(core(world(customers=[("C1", "BR1", "normal")])))
    out = f.feed(credit(1), credit(2))
    assert [(dl.error.code, dl.offset) for dl, _ in out.dead_letters] == [("processing_error", 0)]
    assert [a.emitted.alert.event_ids for a in out.alerts] == [["ev-S1-2"]]
    assert sorted(out.done) == [(0, 0), (0, 1)]


# -- replays and crashes -----------------------------------------------------------------


def test_a_replay_after_the_state_was_written_changes_nothing() -> None:
    ref = world(customers=[("C1", "BR1", "normal")])
    f = Feeder(core(ref))
    records = [f.inbound(credit(n, minutes=n)) for n in range(1, 6)]
    f.core.offer(records)
    first = f.core.drain()
    f.core.store.flush()
    assert first.alerts
    restarted = core(ref)
    restarted.store.backing = f.core.store.backing
    for rec in first.peer_records:
        restarted.book.add(rec)
    restarted.offer(records)
    again = restarted.drain()
    assert again.alerts == [] and again.dead_letters == []
    assert sorted(again.done) == sorted(first.done)
    assert restarted.stats.duplicates == 5


def test_a_crash_before_the_state_was_written_replays_the_same_alerts() -> None:
    ref = world(customers=[("C1", "BR1", "normal")])
    f = Feeder(core(ref))
    first = f.feed(credit(1))  # written
    backing = dict(f.core.store.backing)  # type: ignore[call-overload]
    later = [f.inbound(credit(n, minutes=10 * n)) for n in range(2, 6)]
    f.core.offer(later)
    out = f.core.drain()  # published, then the worker dies before writing state
    restarted = core(ref)
    restarted.store.backing = backing
    for rec in first.peer_records + out.peer_records:  # what the peer topic holds
        restarted.book.add(rec)
    restarted.offer(later)
    again = restarted.drain()

    def view(o: Any) -> list[Any]:
        return [msgspec.to_builtins(a.emitted.alert) for a in o.alerts]

    assert ids(view(again)) == ids(view(out))


def test_a_day_on_the_peer_topic_is_not_published_again_from_a_restored_state() -> None:
    """A restarted worker whose restored state is older than the peer topic (records
    handled and their days published, the state not yet written or written in part)
    closes the day again; the day stays what was published (CI: a republished day with
    fewer samples changed later risk scores)."""
    c = core(_bank_world())
    f = Feeder(c)
    records = [f.inbound(e) for e in _bank_events()]
    c.offer(records[:30])
    c.drain()
    older = dict(c.store.pending_writes())  # the state written 30 records in
    c.offer(records[30:])
    out = c.drain()
    published = {(r.partition, r.day) for r in out.peer_records if isinstance(r, PeerDay)}
    assert published, "the scenario closes days"
    restarted = core(_bank_world())
    restarted.store.backing = older  # type: ignore[assignment]
    for rec in out.peer_records:  # what the peer topic holds
        restarted.book.add(rec)
    again = restarted.drain()  # idle and caught up: it closes its days again
    assert restarted.store.partition(0).closed_through is not None
    republished = [r for r in again.peer_records if isinstance(r, PeerDay)]
    assert republished == []
    assert all(restarted.book.has_day(*k) for k in published)


def test_an_idle_partition_writes_no_state() -> None:
    f = Feeder(core(_bank_world()))
    f.core.assign({0})
    f.feed(*_bank_events()[:20])  # written by the feed's flush
    for _ in range(3):  # the worker drains on every tick, with nothing new
        f.core.drain()
    assert f.core.store.pending_writes() == []


def test_the_same_event_id_published_twice_counts_once() -> None:
    f = Feeder(core(world(customers=[("C1", "BR1", "normal")])))
    out = f.feed(credit(1), credit(1))
    assert len(out.alerts) == 1
    assert f.core.stats.duplicates == 1


# -- determinism ----------------------------------------------------------------------------


def _bank_events() -> list[dict[str, Any]]:
    events = []
    for day in range(3):
        for n in range(12):
            for sid in ("S1", "S2", "S3", "S4"):
                customer = f"C{(n * 7 + day) % 9}"
                action = "credit_report_query" if (n + day) % 11 == 0 else "view_profile"
                events.append(
                    access(
                        day * 100 + n,
                        sid,
                        customer,
                        at=T0 + timedelta(days=day, minutes=n * 20),
                        action=action,
                    )
                )
    events.sort(key=lambda e: e["occurred_at"])
    return events


def _bank_world() -> Any:
    staff = [(f"S{i}", "BR1", "customer_manager") for i in range(1, 5)]
    customers = [
        (f"C{i}", "BR1" if i < 4 else "BR2", "vip" if i == 8 else "normal") for i in range(9)
    ]
    return world(staff=staff, customers=customers, assigned=[("S1", "C1"), ("S2", "C2")])


def _run(partitions: int, batch: int) -> list[dict[str, Any]]:
    f = Feeder(core(_bank_world(), partitions=partitions))
    events = _bank_events()
    for i in range(0, len(events), batch):
        f.feed(*events[i : i + batch])
    return f.alerts()


def test_alerts_do_not_depend_on_the_partition_count_or_the_batching() -> None:
    reference = _run(partitions=1, batch=1000)
    assert reference, "the scenario raises alerts"
    for partitions, batch in ((4, 1000), (4, 1), (3, 7)):
        assert ids(_run(partitions, batch)) == ids(reference), (partitions, batch)


# -- the day barrier ------------------------------------------------------------------------


def test_a_partition_waits_at_a_day_boundary_until_every_partition_published_the_day() -> None:
    ref = world(staff=[("S1", "BR1", "customer_manager"), ("S2", "BR1", "customer_manager")])
    c = core(ref, partitions=2)
    f = Feeder(c)
    p1 = f.inbound(access(1, "S1", minutes=0)).partition
    p2 = f.inbound(access(2, "S2", minutes=0)).partition
    assert p1 != p2, "the two staff live on different partitions"
    f.offsets = [0, 0]
    c.offer([f.inbound(access(1, "S1")), f.inbound(access(2, "S2"))])
    c.drain(caught_up=lambda p: False)
    c.offer([f.inbound(access(3, "S1", at=T0 + timedelta(days=1)))])
    out = c.drain(caught_up=lambda p: False)
    assert c.waiting() == 1, "S1's next day waits: S2's partition has not published day 1"
    c.store.pending_writes()
    c.drain(caught_up=lambda p: False)
    assert c.store.pending_writes() == [], "waiting changes no state"
    assert any(isinstance(r, PeerDay) and r.partition == p1 for r in out.peer_records)
    c.offer([f.inbound(access(4, "S2", at=T0 + timedelta(days=1, minutes=1)))])
    out = c.drain(caught_up=lambda p: False)
    assert c.waiting() == 0
    assert {r.partition for r in out.peer_records if isinstance(r, PeerDay)} >= {p2}
    assert c.book.complete_through() is not None


def test_an_idle_partition_publishes_the_days_that_ended_before_the_newest_access() -> None:
    ref = world(staff=[("S1", "BR1", "customer_manager")])
    c = core(ref, partitions=3, allowed_lateness_s=3600.0)
    f = Feeder(c)
    c.offer([f.inbound(access(1, "S1")), f.inbound(access(2, "S1", at=T0 + timedelta(days=1)))])
    c.drain(caught_up=lambda p: False)
    assert c.waiting() == 2, "the empty partitions are not known to be idle yet"
    c.drain(caught_up=lambda p: True)
    assert c.waiting() == 0
    wms = [r for r in c._out.peer_records if isinstance(r, Watermark)]  # nothing left over
    assert wms == []


# -- closing, learning, feedback --------------------------------------------------------------


def test_an_incident_that_decays_is_closed_with_a_final_revision() -> None:
    ref = world(
        staff=[("S1", "BR1", "customer_manager"), ("S2", "BR1", "customer_manager")],
        customers=[("C1", "BR1", "normal")],
    )
    f = Feeder(core(ref))
    f.feed(credit(1))
    f.feed(access(2, "S2", at=T0 + timedelta(days=2)))  # time passes on the partition
    alerts = f.alerts()
    assert [a.get("status", "open") for a in alerts] == ["open", "closed"]
    assert alerts[1]["alert_id"] == alerts[0]["alert_id"]
    assert alerts[1]["revision"] == alerts[0]["revision"] + 1
    assert f.core.store.partition(0).open_incidents == []


def _burst(f: Feeder, start: Any, n: int = 40) -> None:
    f.feed(*(access(1000 + i, "S1", f"X{i}", at=start, minutes=i) for i in range(n)))


def test_learning_period_learns_but_alerts_only_on_policy_violations() -> None:
    customers = [(f"X{i}", "BR2", "normal") for i in range(40)] + [("C1", "BR1", "normal")]
    learning_end = (T0 + timedelta(days=1)).timestamp()
    f = Feeder(core(world(customers=customers), learn_until=learning_end))
    _burst(f, T0)
    assert f.alerts() == [], "a burst of other-branch look-ups during learning raises nothing"
    f.feed(credit(2, minutes=60))
    assert [r["code"] for r in f.alerts()[0]["reasons"]] == [CREDIT]
    cold = Feeder(core(world(customers=customers)))
    _burst(cold, T0)
    assert cold.alerts(), "without the learning period the same burst alerts"


def test_feedback_applies_once_per_alert_and_never_to_policy_codes() -> None:
    f = Feeder(core(world()))
    c = f.core
    codes = [CREDIT, "other_branch_customer_access"]
    assert c.apply_feedback("S1", 0, "al-1", "false_positive", codes)
    assert not c.apply_feedback("S1", 0, "al-1", "false_positive", codes), "redelivered"
    fb = c.store.staff("S1", 0).behaviour.feedback
    assert fb == {"other_branch_customer_access": 0.5}
    for n in range(2, 10):
        c.apply_feedback("S1", 0, f"al-{n}", "benign_true_positive", codes)
    assert fb["other_branch_customer_access"] == 0.25, "bounded below"
    assert c.apply_feedback("S1", 0, "al-99", "true_positive", codes)
    assert fb["other_branch_customer_access"] == 0.5, "a true positive restores"


def test_a_verdict_on_the_open_incident_rides_on_its_later_revisions() -> None:
    f = Feeder(core(world(customers=[("C1", "BR1", "normal")])))
    first = f.feed(credit(1))
    (out,) = first.alerts
    assert out.emitted.verdict is None
    alert_id = out.emitted.alert.alert_id
    f.core.apply_feedback("S1", 0, alert_id, "benign_true_positive", [CREDIT])
    later = f.feed(credit(2, minutes=5))  # a second violation: a new revision
    assert [(a.emitted.alert.alert_id, a.emitted.verdict) for a in later.alerts] == [
        (alert_id, "benign_true_positive")
    ]


def test_an_unreadable_state_is_reset_counted_and_processing_goes_on() -> None:
    ref = world(customers=[("C1", "BR1", "normal")])
    c = core(ref)
    c.store.backing["S1"] = b"\x93garbage"  # type: ignore[index]
    f = Feeder(c)
    out = f.feed(credit(1))
    assert out.alerts
    assert c.store.resets[("staff", "corrupt")] == 1
    assert isinstance(decode_staff(c.store.backing.get("S1") or b""), StaffState)


# -- the day's evidence ------------------------------------------------------------------


def _spread_day(n: int) -> tuple[Feeder, list[dict[str, Any]]]:
    """A customer manager with five quiet days behind them (one own customer a day),
    then ``n`` other-branch look-ups 70 minutes apart: too slow for the fast
    accumulator (half-life 2 h) to add them up, too few for the week to be unusual."""
    customers = [(f"X{i}", "BR2", "normal") for i in range(n)] + [("C1", "BR1", "normal")]
    f = Feeder(core(world(customers=customers, assigned=[("S1", "C1")])))
    for d in range(5):
        f.feed(access(100 + d, "S1", "C1", minutes=1440 * d))
    day = 1440 * 5
    for i in range(n):
        f.feed(access(i, "S1", f"X{i}", minutes=day + 70 * i))
    return f, f.alerts()


def test_a_day_improbable_only_by_its_evening_opens_an_incident() -> None:
    f, alerts = _spread_day(8)
    st = f.core.store.staff("S1", 0)
    ex = st.behaviour.expect["other_branch_customer_access"]
    opening = next(n for n in range(1, 9) if surprise(n, ex.mean, ex.var) >= DAY_SURPRISE)
    assert opening > 1, "one look-up is not improbable"
    assert alerts, "the day's count opens an incident however it was spread"
    first = alerts[0]
    # It opens at the access that made the day that improbable, with the evidence before
    # it: each look-up that raised the day's surprise (the first one, usual, did not).
    assert first["event_ids"] == [f"ev-S1-{i}" for i in range(1, opening)]
    assert [r["code"] for r in first["reasons"]] == ["other_branch_customer_access"]
    assert first["severity"] in ("low", "medium"), "soft evidence alone"
    assert st.risk.fast < f.core.tracker.config.fast_open, "the fast accumulator alone would not"


def test_an_ordinary_day_spread_out_opens_nothing() -> None:
    f, alerts = _spread_day(3)
    ex = f.core.store.staff("S1", 0).behaviour.expect["other_branch_customer_access"]
    assert surprise(3, ex.mean, ex.var) < DAY_SURPRISE
    assert alerts == []
