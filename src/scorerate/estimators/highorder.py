"""The paper's estimator (Section 4.1, Appendix C): a Legendre-kernel KDE of noised samples.

p̂_t(x) = (1/(n h^d)) sum_i K_d((x - X_i^t)/h), h = sqrt(t) / (C sqrt(log n)), with the
order-l product kernel K_d of `kernels.legendre_kernel`, and ŝ_t = grad p̂_t / p̂_t where
p̂_t > rho_n = 1/(n t^{d/2}), 0 elsewhere.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from scipy.spatial import cKDTree

from ..cache import ByteLRU
from ..engine.base import BIG
from ..params import Param
from ..seeding import rng
from .base import Estimator
from .kernels import legendre_kernel

__all__ = ["MAX_PAIRS", "HighOrder"]

#: the k-d trees kept per estimator (one per recent t) take at most this much
TREE_CACHE_BYTES = 256 << 20
#: ... but only if at least this many fit (else one: see cache.ByteLRU)
MIN_CACHED_TREES = 16
#: at most this many (query, neighbour) pairs are held at once (~ 40 d MB).
MAX_PAIRS = 1 << 19


class HighOrder(Estimator):
    """Legendre-kernel KDE of noised samples, truncated at rho_n (DESIGN.md section 1).

    Parameters
    ----------
    X : (n, d) array of finite training points, n >= 2.
    order : kernel order l (default ceil(log n)), integer >= 1.
    C : bandwidth constant, h = sqrt(t) / (C sqrt(log n)); default d e. The paper's theory
        asks for C > d e; the default sits at that boundary.
    noise_seed : seed of the noise Z (see below).

    Notes
    -----
    One Z_i ~ N(0, I_d) per training point, drawn once from
    `seeding.rng(noise_seed, "highorder-noise", n, d, <hash of X>)`, and X_i^t = X_i +
    sqrt(t) Z_i at every t. Each X_i^t then has exactly the law p_t, the estimate is a
    smooth function of t along a trajectory, and distinct data sets get independent
    noise. Neighbours within sup-distance h come from a k-d tree on X^t (built once per t
    while the trees fit in TREE_CACHE_BYTES, O(n log n) each); the cost is O(m k l d) for
    k neighbours per query, and at most MAX_PAIRS pairs are held at once, so extra memory
    is O(MAX_PAIRS d + n d) besides the cached trees.
    The threshold p̂_t > 1/(n t^{d/2}) is tested as sum_i K_d > (C sqrt(log n))^{-d},
    the same inequality free of overflow; where it fails (p̂ may be <= 0 for a high-order
    kernel) the score is 0.
    """

    name = "highorder"
    options = (
        # ceil(log n) < 64 for any n a float counts; higher orders only add cancellation
        Param("order", "int", None, "Legendre kernel order l of highorder (null: "
              "ceil(log n))", lo=1, hi=64, nullable=True, in_config=True,
              job_name="highorder_order"),
        Param("C", "float", None, "bandwidth constant C of highorder (null: d e)",
              lo=0, lo_open=True, nullable=True, in_config=True, job_name="highorder_C"),
        "noise_seed",
    )

    def _configure(self, order: int | None = None, C: float | None = None,
                   noise_seed: int = 0) -> None:
        self.order = math.ceil(math.log(self.n)) if order is None else int(order)
        self.C = self.d * math.e if C is None else float(C)
        self.noise_seed = noise_seed
        digest = hashlib.sha256(self.X.tobytes()).hexdigest()[:16]
        g = rng(noise_seed, "highorder-noise", self.n, self.d, digest)
        self.Z = g.standard_normal((self.n, self.d))
        self.kernel = legendre_kernel(self.order)
        self._trees = ByteLRU(TREE_CACHE_BYTES, MIN_CACHED_TREES)

    def bandwidth(self, t: float) -> float:
        """Bandwidth h = sqrt(t) / (C sqrt(log n)) at time t."""
        return math.sqrt(t) / (self.C * math.sqrt(math.log(self.n)))

    def density(self, x: np.ndarray, t: float) -> np.ndarray:
        """p̂_t(x), shape (m,)."""
        x, t = self._check(x, t)
        S, _, h = self._sums(x, t)
        with np.errstate(over="ignore", invalid="ignore"):
            p = S * np.exp(-math.log(self.n) - self.d * math.log(h))
        return np.clip(p, -BIG, BIG, out=p)

    def grad_density(self, x: np.ndarray, t: float) -> np.ndarray:
        """grad p̂_t(x), shape (m, d)."""
        x, t = self._check(x, t)
        _, G, h = self._sums(x, t)
        with np.errstate(over="ignore", invalid="ignore"):
            g = G * np.exp(-math.log(self.n) - (self.d + 1) * math.log(h))
        return np.clip(g, -BIG, BIG, out=g)

    def score(self, x: np.ndarray, t: float) -> np.ndarray:
        """ŝ_t(x), shape (m, d); 0 where p̂_t <= rho_n; finite for finite x and t > 0."""
        x, t = self._check(x, t)
        S, G, h = self._sums(x, t)
        keep = S > (self.C * math.sqrt(math.log(self.n))) ** (-self.d)
        out = np.zeros_like(G)
        with np.errstate(over="ignore"):
            out[keep] = G[keep] / (h * S[keep, None])
        return np.clip(out, -BIG, BIG, out=out)

    def _noised_tree(self, t: float) -> cKDTree:
        # a tree holds its data, an index and ~n/8 nodes: about (d + 2) * 8 bytes per point
        return self._trees.get_or_build(t, lambda: cKDTree(self.X + math.sqrt(t) * self.Z),
                                        lambda tree: (self.d + 2) * 8 * self.n)

    def _sums(self, x: np.ndarray, t: float):
        """S = sum_i K_d(u_i) (m,), G = sum_i grad K_d(u_i) (m, d), u_i = (x - X_i^t)/h; and h."""
        m, d = x.shape
        h = self.bandwidth(t)
        tree = self._noised_tree(t)
        Xt = tree.data
        S = np.zeros(m)
        G = np.zeros((m, d))
        counts = tree.query_ball_point(x, r=h, p=np.inf, return_length=True)
        q0 = 0
        while q0 < m:  # sub-blocks of queries holding at most MAX_PAIRS pairs (or 1 query)
            cum = np.cumsum(counts[q0:])
            q1 = q0 + max(1, int(np.searchsorted(cum, MAX_PAIRS, side="right")))
            lists = tree.query_ball_point(x[q0:q1], r=h, p=np.inf, return_sorted=True)
            lens = np.fromiter((len(a) for a in lists), dtype=np.intp, count=q1 - q0)
            if lens.sum() > 0:
                j = np.concatenate([np.asarray(a, dtype=np.intp) for a in lists])
                qi = np.repeat(np.arange(q1 - q0), lens)
                U = (x[q0:q1][qi] - Xt[j]) / h
                Kv = self.kernel(U)
                Kd = self.kernel.deriv(U)
                prod = np.prod(Kv, axis=1)
                S[q0:q1] = np.bincount(qi, weights=prod, minlength=q1 - q0)
                for k in range(d):
                    others = np.prod(np.delete(Kv, k, axis=1), axis=1) if d > 1 else 1.0
                    G[q0:q1, k] = np.bincount(qi, weights=Kd[:, k] * others,
                                              minlength=q1 - q0)
            q0 = q1
        return S, G, h
