"""Online anomaly model: one River Half-Space Trees forest per peer group.

Pure and synchronous. The caller (the engine) computes, for each access, the
employee's 1-hour window features (:data:`FEATURES`) and asks
:meth:`GroupModel.score_and_learn` how unusual that hour is for the
employee's peer group (e.g. their role). An anomalous result becomes a
``behaviour_anomaly`` signal (:func:`anomaly_signal`).

**Scaling.** HST assumes features in [0, 1]. :func:`scale` maps each raw
count ``x`` to ``log1p(max(x, 0)) / log1p(cap)``, clipped to 1; the caps
(:data:`CAPS`) are levels beyond which "more" no longer matters. The log
keeps resolution where normal hours live (a handful of customers) while
still separating hundreds from tens.

**Score, then learn.** Each call scores the sample with the trees as they are,
then (``learn=True``) learns it: the returned score never includes the
sample itself. ``learn=False`` (the employee has an open incident) scores
only: trees, threshold statistics and baselines stay exactly as they were.

**Baselines and one-sidedness.** Per group and feature, the *baseline* is
an exponentially weighted mean of the raw values of learned samples (a plain
mean over the first 2,500, then weight :data:`BASELINE_ALPHA` = 1/2,500 for
the newest: an hour or more of a busy group, longer than the trees' window).
A feature's *excess* is ``scale(value) - scale(baseline)``. HST is
two-sided: it also finds an hour with unusually *little* activity odd (the
start of every working day, while 1-hour windows fill up, looks nothing like
the previous evening). Misuse is always *more* of something, so a sample
counts only if its positive excesses sum to at least :data:`MIN_EXCESS`
(0.2 in scaled units: e.g. 5 unassigned customers where 1 is usual, or 3.5
times the usual events); otherwise its score is taken as 0 for both the
decision and the threshold statistics. Without this, morning ramps both
raise false alarms and push the threshold up so that real bursts are missed
(``bench/model_cost.py``).

**Threshold.** Each group keeps a histogram of its own learned (one-sided)
scores (:data:`SCORE_BINS` bins over [0, 1], exponentially forgotten with a
half-life of :data:`SCORE_HALF_LIFE` learned samples) and tracks its
``quantile`` in O(1) per sample; the threshold reported with a score is the
estimate before that sample is added. A sample is *anomalous* when the group
has learned at least ``warmup`` samples, its score is above the threshold
and its excess passes :data:`MIN_EXCESS`. HST scores 0 for every sample
until it has completed its first window of ``window_size`` samples, so
those zeros are *not* fed to the histogram; ``warmup`` must exceed
``window_size``, and the difference is how many real scores calibrate the
threshold before anything is flagged (750 by default). Of a stationary
stream's learned samples, about ``1 - quantile`` are flagged.

**Explanations.** ``contribution`` is a feature's share of the sum of
positive excesses (the contributions of all features with an excess sum to
1). ``top_features`` lists up to three features with a positive excess,
largest first, with raw values and baselines. It is computed for anomalous
results (or on request, ``explain=True``); other results carry an empty list.

**State and persistence.** A :class:`GroupModel` lives in worker memory and
holds only groups the worker's partitions have seen, so each worker learns
from its own staff. Per group it costs ``n_trees * (2**(height + 1) - 1)``
River node objects (~1.2 MB at 10 x 8, ~370 MB at 25 x 15; ``bench/model_cost.py``).
:meth:`GroupModel.to_json` returns plain JSON data, never a pickle. River
builds the trees at random from the seed and the feature limits, so the
structure is rebuilt from (seed, n_trees, height, features) and only the
counters are stored: every leaf's ``l_mass``/``r_mass`` (a branch's masses are
the sums of its children's, since every learned sample walks to a leaf) and
the forest's window position (``counter``, ``_first_window``). A fingerprint
of the rebuilt splits is checked on restore, so a River version that builds
trees differently fails loudly instead of scoring with the wrong counters.
The River internals used: ``HalfSpaceTrees.trees``, ``.counter``,
``._first_window``; node ``.children``, ``.feature``, ``.threshold``,
``.l_mass``, ``.r_mass`` (river 0.26).

>>> m = GroupModel(window_size=50, warmup=100)
>>> quiet = {"events": 10, "distinct_customers": 6}
>>> for _ in range(200):
...     _ = m.score_and_learn("teller", quiet)
>>> r = m.score_and_learn("teller", {**quiet, "unassigned_customers": 250, "events": 400})
>>> r.anomalous, [f["feature"] for f in r.top_features]
(True, ['unassigned_customers', 'events'])
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

from river.anomaly import HalfSpaceTrees

from pipeline.detect.catalogue import spec
from pipeline.detect.signals import Signal

FEATURES: Final[tuple[str, ...]] = (
    "events",
    "distinct_customers",
    "unassigned_customers",
    "other_branch_customers",
    "sensitive_customers",
    "exported_records",
    "off_shift_events",
    "denied_events",
)

# Raw value at which a feature's scaled value reaches 1 (per hour).
CAPS: Final[dict[str, float]] = {
    "events": 500.0,
    "distinct_customers": 300.0,
    "unassigned_customers": 300.0,
    "other_branch_customers": 300.0,
    "sensitive_customers": 100.0,
    "exported_records": 20_000.0,
    "off_shift_events": 200.0,
    "denied_events": 50.0,
}

SCORE_BINS: Final = 1000
SCORE_HALF_LIFE: Final = 20_000  # learned samples
TOP_FEATURES: Final = 3
MIN_EXCESS: Final = 0.2  # sum of positive scaled excesses over baselines an anomaly needs
BASELINE_ALPHA: Final = 1 / 2500  # weight of the newest learned sample in the baselines
MODEL_NAME: Final = "half_space_trees"
FORMAT_VERSION: Final = 1

_INV_LOG_CAP = tuple(1.0 / math.log1p(CAPS[f]) for f in FEATURES)
_INDEX = {f: i for i, f in enumerate(FEATURES)}
_DECAY_GROWTH = 2.0 ** (1.0 / SCORE_HALF_LIFE)  # newest weight grows instead of old ones shrinking
_RENORMALISE_AT = 1e12


def _raw(features: Mapping[str, float]) -> list[float]:
    """Raw values in FEATURES order: missing or NaN -> 0; unknown names are rejected."""
    raw = [0.0] * len(FEATURES)
    for name, value in features.items():
        i = _INDEX.get(name)
        if i is None:
            raise ValueError(f"unknown model feature {name!r}; expected one of {FEATURES}")
        v = float(value)
        raw[i] = v if v == v else 0.0
    return raw


def _scale_all(raw: list[float]) -> list[float]:
    log1p = math.log1p
    return [
        min(1.0, log1p(v) * inv) if v > 0.0 else 0.0
        for v, inv in zip(raw, _INV_LOG_CAP, strict=False)  # both len(FEATURES)
    ]


def scale(features: Mapping[str, float]) -> dict[str, float]:
    """Each feature to [0, 1]: ``log1p(x) / log1p(CAPS[f])``, clipped; missing features are 0.

    >>> s = scale({"events": 500, "denied_events": 1e9, "exported_records": -3})
    >>> s["events"], s["denied_events"], s["exported_records"], s["off_shift_events"]
    (1.0, 1.0, 0.0, 0.0)
    """
    return dict(zip(FEATURES, _scale_all(_raw(features)), strict=True))


@dataclass(slots=True)
class ModelResult:
    score: float  # HST anomaly score in [0, 1] (higher = more anomalous)
    threshold: float  # the group's calibrated threshold at scoring time
    anomalous: bool  # past warm-up, score > threshold and enough excess over baselines
    top_features: list[dict[str, float | str]]  # [{feature, value, baseline, contribution}]


class _TailQuantile:
    """Streaming quantile of scores in [0, 1]: a fixed-bin histogram with forgetting.

    Weights grow by ``_DECAY_GROWTH`` per sample instead of old counts shrinking
    (same ratios, O(1) per add); everything is rescaled once the weight gets large.
    ``bin``/``above`` track the bin holding the quantile and the weight above it.
    """

    __slots__ = ("above", "bin", "counts", "quantile", "total", "weight")

    def __init__(self, quantile: float) -> None:
        self.quantile = quantile
        self.counts = [0.0] * SCORE_BINS
        self.total = 0.0
        self.weight = 1.0
        self.bin = 0
        self.above = 0.0  # weight in bins > self.bin

    def add(self, score: float) -> None:
        b = min(SCORE_BINS - 1, max(0, int(score * SCORE_BINS)))
        w = self.weight
        self.counts[b] += w
        self.total += w
        if b > self.bin:
            self.above += w
        self.weight = w * _DECAY_GROWTH
        target = (1.0 - self.quantile) * self.total
        counts = self.counts
        t = self.bin
        above = self.above
        while above > target and t < SCORE_BINS - 1:
            t += 1
            above -= counts[t]
        while t > 0 and above + counts[t] <= target:
            above += counts[t]
            t -= 1
        self.bin = t
        self.above = max(0.0, above)
        if self.weight > _RENORMALISE_AT:
            self._renormalise()

    def _renormalise(self) -> None:
        k = 1.0 / self.weight
        self.counts = [c * k for c in self.counts]
        self.total = math.fsum(self.counts)
        self.above = math.fsum(self.counts[self.bin + 1 :])
        self.weight = 1.0

    def value(self) -> float:
        """The quantile, interpolated within its bin; 1.0 before any score."""
        c = self.counts[self.bin]
        if self.total <= 0.0 or c <= 0.0:
            return 1.0 if self.total <= 0.0 else (self.bin + 1) / SCORE_BINS
        inside = (1.0 - self.quantile) * self.total - self.above  # weight of bin above the quantile
        frac = min(1.0, max(0.0, inside / c))
        return (self.bin + 1 - frac) / SCORE_BINS

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": [[i, c] for i, c in enumerate(self.counts) if c],
            "total": self.total,
            "weight": self.weight,
            "bin": self.bin,
            "above": self.above,
        }

    @classmethod
    def from_json(cls, quantile: float, raw: Mapping[str, Any]) -> _TailQuantile:
        q = cls(quantile)
        for i, c in raw["counts"]:
            q.counts[int(i)] = float(c)
        q.total = float(raw["total"])
        q.weight = float(raw["weight"])
        q.bin = int(raw["bin"])
        q.above = float(raw["above"])
        return q


class _Forest(Protocol):
    """What this module uses of River's (untyped) ``HalfSpaceTrees``."""

    trees: list[Any]
    counter: int
    _first_window: bool

    def score_one(self, x: dict[str, float]) -> float: ...

    def learn_one(self, x: dict[str, float]) -> None: ...


