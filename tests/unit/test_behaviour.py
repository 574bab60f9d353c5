"""Behaviour: soft signals weighed by improbability, volume, novelty, days, feedback bounds."""

from __future__ import annotations

import msgspec

from pipeline.contract.decode import decode_access_event
from pipeline.core.calendar import calendar
from pipeline.detect.behaviour import (
    BULK_MIN,
    CLIP_SD,
    DAY_SURPRISE,
    DENIED,
    EXPORTS_CAP,
    FEEDBACK_FLOOR,
    HISTORY_DAYS,
    MIN_HISTORY,
    MODEL_DAY_CAP,
    OFF_SHIFT,
    OTHER_BRANCH,
    PRIOR_DAYS,
    RECENT_CAP,
    SENSITIVE,
    SLOW_ALPHA,
    SURPRISE_FLOOR,
    UNASSIGNED,
    WINDOW_CAP,
    WORK,
    WORK_MIN_DAYS,
    Behaviour,
    Recent,
    model_evidence,
    observe,
    window_features,
)
from pipeline.detect.catalogue import SOFT_CODES, spec
from pipeline.detect.rules import evaluate_rules
from pipeline.detect.signals import Signal
from pipeline.detect.surprise import Baseline, blend, surprise
from pipeline.peers.book import PeerBook
from pipeline.peers.days import GroupDay, PeerDay
from pipeline.reference.state import Enriched
from tests.unit.corekit import T0, access, world

OTHER = "other_branch_customer_access"
CAL = calendar("Asia/Shanghai")


def enriched(n: int, customer: str = "X1", minutes: float = 0.0, **kw: object) -> Enriched:
    ref = world(customers=[(customer, "BR2", "normal")])
    ev = decode_access_event(msgspec.json.encode(access(n, "S1", customer, minutes=minutes, **kw)))
    return ref.enrich(ev, ev.occurred_at.timestamp())


def step(b: Behaviour, e: Enriched, flagged: bool = False) -> list[Signal]:
    b.roll(CAL.day(e.at), ["r:customer_manager", "rb:customer_manager|BR1"], None)
    return observe(b, e, evaluate_rules(e), False, flagged)


def test_the_first_unusual_occurrences_weigh_by_how_improbable_they_are() -> None:
    b = Behaviour()
    weights = []
    for n in range(1, 6):
        sigs = [s for s in step(b, enriched(n, f"X{n}", minutes=n)) if s.code == OTHER]
        weights.append(sigs[0].weight if sigs else 0.0)
    ex = b.expect[OTHER]
    for n, w in enumerate(weights, start=1):
        beyond = max(0.0, surprise(n, ex.mean, ex.var) - SURPRISE_FLOOR)
        before = max(0.0, surprise(n - 1, ex.mean, ex.var) - SURPRISE_FLOOR)
        assert abs(w - spec(OTHER).weight * (beyond - before)) < 1e-9, n
    assert weights[0] < weights[2], "each further one is more surprising than the first"
    assert sum(weights) < spec(OTHER).weight * surprise(5, ex.mean, ex.var), "minus the floor"
    assert "usual" in step(b, enriched(9, "X9", minutes=9))[0].summary


def test_what_an_employee_does_every_day_stops_weighing() -> None:
    b = Behaviour()
    for day in range(10):
        for n in range(8):
            step(b, enriched(day * 10 + n, f"X{n}", minutes=day * 1440 + n))
    first_day = Behaviour()
    day1 = sum(
        s.weight
        for n in range(8)
        for s in step(first_day, enriched(n, f"X{n}", minutes=n))
        if s.code == OTHER
    )
    day11 = sum(
        s.weight
        for n in range(8)
        for s in step(b, enriched(1000 + n, f"X{n}", minutes=10 * 1440 + n))
        if s.code == OTHER
    )
    assert b.baselines[OTHER].mean > 5.0
    assert day11 < 0.1 * day1


def test_nothing_is_learned_from_flagged_accesses() -> None:
    b = Behaviour()
    for n in range(5):
        step(b, enriched(n, f"X{n}", minutes=n), flagged=True)
    assert b.counts.get(OTHER, 0.0) == 0.0
    assert b.seen[OTHER] == 5, "but they are still judged"


