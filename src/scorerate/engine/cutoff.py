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
scipy cKDTree (d >= 2), built once per training set; the sums run in a numba loop,
parallel over queries. Time O(m (log n + k)) with k the neighbours per query; memory
O(n d) for the index plus O(total neighbours of a query block) for d >= 2.

Wide balls (d >= 2). A query far from the data (dmin >> sqrt t) keeps a ball of radius
sqrt(dmin^2 + 2 t L) that can hold most of the n points, and a materialised neighbour
list costs ~20x a dense kernel evaluation per point. Each query whose ball holds more
than `dense_fraction(d)` n points (its count is known before any list is built) is
summed instead by the exact `dense` kernel over all n points: same tolerance (better:
exact), at most the cost of dense for that query. The split is per query, so a query's
result does not depend on the other queries of the call (bit-identical over chunkings);
queries under the threshold take the list path exactly as before.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from scipy.spatial import cKDTree

from .base import KernelSums, as_points, dim_factor, register_backend
from .dense import Dense, dense_sums

__all__ = ["Cutoff", "cutoff_log_ratio", "dense_fraction", "expected_neighbours"]

#: most neighbour indices materialised at once for d >= 2 (8 bytes each).
MAX_PAIRS = 4_000_000


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


def dense_fraction(d: int) -> float:
    """Share of the n points above which a query's neighbour list costs more than dense.

    From the cost models: a listed neighbour costs COST_PAIR dim_factor + COST_LIST, a
    dense query Dense.COST dim_factor n (about n / 19 in d = 2). Only used for d >= 2.
    """
    per_pair = Cutoff.COST_PAIR * dim_factor(d) + Cutoff.COST_LIST
    return Dense.COST * dim_factor(d) / per_pair


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


@njit(inline="always", cache=True)
def _sq_dist(X, j, xq, q):  # pragma: no cover - numba
    """|X[j] - xq[q]|^2, summed over the coordinates in order (one rounding for both passes)."""
    r2 = 0.0
    for k in range(X.shape[1]):
        u = X[j, k] - xq[q, k]
        r2 += u * u
    return r2


@njit(parallel=True, cache=True)
def _sums_lists(xq, X, ptr, idx, t, logp, mean):  # pragma: no cover - numba
    """d >= 2: query q sums X[idx[ptr[q]:ptr[q+1]]]."""
    m, d = xq.shape
    inv2t = 0.5 / t
    for q in prange(m):
        s = 0.0
        vec = np.zeros(d)
        base = np.inf  # own nearest distance: same rounding as the terms below
        for a in range(ptr[q], ptr[q + 1]):
            base = min(base, _sq_dist(X, idx[a], xq, q))
        for a in range(ptr[q], ptr[q + 1]):
            j = idx[a]
            r2 = _sq_dist(X, j, xq, q)
            w = math.exp(-(r2 - base) * inv2t)
            s += w
            for k in range(d):
                vec[k] += w * (X[j, k] - xq[q, k])
        logp[q] = math.log(s) - base * inv2t
        for k in range(d):
            mean[q, k] = xq[q, k] + vec[k] / s


