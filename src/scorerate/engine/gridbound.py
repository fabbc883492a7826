"""Error bound of Lagrange binning of Gaussian sums, per query: which cells a grid can vouch for.

Binning a point X onto the q lattice nodes g_a around it (spacing h = r sqrt t) with the
weights w_a of q-point Lagrange interpolation replaces f(X) by sum_a w_a f(g_a). For
f(y) = exp(-(x - y)^2 / 2t) and z = (X - x)/sqrt t the error is at most

    C_q / q! r^q max|He_q| e^(z^2/2 - zeta^2/2) f(X) <= eps(z) f(X),
    eps(z) = C_q / q! r^q sqrt(P_2q(|z| + q r / 2) ((|z| + q r / 2)^2 + 1)) e^(|z| q r / 2)

(C_q = max over the middle cell of prod |s - j|; |He_k(z)| <= E (z^2 + Y^2)^(k/2) = P_k(z)
since He_k(z) = E (z + iY)^k; the odd moment k = q + 1, needed for the gradient, by
Cauchy-Schwarz). In d dimensions the weights are products, so each point's binned value
is f(X) prod_j (1 + delta_j), |delta_j| <= eps(z_j), and the moment on axis j has
absolute error sqrt(t) eps(z_j) f(X) prod_(k != j)(1 + eps(z_k)).

Per query, split the points at |z| = Z. Those beyond weigh <= e^(-Z^2/2) each and their
binned values at most Lambda_q^d e^(-Z^2/2 + a Z), a = sqrt(d) q r / 2 (Lebesgue
constant, stencil spread); n of them, moments included, stay below rtol/8 of the sum S
once Z^2/2 - a Z - log(Z + 1) >= log(8 n (1 + Lambda^d) / (rtol S_lo)), S_lo a rigorous
lower bound of S. The points within Z are relatively exact to (1 + eps(Z))^d - 1. So a
query is certified when that is <= rtol / (4 sqrt d): p̂ within rtol, and the mean within
rtol max(|mean - x|, sqrt t) (the engine's tolerance). The smaller S_lo, the larger Z:
`log_s_min` is the smallest log S_lo a lattice of ratio r certifies, and `spacing_ratio`
picks r so that every query with S_lo >= (2 pi)^(d/2) e^-K is certified.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["eps_binning", "lebesgue", "log_s_min", "spacing_ratio"]


@functools.cache
def _c_q(q: int) -> float:
    """max over s in [0, 1] of prod_{j=-(q/2-1)}^{q/2} |s - j| (sampled, then x 1.001)."""
    s = np.linspace(0.0, 1.0, 4001)[:, None]
    nodes = np.arange(-(q // 2 - 1), q // 2 + 1)[None, :]
    return 1.001 * float(np.max(np.abs(np.prod(s - nodes, axis=1))))


@functools.cache
def lebesgue(q: int) -> float:
    """Lebesgue constant of q-point Lagrange interpolation on the middle cell (x 1.01)."""
    s = np.linspace(0.0, 1.0, 4001)
    nodes = np.arange(-(q // 2 - 1), q // 2 + 1).astype(float)
    tot = np.zeros_like(s)
    for a in nodes:
        w = np.ones_like(s)
        for b in nodes:
            if b != a:
                w *= (s - b) / (a - b)
        tot += np.abs(w)
    return 1.01 * float(tot.max())


def _p_even(k: int, z: float) -> float:
    """E (z^2 + Y^2)^(k/2) for even k, Y ~ N(0, 1)."""
    m = k // 2
    return float(sum(math.comb(m, i) * z ** (2 * (m - i)) * math.prod(range(1, 2 * i, 2))
                     for i in range(m + 1)))


def eps_binning(q: int, r: float, z: float) -> float:
    """Relative error bound of one point's binned kernel (or moment / sqrt t) at |z| <= z."""
    u = z + q * r / 2.0
    bound = math.sqrt(_p_even(2 * q, u) * (u * u + 1.0))
    return _c_q(q) / math.factorial(q) * r ** q * bound * math.exp(z * q * r / 2.0)


def _z_max(q: int, r: float, d: int, rtol: float) -> float:
    """Largest Z with (1 + eps(Z))^d - 1 <= rtol / (4 sqrt d) (bisection)."""
    tol = rtol / (4.0 * math.sqrt(d))

    def ok(z: float) -> bool:
        return (1.0 + eps_binning(q, r, z)) ** d - 1.0 <= tol

    lo, hi = 0.0, 1.0
    if not ok(lo):
        return -1.0
    while ok(hi) and hi < 1e3:
        lo, hi = hi, 2.0 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@functools.lru_cache(maxsize=4096)
def log_s_min(n: int, d: int, q: int, r: float, rtol: float) -> float:
    """Smallest log S_lo (unnormalised sum's lower bound) that a lattice of ratio r certifies.

    +inf when no query can be certified (r too large). Cached: a law's step asks it for the
    same (lattice, t) in every one of its score calls.
    """
    Z = _z_max(q, r, d, rtol)
    a = math.sqrt(d) * q * r / 2.0
    if Z <= a:
        return math.inf
    lam = lebesgue(q) ** d
    return math.log(8.0 * n * (1.0 + lam) / rtol) - (0.5 * Z * Z - a * Z - math.log(Z + 1.0))


def spacing_ratio(n: int, d: int, rtol: float, q: int, K: float) -> float:
    """Largest r (h / sqrt t) certifying every query with S_lo >= (2 pi)^(d/2) e^-K."""
    target = 0.5 * d * math.log(2.0 * math.pi) - K
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if log_s_min(n, d, q, mid, rtol) <= target else (lo, mid)
    return lo