def test_days_roll_into_baselines_and_summaries_are_kept_for_a_few_days() -> None:
    b = Behaviour()
    for day in range(HISTORY_DAYS + 2):
        step(b, enriched(day, "X1", minutes=day * 1440))
    assert b.days == HISTORY_DAYS + 1
    assert len(b.history) == HISTORY_DAYS
    assert b.day_summary(b.day) is not None
    assert b.day_summary(b.day - 1) is not None
    assert b.day_summary(b.day - HISTORY_DAYS - 1) is None
    late = enriched(99, "X1", minutes=-1440)  # an access of an earlier day
    assert not b.roll(CAL.day(late.at), [], None), "a late access does not re-roll the day"


def test_only_the_newest_completed_day_keeps_its_hour_samples() -> None:
    b = Behaviour()
    for day in range(4):
        for i in range(3):  # three clock hours: samples of the trailing hour
            step(b, enriched(day * 10 + i, "X1", minutes=day * 1440 + i * 61))
    assert b.samples, "today samples its hours"
    assert b.history[-1].samples, "the day just completed can still be published"
    assert all(not h.samples for h in b.history[:-1])
    assert all(h.counts.get(OTHER) for h in b.history), "every day keeps its counts (the week)"


def test_peer_statistics_set_the_usual_count_of_someone_new() -> None:
    book = PeerBook(1)
    group = "rb:customer_manager|BR1"
    g = GroupDay(40, {OTHER: 400.0}, {OTHER: 4400.0})  # peers: 10 a day
    day = CAL.day(T0.timestamp())
    book.add(PeerDay(0, day - 1, {group: g, "r:customer_manager": g}, {}))
    b = Behaviour()
    b.roll(day, ["r:customer_manager", group], book.view(day - 1))
    assert b.expect[OTHER].mean == 10.0
    assert b.expect[OTHER].peer == 10.0 and b.expect[OTHER].own == -1.0
    quiet = Behaviour()
    quiet.roll(day, ["r:customer_manager", group], None)
    assert quiet.expect[OTHER].mean == spec(OTHER).prior


def test_bulk_access_fires_in_steps_of_surprise_against_the_usual_peak() -> None:
    b = Behaviour()
    fired = []
    for n in range(60):
        for s in step(b, enriched(n, f"X{n}", minutes=n * 0.5)):
            if s.code == "bulk_access":
                fired.append((n + 1, s.weight))
    assert fired, "60 distinct unassigned customers in half an hour"
    assert fired[0][0] >= BULK_MIN
    assert all(w >= spec("bulk_access").weight for _, w in fired), "at least a decade each"
    assert len(b.window) == 60


def test_export_volume_fires_when_an_hour_passes_five_times_the_usual_or_500_records() -> None:
    b = Behaviour()
    sigs = []
    for n in range(4):
        sigs += step(b, enriched(n, "X1", minutes=n, action="export_statement", record_count=200))
    fired = [s for s in sigs if s.code == "export_volume"]
    assert len(fired) == 1 and "600 records" in fired[0].summary


def test_the_export_window_is_bounded_yet_counts_every_record() -> None:
    # 1,100 one-record exports within the hour: more marks than the window keeps
    b = Behaviour()
    sigs = []
    for n in range(1_100):
        e = enriched(n, "X1", minutes=n * 0.05, action="export_statement", record_count=1)
        sigs += step(b, e)
    assert len(b.exports) <= EXPORTS_CAP
    assert sum(x.records for x in b.exports) == 1_100
    fired = [s.summary.split(" records")[0] for s in sigs if s.code == "export_volume"]
    assert fired == ["500", "1000"], "the harvest keeps climbing past the window's size"


def test_first_seen_needs_history() -> None:
    b = Behaviour()
    b.events = MIN_HISTORY + 1
    b.first_seen = {"branch:BR1": 0.0, "channel:crm_web": 0.0, "action:view_profile": 0.0}
    e = enriched(1, "X1", terminal_id="T-NEW")
    b.first_seen = {k: e.at - 10 for k in b.first_seen}
    assert not any(s.code == "first_seen" for s in step(b, e)), "one new terminal is any day"
    sigs = step(b, enriched(2, "X1", minutes=1, terminal_id="T-NEWER"))
    assert any(s.code == "first_seen" and "terminal T-NEWER" in s.summary for s in sigs)
    fresh = Behaviour()
    step(fresh, e)
    assert not any(
        s.code == "first_seen" for s in step(fresh, enriched(2, "X1", terminal_id="T-NEWER"))
    ), "no history, nothing is new"


def test_collections_are_bounded() -> None:
    b = Behaviour()
    for n in range(WINDOW_CAP + 50):
        step(b, enriched(n, f"X{n % 3000}", minutes=n * 0.01))
    assert len(b.window) <= WINDOW_CAP
    assert len(b.recent) <= RECENT_CAP