@dataclass(slots=True)
class _Group:
    hst: _Forest
    threshold: _TailQuantile
    baseline: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    learned: int = 0
    fingerprint: str | None = None  # of the tree structure, computed once the trees exist


def _leaves(node: Any) -> Iterator[Any]:
    if hasattr(node, "children"):
        for child in node.children:
            yield from _leaves(child)
    else:
        yield node


def _fingerprint(trees: list[Any]) -> str:
    crc = 0
    for tree in trees:
        for node in tree.iter_dfs():
            if hasattr(node, "children"):
                crc = zlib.crc32(f"{node.feature}<{node.threshold!r};".encode(), crc)
    return f"{crc:08x}"


def _restore_masses(node: Any, l_it: Iterator[int], r_it: Iterator[int]) -> tuple[int, int]:
    if hasattr(node, "children"):
        left, right = node.children
        ll, lr = _restore_masses(left, l_it, r_it)
        rl, rr = _restore_masses(right, l_it, r_it)
        node.l_mass, node.r_mass = ll + rl, lr + rr
    else:
        node.l_mass, node.r_mass = next(l_it), next(r_it)
    return node.l_mass, node.r_mass


def _round(v: float) -> float:
    return round(v, 2) if abs(v) < 100 else round(v, 1)


def _top_features(
    raw: list[float], excess: list[float], total: float, baseline: list[float]
) -> list[dict[str, float | str]]:
    """Up to TOP_FEATURES features with a positive scaled excess, largest first."""
    ranked = sorted(((e, i) for i, e in enumerate(excess) if e > 0.0), key=lambda t: (-t[0], t[1]))
    return [
        {
            "feature": FEATURES[i],
            "value": _round(raw[i]),
            "baseline": _round(baseline[i]),
            "contribution": round(e / total, 3),
        }
        for e, i in ranked[:TOP_FEATURES]
    ]


