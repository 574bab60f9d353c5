"""Online anomaly model: a River Half-Space Trees forest per peer group, trained on peer days.

Pure and synchronous. For each role, :class:`GroupModels` builds an HST from
the staff-hour samples of the role's last complete peer days
(:class:`pipeline.peers.book.PeerView`; samples are chosen by a hash of
staff, day and hour, so the bank-wide sample does not depend on the
partition count). Every worker builds the same forest from the same samples
(River's trees come from the seed), so a score depends on the input alone:
nothing of the model is checkpointed, and no wall clock is involved.

**Training.** The samples of the view's two days before its last are
learned; the last day's samples are then scored one by one before being
learned (prequential), and the threshold is the ``quantile`` of those
scores (at least ``MIN_THRESHOLD``). A role with fewer than ``window_size``
samples over those days gets no model (too few peers to say what is usual).

**Scaling.** HST assumes features in [0, 1]: each raw count ``x`` maps to
``log1p(x) / log1p(cap)``, clipped to 1 (:data:`CAPS`).

**One-sidedness.** Misuse is always *more* of something; an hour counts as
anomalous only when its features' positive excesses over the peer means
(scaled) sum to at least :data:`MIN_EXCESS`.

**Explanations.** ``top_features``: up to three features with a positive
excess, largest first, with the raw value, the peers' mean (``baseline``),
the employee's own mean (``own_baseline``) and the share of the excess.

Cost: ~20 µs per learned sample, ~15 µs per score (10 trees of height 8);
training a role's model ~15 ms, once per role and peer day. River builds the
trees themselves (~40 ms) on a forest's first sample; forests of evicted
models are reset and reused instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from river.anomaly import HalfSpaceTrees

from pipeline.contract.records import Feature, ModelInfo
from pipeline.detect.behaviour import FEATURES
from pipeline.peers.book import PeerView

CAPS: Final[tuple[float, ...]] = (500.0, 300.0, 300.0, 300.0, 100.0, 20_000.0, 200.0, 50.0)
MIN_EXCESS: Final = 0.2
MIN_THRESHOLD: Final = 0.75
TOP_FEATURES: Final = 3
MODEL_NAME: Final = "half_space_trees"
CACHED_MODELS: Final = 24  # (peer day, role) models kept; older ones are rebuilt on demand

_INV_LOG_CAP = tuple(1.0 / math.log1p(c) for c in CAPS)


def scale(raw: Sequence[float]) -> list[float]:
    """Each feature to [0, 1]: ``log1p(x) / log1p(cap)``, clipped.

    >>> scale([500, 0, 0, 0, 0, -3, 0, 1e9])[0], scale([500, 0, 0, 0, 0, -3, 0, 1e9])[-1]
    (1.0, 1.0)
    """
    return [
        min(1.0, math.log1p(v) * inv) if v > 0.0 else 0.0
        for v, inv in zip(raw, _INV_LOG_CAP, strict=True)
    ]


class _Forest(Protocol):
    def score_one(self, x: dict[str, float]) -> float: ...

    def learn_one(self, x: dict[str, float]) -> None: ...


@dataclass(frozen=True, slots=True)
class ModelResult:
    score: float
    threshold: float
    anomalous: bool
    top_features: list[Feature]


@dataclass(slots=True)
class TrainedModel:
    role: str
    forest: _Forest
    threshold: float
    peer_mean: list[float]  # raw feature means of the training samples
    peer_scaled: list[float]
    version: str

    def score(self, raw: list[float], own_mean: list[float] | None) -> ModelResult:
        scaled = scale(raw)
        s = float(self.forest.score_one(dict(zip(FEATURES, scaled, strict=True))))
        excess = [v - b for v, b in zip(scaled, self.peer_scaled, strict=True)]
        total = sum(e for e in excess if e > 0.0)
        anomalous = total >= MIN_EXCESS and s > self.threshold
        top: list[Feature] = []
        if anomalous:
            ranked = sorted(
                ((e, i) for i, e in enumerate(excess) if e > 0.0), key=lambda t: (-t[0], t[1])
            )
            top = [
                Feature(
                    FEATURES[i],
                    _round(raw[i]),
                    _round(self.peer_mean[i]),
                    round(e / total, 3),
                    None if own_mean is None else _round(own_mean[i]),
                )
                for e, i in ranked[:TOP_FEATURES]
            ]
        return ModelResult(s, self.threshold, anomalous, top)

    def info(self, result: ModelResult) -> ModelInfo:
        return ModelInfo(
            MODEL_NAME,
            self.version,
            round(result.score, 4),
            round(result.threshold, 4),
            result.top_features,
        )


def _round(v: float) -> float:
    return round(v, 2) if abs(v) < 100 else round(v, 1)


class GroupModels:
    """One model per (role, peer day), built on first use and kept for the last few days."""

    def __init__(
        self,
        seed: int = 7,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        quantile: float = 0.99,
    ) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError("quantile must be in (0, 1)")
        if n_trees < 1 or height < 1 or window_size < 2:
            raise ValueError("need n_trees >= 1, height >= 1, window_size >= 2")
        self.seed = seed
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.quantile = quantile
        self._cache: dict[tuple[int, str], TrainedModel | None] = {}
        self._spare: list[Any] = []  # forests of evicted models, reset before reuse
        self.built = 0  # models trained
        self.forests = 0  # forests constructed (the rest were recycled)

    @property
    def version(self) -> str:
        return f"2:{self.n_trees}x{self.height}/w{self.window_size}/q{self.quantile}"

    def model(self, view: PeerView, role: str) -> TrainedModel | None:
        key = (view.day, role)
        if key not in self._cache:
            if len(self._cache) >= CACHED_MODELS:
                oldest = min(d for d, _ in self._cache)
                for k in [k for k in self._cache if k[0] == oldest]:
                    evicted = self._cache.pop(k)
                    if evicted is not None:
                        self._spare.append(evicted.forest)
            self._cache[key] = self._build(view, role)
        return self._cache[key]

    def _forest(self) -> Any:
        """A forest with no mass: a recycled one (River builds the same trees from the same
        seed, so only the masses and the window position need resetting) or a new one;
        building the trees costs far more than learning a day of samples."""
        if self._spare:
            forest = self._spare.pop()
            for nodes in forest._tree_nodes:
                for node in nodes:
                    node.l_mass = 0
                    node.r_mass = 0
            forest.counter = 0
            forest._first_window = True
            return forest
        self.forests += 1
        return HalfSpaceTrees(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            seed=self.seed,
        )

    def _build(self, view: PeerView, role: str) -> TrainedModel | None:
        days = view.samples.get(f"r:{role}", [])[-3:]
        if len(days) < 2:
            return None
        history = [x for day in days[:-1] for _, x in day]
        last = [x for _, x in days[-1]]
        if len(history) < self.window_size or len(last) < 20:
            return None
        forest = cast(_Forest, self._forest())
        for x in history:
            forest.learn_one(dict(zip(FEATURES, scale(x), strict=True)))
        every = history + last
        peer_mean = [sum(col) / len(every) for col in zip(*every, strict=True)]
        peer_scaled = scale(peer_mean)
        scores = []
        for x in last:
            sx = scale(x)
            d = dict(zip(FEATURES, sx, strict=True))
            excess = sum(max(0.0, v - b) for v, b in zip(sx, peer_scaled, strict=True))
            scores.append(float(forest.score_one(d)) if excess >= MIN_EXCESS else 0.0)
            forest.learn_one(d)
        scores.sort()
        q = scores[min(len(scores) - 1, int(self.quantile * len(scores)))]
        self.built += 1
        return TrainedModel(
            role, forest, max(MIN_THRESHOLD, q), peer_mean, peer_scaled, self.version
        )