def test_feedback_is_bounded_and_idempotent() -> None:
    b = Behaviour()
    assert b.apply_feedback("a1", "false_positive", [OTHER, "credit_report_without_authorization"])
    assert not b.apply_feedback("a1", "false_positive", [OTHER])
    for n in range(10):
        b.apply_feedback(f"a{n + 2}", "false_positive", [OTHER])
    assert b.feedback == {OTHER: FEEDBACK_FLOOR}


def test_window_features_count_distinct_customers() -> None:
    b = Behaviour()
    for n in range(6):
        step(b, enriched(n, f"X{n % 3}", minutes=n))
    x = window_features(b)
    assert x[0] == 6.0 and x[1] == 3.0 and x[2] == 3.0


def test_every_soft_code_has_a_baseline_after_a_day() -> None:
    b = Behaviour()
    step(b, enriched(1, "X1"))
    step(b, enriched(2, "X1", minutes=1440))
    assert set(SOFT_CODES) <= set(b.baselines)
    assert all(isinstance(v, Baseline) for v in b.baselines.values())


def test_the_actions_of_one_visit_count_once() -> None:
    b = Behaviour()
    one = [s for n in range(4) for s in step(b, enriched(n, "X1", minutes=n)) if s.code == OTHER]
    assert b.seen[OTHER] == 1 and len(one) <= 1


def test_an_unusual_day_is_learned_only_up_to_a_few_deviations() -> None:
    b = Behaviour()
    for day in range(6):  # one a day
        step(b, enriched(day * 100, "X1", minutes=day * 1440))
    ex = b.expect[OTHER]
    for n in range(40):  # then forty in a day
        step(b, enriched(700 + n, f"Y{n}", minutes=6 * 1440 + n))
    step(b, enriched(999, "X1", minutes=7 * 1440))
    cap = ex.mean + CLIP_SD * ex.var**0.5
    learned = b.history[-1].counts[OTHER]
    assert learned == 40.0, "the day's summary keeps what happened"
    assert b.baselines[OTHER].mean < cap, "the baseline moved by at most the clipped count"
    assert b.slow_baselines[OTHER].mean < cap


def test_the_week_counts_what_no_single_day_shows() -> None:
    b = Behaviour()
    for day in range(10):  # one other-branch customer a day: the usual
        step(b, enriched(day * 100, "X1", minutes=day * 1440))
    assert b.slow_level() == 0.0
    slows = []
    for day in range(10, 15):  # then three a day
        for n in range(3):
            for s in step(b, enriched(day * 100 + n, f"Z{day}-{n}", minutes=day * 1440 + n)):
                if s.code == OTHER:
                    slows.append(s.slow)
    assert b.slow_level() > 0.0, "fifteen in five days against five is improbable"
    assert sum(slows) > 0.0
    last = step(b, enriched(9999, "Z-last", minutes=14 * 1440 + 9))[0].summary
    assert "18 in 7 active days" in last, "the window is the last seven calendar days"


def test_model_evidence_is_capped_per_day() -> None:
    b = Behaviour()
    step(b, enriched(1, "X1"))
    got = [model_evidence(b, 15.0) for _ in range(4)]
    assert sum(got) == MODEL_DAY_CAP and got[-1] == 0.0
    step(b, enriched(2, "X1", minutes=1440))
    assert model_evidence(b, 15.0) == 15.0, "a new day, a new allowance"


def test_the_week_reference_does_not_learn_in_full_what_nobody_usually_does() -> None:
    book = PeerBook(1)
    group = "rb:customer_manager|BR1"
    g = GroupDay(40, {OTHER: 0.0}, {OTHER: 0.0})  # peers: never
    day0 = CAL.day(T0.timestamp())
    groups = ["r:customer_manager", group]
    ref = world(customers=[("H1", "BR1", "normal")])
    b = Behaviour()
    head = Baseline()  # the week's reference if each day were learned as the daily one is
    for d in range(17):  # ten days without, then one other-branch customer a day
        book.add(PeerDay(0, day0 + d - 1, {group: g, "r:customer_manager": g}, {}))
        if d < 10:
            ev = decode_access_event(
                msgspec.json.encode(access(d * 100, "S1", "H1", minutes=d * 1440))
            )
            e = ref.enrich(ev, ev.occurred_at.timestamp())
        else:
            e = enriched(d * 100, f"X{d}", minutes=d * 1440)
        b.roll(CAL.day(e.at), groups, book.view(day0 + d - 1))
        observe(b, e, evaluate_rules(e), False, False)
        if d > 0:
            head.update(1.0 if d > 10 else 0.0, SLOW_ALPHA)
    slow = b.slow_baselines[OTHER]
    assert slow.n == head.n == 16
    assert b.baselines[OTHER].mean > 0.3, "the daily baseline learns the new habit"
    assert 0.0 < slow.mean < head.mean - 0.02, "the week's reference follows it, more slowly"


