"""1-D Gaussian sums from per-bin Taylor moments: all n points, O(B K) per query.

For sorted 1-D data cut into B bins of width <= h with centres c_b, a point X_i = c_b + v_i
(|v_i| <= h/2) weighs, for a query x = c_b + y,

    w_i = exp(-(y - v_i)^2 / (2t)) = exp(-y^2 / (2t)) * exp(z v_i) * a_i,
    z = y / t,  a_i = exp(-v_i^2 / (2t)),

so a bin's sums are  e^{-y^2/2t} P_b(z)  and  e^{-y^2/2t} (Q_b(z) - y P_b(z))  (weights and
weights times X_i - x) with P_b(z) = sum_k z^k M_{b,k} / k!, Q_b(z) = sum_k z^k M_{b,k+1} / k!
and the moments M_{b,k} = sum_{i in b} a_i v_i^k, computed once per call in O(n K).

Accuracy. With h = 2 rho t / D, D the query's largest distance to the data's ends, every
|z v_i| <= rho, and cutting e^{z v} after K terms errs by at most rho^(K+1) e^rho / (K+1)!
while e^{z v} >= e^-rho: a relative error of each bin's P_b (and of Q_b against
sum a_i |v_i| e^{z v_i}) of at most E = rho^(K+1) e^(2 rho) / (K+1)!. K is chosen so that
E <= 2^-56, and the alternating series loses at most a factor e^(2 rho) to cancellation: with
rho = 1 the result is the direct sum's to a few units of float64 rounding, without dropping
any point (the cutoff backend drops up to rtol/4). a_i >= e^(-rho/2), so nothing underflows.

Why: a query far from data of small spread (the law's outermost cells at t ~ 1-100, where
the grid score cannot certify a relative error and every training point is inside the
cutoff's ball) would otherwise cost an O(n) sum; here it costs B = span D / (2 rho t) bins
of K + 2 terms, e.g. 31 bins for D = 31 sqrt(t), span 2, t = 1 (`worth_it` picks the
queries for which that is cheaper).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["MAX_BINS", "RHO", "TERMS", "bin_moment_sums", "bins_needed", "worth_it"]

#: the largest |z v| a bin allows (its width is 2 RHO t / D)
RHO = 1.0


def _terms(rho: float, target: float = 2.0 ** -56) -> int:
    """Smallest K with rho^(K+1) e^(2 rho) / (K+1)! <= target."""
    k, bound = 0, rho * math.exp(2.0 * rho)
    while bound > target:
        k += 1
        bound *= rho / (k + 1)
    return k


#: bins beyond which a call is refused (the direct sum is then the cheaper anyway)
MAX_BINS = 1 << 24
#: Taylor terms kept (K + 1 of them: powers 0..K)
TERMS = _terms(RHO) + 1
#: a query's direct sum costs about this many of a bin's Taylor terms per training point
#: (an exp and two multiply-adds against one multiply-add; a margin against misjudging)
_DIRECT_PER_POINT = 4.0


def bins_needed(span: float, dist: np.ndarray, t: float) -> np.ndarray:
    """Bins (float: inf for an extreme query) over data of extent `span` for queries at
    largest distance `dist` from it."""
    with np.errstate(over="ignore"):
        return np.maximum(1.0, np.ceil(span * np.asarray(dist, dtype=np.float64)
                                       / (2.0 * RHO * t)))


def worth_it(kept: np.ndarray, dist: np.ndarray, span: float, t: float, n: int) -> np.ndarray:
    """(m,) bool: queries whose direct sum over `kept` points costs more than the Taylor
    sums over the bins of the call's farthest chosen query (`dist`: each query's largest
    distance to the data's ends), with the call's moments (n (K + 2) terms) paid for."""
    direct = _DIRECT_PER_POINT * np.asarray(kept, dtype=np.float64)
    bins = bins_needed(span, dist, t)
    chosen = direct > bins * (TERMS + 2.0)
    for _ in range(2):  # every chosen query pays the bins of the farthest one
        if not chosen.any():
            break
        chosen &= direct > bins[chosen].max() * (TERMS + 2.0)
    if not chosen.any() or (direct[chosen] - bins[chosen].max() * (TERMS + 2.0)).sum() \
            <= n * (TERMS + 2.0):
        chosen[:] = False
    return chosen


@njit(cache=True)
def _moments(xs, edges, t, K):  # pragma: no cover - numba
    """Each bin's Taylor coefficients of P and Q: M[b, k] / k! and M[b, k + 1] / k!, k <= K,
    with M[b, k] = sum a_i v_i^k over the sorted points in bin b; and the bins' centres."""
    B = edges.shape[0] - 1
    M = np.zeros((B, K + 2))
    centres = 0.5 * (edges[:-1] + edges[1:])
    inv2t = 0.5 / t
    b = 0
    for i in range(xs.shape[0]):
        while b < B - 1 and xs[i] >= edges[b + 1]:
            b += 1
        v = xs[i] - centres[b]
        p = math.exp(-v * v * inv2t)
        for k in range(K + 2):
            M[b, k] += p
            p *= v
    P = np.empty((B, K + 1))
    Q = np.empty((B, K + 1))
    f = 1.0
    for k in range(K + 1):
        if k > 0:
            f *= k
        for b in range(B):
            P[b, k] = M[b, k] / f
            Q[b, k] = M[b, k + 1] / f
    return P, Q, centres


