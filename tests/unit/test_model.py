"""Group models built from peer-day samples: deterministic, one-sided, explained."""

from __future__ import annotations

import random

import pytest

from pipeline.detect.behaviour import FEATURES
from pipeline.detect.model import MIN_THRESHOLD, GroupModels, scale
from pipeline.peers.book import PeerBook
from pipeline.peers.days import PeerDay, Sample


def hour(rng: random.Random) -> list[float]:
    events = rng.randint(5, 30)
    distinct = rng.randint(3, events)
    return [
        float(events),
        float(distinct),
        float(rng.randint(0, 3)),
        0.0,
        0.0,
        float(rng.choice((0, 0, 0, 40))),
        0.0,
        0.0,
    ]


def book_with_samples(
    days: int = 3, per_day: int = 250, seed: int = 1, start: int = 500
) -> PeerBook:
    rng = random.Random(seed)
    book = PeerBook(1)
    for d in range(days):
        samples = [Sample(d * 1000 + i, hour(rng)) for i in range(per_day)]
        book.add(PeerDay(0, start + d, {}, {"r:teller": samples}))
    return book


def test_scaling_is_in_the_unit_range() -> None:
    s = scale([1e9, 0, -5, 3, 0, 20_000, 1, 50])
    assert all(0.0 <= v <= 1.0 for v in s)
    assert s[0] == 1.0 and s[2] == 0.0


def test_an_hour_far_above_the_peers_is_anomalous_and_explained() -> None:
    book = book_with_samples()
    model = GroupModels().model(book.view(502), "teller")
    assert model is not None and model.threshold >= MIN_THRESHOLD
    burst = [400.0, 300.0, 250.0, 120.0, 40.0, 0.0, 0.0, 0.0]
    result = model.score(burst, own_mean=[10.0] * len(FEATURES))
    assert result.anomalous
    names = [f.feature for f in result.top_features]
    assert "unassigned_customers" in names
    assert all(f.own_baseline == 10.0 for f in result.top_features)
    assert abs(sum(f.contribution for f in result.top_features) - 1.0) < 0.05 or len(names) == 3


def test_an_unusually_quiet_hour_is_not_anomalous() -> None:
    model = GroupModels().model(book_with_samples().view(502), "teller")
    assert model is not None
    result = model.score([0.0] * len(FEATURES), None)
    assert not result.anomalous
    assert result.score is None, "an hour not above its peers is not walked through the forest"


def test_every_worker_builds_the_same_model() -> None:
    a = GroupModels().model(book_with_samples().view(502), "teller")
    b = GroupModels().model(book_with_samples().view(502), "teller")
    assert a is not None and b is not None
    x = [60.0, 40.0, 12.0, 3.0, 1.0, 300.0, 2.0, 0.0]
    assert a.threshold == b.threshold
    assert a.score(x, None) == b.score(x, None)


def test_too_few_peers_give_no_model() -> None:
    assert GroupModels().model(book_with_samples(days=3, per_day=50).view(502), "teller") is None
    assert GroupModels().model(book_with_samples(days=1).view(500), "teller") is None
    assert GroupModels().model(book_with_samples().view(502), "auditor") is None


def test_models_are_cached_per_day_and_role() -> None:
    models = GroupModels()
    view = book_with_samples().view(502)
    first = models.model(view, "teller")
    assert models.model(view, "teller") is first
    assert models.built == 1


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        GroupModels(quantile=1.5)
    with pytest.raises(ValueError):
        GroupModels(n_trees=0)


def test_a_rebuilt_model_scores_exactly_like_the_first() -> None:
    from pipeline.detect import model as model_module

    models = GroupModels()
    x = [60.0, 40.0, 12.0, 3.0, 1.0, 300.0, 2.0, 0.0]
    fresh = GroupModels().model(book_with_samples(seed=5).view(502), "teller")
    for k in range(model_module.CACHED_MODELS + 3):  # evicts the oldest models
        start = 1000 + 10 * k
        models.model(book_with_samples(seed=k + 100, start=start).view(start + 2), "teller")
    assert models.built == model_module.CACHED_MODELS + 3
    rebuilt = models.model(book_with_samples(seed=5).view(502), "teller")
    assert fresh is not None and rebuilt is not None
    assert rebuilt.threshold == fresh.threshold
    assert rebuilt.score(x, None) == fresh.score(x, None)


@pytest.mark.parametrize(
    ("n_trees", "height", "window_size", "seed"), [(10, 8, 250, 7), (3, 4, 20, 11), (2, 2, 10, 0)]
)
def test_the_forest_scores_bit_for_bit_like_rivers(
    n_trees: int, height: int, window_size: int, seed: int
) -> None:
    from river.anomaly import HalfSpaceTrees

    from pipeline.detect.model import Forest, Trees

    river = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    ours = Forest(Trees.drawn(n_trees, height, window_size, seed))
    rng = random.Random(seed)
    scores = set()
    for k in range(3 * window_size + window_size // 2):  # several pivots, and a partial window
        x = scale(hour(rng)) if k % 7 else [rng.random() for _ in FEATURES]
        d = dict(zip(FEATURES, x, strict=True))
        score = ours.score_one(x)
        assert score == float(river.score_one(d))
        scores.add(score)
        ours.learn_one(x)
        river.learn_one(d)
    assert ours.counter == river.counter
    assert len(scores) > 2, "the scores differ from sample to sample"


@pytest.mark.parametrize(
    ("n_trees", "height", "window_size", "seed", "before"),
    [(10, 8, 250, 7, 0), (10, 8, 250, 7, 130), (3, 4, 20, 11, 5), (2, 2, 10, 0, 10)],
)
def test_the_bulk_prequential_pass_equals_learning_and_scoring_one_at_a_time(
    n_trees: int, height: int, window_size: int, seed: int, before: int
) -> None:
    from pipeline.detect.model import Forest, Trees

    trees = Trees.drawn(n_trees, height, window_size, seed)
    one, bulk = Forest(trees), Forest(trees)
    rng = random.Random(seed)
    warm = [scale(hour(rng)) for _ in range(before)]  # some learned before, one way each
    for x in warm:
        one.learn_one(x)
    bulk.prequential(warm, [False] * len(warm))
    rows = [scale(hour(rng)) if k % 5 else [rng.random() for _ in FEATURES] for k in range(700)]
    scored = [k % 3 != 0 for k in range(len(rows))]
    expected = []
    for x, s in zip(rows, scored, strict=True):
        expected.append(one.score_one(x) if s else 0.0)
        one.learn_one(x)
    assert bulk.prequential(rows, scored) == expected
    assert len(set(expected)) > 10, "the scores differ from sample to sample"
    assert (bulk.l_mass, bulk.r_mass, bulk.counter, bulk.first_window) == (
        one.l_mass,
        one.r_mass,
        one.counter,
        one.first_window,
    )
    with pytest.raises(ValueError, match="one scored flag per row"):
        bulk.prequential(rows, scored[:-1])
