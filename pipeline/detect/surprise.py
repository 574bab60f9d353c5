"""How improbable a count is, given its usual mean and variance. Pure maths.

Daily counts of what people do at work are over-dispersed (some days are
busier than others), so a count ``n`` is judged against a negative binomial
with the usual mean and variance (a Poisson when the variance is no larger
than the mean). The *surprise* is ``-log10 P(N >= n)``: 1 for a one-in-ten
day, 3 for a one-in-a-thousand day. The upper tail is bounded with the
geometric series of the pmf ratio, so the result never overstates the
surprise, and costs three ``lgamma`` calls.

>>> round(surprise(1, 0.0, 0.0), 2)  # never done before: the floor mean 0.2 applies
0.74
>>> surprise(3, 5.0, 5.0)  # fewer than usual: no surprise
0.0
>>> round(surprise(12, 2.0, 2.0), 1), round(surprise(12, 2.0, 12.0), 1)
(5.9, 1.6)
"""

from __future__ import annotations

import math
from typing import Final

from msgspec import Struct

MEAN_FLOOR: Final = 0.2  # a zero baseline still allows a little: P(N>=1) = 0.18
MAX_SURPRISE: Final = 30.0
_LN10: Final = math.log(10.0)


def surprise(n: float, mean: float, var: float) -> float:
    """``-log10 P(N >= n)`` for a count with this ``mean`` and ``var`` (0 when n <= mean)."""
    lam = mean if mean > MEAN_FLOOR else MEAN_FLOOR
    if n <= lam:
        return 0.0
    lgamma = math.lgamma
    if var <= lam * 1.0001:
        logp = -lam + n * math.log(lam) - lgamma(n + 1.0)
        ratio = lam / (n + 1.0)
    else:
        r = lam * lam / (var - lam)  # dispersion: var = lam + lam^2 / r
        q = lam / (r + lam)  # failure probability; success p = 1 - q
        logp = lgamma(n + r) - lgamma(r) - lgamma(n + 1.0) + r * math.log1p(-q) + n * math.log(q)
        ratio = (n + r) / (n + 1.0) * q
    if ratio >= 1.0:
        return 0.0
    s = -(logp - math.log1p(-ratio)) / _LN10
    if s <= 0.0:
        return 0.0
    return s if s < MAX_SURPRISE else MAX_SURPRISE


class Baseline(Struct, array_like=True, gc=False):
    """Exponentially weighted mean and variance of a daily value (a plain mean at first).

    >>> b = Baseline()
    >>> for x in (2, 4, 2, 4):
    ...     b.update(x, 0.1)
    >>> b.n, round(b.mean, 2), round(b.var, 2)
    (4, 3.0, 1.0)
    """

    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, x: float, alpha: float) -> None:
        n = self.n + 1
        a = 1.0 / n if 1.0 / n > alpha else alpha
        d = x - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.n = n if n < 1_000_000 else 1_000_000


def blend(
    own: Baseline | None, peer_mean: float, peer_var: float, prior_days: float
) -> tuple[float, float]:
    """Mean and variance for an employee: their own days, shrunk towards their peers'
    (``prior_days`` pseudo-days of peer evidence). Variance is at least the mean."""
    if own is None or own.n == 0:
        mean, var = peer_mean, peer_var
    else:
        w = own.n / (own.n + prior_days)
        mean = w * own.mean + (1.0 - w) * peer_mean
        var = w * own.var + (1.0 - w) * peer_var
    return mean, var if var > mean else mean
