"""Binned backend (d <= 2): Lagrange binning on a fine grid, FFT convolution, interpolation.

Each training point is spread over the q^d grid nodes around it with the weights of
q-point Lagrange interpolation (q = 8), so every polynomial of degree < q in each
coordinate is integrated exactly; the grid values G0 = sum_k c_k exp(-|g_k - g|^2/2t) and
G1 = sum_k c_k (g_k - g) exp(...) come from one FFT convolution each (the Gaussian and
its first moment are separable, so the kernel's transform is an outer product of 1D
transforms), and are interpolated at the queries with the same q-point rule.

Accuracy. The error of q-point Lagrange interpolation of f(y) = exp(-(x - y)^2/(2t)) is
at most C_q/q! h^q |f^(q)| = C_q/q! (h^2/t)^(q/2) |He_q(z)| e^(-z^2/2), z = (x - y)/sqrt t
(C_q = max over the middle cell of prod |s - j|). Where p̂_t is above the truncation
level rho_n(t) = 1/(n t^(d/2)) the total weight is >= (2 pi)^(d/2) >= 1; the points
beyond |z| = Z, Z^2 = 2 log n, weigh <= 1/n each, which outruns the polynomial growth of
their error, so they add at most the error at Z. The relative error is thus at most
2 (2 d) L_q^(d-1) C_q/q! (h^2/t)^(q/2) (Z^2 + q)^(q/2) e^(q Z h / (2 sqrt t)) (binning and
interpolation, L_q the Lebesgue constant); `spacing_ratio` picks h/sqrt(t) so that this
is <= rtol/4. The FFT adds an absolute error ~ 1e-16 n log(size) relative to the
largest grid value, which is below rtol relative at the truncation level for the n this
backend accepts (`binned_ok`).

Queries outside the grid, or whose binned p̂_t is below rho_n(t)/2 (where the relative
bound no longer holds), are recomputed by the `cutoff` backend (which sums queries whose
ball holds much of the data, e.g. those far off the grid, with the dense kernel): every
result is finite and within tolerance wherever the tolerance applies. Time
O(n q^d + G log G + m q^d) with G the grid size; memory O(G) (the grid is refused above
MAX_GRID nodes).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
from numba import njit, prange

from ..cache import ByteLRU
from .base import as_points, overflow_safe, register_backend
from .cutoff import Cutoff

__all__ = ["MAX_GRID", "Binned", "binned_grid_shape", "binned_ok", "spacing_ratio"]

#: the grids kept per backend object (one per recent t) take at most this many bytes
CACHE_BYTES = 256 << 20
#: interpolation points per axis (even)
Q = 8
#: largest padded FFT grid (nodes) the backend will build: 2^23 complex is 128 MB.
MAX_GRID = 1 << 23
#: queries at least this many standard deviations sqrt(t) outside the data's box are
#: below the truncation level whatever n is up to 1e12; the grid stops there.
_LEBESGUE_Q = 3.0


def _c_q(q: int) -> float:
    """max over s in [0, 1] of prod_{j=-(q/2-1)}^{q/2} |s - j| (at s = 1/2)."""
    s = 0.5
    return float(np.prod([abs(s - j) for j in range(-(q // 2 - 1), q // 2 + 1)]))


def spacing_ratio(n: int, d: int, rtol: float, q: int = Q) -> float:
    """h / sqrt(t) that meets `rtol` for n points in d dimensions (see module docstring)."""
    # Points beyond |z| = Z, Z^2 = 2 log n, add at most the error at Z (their weight
    # e^(-z^2/2) <= 1/n falls faster than the polynomial error factor grows), hence the 2.
    Z2 = 2.0 * math.log(max(n, 3))
    const = 2.0 * d * _LEBESGUE_Q ** (d - 1) * _c_q(q) / math.factorial(q) * (Z2 + q) ** (q / 2)
    c = (rtol / (8.0 * const * math.e)) ** (1.0 / q)
    # the stencil shifts z by at most q c / 2: keep e^(z q c / 2) <= e (q Z c <= 2)
    return min(c, 2.0 / (q * math.sqrt(Z2)))


def margin_sds(n: int, d: int) -> float:
    """Grid margin around the data, in units of sqrt(t): beyond it p̂_t < rho_n(t) / 1e3."""
    return math.sqrt(2.0 * max(math.log(1e3 * n / (2.0 * math.pi) ** (d / 2)), 1.0))


def binned_grid_shape(n: int, d: int, t: float, rtol: float, span) -> tuple[int, ...]:
    """Padded FFT grid shape for data of extent `span` (per axis) at time t."""
    h = spacing_ratio(n, d, rtol) * math.sqrt(t)
    M = margin_sds(n, d) * math.sqrt(t)
    span = np.broadcast_to(np.asarray(span, dtype=np.float64), (d,))
    nodes = [int(math.ceil((s + 2 * M) / h)) + Q + 2 for s in span]
    return tuple(sfft.next_fast_len(2 * k, real=True) for k in nodes)


def binned_ok(n: int, d: int, t: float, rtol: float, span) -> bool:
    """Whether `binned` can meet rtol here: d <= 2, grid small enough, FFT noise below rtol."""
    if d > 2 or not (math.isfinite(t) and t > 0):
        return False
    if 1e-16 * n * 64.0 * 100.0 > rtol:  # FFT round-off at the truncation level, with margin
        return False
    try:
        shape = binned_grid_shape(n, d, t, rtol, span)
    except (OverflowError, ValueError):
        return False
    return math.prod(shape) <= MAX_GRID


@njit(cache=True)
def _lagrange(s, q, out):  # pragma: no cover - numba
    """Weights of q-point Lagrange interpolation at nodes -(q/2-1)..q/2, position s."""
    for a in range(q):
        xa = a - (q // 2 - 1)
        w = 1.0
        for b in range(q):
            if b != a:
                xb = b - (q // 2 - 1)
                w *= (s - xb) / (xa - xb)
        out[a] = w


@njit(inline="always", cache=True)
def _stencil(x, lo, h, q, w):  # pragma: no cover - numba
    """Fill w with the q Lagrange weights of the point x on the lattice lo + i h; return the
    index of the stencil's first node."""
    u = (x - lo) / h
    k = int(math.floor(u))
    _lagrange(u - k, q, w)
    return k - (q // 2 - 1)


@njit(cache=True)
def _bin1(X, lo, h, n0, q):  # pragma: no cover - numba
    c = np.zeros(n0)
    w = np.empty(q)
    for i in range(X.shape[0]):
        k0 = _stencil(X[i, 0], lo, h, q, w)
        for a in range(q):
            c[k0 + a] += w[a]
    return c


@njit(cache=True)
def _bin2(X, lo0, lo1, h, n0, n1, q):  # pragma: no cover - numba
    c = np.zeros((n0, n1))
    w0 = np.empty(q)
    w1 = np.empty(q)
    for i in range(X.shape[0]):
        k0 = _stencil(X[i, 0], lo0, h, q, w0)
        j0 = _stencil(X[i, 1], lo1, h, q, w1)
        for a in range(q):
            for b in range(q):
                c[k0 + a, j0 + b] += w0[a] * w1[b]
    return c


@njit(parallel=True, cache=True)
def _interp1(xq, lo, h, G, q, out):  # pragma: no cover - numba
    """out[i, r] = q-point Lagrange interpolation of G[r] at xq[i]."""
    nr = G.shape[0]
    for i in prange(xq.shape[0]):
        w = np.empty(q)
        k0 = _stencil(xq[i], lo, h, q, w)
        for r in range(nr):
            acc = 0.0
            for a in range(q):
                acc += w[a] * G[r, k0 + a]
            out[i, r] = acc


@njit(parallel=True, cache=True)
def _interp2(xq, lo0, lo1, h, G, q, out):  # pragma: no cover - numba
    nr = G.shape[0]
    for i in prange(xq.shape[0]):
        w0 = np.empty(q)
        w1 = np.empty(q)
        k0 = _stencil(xq[i, 0], lo0, h, q, w0)
        j0 = _stencil(xq[i, 1], lo1, h, q, w1)
        for r in range(nr):
            acc = 0.0
            for a in range(q):
                row = 0.0
                for b in range(q):
                    row += w1[b] * G[r, k0 + a, j0 + b]
                acc += w0[a] * row
            out[i, r] = acc


def _kernel_1d(L: int, h: float, t: float, moment: bool) -> np.ndarray:
    """Circular layout of exp(-u^2/2t) (or u exp(...)) at offsets u = i h, |i| < L/2."""
    i = np.arange(L)
    i = np.where(i <= L // 2, i, i - L).astype(np.float64)
    u = i * h
    k = np.exp(-(u * u) / (2.0 * t))
    return u * k if moment else k


@register_backend
class Binned:
    """Grid-binned FFT evaluation for d <= 2; falls back to `cutoff` where it cannot vouch."""

    name = "binned"
    #: seconds per training point and stencil node, per grid node and log2(size) and
    #: transform, per query and stencil node and output
    COST_BIN, COST_FFT, COST_QUERY = 3e-9, 4e-9, 3e-9

    def __init__(self, train: np.ndarray, rtol: float = 1e-6) -> None:
        self.train = as_points(train, name="train")
        n, d = self.train.shape
        if d > 2:
            raise ValueError(f"the binned backend handles d <= 2, got d = {d}; "
                             "use 'cutoff', 'dense' or 'numpy'")
        self.rtol = float(rtol)
        self.lo = self.train.min(axis=0)
        self.hi = self.train.max(axis=0)
        self.span = self.hi - self.lo
        self._fallback: Cutoff | None = None
        # grids by t: a reverse trajectory visits the same times for every chunk of
        # particles, so each (binning + FFT) is done once per t, not per call
        self._grids = ByteLRU(CACHE_BYTES)

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float | None:
        """O(n Q^d + G log G + m Q^d) for a grid of G nodes; None where `binned_ok` fails."""
        if not binned_ok(n, d, t, rtol, span):
            return None
        G = math.prod(binned_grid_shape(n, d, t, rtol, span))
        return (Binned.COST_BIN * n * Q ** d + Binned.COST_FFT * G * math.log2(G) * (d + 2)
                + Binned.COST_QUERY * m * Q ** d * (d + 1))

    def fallback(self) -> Cutoff:
        if self._fallback is None:
            self._fallback = Cutoff(self.train, self.rtol)
        return self._fallback

    def _grid(self, t: float) -> tuple:
        """(h, origin, nodes, G) at time t, from the cache when this t was seen before."""
        return self._grids.get_or_build(t, lambda: self._build_grid(t), lambda g: g[3].nbytes)

    def _build_grid(self, t: float) -> tuple:
        """Bin the training points and convolve: grid values G (d + 1, *nodes) at time t."""
        X = self.train
        n, d = X.shape
        h = spacing_ratio(n, d, self.rtol) * math.sqrt(t)
        M = margin_sds(n, d) * math.sqrt(t)
        shape = binned_grid_shape(n, d, t, self.rtol, self.span)
        nodes = [int(math.ceil((s + 2 * M) / h)) + Q + 2 for s in self.span]
        origin = self.lo - M - (Q // 2) * h  # node 0
        if d == 1:
            c = _bin1(X, origin[0], h, nodes[0], Q)
        else:
            c = _bin2(X, origin[0], origin[1], h, nodes[0], nodes[1], Q)
        C = sfft.rfftn(c, s=shape, workers=-1)
        K0 = [sfft.fft(_kernel_1d(L, h, t, False)) for L in shape]
        K1 = [sfft.fft(_kernel_1d(L, h, t, True)) for L in shape]
        half = shape[-1] // 2 + 1
        K0[-1] = K0[-1][:half]
        K1[-1] = K1[-1][:half]
        grids = []
        for r in range(d + 1):  # r = 0: G0; r = 1 + j: moment along axis j
            fac = [K1[a] if r == a + 1 else K0[a] for a in range(d)]
            kern = fac[0] if d == 1 else np.multiply.outer(fac[0], fac[1])
            g = sfft.irfftn(C * kern, s=shape, workers=-1)
            sl = tuple(slice(0, k) for k in nodes)
            # convolution gives sum c_k K(g - g_k); the moment wants (g_k - g): flip sign
            grids.append(g[sl] if r == 0 else -g[sl])
        return h, origin, nodes, np.stack(grids)

    @overflow_safe
    def sums(self, queries: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """logp (m,) and mean (m, d); see engine.base. ValueError if the grid is too large."""
        X = self.train
        n, d = X.shape
        x = as_points(queries, d=d, name="queries")
        t = float(t)
        if not binned_ok(n, d, t, self.rtol, self.span):
            raise ValueError(f"binned backend cannot meet rtol={self.rtol} at n={n}, d={d}, "
                             f"t={t} within {MAX_GRID} grid nodes; use 'cutoff' or 'dense'")
        h, origin, nodes, G = self._grid(t)
        # queries whose stencil lies inside the grid
        u = (x - origin) / h
        inside = np.all((u >= Q // 2) & (u <= np.asarray(nodes) - Q // 2 - 1), axis=1)
        vals = np.zeros((x.shape[0], d + 1))
        xin = np.ascontiguousarray(x[inside])
        out = np.empty((xin.shape[0], d + 1))
        if d == 1:
            _interp1(np.ascontiguousarray(xin[:, 0]), origin[0], h, G, Q, out)
        else:
            _interp2(xin, origin[0], origin[1], h, G, Q, out)
        vals[inside] = out
        # sum of weights >= (2 pi)^(d/2) / 2  <=>  p̂_t >= rho_n(t) / 2
        good = inside & (vals[:, 0] >= 0.5 * (2.0 * math.pi) ** (d / 2))
        logp = np.empty(x.shape[0])
        mean = np.empty_like(x)
        S = vals[good, 0]
        logp[good] = np.log(S / n) - 0.5 * d * math.log(2.0 * math.pi * t)
        mean[good] = x[good] + vals[good, 1:] / S[:, None]
        bad = ~good
        if bad.any():
            lp, mu = self.fallback().sums(x[bad], t)
            logp[bad] = lp
            mean[bad] = mu
        return logp, mean
