"""Kernel score estimators of p_t = p0 * N(0, t I) from n training points (DESIGN.md section 1).

`KernelScore(X, kind=...)` evaluates p̂_t, grad p̂_t and ŝ_t at many queries at once:

- "truncated":   ŝ_t 1{p̂_t > rho_n(t)}, rho_n = c_rho / (n t^{d/2}) (the paper's threshold);
- "regularized": grad p̂_t / max(p̂_t, eps), eps = n^-2 by default (Wibisono, Wu, Yang);
- "empirical":   ŝ_t = grad p̂_t / p̂_t, no truncation (memorises the data as t -> 0);
- "highorder":   the paper's estimator, a Legendre-kernel KDE of noised samples.

The first three use the Gaussian smoothing of the empirical measure through
`engine.GaussianEngine`, in log space: no output is NaN or Inf for any finite query and
t > 0 (queries 1e6 away, t = 1e-12 included).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict

import numpy as np
from scipy.spatial import cKDTree

from . import theory
from .engine import GaussianEngine
from .engine import dense as _dense  # noqa: F401  (registers the "dense" backend)
from .engine.base import as_points
from .kernels import legendre_kernel
from .seeding import rng

__all__ = ["KINDS", "KernelScore"]

#: the estimator names accepted by KernelScore (and the CLI / configs).
KINDS = ("truncated", "regularized", "empirical", "highorder")

#: highorder: the k-d trees kept per estimator (one per recent t) take at most this much
TREE_CACHE_BYTES = 256 << 20
#: ... but only if at least this many fit (else one: see KernelScore._noised_tree)
MIN_CACHED_TREES = 16
#: highorder: at most this many (query, neighbour) pairs are held at once (~ 40 d MB).
MAX_PAIRS = 1 << 19


class KernelScore:
    """Kernel estimate of p_t, grad p_t and the score s_t = grad log p_t from samples of p0.

    Parameters
    ----------
    X : (n, d) array of finite training points, n >= 2.
    kind : one of KINDS.
    c_rho : threshold constant of "truncated": rho_n(t) = c_rho / (n t^{d/2}), > 0.
    eps : floor of "regularized" (default n^-2), > 0.
    order : Legendre kernel order l of "highorder" (default ceil(log n)), integer >= 1.
    C : bandwidth constant of "highorder", h = sqrt(t) / (C sqrt(log n)); default d e.
        The paper's theory asks for C > d e; the default sits at that boundary.
    noise_seed : seed of the "highorder" noise Z (see below).
    backend, rtol, plan_m : passed to `engine.GaussianEngine` (Gaussian kinds); a fixed
        plan_m makes the outputs bitwise independent of how queries are batched.

    Notes
    -----
    Gaussian kinds: time O(m n d) with the dense backend (less with the engine's cut-off
    and binned backends); memory O(block) beyond the outputs, as the engine states.

    "highorder": one Z_i ~ N(0, I_d) per training point, drawn once from
    `seeding.rng(noise_seed, "highorder-noise", n, d, <hash of X>)`, and X_i^t = X_i +
    sqrt(t) Z_i at every t. Each X_i^t then has exactly the law p_t, the estimate is a
    smooth function of t along a trajectory, and distinct data sets get independent
    noise. Neighbours within sup-distance h come from a k-d tree on X^t (rebuilt when t
    changes, O(n log n)); the cost is O(m k l d) for k neighbours per query, and at most
    MAX_PAIRS pairs are held at once, so extra memory is O(MAX_PAIRS d + n d).
    The threshold p̂_t > 1/(n t^{d/2}) is tested as sum_i K_d > (C sqrt(log n))^{-d},
    which is the same inequality free of overflow; where it fails (p̂ may be <= 0 for a
    high-order kernel) the score is 0.
    """

    def __init__(self, X: np.ndarray, kind: str = "truncated", c_rho: float = 1.0,
                 eps: float | None = None, order: int | None = None, C: float | None = None,
                 noise_seed: int = 0, backend: str = "auto", rtol: float = 1e-6,
                 plan_m: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown estimator kind {kind!r}; choose one of {list(KINDS)}")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(f"X must be an (n, d) array with n >= 2 and d >= 1, "
                             f"got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or Inf")
        if not (c_rho > 0 and math.isfinite(c_rho)):
            raise ValueError(f"c_rho must be a finite number > 0, got {c_rho!r}")
        if eps is not None and not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number > 0 (or None for n^-2), got {eps!r}")
        if order is not None and (isinstance(order, bool) or not isinstance(order, int | np.integer)
                                  or order < 1):
            raise ValueError(f"order must be an integer >= 1 (or None for ceil(log n)), "
                             f"got {order!r}")
        if C is not None and not (C > 0 and math.isfinite(C)):
            raise ValueError(f"C must be a finite number > 0 (or None for d e), got {C!r}")
        self.X = np.ascontiguousarray(X)
        self.n, self.d = X.shape
        self.kind = kind
        self.c_rho = float(c_rho)
        self.eps = float(eps) if eps is not None else float(self.n) ** -2
        self.order = int(order) if order is not None else math.ceil(math.log(self.n))
        self.C = float(C) if C is not None else self.d * math.e
        self.noise_seed = noise_seed
        self.engine = GaussianEngine(self.X, backend=backend, rtol=rtol, plan_m=plan_m)
        if kind == "highorder":
            digest = hashlib.sha256(self.X.tobytes()).hexdigest()[:16]
            g = rng(noise_seed, "highorder-noise", self.n, self.d, digest)
            self.Z = g.standard_normal((self.n, self.d))
            self.kernel = legendre_kernel(self.order)
        # k-d trees of the noised points by t, most recent last: the chunks of a sampler
        # visit the same times, so each tree is built once per t while they fit in budget
        self._trees: OrderedDict[float, cKDTree] = OrderedDict()
        self._trees_lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_trees"] = OrderedDict()  # rebuilt on demand; keeps pickles (Dask) small
        state["_trees_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._trees_lock = threading.Lock()
        return state

    # -- public API -------------------------------------------------------------------

    def density(self, x: np.ndarray, t: float) -> np.ndarray:
        """p̂_t(x), shape (m,)."""
        x, t = self._check(x, t)
        if self.kind == "highorder":
            S, _, h = self._highorder_sums(x, t)
            return S * math.exp(-math.log(self.n) - self.d * math.log(h))
        logp, _ = self.engine.sums(x, t)
        return np.exp(logp)

    def grad_density(self, x: np.ndarray, t: float) -> np.ndarray:
        """grad p̂_t(x), shape (m, d)."""
        x, t = self._check(x, t)
        if self.kind == "highorder":
            _, G, h = self._highorder_sums(x, t)
            return G * math.exp(-math.log(self.n) - (self.d + 1) * math.log(h))
        logp, mean = self.engine.sums(x, t)
        return np.exp(logp)[:, None] * (mean - x) / t

    def score(self, x: np.ndarray, t: float) -> np.ndarray:
        """ŝ_t(x) of this kind, shape (m, d); finite for every finite x and t > 0."""
        x, t = self._check(x, t)
        if self.kind == "highorder":
            S, G, h = self._highorder_sums(x, t)
            keep = S > (self.C * math.sqrt(math.log(self.n))) ** (-self.d)
            out = np.zeros_like(G)
            out[keep] = G[keep] / (h * S[keep, None])
            return out
        logp, mean = self.engine.sums(x, t)
        s = (mean - x) / t
        if self.kind == "truncated":
            s[~(logp > theory.log_rho_n(self.n, t, self.d, self.c_rho))] = 0.0
        elif self.kind == "regularized":
            # p̂ / max(p̂, eps) = exp(min(0, log p̂ - log eps)), in log space
            s *= np.exp(np.minimum(0.0, logp - math.log(self.eps)))[:, None]
        return s

    # -- internals --------------------------------------------------------------------

    def _check(self, x: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        if not (np.isscalar(t) and t > 0 and math.isfinite(t)):
            raise ValueError(f"t must be a finite number > 0, got {t!r}")
        x = as_points(x, d=self.d, name="x")
        if not np.all(np.isfinite(x)):
            raise ValueError("queries x contain NaN or Inf")
        return x, float(t)

    def bandwidth(self, t: float) -> float:
        """Bandwidth h = sqrt(t) / (C sqrt(log n)) of "highorder" at time t."""
        return math.sqrt(t) / (self.C * math.sqrt(math.log(self.n)))

    def _noised_tree(self, t: float) -> cKDTree:
        with self._trees_lock:
            tree = self._trees.get(t)
            if tree is not None:
                self._trees.move_to_end(t)
                return tree
        tree = cKDTree(self.X + math.sqrt(t) * self.Z)
        # a tree holds its data, an index and ~n/8 nodes: about (d + 2) * 8 bytes per point
        fit = TREE_CACHE_BYTES // ((self.d + 2) * 8 * self.n)
        # a trajectory visits dozens of times in a cycle: an LRU holding fewer than that
        # only thrashes, so then keep just the latest tree
        keep = fit if fit >= MIN_CACHED_TREES else 1
        with self._trees_lock:
            self._trees[t] = tree
            while len(self._trees) > keep:
                self._trees.popitem(last=False)
        return tree

    def _highorder_sums(self, x: np.ndarray, t: float):
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
