"""The online group model: scaling, score-then-learn, calibration, persistence, explanations."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detect.catalogue import spec
from pipeline.detect.model import (
    CAPS,
    FEATURES,
    MODEL_NAME,
    GroupModel,
    ModelResult,
    _TailQuantile,
    anomaly_signal,
    scale,
)

WARMUP = 1000


def normal_hour(rng: random.Random) -> dict[str, float]:
    """A plausible 1-hour window of a customer manager."""
    events = max(1, int(rng.lognormvariate(math.log(20), 0.6)))
    distinct = max(1, int(events * rng.uniform(0.3, 0.8)))
    unassigned = sum(rng.random() < 0.06 for _ in range(distinct))
    return {
        "events": events,
        "distinct_customers": distinct,
        "unassigned_customers": unassigned,
        "other_branch_customers": sum(rng.random() < 0.15 for _ in range(unassigned)),
        "sensitive_customers": sum(rng.random() < 0.03 for _ in range(distinct)),
        "exported_records": (
            int(rng.lognormvariate(math.log(30), 1.0)) if rng.random() < 0.3 else 0
        ),
        "off_shift_events": int(events * rng.uniform(0.2, 1.0)) if rng.random() < 0.05 else 0,
        "denied_events": sum(rng.random() < 0.01 for _ in range(events)),
    }


def burst_hour(rng: random.Random) -> dict[str, float]:
    """Harvesting: hundreds of unassigned customers, other branches, exports."""
    events = rng.randint(250, 600)
    unassigned = int(events * rng.uniform(0.6, 0.9))
    return {
        "events": events,
        "distinct_customers": unassigned + 5,
        "unassigned_customers": unassigned,
        "other_branch_customers": unassigned // 3,
        "sensitive_customers": rng.randint(8, 40),
        "exported_records": rng.randint(3000, 20000),
        "off_shift_events": 0,
        "denied_events": rng.randint(2, 20),
    }


def clone(m: GroupModel) -> GroupModel:
    return GroupModel.from_json(orjson.loads(orjson.dumps(m.to_json())))


def trained(n: int = 1500, seed: int = 1, group: str = "customer_manager") -> GroupModel:
    rng = random.Random(seed)
    m = GroupModel()
    for _ in range(n):
        m.score_and_learn(group, normal_hour(rng))
    return m


@pytest.fixture(scope="module")
def base_model() -> GroupModel:
    return trained()


# -- scaling ------------------------------------------------------------------


@given(
    st.dictionaries(
        st.sampled_from(FEATURES),
        st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**9), 10**9),
    )
)
def test_scale_maps_every_feature_into_unit_interval(raw: dict[str, float]) -> None:
    s = scale(raw)
    assert tuple(s) == FEATURES
    assert all(0.0 <= v <= 1.0 for v in s.values())


def test_scale_is_log_of_cap_monotone_and_clipped() -> None:
    assert scale({}) == dict.fromkeys(FEATURES, 0.0)
    at_cap = scale(CAPS)
    assert all(v == pytest.approx(1.0) for v in at_cap.values())
    above = scale({f: c * 10 for f, c in CAPS.items()})
    assert all(v == 1.0 for v in above.values())
    assert scale({"events": 9})["events"] == pytest.approx(math.log(10) / math.log(501))
    ladder = [scale({"unassigned_customers": n})["unassigned_customers"] for n in (0, 1, 5, 50)]
    assert ladder == sorted(ladder) and len(set(ladder)) == 4
    assert scale({"denied_events": float("nan")})["denied_events"] == 0.0


def test_unknown_feature_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model feature"):
        scale({"evnets": 3})
    with pytest.raises(ValueError, match="unknown model feature"):
        GroupModel().score_and_learn("g", {"evnets": 3})


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="warmup"):
        GroupModel(window_size=250, warmup=250)
    with pytest.raises(ValueError, match="quantile"):
        GroupModel(quantile=1.0)


# -- score, then learn ----------------------------------------------------------


def test_score_is_computed_before_learning_the_sample(base_model: GroupModel) -> None:
    rng = random.Random(5)
    learning, probe = clone(base_model), clone(base_model)
    for _ in range(600):  # crosses window pivots
        x = normal_hour(rng)
        expected = probe.score_and_learn("customer_manager", x, learn=False)
        got = learning.score_and_learn("customer_manager", x)
        assert got == expected
        probe.score_and_learn("customer_manager", x)  # now learn it too, to stay in step


def test_learning_changes_later_scores(base_model: GroupModel) -> None:
    m = clone(base_model)
    x = burst_hour(random.Random(2))
    first = m.score_and_learn("customer_manager", x).score
    for _ in range(300):  # a full window of the same hour becomes the reference mass
        m.score_and_learn("customer_manager", x)
    assert m.score_and_learn("customer_manager", x).score < first


def test_learn_false_leaves_model_and_threshold_unchanged(base_model: GroupModel) -> None:
    m = clone(base_model)
    before = m.to_json()
    rng = random.Random(3)
    for i in range(300):
        x = burst_hour(rng) if i % 10 == 0 else normal_hour(rng)
        m.score_and_learn("customer_manager", x, learn=False, explain=True)
    r = m.score_and_learn("nobody_seen_yet", normal_hour(rng), learn=False)
    assert r == ModelResult(0.0, 1.0, False, [])
    assert m.to_json() == before
    assert m.groups() == ["customer_manager"]


# -- warm-up and calibration ----------------------------------------------------


def test_nothing_is_anomalous_during_warm_up() -> None:
    rng = random.Random(4)
    m = GroupModel(warmup=WARMUP)
    results = []
    for i in range(WARMUP):
        x = burst_hour(rng) if i % 50 == 49 else normal_hour(rng)
        results.append(m.score_and_learn("teller", x))
    assert m.learned("teller") == WARMUP
    assert not any(r.anomalous for r in results)
    assert all(r.score == 0.0 for r in results[:250])  # HST's first window
    assert any(r.score > 0.0 for r in results[250:])
    assert m.score_and_learn("teller", burst_hour(rng)).anomalous  # the next one counts


def test_after_warm_up_bursts_are_flagged_and_normal_hours_at_about_1_minus_quantile() -> None:
    rng = random.Random(6)
    m = GroupModel(quantile=0.99)
    for _ in range(WARMUP):
        m.score_and_learn("customer_manager", normal_hour(rng))
    flagged = scored = 0
    for _ in range(8000):
        r = m.score_and_learn("customer_manager", normal_hour(rng))
        scored += 1
        flagged += r.anomalous
    rate = flagged / scored
    assert 0.004 <= rate <= 0.02, rate
    bursts = [
        m.score_and_learn("customer_manager", burst_hour(rng), learn=False) for _ in range(50)
    ]
    assert all(r.anomalous for r in bursts)
    assert all(r.score > r.threshold for r in bursts)


def test_fewer_activity_than_usual_is_never_anomalous(base_model: GroupModel) -> None:
    m = clone(base_model)
    quiet = {"events": 1, "distinct_customers": 1}  # the first access of a morning
    r = m.score_and_learn("customer_manager", quiet, learn=False, explain=True)
    assert not r.anomalous
    assert r.top_features == []


def test_a_quiet_morning_is_not_flagged_and_does_not_raise_the_threshold() -> None:
    rng = random.Random(13)
    m = GroupModel()
    for _ in range(3000):  # busy afternoons: three times the usual activity
        x = normal_hour(rng)
        x["events"] *= 3
        x["distinct_customers"] *= 3
        m.score_and_learn("teller", x)
    before = m.score_and_learn("teller", normal_hour(rng), learn=False).threshold
    ramp = [
        m.score_and_learn("teller", {"events": n, "distinct_customers": n})
        for n in [1] * 100 + [2] * 100 + [3] * 100  # 1-hour windows filling up
    ]
    assert max(r.score for r in ramp) > before  # HST alone finds a quiet hour odd
    assert not any(r.anomalous for r in ramp)
    after = m.score_and_learn("teller", normal_hour(rng), learn=False).threshold
    assert after <= before + 0.002
    assert m.score_and_learn("teller", burst_hour(rng), learn=False).anomalous


def test_tail_quantile_tracks_the_empirical_quantile() -> None:
    rng = random.Random(8)
    q = _TailQuantile(0.95)
    scores = [rng.uniform(0.2, 0.6) for _ in range(20000)]
    for s in scores:
        q.add(s)
    assert q.value() == pytest.approx(0.58, abs=0.005)
    assert _TailQuantile(0.95).value() == 1.0


# -- determinism and persistence ----------------------------------------------------


def _run(m: GroupModel, seed: int, n: int) -> list[ModelResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        group = "teller" if i % 3 == 0 else "customer_manager"
        x = burst_hour(rng) if i % 97 == 0 else normal_hour(rng)
        out.append(m.score_and_learn(group, x, learn=i % 11 != 0, explain=i % 5 == 0))
    return out


def test_same_seed_same_results_other_seed_other_trees() -> None:
    a, b, c = GroupModel(seed=7), GroupModel(seed=7), GroupModel(seed=8)
    ra, rb, rc = _run(a, 1, 1500), _run(b, 1, 1500), _run(c, 1, 1500)
    assert ra == rb
    assert a.to_json() == b.to_json()
    assert [r.score for r in ra] != [r.score for r in rc]


@pytest.mark.parametrize("trained_on", [100, 3000])  # inside HST's first window; well past it
def test_json_round_trip_scores_exactly_like_the_original(trained_on: int) -> None:
    original = GroupModel()
    _run(original, 1, trained_on)
    raw: dict[str, Any] = orjson.loads(orjson.dumps(original.to_json()))
    restored = GroupModel.from_json(raw)
    assert restored.to_json() == original.to_json()
    # both keep learning (and sometimes not) over the next 2,000 samples
    assert _run(restored, 2, 2000) == _run(original, 2, 2000)
    assert restored.to_json() == original.to_json()


def test_state_is_plain_json_and_compact(base_model: GroupModel) -> None:
    state = base_model.to_json()
    blob = orjson.dumps(state)
    assert orjson.loads(blob) == state
    assert b"pickle" not in blob
    group = state["groups"]["customer_manager"]
    assert len(group["leaves"]) == 10
    assert all(len(t["l"]) == len(t["r"]) == 2**8 for t in group["leaves"])


def test_restore_refuses_state_that_does_not_match_the_rebuilt_trees(
    base_model: GroupModel,
) -> None:
    state = orjson.loads(orjson.dumps(base_model.to_json()))
    state["config"]["seed"] = 8  # River would build other trees
    with pytest.raises(ValueError, match="rebuilt trees differ"):
        GroupModel.from_json(state)
    state = orjson.loads(orjson.dumps(base_model.to_json()))
    state["groups"]["customer_manager"]["leaves"][0]["l"].pop()
    with pytest.raises(ValueError, match="leaves"):
        GroupModel.from_json(state)
    state = orjson.loads(orjson.dumps(base_model.to_json()))
    state["features"] = list(reversed(state["features"]))
    with pytest.raises(ValueError, match="features"):
        GroupModel.from_json(state)


def test_groups_are_independent() -> None:
    rng = random.Random(9)
    mixed, alone = GroupModel(), GroupModel()
    teller_results, alone_results = [], []
    for i in range(2500):
        x = normal_hour(rng)
        if i % 2:
            teller_results.append(mixed.score_and_learn("teller", x))
            alone_results.append(alone.score_and_learn("teller", x))
        else:
            mixed.score_and_learn("customer_manager", burst_hour(rng))
    assert teller_results == alone_results
    assert mixed.to_json()["groups"]["teller"] == alone.to_json()["groups"]["teller"]


# -- explanations and signal ----------------------------------------------------


def test_top_features_are_sorted_at_most_three_with_raw_values(base_model: GroupModel) -> None:
    m = clone(base_model)
    x = burst_hour(random.Random(10))
    r = m.score_and_learn("customer_manager", x, learn=False)
    assert r.anomalous
    top = r.top_features
    assert 1 <= len(top) <= 3
    for f in top:
        assert set(f) == {"feature", "value", "baseline", "contribution"}
        assert f["value"] == pytest.approx(x[str(f["feature"])], rel=1e-3)
        assert isinstance(f["baseline"], float) and f["baseline"] < float(f["value"])
    contributions = [float(f["contribution"]) for f in top]
    assert contributions == sorted(contributions, reverse=True)
    assert 0.0 < sum(contributions) <= 1.0 + 1e-9
    # every feature above its baseline is ranked; the remaining share goes to unlisted ones
    full = m.score_and_learn("customer_manager", x, learn=False, explain=True).top_features
    assert full == top


def test_normal_results_carry_no_explanation_unless_asked(base_model: GroupModel) -> None:
    m = clone(base_model)
    x = {**normal_hour(random.Random(11)), "unassigned_customers": 4, "sensitive_customers": 2}
    plain = m.score_and_learn("customer_manager", x, learn=False)
    asked = m.score_and_learn("customer_manager", x, learn=False, explain=True)
    assert not plain.anomalous and plain.top_features == []
    assert asked.score == plain.score
    assert asked.top_features and asked.top_features[0]["feature"] == "unassigned_customers"


def test_signal_and_alert_model(base_model: GroupModel) -> None:
    m = clone(base_model)
    hit = m.score_and_learn("customer_manager", burst_hour(random.Random(12)), learn=False)
    miss = m.score_and_learn("customer_manager", {"events": 12}, learn=False)
    assert anomaly_signal(miss, "customer_manager") is None
    s = anomaly_signal(hit, "customer_manager")
    assert s is not None
    assert s.code == "behaviour_anomaly"
    assert s.weight == spec("behaviour_anomaly").weight
    assert str(hit.top_features[0]["feature"]) in s.summary
    body = m.alert_model(hit)
    assert body["name"] == MODEL_NAME
    assert body["score"] > body["threshold"]
    assert body["top_features"] == hit.top_features
