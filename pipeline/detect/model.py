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

**The forest.** River draws the trees (split features and thresholds, from
the seed) once per :class:`GroupModels`; every model's :class:`Forest` shares
them and holds only its masses, in flat lists, and learns and scores exactly
as River's ``HalfSpaceTrees`` does (the same walk and the same arithmetic, so
the same scores to the last bit; ``tests/unit/test_model.py`` checks). A
River forest is ~5,000 node objects: building one per model cost ~40 ms, most
of it in the garbage collector's full passes that so many new objects set off.

**Training in bulk.** A model is trained on ~500 samples at once, at the day
boundary, while the records of the next day wait: :meth:`Forest.prequential`
walks every sample down every tree with numpy and counts the masses with
``bincount``. A window's masses are counts, so the order of the samples within
a window does not change them, and every sample is scored on the masses of the
last window completed before it, exactly as learning and scoring one at a time
would (integer arithmetic, so the scores are the same to the last bit;
``tests/unit/test_model.py`` checks against :meth:`Forest.learn_one` and River).
The features are scaled by :func:`scale` in Python first, the same function
the live score uses.

Cost: ~8 µs per live score (10 trees of height 8); training a role's model
~2-3 ms (~5 ms one sample at a time, measured over 58 builds at 200 staff), once
per role and peer day. :meth:`Forest.learn_one` stays as the reference the bulk
pass is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
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


@dataclass(frozen=True, slots=True)
class Trees:
    """The structure of a Half-Space Trees forest, shared by every :class:`Forest` of it.

    Each tree is complete, in heap order: branch ``i`` (``0 <= i < 2**height - 1``)
    splits on feature index ``features[t][i]`` (into FEATURES) at ``thresholds[t][i]``;
    its children are nodes ``2i + 1`` (below the threshold) and ``2i + 2``; nodes from
    ``2**height - 1`` on are the leaves."""

    height: int
    window_size: int
    features: tuple[tuple[int, ...], ...]
    thresholds: tuple[tuple[float, ...], ...]

    @property
    def nodes(self) -> int:
        return (1 << (self.height + 1)) - 1

    @classmethod
    def drawn(cls, n_trees: int, height: int, window_size: int, seed: int) -> Trees:
        """The trees River's ``HalfSpaceTrees`` draws with these parameters, for
        FEATURES in [0, 1] (River builds them on the first sample it learns)."""
        river: Any = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        river.learn_one(dict.fromkeys(FEATURES, 0.0))
        index = {name: i for i, name in enumerate(FEATURES)}
        features: list[tuple[int, ...]] = []
        thresholds: list[tuple[float, ...]] = []
        for root in river.trees:
            level: list[Any] = [root]
            feats: list[int] = []
            thrs: list[float] = []
            for _ in range(height):  # breadth first: heap order
                feats += [index[node.feature] for node in level]
                thrs += [node.threshold for node in level]
                level = [child for node in level for child in node.children]
            features.append(tuple(feats))
            thresholds.append(tuple(thrs))
        return cls(height, window_size, tuple(features), tuple(thresholds))