class GroupModel:
    """One River HalfSpaceTrees per peer group (e.g. a role), with a quantile-calibrated threshold.

    Defaults (10 trees of height 8, window 250) were chosen with
    ``bench/model_cost.py``: ~30 µs per call on a shared 2-core box (River's own
    score + learn ~20-25 µs of it), every injected burst flagged, ~20 KB of JSON
    per group. 25 x 8 and 10 x 10 cost about twice as much for no clear gain;
    10 x 6 is ~15 % cheaper but flags bursts later; 25 x 15 costs ~1.7 ms per
    call, 0.2 s pauses at each window pivot and 370 MB per group.
    Every group's forest is built from the same seed (same random splits);
    only the masses, threshold statistics and baselines differ.
    """

    def __init__(
        self,
        seed: int = 7,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        quantile: float = 0.995,
        warmup: int = 1000,
    ) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError("quantile must be in (0, 1)")
        if n_trees < 1 or height < 1 or window_size < 2:
            raise ValueError("need n_trees >= 1, height >= 1, window_size >= 2")
        if warmup <= window_size:
            raise ValueError("warmup must exceed window_size (HST scores 0 in its first window)")
        self.seed = seed
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.quantile = quantile
        self.warmup = warmup
        self._groups: dict[str, _Group] = {}

    @property
    def version(self) -> str:
        return f"{FORMAT_VERSION}:{self.n_trees}x{self.height}/w{self.window_size}/q{self.quantile}"

    def groups(self) -> list[str]:
        return sorted(self._groups)

    def learned(self, group: str) -> int:
        g = self._groups.get(group)
        return g.learned if g else 0

    def _new_group(self) -> _Group:
        hst = HalfSpaceTrees(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            seed=self.seed,
        )
        return _Group(hst=cast(_Forest, hst), threshold=_TailQuantile(self.quantile))

    def score_and_learn(
        self,
        group: str,
        raw_features: Mapping[str, float],
        learn: bool = True,
        *,
        explain: bool = False,
    ) -> ModelResult:
        """Score the sample against the group's model, then learn it (unless ``learn=False``).

        ``top_features`` is filled for anomalous results, and for every result with
        ``explain=True`` (skipped otherwise: the engine only needs it for alerts).
        """
        raw = _raw(raw_features)
        scaled = _scale_all(raw)
        x = dict(zip(FEATURES, scaled, strict=False))
        g = self._groups.get(group)
        if g is None:
            if not learn:  # nothing known and nothing to learn: leave the state untouched
                return ModelResult(0.0, 1.0, False, [])
            g = self._groups[group] = self._new_group()
        score = float(g.hst.score_one(x))
        base = g.baseline
        excess = [v - b for v, b in zip(scaled, _scale_all(base), strict=False)]
        total = sum(e for e in excess if e > 0.0)
        gated = score if total >= MIN_EXCESS else 0.0
        threshold = g.threshold.value()
        anomalous = g.learned >= self.warmup and gated > threshold
        top: list[dict[str, float | str]] = []
        if (anomalous or explain) and g.learned:
            top = _top_features(raw, excess, total, base)
        if learn:
            if g.learned >= self.window_size:  # past HST's first window: a real score
                g.threshold.add(gated)
            g.hst.learn_one(x)
            g.learned += 1
            a = max(BASELINE_ALPHA, 1.0 / g.learned)  # a plain mean over the first 2,500
            g.baseline = [b + a * (v - b) for b, v in zip(base, raw, strict=False)]
        return ModelResult(score, threshold, anomalous, top)

    def alert_model(self, result: ModelResult) -> dict[str, Any]:
        """The alert's ``model`` object: name, version, score, threshold, top_features."""
        return {
            "name": MODEL_NAME,
            "version": self.version,
            "score": round(result.score, 4),
            "threshold": round(result.threshold, 4),
            "top_features": result.top_features,
        }

    # -- persistence (plain JSON, no pickle) ---------------------------------
    def to_json(self) -> dict[str, Any]:
        groups: dict[str, Any] = {}
        for name, g in self._groups.items():
            hst = g.hst
            leaves: list[dict[str, list[int]]] | None = None
            if hst.trees:
                if g.fingerprint is None:
                    g.fingerprint = _fingerprint(hst.trees)
                leaves = []
                for tree in hst.trees:
                    nodes = list(_leaves(tree))
                    leaves.append({"l": [n.l_mass for n in nodes], "r": [n.r_mass for n in nodes]})
            groups[name] = {
                "learned": g.learned,
                "baseline": list(g.baseline),
                "threshold": g.threshold.to_json(),
                "counter": hst.counter,
                "first_window": hst._first_window,
                "fingerprint": g.fingerprint,
                "leaves": leaves,
            }
        return {
            "format": FORMAT_VERSION,
            "config": {
                "seed": self.seed,
                "n_trees": self.n_trees,
                "height": self.height,
                "window_size": self.window_size,
                "quantile": self.quantile,
                "warmup": self.warmup,
            },
            "features": list(FEATURES),
            "groups": groups,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> GroupModel:
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported model state format {raw.get('format')!r}")
        if tuple(raw["features"]) != FEATURES:
            raise ValueError("model state was saved with different features")
        c = raw["config"]
        m = cls(
            seed=int(c["seed"]),
            n_trees=int(c["n_trees"]),
            height=int(c["height"]),
            window_size=int(c["window_size"]),
            quantile=float(c["quantile"]),
            warmup=int(c["warmup"]),
        )
        for name, s in raw["groups"].items():
            g = m._new_group()
            g.learned = int(s["learned"])
            g.baseline = [float(v) for v in s["baseline"]]
            g.threshold = _TailQuantile.from_json(m.quantile, s["threshold"])
            hst = g.hst
            if s["leaves"] is not None:
                # Build the trees exactly as River does on a first sample, then overwrite
                # every counter (the dummy sample's masses do not survive).
                hst.learn_one(dict.fromkeys(FEATURES, 0.0))
                g.fingerprint = _fingerprint(hst.trees)
                if g.fingerprint != s["fingerprint"]:
                    raise ValueError(
                        f"group {name!r}: rebuilt trees differ from the saved ones "
                        "(River version or seed changed); start this group afresh"
                    )
                n_leaves = 2**m.height
                if len(s["leaves"]) != len(hst.trees) or any(
                    len(t["l"]) != n_leaves or len(t["r"]) != n_leaves for t in s["leaves"]
                ):
                    raise ValueError(
                        f"group {name!r}: expected {len(hst.trees)} trees of {n_leaves} leaves"
                    )
                for tree, masses in zip(hst.trees, s["leaves"], strict=True):
                    _restore_masses(tree, map(int, masses["l"]), map(int, masses["r"]))
            hst.counter = int(s["counter"])
            hst._first_window = bool(s["first_window"])
            m._groups[name] = g
        return m


def anomaly_signal(result: ModelResult, group: str) -> Signal | None:
    """The ``behaviour_anomaly`` signal for an anomalous result, else None."""
    if not result.anomalous:
        return None
    parts = [
        f"{f['feature']} {f['value']:g} (usual {f['baseline']:g})" for f in result.top_features
    ]
    detail = ": " + ", ".join(parts) if parts else ""
    return Signal(
        "behaviour_anomaly",
        spec("behaviour_anomaly").weight,
        f"unusual hour for the {group} peer group (score {result.score:.3f} > "
        f"{result.threshold:.3f}){detail}",
    )