def test_another_branchs_customer_served_in_person_leaves_the_days_count() -> None:
    b = Behaviour()
    for n in range(3):  # walk-ins at the counter: profile, then their details changed
        step(b, enriched(2 * n, f"W{n}", minutes=n))
        step(b, enriched(2 * n + 1, f"W{n}", minutes=n + 0.5, action="update_contact_info"))
    assert b.seen.get(OTHER, 0) == 0, "served customers are not look-ups"
    assert b.counts.get(OTHER, 0.0) == 0.0, "nor learned as such"
    step(b, enriched(10, "W9", minutes=9, action="print_statement"))
    step(b, enriched(11, "W9", minutes=9.5))
    assert b.seen.get(OTHER, 0) == 0, "served from the first access: never counted"
    looked = [s for n in range(3) for s in step(b, enriched(20 + n, f"L{n}", minutes=20 + n))]
    assert b.seen[OTHER] == 3 and b.counts[OTHER] == 3.0, "look-ups only count"
    assert any(s.code == OTHER for s in looked)
    # Opening the identity document leaves no trace: any look-up could add it.
    step(b, enriched(30, "L9", minutes=30))
    step(b, enriched(31, "L9", minutes=30.5, action="view_id_document"))
    assert b.seen[OTHER] == 4 and b.counts[OTHER] == 4.0, "an ID document is still a look-up"


def test_serving_another_branchs_customer_leaves_other_codes_alone() -> None:
    ref = world(customers=[("V1", "BR2", "vip")])
    b = Behaviour()
    codes = []
    for n, action in enumerate(("view_profile", "print_statement", "update_contact_info")):
        ev = decode_access_event(
            msgspec.json.encode(access(n, "S1", "V1", minutes=n, action=action))
        )
        codes += [s.code for s in step(b, ref.enrich(ev, ev.occurred_at.timestamp()))]
    assert b.seen.get(OTHER, 0) == 0, "served: out of the other-branch count"
    assert b.seen["sensitive_customer_access"] == 1, "but still a VIP who is not theirs"
    assert b.seen["statement_export_unassigned"] == 1, "and a stranger's statement printed"
    assert "sensitive_customer_access" in codes


def test_the_days_evidence_is_its_most_improbable_code_and_ends_with_the_day() -> None:
    b = Behaviour()
    for n in range(6):  # six other-branch customers today
        step(b, enriched(n, f"X{n}", minutes=60 * n))
    ex = b.expect[OTHER]
    s = surprise(6, ex.mean, ex.var)
    assert b.day_level() == (s - SURPRISE_FLOOR) / (DAY_SURPRISE - SURPRISE_FLOOR)
    b.spent["statement_export_unassigned"] = SURPRISE_FLOOR + 0.1  # a little of another code
    assert b.day_level() == (s - SURPRISE_FLOOR) / (DAY_SURPRISE - SURPRISE_FLOOR), "not a sum"
    b.apply_feedback("a1", "false_positive", [OTHER])
    assert b.day_level() < (s - SURPRISE_FLOOR) / (DAY_SURPRISE - SURPRISE_FLOOR), "muted"
    step(b, enriched(99, "X1", minutes=1440))
    assert b.day_level() == 0.0, "a new day starts from nothing"


def routine(n: int, minutes: float) -> Enriched:
    """An access to the employee's own assigned customer: no rule fires."""
    ref = world(customers=[("A1", "BR1", "normal")], assigned=[("S1", "A1")])
    ev = decode_access_event(msgspec.json.encode(access(n, "S1", "A1", minutes=minutes)))
    return ref.enrich(ev, ev.occurred_at.timestamp())


def _day_of(b: Behaviour, day: int, work: int, lookups: int) -> None:
    t = day * 1440.0
    for n in range(work):
        step(b, routine(day * 1000 + n, t + n))
    for n in range(lookups):
        step(b, enriched(day * 1000 + 500 + n, f"X{day}-{n}", minutes=t + work + n))