class Forest:
    """The masses of one Half-Space Trees forest over shared :class:`Trees`.

    ``learn_one`` and ``score_one`` are River's (``river.anomaly.hst``: ``learn_one``,
    ``_walk_learn``, ``score_one``, ``_walk_score``) step for step, over feature lists
    in FEATURES order instead of dicts: the masses are integers, and every score is
    computed with the same operations in the same order, so it is bit-identical."""

    __slots__ = ("counter", "first_window", "l_mass", "r_mass", "trees")

    def __init__(self, trees: Trees) -> None:
        self.trees = trees
        n = trees.nodes
        self.l_mass = [[0] * n for _ in trees.features]
        self.r_mass = [[0] * n for _ in trees.features]
        self.counter = 0
        self.first_window = True

    def learn_one(self, x: Sequence[float]) -> None:
        trees = self.trees
        height = trees.height
        for feats, thrs, mass in zip(trees.features, trees.thresholds, self.l_mass, strict=True):
            i = 0
            for _ in range(height):
                mass[i] += 1
                i = 2 * i + 1 if x[feats[i]] < thrs[i] else 2 * i + 2
            mass[i] += 1
        self.counter += 1
        if self.counter == trees.window_size:  # River's pivot: r_mass = l_mass, l_mass = 0
            self.r_mass = self.l_mass
            self.l_mass = [[0] * trees.nodes for _ in trees.features]
            self.first_window = False
            self.counter = 0

    def score_one(self, x: Sequence[float]) -> float:
        if self.first_window:
            return 0.0
        trees = self.trees
        height = trees.height
        size_limit = 0.1 * trees.window_size
        score = 0.0
        for feats, thrs, mass in zip(trees.features, trees.thresholds, self.r_mass, strict=True):
            i = 0
            depth_pow = 1
            s = 0.0
            for _ in range(height):
                r = mass[i]
                s += r * depth_pow
                if r < size_limit:
                    break
                i = 2 * i + 1 if x[feats[i]] < thrs[i] else 2 * i + 2
                depth_pow <<= 1
            else:
                s += mass[i] * depth_pow
            score += s
        # River's _max_score: n_trees * window_size * (2 ** (height + 1) - 1)
        return 1 - score / (len(trees.features) * trees.window_size * trees.nodes)

    def prequential(self, xs: Sequence[Sequence[float]], scored: Sequence[bool]) -> list[float]:
        """Learn every row of ``xs`` (scaled, in FEATURES order) in order, as
        :meth:`learn_one` would; before learning row ``j``, score it as
        :meth:`score_one` would if ``scored[j]`` (else 0.0). Returns the scores."""
        n = len(xs)
        if n != len(scored):
            raise ValueError("prequential needs one scored flag per row")
        if n == 0:
            return []
        trees = self.trees
        rows = np.asarray(xs, dtype=np.float64)
        paths = _paths(trees, rows)  # (n_trees, height + 1, n): the node at each depth
        want = np.asarray(scored, dtype=bool)
        out = np.zeros(n, dtype=np.float64)
        start = 0
        while start < n:
            # rows up to the next pivot are scored on the same masses
            end = min(n, start + trees.window_size - self.counter)
            if not self.first_window and want[start:end].any():
                out[start:end] = np.where(
                    want[start:end], self._scores(paths[:, :, start:end]), 0.0
                )
            self._count(paths[:, :, start:end])
            self.counter += end - start
            if self.counter == trees.window_size:
                self.r_mass = self.l_mass
                self.l_mass = [[0] * trees.nodes for _ in trees.features]
                self.first_window = False
                self.counter = 0
            start = end
        scores: list[float] = out.tolist()
        return scores

    def _count(self, paths: np.ndarray) -> None:
        """Add the masses of the rows whose node paths are ``paths`` to l_mass."""
        nodes = self.trees.nodes
        for t, mass in enumerate(self.l_mass):
            counts = np.bincount(paths[t].ravel(), minlength=nodes).tolist()
            self.l_mass[t] = [a + b for a, b in zip(mass, counts, strict=True)]

    def _scores(self, paths: np.ndarray) -> np.ndarray:
        """score_one of each row whose node paths are ``paths``, on r_mass: the walk
        adds ``mass * 2**depth`` at each depth and stops after a node lighter than the
        size limit; every term is an integer, so the sums are exact."""
        trees = self.trees
        height = trees.height
        limit = 0.1 * trees.window_size
        weights = (1 << np.arange(height + 1, dtype=np.int64))[:, None]
        total = np.zeros(paths.shape[2], dtype=np.int64)
        for t, mass in enumerate(self.r_mass):
            r = np.asarray(mass, dtype=np.int64)[paths[t]]  # (height + 1, m)
            heavy = r[:height] >= limit
            reached = np.ones_like(r, dtype=bool)
            reached[1:] = np.logical_and.accumulate(heavy, axis=0)
            total += (r * weights * reached).sum(axis=0)
        denom = len(trees.features) * trees.window_size * trees.nodes
        result: np.ndarray = 1 - total.astype(np.float64) / denom
        return result


