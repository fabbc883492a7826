"""The Gaussian-kernel estimators: truncated, regularized and empirical.

All three use the Gaussian smoothing of the empirical measure through
`engine.GaussianEngine`, in log space: p̂_t = exp(logp), ŝ_t = (mean - x)/t, finite for
any finite query and t > 0 (queries 1e300 away, t = 1e-12 included): where (mean - x)/t
overflows (|x| ~ 1e300 at small t) the score is clipped to +-BIG, the largest float64,
keeping its sign; p̂_t and grad p̂_t likewise (their true values underflow to 0 there).
They differ only in what they do where p̂_t is small (`_adjust`). Time O(m n d) with the
dense backend (less with the engine's cut-off and binned backends); memory O(block)
beyond the outputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import theory
from ..engine import GaussianEngine
from ..engine.base import BIG
from ..engine.grid import R_FLOOR, GridScorer
from ..params import Param
from .base import Estimator

__all__ = ["Empirical", "GaussianScore", "Regularized", "Truncated"]


def _raw_score(mean: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """(mean - x)/t, clipped to +-BIG where it overflows (|x| ~ 1e300, small t)."""
    with np.errstate(over="ignore"):
        s = (mean - x) / t
    return np.clip(s, -BIG, BIG, out=s)


class GaussianScore(Estimator):
    """p̂_t, grad p̂_t and the untruncated score of the Gaussian KDE of bandwidth sqrt(t).

    Parameters
    ----------
    X : (n, d) array of finite training points, n >= 2.
    backend, rtol, plan_m : passed to `engine.GaussianEngine`; a fixed plan_m makes the
        outputs bitwise independent of how queries are batched.
    grid_ratio_floor : the grid score's finest lattice spacing / sqrt(t) (engine.grid).
    """

    options = ("backend", "rtol", "plan_m", "grid_ratio_floor")
    #: the 3-D law's tail cells, which the grid cannot vouch for, go to the engine's ball
    #: sums (a share of n each: config/sizing.py prices them); truncated decides its tails
    #: by the grid's bound instead
    law_tail_fallback: bool = True

    def _configure(self, backend: str = "auto", rtol: float = 1e-6,
                   plan_m: int | None = None, grid_ratio_floor: float = R_FLOOR) -> None:
        self.engine = GaussianEngine(self.X, backend=backend, rtol=rtol, plan_m=plan_m)
        self.grid_ratio_floor = float(grid_ratio_floor)

    def density(self, x: np.ndarray, t: float) -> np.ndarray:
        """p̂_t(x), shape (m,)."""
        x, t = self._check(x, t)
        logp, _ = self.engine.sums(x, t)
        with np.errstate(over="ignore"):
            return np.minimum(np.exp(logp), BIG)

    def grad_density(self, x: np.ndarray, t: float) -> np.ndarray:
        """grad p̂_t(x), shape (m, d)."""
        x, t = self._check(x, t)
        logp, mean = self.engine.sums(x, t)
        with np.errstate(over="ignore"):
            g = np.exp(logp)[:, None] * _raw_score(mean, x, t)
        return np.clip(g, -BIG, BIG, out=g)

    def score(self, x: np.ndarray, t: float) -> np.ndarray:
        """ŝ_t(x) of this estimator, shape (m, d); finite for every finite x and t > 0."""
        x, t = self._check(x, t)
        logp, mean = self.engine.sums(x, t)
        return self._adjust(_raw_score(mean, x, t), logp, t)

    def _adjust(self, s: np.ndarray, logp: np.ndarray, t: float) -> np.ndarray:
        return s

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_grid", None)  # a lattice cache, rebuilt on demand: never shipped
        return state

    def _log_cut(self, t: float, axes: list[np.ndarray]) -> float | np.ndarray | None:
        """log p̂ at or below which the score is 0 (or below the engine's tolerance, so
        it may be set to 0) whatever p̂'s value: None (nowhere), a number or a per-cell
        array of the grid `axes`."""
        return None

    def grid_score(self, axes, t: float, need: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """ŝ_t at every centre of the tensor grid axes[0] x ... x axes[d-1] (d <= 3).

        Returns (score (cells, d) in C order of the grid, method counts of engine.grid).
        Same values as `score` within the engine's tolerance, at a cost that does not grow
        with n; cells the grid cannot vouch for go to this estimator's engine (its tail
        sums: a ball around each, engine.GaussianEngine.tail_sums). `need`
        (bool, grid-shaped): uncertified cells outside it are not computed (score 0).
        """
        t = self._check(np.zeros((1, self.d)), t)[1]
        if getattr(self, "_grid", None) is None:
            self._grid = GridScorer(self.X, rtol=self.engine.rtol,
                                    ratio_floor=self.grid_ratio_floor)
        res = self._grid.sums(axes, t, log_cut=self._log_cut(t, axes), exact=self.engine.tail_sums,
                              need=need)
        x = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
        mean = res.mean.reshape(-1, self.d)
        logp = res.logp.ravel()
        s = self._adjust(_raw_score(mean, x, t), logp, t)
        return s, res.methods


class Empirical(GaussianScore):
    """ŝ_t = grad p̂_t / p̂_t, no truncation: its exact reverse flow memorises the data."""

    name = "empirical"


class Truncated(GaussianScore):
    """ŝ_t 1{p̂_t > rho_n(t)}, rho_n(t) = c_rho / (n t^{d/2}) (the paper's threshold).

    c_rho : the threshold constant, finite > 0 (default 1).
    """

    name = "truncated"
    law_tail_fallback = False
    options = (*GaussianScore.options,
               Param("c_rho", "float", 1.0, "truncation constant: rho_n(t) = c_rho / (n t^(d/2))",
                     lo=0, lo_open=True, in_config=True))

    def _configure(self, c_rho: float = 1.0, **engine) -> None:
        self.c_rho = float(c_rho)
        super()._configure(**engine)

    @classmethod
    def log_zero_threshold(cls, n: int, t: float, d: int, c_rho: float = 1.0,
                           **engine: Any) -> float:
        """log rho_n(t): the score is 0 where p̂_t <= rho_n(t)."""
        return theory.log_rho_n(n, t, d, c_rho)

    def _adjust(self, s: np.ndarray, logp: np.ndarray, t: float) -> np.ndarray:
        s[~(logp > self.log_zero_threshold(self.n, t, self.d, self.c_rho))] = 0.0
        return s

    def _log_cut(self, t: float, axes: list[np.ndarray]) -> float:
        return self.log_zero_threshold(self.n, t, self.d, self.c_rho)


class Regularized(GaussianScore):
    """grad p̂_t / max(p̂_t, eps) (Wibisono, Wu, Yang).

    eps : the floor, finite > 0, or None for n^-2.
    """

    name = "regularized"
    options = (*GaussianScore.options,
               Param("eps", "float", None, "floor of the regularized estimator (null: n^-2)",
                     lo=0, lo_open=True, nullable=True, in_config=True))

    def _configure(self, eps: float | None = None, **engine) -> None:
        self.eps = float(self.n) ** -2 if eps is None else float(eps)
        self._box = (self.X.min(axis=0), self.X.max(axis=0))  # for _log_cut, once
        super()._configure(**engine)

    def _adjust(self, s: np.ndarray, logp: np.ndarray, t: float) -> np.ndarray:
        # p̂ / max(p̂, eps) = exp(min(0, log p̂ - log eps)), in log space
        s *= np.exp(np.minimum(0.0, logp - math.log(self.eps)))[:, None]
        return s

    def _log_cut(self, t: float, axes: list[np.ndarray]) -> np.ndarray:
        """Where p̂ <= eps rtol / (8 max(1, R / sqrt t)), R the distance from the cell to the
        far corner of the data's box, |ŝ| = (p̂ / eps) |mean - x| / t <= rtol / (8 sqrt t):
        below the engine's tolerance, so these far-tail cells need no O(n) sum."""
        lo, hi = self._box
        d = len(axes)
        r2 = sum(np.maximum(np.abs(np.asarray(a, dtype=np.float64) - lo[j]),
                            np.abs(np.asarray(a, dtype=np.float64) - hi[j])
                            ).reshape((-1,) + (1,) * (d - 1 - j)) ** 2
                 for j, a in enumerate(axes))
        reach = np.maximum(1.0, np.sqrt(r2) / math.sqrt(t))
        return math.log(self.eps) + math.log(self.engine.rtol / 8.0) - np.log(reach)
