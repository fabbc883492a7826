"""Cutoff backend: sum only the training points that can matter, within a proven tolerance.

For a query x with nearest training point at distance dmin, every weight is at most
w_max = exp(-dmin^2 / (2t)) and the total S >= w_max. Keeping the points with
|x - X_i|^2 <= R^2 = dmin^2 + 2 t L drops at most n points each of weight < w_max e^-L:

    relative error of p̂_t  <= n e^-L,
    error of the mean       <= n e^-L (|mean - x| + R)     (r e^{-r^2/2t} falls for r > sqrt t),

so with L solving n e^-L (2 + R/sqrt t) = rtol / 4 both p̂_t and ŝ_t = (mean - x)/t meet
the tolerance of `dispatch` (relative, with scale max(|mean - x|, sqrt t) for the mean),
for every query and every t: nothing here depends on p̂_t being above a threshold.

Neighbours come from a sorted array (d = 1, contiguous ranges by binary search) or a
k-d tree walked in place (d >= 2, engine/tree_walk.py: blocks of nearby queries enter the
nodes that meet their balls and sum the leaves' points without building any list), built
once per training set. Time O(m (log n + k)) with k the points of the leaves a query's
block reaches; memory O(n d) for the index.

A query far from the data (dmin >> sqrt t) keeps a ball of radius sqrt(dmin^2 + 2 t L)
that holds only a shell of width ~ t L / dmin at the data's near edge: the law's tail cells
(engine/grid.py) sum that shell, not the n points. Where the shell is wider than the data
(t L / dmin > its spread: t ~ 1-100 for data of spread 2) the ball holds all n; in d = 1
such queries sum all n points from bins' Taylor moments instead (engine/bin_moments.py,
exact to float64 rounding, O(bins x terms) per query) when `worth_it` finds that cheaper.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .base import KernelSums, as_points, dim_factor, register_backend
from .bin_moments import bin_moment_sums, worth_it
from .dense import Dense
from .tree_walk import BallTree

__all__ = ["Cutoff", "cutoff_log_ratio", "expected_neighbours"]


def cutoff_log_ratio(n: int, rtol: float, dmin2_over_t: np.ndarray | float) -> np.ndarray:
    """L such that n e^-L (2 + sqrt(dmin^2/t + 2L)) <= rtol/4 (fixed point, 4 rounds).

    The radius of the ball kept around a query is then sqrt(dmin^2 + 2 t L).
    """
    q = np.asarray(dmin2_over_t, dtype=np.float64)
    base = math.log(4.0 * n / rtol)
    L = np.full(q.shape, base + 1.0)
    for _ in range(4):
        L = base + np.log(2.0 + np.sqrt(q + 2.0 * L))
    return L + 1e-9 * np.abs(L)


def expected_neighbours(n: int, d: int, t: float, rtol: float, span) -> float:
    """Neighbours per query kept for data spread uniformly over its box of extent `span`."""
    L = float(cutoff_log_ratio(n, rtol, 0.0))
    R = math.sqrt(2.0 * t * L)
    frac = 1.0
    for s in np.broadcast_to(np.asarray(span, dtype=np.float64), (d,)):
        frac *= min(1.0, 2.0 * R / s) if s > 0 else 1.0
    return max(1.0, n * frac)


@njit(parallel=True, cache=True)
def _sums_ranges_1d(xs, xsorted, lo, hi, t, logp, mean):  # pragma: no cover - numba
    """1D: each query sums the sorted points xsorted[lo[q]:hi[q]]."""
    m = xs.shape[0]
    inv2t = 0.5 / t
    for q in prange(m):
        x = xs[q]
        s = 0.0
        v = 0.0
        base = np.inf  # own nearest distance: same rounding as the terms below
        for j in range(lo[q], hi[q]):
            u = xsorted[j] - x
            base = min(base, u * u)
        for j in range(lo[q], hi[q]):
            u = xsorted[j] - x
            w = math.exp(-(u * u - base) * inv2t)
            s += w
            v += w * u
        logp[q] = math.log(s) - base * inv2t
        mean[q, 0] = x + v / s


@register_backend
class Cutoff(KernelSums):
    """Sum over the training points within the tolerance radius of each query.

    Exact to `rtol` (see the module docstring) for every query and every t > 0; fast
    when the radius sqrt(dmin^2 + 2 t log(n/rtol)) holds few of the n points (small t, or
    queries in the tails).
    """

    name = "cutoff"
    #: seconds per (query, neighbour) pair in d = 1 (times dim_factor(d)); in d >= 2 a pair
    #: of the tree walk costs WALK_OVERHEAD dense pairs (the leaves a block reaches hold
    #: more than the balls); seconds per query (nearest neighbour, radius)
    COST_PAIR, WALK_OVERHEAD, COST_QUERY = 4e-9, 1.2, 2e-6

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float:
        """Within rtol for every query: O(m (log n + k)), k from `expected_neighbours`."""
        k = expected_neighbours(n, d, t, rtol, span)
        per = (Cutoff.COST_PAIR * dim_factor(d) if d == 1
               else Dense.COST * dim_factor(d) * Cutoff.WALK_OVERHEAD)
        return m * (k * per + Cutoff.COST_QUERY * (1 + math.log2(n) / 20))

    def __init__(self, train: np.ndarray, rtol: float = 1e-6) -> None:
        self.train = as_points(train, name="train")
        self.rtol = float(rtol)
        n, d = self.train.shape
        if d == 1:
            self._order = np.argsort(self.train[:, 0], kind="stable")
            self._sorted = np.ascontiguousarray(self.train[self._order, 0])
            self._walker = None
        else:
            self._walker = BallTree(self.train)

    @property
    def n(self) -> int:
        return self.train.shape[0]

    def radii(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(dmin^2, R) per query: squared nearest distance and the kept radius."""
        if self._walker is None:
            xs = self._sorted
            i = np.searchsorted(xs, x[:, 0])
            left = np.abs(x[:, 0] - xs[np.clip(i - 1, 0, len(xs) - 1)])
            right = np.abs(xs[np.clip(i, 0, len(xs) - 1)] - x[:, 0])
            dmin2 = np.minimum(left, right) ** 2
        else:
            dmin2 = self._walker.nearest2(x)
        L = cutoff_log_ratio(self.n, self.rtol, dmin2 / t)
        return dmin2, np.sqrt(dmin2 + 2.0 * t * L)

    def neighbour_counts(self, x: np.ndarray, t: float) -> np.ndarray:
        """Number of training points within each query's radius (for cost estimates)."""
        x = as_points(x, d=self.train.shape[1], name="queries")
        _, R = self.radii(x, t)
        if self._walker is None:
            xs = self._sorted
            return np.searchsorted(xs, x[:, 0] + R, "right") - np.searchsorted(xs, x[:, 0] - R)
        return self._walker.tree.query_ball_point(x, R, return_length=True, workers=-1)

    def _sums(self, x: np.ndarray, t: float, log_norm: float) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        dmin2, R = self.radii(x, t)
        if self._walker is None:
            logp, mean = np.empty(x.shape[0]), np.empty_like(x)
            xs = self._sorted
            lo = np.searchsorted(xs, x[:, 0] - R, "left")
            hi = np.searchsorted(xs, x[:, 0] + R, "right")
            # the nearest point is always inside; guard against rounding at the edge
            lo = np.minimum(lo, np.searchsorted(xs, x[:, 0], "left") - 1).clip(0, n - 1)
            hi = np.maximum(hi, lo + 1)
            xq = x[:, 0].copy()
            # queries whose ball holds most of the data (far off data of small spread, at
            # large t) sum all n points from the bins' Taylor moments instead
            span = xs[-1] - xs[0]
            far = (worth_it(hi - lo, np.maximum(np.abs(xq - xs[0]), np.abs(xq - xs[-1])),
                            span, t, n) if span > 0 else np.zeros(xq.size, dtype=bool))
            near = ~far
            if near.all():
                _sums_ranges_1d(xq, xs, lo, hi, t, logp, mean)
            else:
                logp[far], mean[far, 0] = bin_moment_sums(xs, xq[far], t)
                if near.any():
                    lp, mu = np.empty(int(near.sum())), np.empty((int(near.sum()), 1))
                    _sums_ranges_1d(xq[near], xs, lo[near], hi[near], t, lp, mu)
                    logp[near], mean[near] = lp, mu
            return logp - math.log(n) - 0.5 * math.log(2.0 * math.pi * t), mean
        # the nearest point is inside the ball whatever the rounding of its distance
        R2 = (R * (1.0 + 1e-12) + 1e-300) ** 2
        logs, mean = self._walker.ball_sums(x, dmin2, R2, t)
        return logs + log_norm, mean