@njit(parallel=True, cache=True)
def _query_sums(xq, P, Q, centres, t, logs, mean):  # pragma: no cover - numba
    """log sum w and x + sum w (X - x) / sum w for each query, from the bins' coefficients."""
    B, K1 = P.shape
    inv2t = 0.5 / t
    for q in prange(xq.shape[0]):
        x = xq[q]
        gmax = -np.inf
        for b in range(B):
            if P[b, 0] > 0.0:
                y = x - centres[b]
                gmax = max(gmax, -y * y * inv2t)
        s = 0.0
        num = 0.0
        for b in range(B):
            if P[b, 0] == 0.0:  # an empty bin
                continue
            y = x - centres[b]
            g = -y * y * inv2t - gmax
            if g < -745.2:  # exp is exactly 0 in float64
                continue
            z = y / t
            p = P[b, K1 - 1]
            r = Q[b, K1 - 1]
            for k in range(K1 - 2, -1, -1):  # Horner, highest power first
                p = p * z + P[b, k]
                r = r * z + Q[b, k]
            e = math.exp(g)
            s += e * p
            num += e * (r - y * p)
        logs[q] = math.log(s) + gmax
        mean[q] = x + num / s


def bin_moment_sums(xs: np.ndarray, xq: np.ndarray, t: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(log sum_i w_i, mean) over all sorted points `xs` for 1-D queries `xq` at time t.

    w_i = exp(-(x - X_i)^2 / (2t)); the caller adds its log-normalisation. Exact to a few
    units of float64 rounding (module docstring) for any queries; its cost, O(n K + m B K)
    with B from the farthest query, pays where the direct sum holds most of n points.
    """
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    xq = np.ascontiguousarray(xq, dtype=np.float64)
    lo, hi = float(xs[0]), float(xs[-1])
    span = hi - lo
    dist = float(np.max(np.maximum(np.abs(xq - lo), np.abs(xq - hi)))) if xq.size else 0.0
    B = float(bins_needed(span, np.array([dist]), t)[0]) if span > 0 else 1.0
    if not B <= MAX_BINS:
        raise ValueError(f"{B:.3g} bins needed (queries {dist:.3g} from data of extent "
                         f"{span:.3g} at t = {t:.3g}); at most {MAX_BINS}: sum directly")
    B = int(B)
    edges = np.linspace(lo, hi, B + 1) if span > 0 else np.array([lo, hi])
    P, Q, centres = _moments(xs, edges, float(t), TERMS - 1)
    logs = np.empty(xq.shape[0])
    mean = np.empty(xq.shape[0])
    _query_sums(xq, P, Q, centres, float(t), logs, mean)
    return logs, mean
