"""Ball sums by walking a k-d tree: the points within radius R of a query, without lists.

`BallTree(train)` flattens a scipy cKDTree once (nodes in pre-order, each node's points a
contiguous run of the tree's permutation of the data, a tight bounding box per node).
`ball_sums(x, dmin2, R2, t)` then gives, per query q, the unnormalised Gaussian sums over
the points with |x_q - X_i|^2 <= R2[q]:

    log sum_i w_i + dmin2 / (2t)  and  mean = x + sum_i w_i (X_i - x) / sum_i w_i,
    w_i = exp(-(|x_q - X_i|^2 - dmin2[q]) / (2t)),

by a depth-first walk that skips every node whose box lies outside the ball and sums the
points of the leaves it reaches in place (no neighbour list is built: the cost per point is
that of a dense kernel evaluation, plus one box test per visited node). dmin2 must be the
query's squared distance to its nearest point (all weights are then <= 1, up to rounding).

Determinism: a query's sum runs over the leaves in the fixed pre-order of the tree and
over each leaf's points in the tree's order, so it depends on the query alone: bit-identical
over any chunking of the queries and any number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from scipy.spatial import cKDTree

from .dense import _exp_nonpos

__all__ = ["LEAF_SIZE", "BallTree"]

#: points per leaf of the tree (scipy's leafsize)
LEAF_SIZE = 16
#: queries that walk the tree together (one vector lane each)
B = 64


@njit(cache=True)
def _boxes(XT, start, end, lesser, greater, lo, hi):  # pragma: no cover - numba
    """Tight boxes: leaves from their points, inner nodes from their children (reverse
    pre-order visits every child before its parent)."""
    d = XT.shape[0]
    for node in range(start.shape[0] - 1, -1, -1):
        a, b = lesser[node], greater[node]
        for k in range(d):
            if a < 0:
                mn, mx = np.inf, -np.inf
                for j in range(start[node], end[node]):
                    v = XT[k, j]
                    mn = min(mn, v)
                    mx = max(mx, v)
                lo[node, k], hi[node, k] = mn, mx
            else:
                lo[node, k] = min(lo[a, k], lo[b, k])
                hi[node, k] = max(hi[a, k], hi[b, k])


@njit(parallel=True, cache=True)
def _walk(xq, order, XT, start, end, lesser, greater, lo, hi, depth, dmin2, R2, t,
          logs, mean):  # pragma: no cover - numba
    """Blocks of B queries (consecutive in `order`) walk the tree together: a node is
    entered if it meets the ball of any query of the block, and a leaf's points are summed
    for every query of the block at once (vectorised over the queries), each pair weighted
    by 1{|x_q - X_i|^2 <= R2[q]}. A pair outside its query's ball adds exactly 0, so every
    query's sum is that of its own ball in the tree's order, whatever its block."""
    m, d = xq.shape
    inv2t = 0.5 / t
    nb = (m + B - 1) // B
    for b in prange(nb):
        cnt = min(B, m - b * B)
        x = np.empty((d, B))
        r2max = np.empty(B)
        base = np.empty(B)
        for i in range(B):
            q = order[b * B + min(i, cnt - 1)]  # padded with copies of the last query
            for k in range(d):
                x[k, i] = xq[q, k]
            r2max[i] = R2[q]
            base[i] = dmin2[q]
        qlo = np.empty(d)
        qhi = np.empty(d)
        for k in range(d):
            qlo[k] = x[k].min()
            qhi[k] = x[k].max()
        reach = r2max.max()
        S = np.zeros(B)
        V = np.zeros((d, B))
        r2 = np.empty(B)
        w = np.empty(B)
        stack = np.empty(depth + 2, dtype=np.int64)
        top = 0
        stack[0] = 0
        while top >= 0:
            node = stack[top]
            top -= 1
            gap = 0.0
            for k in range(d):
                u = max(lo[node, k] - qhi[k], qlo[k] - hi[node, k], 0.0)
                gap += u * u
            if gap > reach:
                continue
            a = lesser[node]
            if a >= 0:
                top += 1
                stack[top] = greater[node]
                top += 1
                stack[top] = a
                continue
            for j in range(start[node], end[node]):
                for i in range(B):
                    r2[i] = 0.0
                for k in range(d):
                    xjk = XT[k, j]
                    for i in range(B):
                        u = x[k, i] - xjk
                        r2[i] += u * u
                inside = 0
                for i in range(B):
                    inside += r2[i] <= r2max[i]
                if inside == 0:
                    continue  # outside every ball of the block: adds nothing
                for i in range(B):
                    keep = 1.0 if r2[i] <= r2max[i] else 0.0
                    w[i] = keep * _exp_nonpos(min(base[i] - r2[i], 0.0) * inv2t)
                    S[i] += w[i]
                for k in range(d):
                    xjk = XT[k, j]
                    for i in range(B):
                        V[k, i] += w[i] * (xjk - x[k, i])
        for i in range(cnt):
            q = order[b * B + i]
            logs[q] = math.log(S[i]) - base[i] * inv2t
            for k in range(d):
                mean[q, k] = x[k, i] + V[k, i] / S[i]


def _morton(x: np.ndarray) -> np.ndarray:
    """A Z-order of the queries (so that a block of consecutive ones is compact)."""
    m, d = x.shape
    bits = max(1, 60 // d)
    lo, hi = x.min(axis=0), x.max(axis=0)
    scale = np.where(hi > lo, (2.0 ** bits - 1) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    c = ((x - lo) * scale).astype(np.uint64)
    key = np.zeros(m, dtype=np.uint64)
    for bit in range(bits):
        for k in range(d):
            key |= ((c[:, k] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(bit * d + k)
    return np.argsort(key, kind="stable")


class BallTree:
    """A cKDTree of the training points, flattened for `ball_sums` (any d)."""

    def __init__(self, train: np.ndarray, leaf_size: int = LEAF_SIZE) -> None:
        train = np.ascontiguousarray(train, dtype=np.float64)
        self.tree = cKDTree(train, leafsize=int(leaf_size))
        self._XT = np.ascontiguousarray(train[self.tree.indices].T)
        start, end, lesser, greater = [], [], [], []
        depth = 0
        # pre-order ids: an inner node's lesser child is popped right after it (id + 1)
        stack = [(self.tree.tree, -1, 0)]  # (node, parent whose greater child it is, depth)
        while stack:
            node, parent, lev = stack.pop()
            me = len(start)
            if parent >= 0:
                greater[parent] = me
            depth = max(depth, lev)
            start.append(node.start_idx)
            end.append(node.end_idx)
            leaf = node.split_dim == -1
            lesser.append(-1 if leaf else me + 1)
            greater.append(-1)
            if not leaf:
                stack.append((node.greater, me, lev + 1))
                stack.append((node.lesser, -1, lev + 1))
        self._start = np.asarray(start, dtype=np.int64)
        self._end = np.asarray(end, dtype=np.int64)
        self._lesser = np.asarray(lesser, dtype=np.int64)
        self._greater = np.asarray(greater, dtype=np.int64)
        self._depth = depth
        d = train.shape[1]
        self._lo = np.empty((len(start), d))
        self._hi = np.empty((len(start), d))
        _boxes(self._XT, self._start, self._end, self._lesser, self._greater, self._lo,
               self._hi)

    def nearest2(self, x: np.ndarray) -> np.ndarray:
        """(m,) squared distance from each query to its nearest training point."""
        dmin, _ = self.tree.query(x, k=1, workers=-1)  # exact distances: any thread count
        return dmin * dmin

    def ball_sums(self, x: np.ndarray, dmin2: np.ndarray, R2: np.ndarray,
                  t: float) -> tuple[np.ndarray, np.ndarray]:
        """(log sum_i w_i, mean) over the points within sqrt(R2) of each query (module doc)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        logs = np.empty(x.shape[0])
        mean = np.empty_like(x)
        _walk(x, _morton(x), self._XT, self._start, self._end, self._lesser, self._greater,
              self._lo, self._hi, self._depth, np.ascontiguousarray(dmin2, dtype=np.float64),
              np.ascontiguousarray(R2, dtype=np.float64), float(t), logs, mean)
        return logs, mean