def test_a_busy_day_of_routine_work_explains_more_look_ups() -> None:
    days = []
    for work in (10, 30, 3):  # usual, three times the usual, a quiet day
        b = Behaviour()
        for day in range(6):
            _day_of(b, day, 10, 1)
        _day_of(b, 6, work, 5)
        days.append(b)
    usual, busy, quiet = days
    assert usual.baselines[WORK].mean == 10.0, "the look-ups are not routine work"
    assert busy.counts[WORK] == 30.0
    assert busy.spent[OTHER] < usual.spent[OTHER] - 1.0, "three times the work, less surprise"
    ex = busy.expect[OTHER]
    assert busy.spent[OTHER] == surprise(5, 3 * ex.mean, 3 * ex.var)
    assert quiet.spent[OTHER] == usual.spent[OTHER], "a quiet day does not make them rarer"
    last = step(busy, enriched(7999, "X-last", minutes=6 * 1440 + 200))[0].summary
    assert "x3.0 for today's volume of routine work" in last
    assert busy.week[OTHER] < usual.week[OTHER], "the week is judged at its volume too"


def test_a_busy_day_explains_nothing_before_a_few_days_of_routine_work() -> None:
    b, plain = Behaviour(), Behaviour()
    _day_of(b, 0, 10, 1)
    _day_of(plain, 0, 0, 1)
    _day_of(b, 1, 30, 5)
    _day_of(plain, 1, 0, 5)
    assert b.baselines[WORK].n < WORK_MIN_DAYS
    assert b.spent[OTHER] == plain.spent[OTHER]


def test_the_week_allows_for_its_usual_count_being_an_estimate() -> None:
    levels = []
    for history in (5, 25):
        b = Behaviour()
        for day in range(history):  # one other-branch customer a day
            step(b, enriched(day * 100, "X1", minutes=day * 1440))
        for day in range(history, history + 4):  # then three a day
            for n in range(3):
                step(b, enriched(day * 100 + n, f"Z{day}-{n}", minutes=day * 1440 + n))
        ex = b.expect[OTHER]
        mean, var = blend(b.slow_baselines[OTHER], ex.peer, ex.peer_var, PRIOR_DAYS)
        k = b.week_days + 1
        count = b.week_before[OTHER] + b.seen[OTHER]
        independent = spec(OTHER).weight * (surprise(count, k * mean, k * var) - SURPRISE_FLOOR)
        assert 0.0 < b.week[OTHER] < independent, "more variance than k independent days"
        levels.append(b.week[OTHER] / independent)
    assert levels[0] < levels[1], "a mean learned from more days is a closer guide"


def test_the_hours_window_forgets_exactly_what_is_older_than_an_hour_late_accesses_too() -> None:
    b = Behaviour()
    step(b, enriched(0, "X0", minutes=0.0))
    step(b, enriched(1, "X1", minutes=50.0))
    step(b, enriched(2, "X2", minutes=2.0))  # late: processed after a newer access
    step(b, enriched(3, "X0", minutes=55.0))  # seen again: its time is the newest
    assert sorted(b.window) == ["X0", "X1", "X2"]
    step(b, enriched(4, "X3", minutes=61.0))
    assert sorted(b.window) == ["X0", "X1", "X2", "X3"], "X0 was seen again at 55 min"
    step(b, enriched(5, "X4", minutes=63.0))
    assert sorted(b.window) == ["X0", "X1", "X3", "X4"], "the late X2 (2 min) is out"
    assert list(b.window.values()) == sorted(b.window.values()), "kept in time order"


def test_window_features_are_the_hours_counts_of_flags_and_exports() -> None:
    import random

    rng = random.Random(3)
    b = Behaviour()
    for i in range(300):
        flags = rng.choice(
            [0, 0, 0, UNASSIGNED, UNASSIGNED | OTHER_BRANCH, SENSITIVE, OFF_SHIFT, DENIED]
        )
        customer = rng.choice(["", f"C{i % 40}"])
        b.recent.append(Recent(float(i), customer, flags, rng.choice([0.0, 0.0, 3.0])))
    named = {c for r in b.recent if (c := r.customer)}

    def having(bit: int) -> float:
        return float(len({r.customer for r in b.recent if r.customer and r.flags & bit}))

    assert window_features(b) == [
        300.0,
        float(len(named)),
        having(UNASSIGNED),
        having(OTHER_BRANCH),
        having(SENSITIVE),
        sum(r.records for r in b.recent),
        float(sum(1 for r in b.recent if r.flags & OFF_SHIFT)),
        float(sum(1 for r in b.recent if r.flags & DENIED)),
    ]