def _paths(trees: Trees, rows: np.ndarray) -> np.ndarray:
    """The node each row reaches at each depth of each tree: (n_trees, height + 1, n)."""
    n = rows.shape[0]
    out = np.empty((len(trees.features), trees.height + 1, n), dtype=np.int64)
    at = np.arange(n)
    for t, (feats, thrs) in enumerate(zip(trees.features, trees.thresholds, strict=True)):
        f = np.asarray(feats, dtype=np.int64)
        h = np.asarray(thrs, dtype=np.float64)
        i = np.zeros(n, dtype=np.int64)
        out[t, 0] = i
        for depth in range(trees.height):
            left = rows[at, f[i]] < h[i]
            i = 2 * i + np.where(left, 1, 2)
            out[t, depth + 1] = i
    return out


@dataclass(frozen=True, slots=True)
class ModelResult:
    score: float | None  # None: not walked, the hour is less than MIN_EXCESS above its peers
    threshold: float
    anomalous: bool
    top_features: list[Feature]


@dataclass(slots=True)
class TrainedModel:
    role: str
    forest: Forest
    threshold: float
    peer_mean: list[float]  # raw feature means of the training samples
    peer_scaled: list[float]
    version: str

    def score(self, raw: list[float], own_mean: list[float] | None) -> ModelResult:
        scaled = scale(raw)
        excess = [v - b for v, b in zip(scaled, self.peer_scaled, strict=True)]
        total = sum(e for e in excess if e > 0.0)
        if total < MIN_EXCESS:
            # Not above the peers by enough to be anomalous whatever the forest says: most
            # hours, and the forest's walk is most of the cost of scoring one.
            return ModelResult(None, self.threshold, False, [])
        s = self.forest.score_one(scaled)
        anomalous = s > self.threshold
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
        if result.score is None:
            raise ValueError("a result that was not walked (not anomalous) has no model info")
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
        self._trees: Trees | None = None  # drawn on first use, shared by every forest
        self.built = 0  # models trained

    @property
    def version(self) -> str:
        return f"2:{self.n_trees}x{self.height}/w{self.window_size}/q{self.quantile}"

    def model(self, view: PeerView, role: str) -> TrainedModel | None:
        key = (view.day, role)
        if key not in self._cache:
            if len(self._cache) >= CACHED_MODELS:
                oldest = min(d for d, _ in self._cache)
                for k in [k for k in self._cache if k[0] == oldest]:
                    del self._cache[k]
            self._cache[key] = self._build(view, role)
        return self._cache[key]

    def _forest(self) -> Forest:
        if self._trees is None:
            self._trees = Trees.drawn(self.n_trees, self.height, self.window_size, self.seed)
        return Forest(self._trees)

    def _build(self, view: PeerView, role: str) -> TrainedModel | None:
        days = view.samples.get(f"r:{role}", [])[-3:]
        if len(days) < 2:
            return None
        history = [x for day in days[:-1] for _, x in day]
        last = [x for _, x in days[-1]]
        if len(history) < self.window_size or len(last) < 20:
            return None
        forest = self._forest()
        every = history + last
        peer_mean = [sum(col) / len(every) for col in zip(*every, strict=True)]
        peer_scaled = scale(peer_mean)
        rows = [scale(x) for x in every]
        scored = [False] * len(history)
        for sx in rows[len(history) :]:
            excess = sum(max(0.0, v - b) for v, b in zip(sx, peer_scaled, strict=True))
            scored.append(excess >= MIN_EXCESS)
        scores = forest.prequential(rows, scored)[len(history) :]
        scores.sort()
        q = scores[min(len(scores) - 1, int(self.quantile * len(scores)))]
        self.built += 1
        return TrainedModel(
            role, forest, max(MIN_THRESHOLD, q), peer_mean, peer_scaled, self.version
        )
