"""Which banks an evaluation runs on: drawn profiles, split into tuning and reporting.

``--split tune`` draws profile seeds from :data:`SPLITS` ``["tune"]`` (1000-1999),
``--split report`` from ``["report"]`` (5000-5999): the ranges are disjoint, so a
detector tuned on the first never saw the banks reported on the second. Bank ``k`` of a
run has profile seed ``first + k`` (``first`` defaults to the start of the range) and
simulation seed :func:`simulation_seed` of it, so every bank has its own activity too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from simbank.simulate.config import SimConfig, sized_config
from simbank.simulate.profile import draw_profile

SPLITS: Final = {"tune": range(1000, 2000), "report": range(5000, 6000)}


class SplitError(ValueError):
    """Profile seeds outside the chosen split."""


@dataclass(frozen=True)
class Bank:
    profile_seed: int | None  # None: the single bank of the size flags
    config: SimConfig

    @property
    def label(self) -> str:
        if self.profile_seed is None:
            return f"{self.config.profile.name}/seed {self.config.seed}"
        return f"profile {self.profile_seed}"


def simulation_seed(profile_seed: int) -> int:
    """The simulation seed of the bank drawn with ``profile_seed``.

    >>> simulation_seed(1000)
    101000
    """
    return 100_000 + profile_seed


def profile_seeds(split: str, count: int, first: int | None = None) -> list[int]:
    """``count`` consecutive profile seeds from ``first`` (default: the split's start),
    all inside the split's range.

    >>> profile_seeds("report", 3)
    [5000, 5001, 5002]
    """
    if split not in SPLITS:
        raise SplitError(f"unknown split {split!r} ({' or '.join(SPLITS)})")
    rng = SPLITS[split]
    start = rng.start if first is None else first
    seeds = list(range(start, start + count))
    if count < 1 or seeds[0] not in rng or seeds[-1] not in rng:
        raise SplitError(
            f"{count} profile seeds from {start} leave the {split} range {rng.start}-{rng.stop - 1}"
        )
    return seeds


def drawn_banks(
    split: str,
    count: int,
    *,
    staff: int,
    days: int,
    start: str,
    first: int | None = None,
) -> list[Bank]:
    """The banks of ``--profiles count --split split``: each a drawn profile (its branch
    count and customers per staff member) at the given headcount and length."""
    return [
        Bank(
            seed,
            sized_config(
                draw_profile(seed), seed=simulation_seed(seed), staff=staff, days=days, start=start
            ),
        )
        for seed in profile_seeds(split, count, first)
    ]
