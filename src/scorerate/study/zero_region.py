"""Finite-n prediction of a truncated score's zero-region error, from p_t and the threshold alone.

A truncated estimate sets ŝ_t = 0 where p̂_t <= rho_n(t) (estimators.log_zero_threshold).
There its squared error is the whole |s_t|^2, and that part of the score MSE
(score_mse_zero) does not fall like 1/n: the region recedes only as rho_n does. Replacing
p̂_t by its mean p_t gives a population quantity with no training set and no parameter:

    Z_n(t) = E_{x~p_t} |s_t(x)|^2 1{p_t(x) <= rho_n(t)},   M_n(t) = P_{x~p_t}(p_t(x) <= rho_n(t)).

In d = 1 the region is a union of intervals: its ends are found by root-finding on
log p_t - log rho (brentq, between the breaks of a uniform partition of the support box
widened by 12 sqrt t) and each interval is integrated by composite Gauss-Legendre (10
nodes per piece, pieces far below sqrt t). In d >= 2 the score MSE's own importance
sampler (metrics.score_error, the defensive mixture that reaches the rare region) measures
the oracle estimate s_t 1{p_t > rho}: its whole MSE is Z_n(t). The draws are the same for
every n (common random numbers), so a slope in n carries little of their noise.

What it leaves out: p̂_t fluctuates about p_t. Near the region's edge p̂_t is made of a few
kernels (n rho_n t^(d/2) = c_rho points' worth), so Z_n is a prediction, not an identity;
`benchmarks/zero_region.py` measures how close it comes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize

__all__ = ["zero_region_mse"]

_PIECES = 4000
_NODES = 10
_GL = np.polynomial.legendre.leggauss(_NODES)


class _Oracle:
    """The population truncation s_t 1{p_t > rho(t)}: its score MSE is Z(t)."""

    def __init__(self, p0, log_rho: Callable[[float], float]) -> None:
        self.p0, self.log_rho = p0, log_rho

    def score(self, x: np.ndarray, t: float) -> np.ndarray:
        lp = self.p0.logpdf_t(x, t)
        s = np.array(self.p0.score_t(x, t), dtype=np.float64)
        s[~(lp > self.log_rho(t))] = 0.0
        return s


def _quadrature_1d(p0, t: float, log_rho: float) -> tuple[float, float]:
    lo, hi = p0.support_box()
    r = 12.0 * math.sqrt(t)
    br = np.linspace(float(lo[0]) - r, float(hi[0]) + r, _PIECES + 1)

    def g(x: float) -> float:
        return float(p0.logpdf_t(np.array([[x]]), t)[0]) - log_rho

    gb = p0.logpdf_t(br[:, None], t) - log_rho
    flips = np.flatnonzero(np.sign(gb[:-1]) != np.sign(gb[1:]))
    roots = [optimize.brentq(g, br[i], br[i + 1], xtol=1e-14, rtol=1e-14) for i in flips]
    edges = np.unique(np.concatenate([br, roots]))
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    inside = p0.logpdf_t(mid[:, None], t) <= log_rho
    mid, half = mid[inside], half[inside]
    if mid.size == 0:
        return 0.0, 0.0
    x = (mid[:, None] + half[:, None] * _GL[0][None, :]).reshape(-1, 1)
    w = (half[:, None] * _GL[1][None, :]).ravel()
    pt = np.exp(p0.logpdf_t(x, t))
    s2 = np.asarray(p0.score_t(x, t))[:, 0] ** 2
    return float((w * pt * s2).sum()), float((w * pt).sum())


def zero_region_mse(p0, ts: Sequence[float], log_rho: Callable[[float], float], *,
                    method: str = "auto", n_mc: int = 20_000,
                    key: Sequence[object] = ()) -> dict[str, np.ndarray]:
    """Z(t) = E_{p_t} |s_t|^2 1{p_t <= rho(t)} and M(t) = P_{p_t}(p_t <= rho(t)) at each t.

    log_rho: t -> log rho(t) (e.g. estimators.log_zero_threshold at fixed n). method
    "quadrature" (d = 1 only), "importance" (any d: n_mc draws per t from the stream
    keyed (*key, "zero-region")) or "auto" (quadrature in d = 1). Returns arrays mse, mass
    and se (the importance sampler's standard error of mse; 0 for quadrature).
    Cost: ~1e5 density evaluations per t by quadrature, n_mc times 7 by importance sampling.
    """
    from ..metrics.score_error import score_mse

    ts = np.atleast_1d(np.asarray(ts, dtype=np.float64))
    if ts.ndim != 1 or not np.all(np.isfinite(ts) & (ts > 0)):
        raise ValueError("ts must be a 1-D sequence of finite times > 0")
    if method not in ("auto", "quadrature", "importance"):
        raise ValueError(f"method must be 'auto', 'quadrature' or 'importance', got {method!r}")
    if method == "quadrature" and p0.d != 1:
        raise ValueError(f"quadrature needs d = 1, got d = {p0.d}")
    if method == "quadrature" or (method == "auto" and p0.d == 1):
        vals = [_quadrature_1d(p0, float(t), float(log_rho(float(t)))) for t in ts]
        return {"mse": np.array([v[0] for v in vals]), "mass": np.array([v[1] for v in vals]),
                "se": np.zeros(ts.size)}
    mse, se, zero, mass = score_mse(_Oracle(p0, log_rho), p0, ts, n_mc=n_mc,
                                    key=(*key, "zero-region"), parts=True)
    return {"mse": zero, "mass": mass, "se": se}