@register_backend
class Cutoff(KernelSums):
    """Sum over the training points within the tolerance radius of each query.

    Exact to `rtol` (see the module docstring) for every query and every t > 0; fast
    when the radius sqrt(dmin^2 + 2 t log(n/rtol)) holds few of the n points (small t).
    """

    name = "cutoff"
    #: seconds per (query, neighbour) pair in d = 1 (times dim_factor(d)), extra per pair
    #: in d >= 2 (cKDTree neighbour lists), and per query (nearest neighbour, radius)
    COST_PAIR, COST_LIST, COST_QUERY = 4e-9, 6e-8, 2e-6

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float:
        """Within rtol for every query: O(m (log n + k)), k from `expected_neighbours`."""
        k = expected_neighbours(n, d, t, rtol, span)
        per = Cutoff.COST_PAIR * dim_factor(d) + (Cutoff.COST_LIST if d > 1 else 0.0)
        return m * (k * per + Cutoff.COST_QUERY * (1 + math.log2(n) / 20))

    def __init__(self, train: np.ndarray, rtol: float = 1e-6) -> None:
        self.train = as_points(train, name="train")
        self.rtol = float(rtol)
        n, d = self.train.shape
        if d == 1:
            self._order = np.argsort(self.train[:, 0], kind="stable")
            self._sorted = np.ascontiguousarray(self.train[self._order, 0])
            self._tree = None
        else:
            self._tree = cKDTree(self.train)

    @property
    def n(self) -> int:
        return self.train.shape[0]

    def radii(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(dmin^2, R) per query: squared nearest distance and the kept radius."""
        if self._tree is None:
            xs = self._sorted
            i = np.searchsorted(xs, x[:, 0])
            left = np.abs(x[:, 0] - xs[np.clip(i - 1, 0, len(xs) - 1)])
            right = np.abs(xs[np.clip(i, 0, len(xs) - 1)] - x[:, 0])
            dmin = np.minimum(left, right)
        else:
            dmin, _ = self._tree.query(x, k=1, workers=-1)
        dmin2 = dmin * dmin
        L = cutoff_log_ratio(self.n, self.rtol, dmin2 / t)
        return dmin2, np.sqrt(dmin2 + 2.0 * t * L)

    def neighbour_counts(self, x: np.ndarray, t: float) -> np.ndarray:
        """Number of training points summed for each query (for cost estimates)."""
        x = as_points(x, d=self.train.shape[1], name="queries")
        _, R = self.radii(x, t)
        if self._tree is None:
            xs = self._sorted
            return np.searchsorted(xs, x[:, 0] + R, "right") - np.searchsorted(xs, x[:, 0] - R)
        return self._tree.query_ball_point(x, R, return_length=True, workers=-1)

    def dense_routed(self, counts: np.ndarray) -> np.ndarray:
        """(m,) bool: the queries (by neighbour count) that `sums` hands to the dense kernel.

        Always all False in d = 1 (contiguous ranges cost no more per point than dense).
        """
        counts = np.asarray(counts)
        n, d = self.train.shape
        if d == 1:
            return np.zeros(counts.shape, dtype=bool)
        return counts > dense_fraction(d) * n

    def _sums(self, x: np.ndarray, t: float, log_norm: float) -> tuple[np.ndarray, np.ndarray]:
        X = self.train
        n, d = X.shape
        logp, mean = np.empty(x.shape[0]), np.empty_like(x)
        dmin2, R = self.radii(x, t)
        if self._tree is None:
            xs = self._sorted
            lo = np.searchsorted(xs, x[:, 0] - R, "left")
            hi = np.searchsorted(xs, x[:, 0] + R, "right")
            # the nearest point is always inside; guard against rounding at the edge
            lo = np.minimum(lo, np.searchsorted(xs, x[:, 0], "left") - 1).clip(0, n - 1)
            hi = np.maximum(hi, lo + 1)
            _sums_ranges_1d(x[:, 0].copy(), xs, lo, hi, t, logp, mean)
            return logp - math.log(n) - 0.5 * math.log(2.0 * math.pi * t), mean
        R = R * (1.0 + 1e-12) + 1e-300
        counts = self._tree.query_ball_point(x, R, return_length=True, workers=-1)
        wide = self.dense_routed(counts)
        keep = ~wide
        if keep.all():
            lp_k, mean = self._listed(x, R, counts, t)
            return lp_k - math.log(n) - 0.5 * d * math.log(2.0 * math.pi * t), mean
        if keep.any():
            lp_k, mean[keep] = self._listed(np.ascontiguousarray(x[keep]), R[keep],
                                            counts[keep], t)
            logp[keep] = lp_k - math.log(n) - 0.5 * d * math.log(2.0 * math.pi * t)
        # balls holding much of the data: the exact dense kernel is cheaper than lists
        logp[wide], mean[wide] = dense_sums(X, np.ascontiguousarray(x[wide]), t, log_norm)
        return logp, mean

    def _listed(self, x: np.ndarray, R: np.ndarray, counts: np.ndarray,
                t: float) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised (log sum_i w_i, mean) of d >= 2 queries over their neighbour lists."""
        X = self.train
        m, d = x.shape
        logp = np.empty(m)
        mean = np.empty((m, d))
        start = 0
        while start < m:
            # a block whose neighbour lists together stay under MAX_PAIRS
            csum = np.cumsum(counts[start:])
            stop = start + max(1, int(np.searchsorted(csum, MAX_PAIRS, "right")))
            xb = x[start:stop]
            lists = self._tree.query_ball_point(xb, R[start:stop], return_sorted=False,
                                                workers=-1)
            lens = np.fromiter((len(a) for a in lists), dtype=np.int64, count=len(lists))
            ptr = np.zeros(len(lists) + 1, dtype=np.int64)
            np.cumsum(lens, out=ptr[1:])
            idx = (np.concatenate([np.asarray(a, dtype=np.int64) for a in lists])
                   if ptr[-1] else np.zeros(0, dtype=np.int64))
            _sums_lists(xb, X, ptr, idx, t, logp[start:stop], mean[start:stop])
            start = stop
        return logp, mean
