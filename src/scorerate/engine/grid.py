"""p̂_t and its softmax mean on a rectilinear tensor grid at a cost that does not grow with n.

`GridScorer(train).sums(axes, t)` returns the engine's (logp, mean) (engine/base.py) at
every cell centre of the tensor grid axes[0] x ... x axes[d-1], d <= 3. The training
points are binned once per lattice onto nodes of spacing h <= r sqrt t with q-point
Lagrange weights (q = 16; exact for polynomials of degree < q per axis); the kernel is
separable, so each output is the count tensor contracted with one 1-D matrix per axis:

    S0 = C x_1 K_1 ... x_d K_d,   K_j[a, k] = exp(-(x_a - g_k)^2 / 2t + o_a),
    S1_j: the same with (g_k - x_a) K_j on axis j (the moment, hence the mean),

o_a the smallest exponent of query coordinate a on its axis (a per-axis tilt: nothing
underflows however far the cell). Cost O(n q^d) per lattice (kept while t stays on the
same lattice level: spacings are 2^(k/4)) plus O(G L^d + ...) per call for G cells and L
nodes per axis: independent of n.

Which cells the grid vouches for (gridbound.py): a nonnegative histogram of the points on
bins of width 2h gives, with per-axis max / min of the 1-D kernel over each bin, rigorous
separable bounds S_lo <= S <= S_hi of the unnormalised sum. A cell with log S_lo >=
log_s_min(...) is certified within the engine's tolerance ("grid"). With `log_cut` (a
level of log p̂ below which the estimator's score is 0, or below its tolerance: a number or
one per cell), a cell with S_hi at or below it is decided without any sum ("bound": logp
is set to the bound, mean to x, so the estimator's score there is exactly 0). Before any
matrix is built, whole slabs of coordinates whose distance to the data's range alone puts
p̂ below the cut are set aside the same way: a law's cells left at rest far out by a
truncated score cost nothing (benchmarks/README.md, "The far-slab bound").
Every other cell goes to `exact(x, t)` ("exact", e.g. the engine's tail sums: around a
cell far from the data the cutoff backend's ball holds only the data's near edge). The method
counts are returned. The contractions are BLAS products whose summation order does not
depend on how many cells are asked for; the whole grid is one call, so the result does
not depend on any chunking of the sampler. A call whose matrices would pass CHUNK_BYTES
runs in blocks of first-axis rows (the same values), and each certified row's kernel
stops at its certificate's reach (`_windows`): ~10 sds of the ~40 the lattice spans in
the bulk (benchmarks/README.md, "Where a pilot job's time goes"). On an axis wider than
the kernel's ~78 sds of nonzero float64 values (a heavy tail, a small t) the bounds'
matrices hold only each row's band of nonzero entries (`_bin_band`): the same bits as the
full matrices, at a cost that stops growing with the data's range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from .base import TrainShape, as_points
from .gridbound import lebesgue, log_s_min, spacing_ratio
from .normal_cells import KERNEL_BAND, normal_cell_probs

__all__ = ["GridScorer", "GridSums"]

ExactFn = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]

#: Lagrange points per axis (even)
Q = 16
#: the certificate covers every cell whose S_lo is at least e^-K of the truncation level
K_TAIL = 4.0
#: largest lattice (nodes) built; above it every cell goes to `exact`
MAX_NODES = 1 << 26
#: the per-axis (cells x lattice nodes) matrices of one call may take at most this many
#: bytes; beyond it (a law on a very fine grid: tiny t0) every cell is computed exactly,
#: as without a grid score, instead of exhausting memory
MAX_MATRIX_BYTES = 1 << 30
#: a call whose matrices would take more is computed in blocks of first-axis coordinates
#: (the same values: see GridScorer._sums_by_rows); smaller blocks also stay in cache
CHUNK_BYTES = 1 << 22
#: a block's budget counted in the nodes its rows' matrices hold (`_held_nodes`)
BLOCK_BYTES = 1 << 25


def _matrix_bytes(cells: tuple[int, ...], nodes: tuple[int, ...]) -> int:
    """Bytes of the ~12 float64 (cells x nodes) arrays `sums` builds per axis."""
    return 12 * 8 * sum(int(g) * int(n) for g, n in zip(cells, nodes, strict=True))


def _windows(kern, box, log_lo, n: int, q: int, h: float, t: float, rtol: float,
             lsm: float) -> list[tuple[slice, np.ndarray]]:
    """Per axis, the reach of each row of the box (the lattice nodes its certified cells
    need: |x - g| <= reach) and the slice of nodes (even start) that covers every row's.

    gridbound's certificate splits each query's points at |z| = Z, Z from its S_lo: those
    beyond carry, binned or not, at most rtol / 8 of S. A node farther than Z + q r / 2
    from the query serves only points beyond Z (a point's stencil spans q r / 2), so
    dropping it keeps the same bound; Z <= (a + 1) + sqrt((a + 1)^2 + 2 c) solves
    Z^2 / 2 - a Z - log(Z + 1) >= c = log(8 n (1 + Lambda^d) / rtol) - log S_lo. On the
    first axis a row's Z is its cells' largest (a block of rows holds whole rows); on the
    others it is the one of log S_lo = lsm, so that no row's nodes depend on which other
    rows share its call (the values do not depend on blocks or chunks). Cost: the kernel
    over ~2 (Z + 1) / r nodes per query instead of the whole lattice."""
    d = len(kern)
    r = h / math.sqrt(t)
    a = math.sqrt(d) * q * r / 2.0
    top = math.log(8.0 * n * (1.0 + lebesgue(q) ** d) / rtol)

    def reach_of(lo: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            Z = (a + 1.0) + np.sqrt((a + 1.0) ** 2 + 2.0 * np.maximum(top - lo, 0.0))
        return np.where(np.isfinite(lo), (Z + q * r / 2.0 + 1.0) * math.sqrt(t), -np.inf)

    out = []
    for j, (xs, _o, g, _even) in enumerate(kern):
        x = xs[box[j]]
        if j == 0:
            per_row = reach_of(log_lo.min(axis=tuple(range(1, d))) if d > 1 else log_lo)
        else:
            per_row = np.where(np.isfinite(log_lo).any(
                axis=tuple(i for i in range(d) if i != j)), float(reach_of(np.array(lsm))),
                -np.inf)
        L = g.size
        kept = np.isfinite(per_row)
        if not kept.any():
            out.append((slice(0, 0), per_row))
            continue
        lo = float(np.min((x - per_row)[kept]))
        hi = float(np.max((x + per_row)[kept]))
        k0 = max(0, math.floor((lo - g[0]) / h) - 1)
        k0 -= k0 % 2
        k1 = min(L, math.ceil((hi - g[0]) / h) + 2)
        out.append((slice(k0, max(k1, k0)), per_row))
    return out


def _held_nodes(nodes: tuple[int, ...], h: float, t: float, q: int) -> tuple[int, ...]:
    """Per axis, the most lattice nodes one coordinate's matrices hold: the whole axis, or on
    a wide one the band where the kernel is not an exact zero (`_bin_band`: at most
    2 sqrt(-2 t ZERO_EXPONENT) wide, however far the coordinate; the certified windows are
    narrower) and its margins. What a block of rows costs, where the full axis would
    overstate it ~10x on a wide axis and cut the call into blocks of one row."""
    band = 2 * math.ceil(math.sqrt(-2.0 * t * ZERO_EXPONENT) / h) + 2 * q + 8
    return tuple(min(int(L), band) for L in nodes)


def _rows_within(cells: tuple[int, ...], nodes: tuple[int, ...], budget: int) -> int:
    """First-axis coordinates per block that keep `_matrix_bytes` within budget (0: none)."""
    rest = _matrix_bytes((0, *cells[1:]), nodes)
    return max(0, (budget - rest) // (12 * 8 * int(nodes[0])))


#: lattice nodes worth spending per dimension: where the lattice that certifies the
#: threshold level is smaller, a finer one (down to R_FLOOR) extends the certified tail
BUDGET = {1: 1 << 16, 2: 1 << 20, 3: 1 << 21}
R_FLOOR = 0.02


@dataclass
class GridSums:
    """(logp, mean) on a tensor grid and how each cell was computed.

    logp : (G_1, ..., G_d) log p̂_t at the cell centres (for "bound" cells: an upper bound,
        at or below the cut). mean : (G_1, ..., G_d, d) softmax mean (x itself for "bound").
    methods : cells per method, {"grid", "bound", "exact", "skipped"}; "above" counts the
        grid cells whose lower bound alone certifies them above the cut.
    ratio : h / sqrt(t) of the lattice used (nan if none was built); nodes : its shape.
    """

    logp: np.ndarray
    mean: np.ndarray
    methods: dict[str, int] = field(default_factory=dict)
    ratio: float = math.nan
    nodes: tuple[int, ...] = ()


@njit(cache=True)
def _lagrange_bin(X, origin, h, q, shape, denom, hist):  # pragma: no cover - numba
    """Count tensor (shape, 3 axes, missing axes of size 1) of q-point Lagrange binning;
    adds each point's count to `hist` (bins of width 2h, same origin) on the way.

    Weights in barycentric form, w_a = prod_b (s - x_b) / ((s - x_a) denom_a), O(q) per
    axis and point (s = 0 falls on node 0 exactly). X is best sorted by cell (locality).
    """
    n, d = X.shape
    c = np.zeros(shape)
    hb = np.zeros(3, dtype=np.int64)
    W = np.ones((3, q))
    base = np.zeros(3, dtype=np.int64)
    qq = np.ones(3, dtype=np.int64)
    for j in range(d):
        qq[j] = q
    for i in range(n):
        for j in range(d):
            u = (X[i, j] - origin[j]) / h
            k = int(math.floor(u))
            s = u - k
            base[j] = k - (q // 2 - 1)
            hb[j] = int(math.floor((X[i, j] - origin[j]) / (2.0 * h)))
            if s == 0.0:
                for a in range(q):
                    W[j, a] = 0.0
                W[j, q // 2 - 1] = 1.0
            else:
                full = 1.0
                for b in range(q):
                    full *= s - (b - (q // 2 - 1))
                for a in range(q):
                    W[j, a] = full / ((s - (a - (q // 2 - 1))) * denom[a])
        hist[hb[0], hb[1], hb[2]] += 1.0
        for a in range(qq[0]):
            for b in range(qq[1]):
                wab = W[0, a] * W[1, b]
                for e in range(qq[2]):
                    c[base[0] + a, base[1] + b, base[2] + e] += wab * W[2, e]
    return c


def _denominators(q: int) -> np.ndarray:
    """prod_{b != a} (x_a - x_b) for the nodes x = -(q/2-1)..q/2."""
    x = np.arange(-(q // 2 - 1), q // 2 + 1, dtype=np.float64)
    return np.array([np.prod([x[a] - x[b] for b in range(q) if b != a]) for a in range(q)])


#: columns of the tensor handled together by one thread in `_mode` (a cache tile)
_TILE = 256


#: exp(y) is exactly 0.0 in float64 for y below about -745.13; the bounds' kernel is
#: computed only where its exponent is at least this (a margin below that), so every entry
#: it leaves out is an exact zero of the full matrix
ZERO_EXPONENT = -760.0


@njit(parallel=True, cache=True)
def _mode(T, M, S, out):  # pragma: no cover - numba
    """out[p, a, r] = sum_b M[a, b] T[p, S[a] + b, r]: row a of M holds columns S[a] ..
    S[a] + B - 1 of the full matrix (the rest exact zeros; S = 0 for a full one), k
    ascending for every element and thread count (OpenBLAS GEMM is not: its results change
    with the number of threads); skipping zeros leaves every partial sum unchanged."""
    P, K, R = T.shape
    A, B = M.shape
    nt = (R + _TILE - 1) // _TILE
    for job in prange(P * nt):
        p = job // nt
        r0 = (job % nt) * _TILE
        r1 = min(R, r0 + _TILE)
        m = r1 - r0
        acc = np.empty(m)
        for a in range(A):
            acc[:] = 0.0
            s = S[a]
            for b in range(B):
                w = M[a, b]
                if w != 0.0:
                    row = T[p, s + b, r0:r1]
                    for r in range(m):
                        acc[r] += w * row[r]
            out[p, a, r0:r1] = acc


@njit(parallel=True, cache=True)
def _mode_last(T, M, S, out):  # pragma: no cover - numba
    """out[p, a] = sum_b M[a, b] T[p, S[a] + b] (the last axis), banded as in `_mode`, one
    dot product per (p, a) reading M's rows in place (a transposed copy of M cost 15% of a
    1-D law); a skipped product is w * 0.0, so a band gives the full matrix's bits."""
    P, K = T.shape
    A, B = M.shape
    for job in prange(P * A):
        p = job // A
        a = job % A
        s = S[a]
        acc = 0.0
        for b in range(B):
            w = T[p, s + b]
            if w != 0.0:
                acc += w * M[a, b]
        out[p, a] = acc


@njit(parallel=True, cache=True)
def _edge_exponents_1d(xs, o, g, S, B, inv):  # pragma: no cover - numba
    """min(o_a - (x_a - e)^2 inv, 0) at the B + 1 bin edges e = g[2 (S[a] + b)] of row a's
    band: the same operations, in the same order, as the NumPy expression of the d >= 2
    path (no fused multiply-add), so np.exp of it gives the same bits."""
    out = np.empty((xs.shape[0], B + 1))
    for a in prange(xs.shape[0]):
        for b in range(B + 1):
            De = xs[a] - g[2 * (S[a] + b)]
            out[a, b] = min(o[a] - De * De * inv, 0.0)
    return out


@njit(parallel=True, cache=True)
def _band_bounds_1d(xs, g, S, Ed, occ, H):  # pragma: no cover - numba
    """(sum_b H W, sum_b H U) per row of a 1-D band: W the kernel at the bin's farther edge,
    U at its nearer one (1 inside the bin), 0 for an empty bin. The values and the order of
    `_contract_band` over the matrices the d >= 2 path builds (b ascending, zero counts
    skipped), without building them."""
    G, B1 = Ed.shape
    lo = np.empty(G)
    hi = np.empty(G)
    for a in prange(G):
        s = S[a]
        acc_lo = 0.0
        acc_hi = 0.0
        for b in range(B1 - 1):
            w = H[s + b]
            if w != 0.0:
                if occ[s + b]:
                    d0 = xs[a] - g[2 * (s + b)]
                    d1 = xs[a] - g[2 * (s + b + 1)]
                    a0, a1 = abs(d0), abs(d1)
                    if d0 >= 0 and d1 <= 0:
                        u = 1.0
                    elif a0 <= a1:
                        u = Ed[a, b]
                    else:
                        u = Ed[a, b + 1]
                    v = Ed[a, b] if a0 >= a1 else Ed[a, b + 1]
                else:
                    u = 0.0
                    v = 0.0
                acc_lo += w * v
                acc_hi += w * u
        lo[a] = acc_lo
        hi[a] = acc_hi
    return lo, hi


@njit(cache=True)
def _reach_exponents_1d(xs, o, g, k0, k1, reach, inv):  # pragma: no cover - numba
    """The nodes k0 <= k < k1 within each row's reach (|x_a - g_k| <= reach_a: a contiguous
    run, since g increases) as row offsets into one flat array, and min(o_a - D^2 inv, 0)
    there, D = x_a - g_k: the exponents of the second pass's kernel, same operations."""
    A = xs.shape[0]
    first = np.empty(A, np.int64)
    start = np.zeros(A + 1, np.int64)
    for a in range(A):
        lo, hi = k1, k0
        if reach[a] >= 0.0:
            j = np.searchsorted(g[k0:k1], xs[a] - reach[a]) + k0
            j = max(k0, j - 2)
            while j < k1 and not (abs(xs[a] - g[j]) <= reach[a]):
                j += 1
            lo = j
            while j < k1 and abs(xs[a] - g[j]) <= reach[a]:
                j += 1
            hi = j
        first[a] = lo
        start[a + 1] = start[a] + max(hi - lo, 0)
    ex = np.empty(start[A])
    for a in range(A):
        for i in range(start[a + 1] - start[a]):
            D = xs[a] - g[first[a] + i]
            ex[start[a] + i] = min(o[a] - D * D * inv, 0.0)
    return first, start, ex


@njit(parallel=True, cache=True)
def _reach_sums_1d(xs, g, k0, C, first, start, K):  # pragma: no cover - numba
    """S0 = sum_k C_k K_ak and S1 = sum_k C_k ((g_k - x_a) K_ak) over each row's run of
    nodes (C the window's counts from node k0, zero counts skipped, k ascending): the sums
    `_contract` forms from the window's full matrices, whose entries beyond a row's reach
    are exact zeros."""
    A = xs.shape[0]
    S0 = np.empty(A)
    S1 = np.empty(A)
    for a in prange(A):
        acc0 = 0.0
        acc1 = 0.0
        for i in range(start[a + 1] - start[a]):
            k = first[a] + i
            w = C[k - k0]
            if w != 0.0:
                kv = K[start[a] + i]
                acc0 += w * kv
                acc1 += w * (-(xs[a] - g[k]) * kv)
        S0[a] = acc0
        S1[a] = acc1
    return S0, S1


def _contract(T: np.ndarray, mats: Sequence[np.ndarray]) -> np.ndarray:
    """T (L_1, ..., L_d) contracted with mats[j] (G_j, L_j) on every axis -> (G_1, ..., G_d)."""
    return _contract_band(T, mats, [np.zeros(M.shape[0], dtype=np.int64) for M in mats])


def _contract_band(T: np.ndarray, mats: Sequence[np.ndarray],
                   starts: Sequence[np.ndarray]) -> np.ndarray:
    """`_contract` with banded matrices: mats[j] (G_j, B_j) holds columns starts[j][a] ..
    + B_j - 1 of row a of the full (G_j, L_j) matrix, whose other entries are exact zeros."""
    out = np.ascontiguousarray(T, dtype=np.float64)
    for j, (M, S) in enumerate(zip(mats, starts, strict=True)):
        shp = out.shape
        P, R = math.prod(shp[:j]), math.prod(shp[j + 1:])
        new = np.empty((P, M.shape[0], R))
        M = np.ascontiguousarray(M, dtype=np.float64)
        S = np.ascontiguousarray(S, dtype=np.int64)
        if R == 1:
            _mode_last(out.reshape(P, shp[j]), M, S, new.reshape(P, M.shape[0]))
        else:
            _mode(out.reshape(P, shp[j], R), M, S, new)
        out = new.reshape(shp[:j] + (M.shape[0],) + shp[j + 1:])
    return out


def _bin_band(xs: np.ndarray, o: np.ndarray, g0: float, hb: float, bins: int,
              inv: float) -> tuple[np.ndarray, int] | None:
    """Per query coordinate, the first of B consecutive histogram bins (width hb, node 0 at
    g0) outside which both edges' kernel exp(o - D^2 inv) is an exact zero; None when the
    band would be the whole axis (the dense path, as before bands existed)."""
    reach = np.sqrt(np.maximum(o - ZERO_EXPONENT, 0.0) / inv)
    lo = np.floor((xs - reach - g0) / hb).astype(np.int64) - 2
    hi = np.ceil((xs + reach - g0) / hb).astype(np.int64) + 1
    lo, hi = np.clip(lo, 0, bins - 1), np.clip(hi, 0, bins - 1)
    B = int(np.max(hi - lo)) + 1
    if B >= bins:
        return None
    return np.clip(lo, 0, bins - B), B


class GridScorer(TrainShape):
    """Prepared grid evaluation of (logp, mean) over one training set (d <= 3).

    Parameters
    ----------
    train : (n, d) training points. rtol : the engine's tolerance. q : Lagrange points.
    ratio_floor : the finest spacing / sqrt(t) the lattice is refined to within BUDGET
        (R_FLOOR); at or above the certifying ratio (self.r) it is not refined: fewer
        nodes per kernel width, cheaper calls, more far-tail cells left to `exact`.
    """

    def __init__(self, train: np.ndarray, rtol: float = 1e-6, q: int = Q,
                 max_nodes: int = MAX_NODES, ratio_floor: float = R_FLOOR) -> None:
        self.train = as_points(train, name="train")
        n, d = self.train.shape
        if not 1 <= d <= 3:
            raise ValueError(f"the grid score handles d <= 3, got d = {d}")
        if not (isinstance(ratio_floor, int | float) and 0.0 < ratio_floor < math.inf):
            raise ValueError(f"ratio_floor must be a finite number > 0, got {ratio_floor!r}")
        self.rtol, self.q, self.max_nodes = float(rtol), int(q), int(max_nodes)
        self.ratio_floor = float(ratio_floor)
        self.r = spacing_ratio(n, d, self.rtol, self.q, K_TAIL)
        self.lo, self.hi = self.train.min(axis=0), self.train.max(axis=0)
        # the points in cell order once (cells of 1/128 of the span, first axis slowest):
        # the binning's scatter then walks the lattice with locality, at every level
        cell = np.floor((self.train - self.lo) / np.maximum(self.hi - self.lo, 1e-300)
                        * 128.0).astype(np.int64)
        self._sorted = np.ascontiguousarray(self.train[np.lexsort(cell.T[::-1])])
        self._lattice: tuple | None = None  # (level, origin, h, C, hb, H)
        self._axis_cache: tuple | None = None  # (lattice, per-axis nodes: _axis_nodes)

    def lattice_shape(self, t: float) -> tuple[int, ...]:
        """Nodes per axis of the lattice used at time t."""
        _, h = self._level(t)
        return tuple(self._extent(h)[1])

    def _level(self, t: float) -> tuple[int, float]:
        """Lattice level and spacing at t: h <= r sqrt t, finer (down to ratio_floor sqrt t)
        while within BUDGET[d]."""
        side = BUDGET[self.d] ** (1.0 / self.d) - self.q - 4
        span = float(np.max(self.hi - self.lo))
        h_fit = span / side if side > 0 else math.inf
        h = min(self.r * math.sqrt(t), max(self.ratio_floor * math.sqrt(t), h_fit))
        lev = math.floor(4.0 * math.log2(h))
        return lev, 2.0 ** (lev / 4.0)

    def _extent(self, h: float) -> tuple[np.ndarray, np.ndarray]:
        """Lattice origin (node 0) and nodes per axis for spacing h; even counts (bins 2h)."""
        q = self.q
        k0 = np.floor(self.lo / h).astype(np.int64) - q // 2 - 1
        k1 = np.floor(self.hi / h).astype(np.int64) + q // 2 + 2
        L = k1 - k0 + 1
        L += L % 2
        return k0 * h, L

    def _get_lattice(self, t: float) -> tuple:
        """(level, origin, h, C, hb, H) at t: the cached lattice when its level is t's.

        self._lattice is read once and replaced whole, never returned after a re-read:
        another thread may swap it for another t's at any moment."""
        lev, h = self._level(t)
        cached = self._lattice
        if cached is not None and cached[0] == lev:
            return cached
        origin, L = self._extent(h)
        if math.prod(int(v) for v in L) > self.max_nodes:
            lattice = (lev, origin, h, None, 2 * h, None)
        else:
            shape3 = tuple(int(v) for v in L) + (1,) * (3 - self.d)
            hshape = tuple(int(v) // 2 for v in L)
            H = np.zeros(hshape + (1,) * (3 - self.d))
            C = _lagrange_bin(self._sorted, origin, h, self.q, shape3, _denominators(self.q),
                              H).reshape(tuple(int(v) for v in L))
            lattice = (lev, origin, h, C, 2 * h, H.reshape(hshape))
        self._lattice = lattice
        return lattice

    def _axis_nodes(self, lattice: tuple) -> list[tuple]:
        """Per axis of `lattice` (the one this call got from _get_lattice): its nodes and one
        more (g), the histogram's occupied bins, and the outermost nodes with weight; kept
        while that lattice is (a law's step asks for them in every block of every call).
        Keyed by the lattice object, never by self._lattice: threads of a Dask worker share
        one scorer, and another t may have replaced the cached lattice since this call's."""
        cached = self._axis_cache
        if cached is not None and cached[0] is lattice:
            return cached[1]
        _, origin, h, C, _, H = lattice
        out = []
        for j in range(self.d):
            # the histogram's bin edges (width 2h) are every other node, bit for bit
            # (h * 2e and 2h * e round the same real product)
            g = origin[j] + h * np.arange(C.shape[j] + 1)
            other = tuple(i for i in range(self.d) if i != j)
            occ = H.sum(axis=other) > 0                           # bins holding points
            live = np.flatnonzero(np.abs(C).sum(axis=other) > 0)  # nodes with weight
            out.append((g, occ, g[live[0]], g[live[-1]]))
        self._axis_cache = (lattice, out)
        return out

    def cell_masses(self, edges: Sequence[np.ndarray], t: float) -> np.ndarray:
        """p̂_t's mass in every cell of the tensor grid with these edges, (G_1, ..., G_d).

        The binned points (the lattice) contracted with one matrix of normal cell
        probabilities per axis: O(lattice x cells) per call, not O(n x cells^d). Within
        the lattice's interpolation error of the exact (1/n) sum_i prod_j P(X_ij + sqrt t Z
        in cell) (tests/test_law_distance.py); tiny negative round-off is clipped to 0.
        """
        edges = [np.ascontiguousarray(e, dtype=np.float64).ravel() for e in edges]
        if len(edges) != self.d:
            raise ValueError(f"need {self.d} edge arrays, got {len(edges)}")
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"t must be a finite number > 0, got {t!r}")
        _, origin, h, C, _, _ = self._get_lattice(float(t))
        if C is None:
            raise ValueError(f"the lattice at t={t!r} would exceed {self.max_nodes} nodes")
        sd = np.full(max(C.shape), math.sqrt(t))
        mats = [normal_cell_probs(e, origin[j] + h * np.arange(C.shape[j]), sd[:C.shape[j]],
                                  KERNEL_BAND).T.toarray() for j, e in enumerate(edges)]
        return np.clip(_contract(C, mats) / self.n, 0.0, None)

    def _range_dist2(self, axes: list[np.ndarray], t: float) -> list[np.ndarray]:
        """Per axis, (distance of each coordinate to the data's range)^2 / 2t: every cell
        has p̂ <= (2 pi t)^(-d/2) exp(-sum_j of these) (inf far out, as it should be)."""
        with np.errstate(over="ignore"):
            return [np.maximum(np.maximum(self.lo[j] - a, a - self.hi[j]), 0.0) ** 2 * (0.5 / t)
                    for j, a in enumerate(axes)]

    def _sums_on_slabs(self, axes, t, log_cut, exact, need, G) -> GridSums | None:
        """`sums` with the slabs of coordinates whose distance to the data's range alone
        puts p̂ at or below the cut decided by that bound ("bound": logp the bound, capped
        at the cut, mean x) before any (cells x lattice) matrix is built; the rest as
        usual. None where no slab can be set aside."""
        log_norm = -0.5 * self.d * math.log(2.0 * math.pi * t)
        lowest = float(np.min(log_cut))  # on the cut as given: a number costs nothing
        if not math.isfinite(lowest):
            return None
        e = self._range_dist2(axes, t)
        keep = [~(log_norm - ej <= lowest) for ej in e]
        if all(k.all() for k in keep):
            return None
        cut = np.broadcast_to(np.asarray(log_cut, dtype=np.float64), G)
        expo = sum(ej.reshape((-1,) + (1,) * (self.d - 1 - j)) for j, ej in enumerate(e))
        logp = np.minimum(log_norm - np.broadcast_to(expo, G), cut)
        mean = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        methods = {"grid": 0, "bound": int(np.prod(G)), "exact": 0, "skipped": 0, "above": 0}
        ratio, nodes = math.nan, ()
        if all(k.any() for k in keep):
            ix = np.ix_(*keep)
            sub = self.sums([a[k] for a, k in zip(axes, keep, strict=True)], t,
                            log_cut=cut[ix], exact=exact,
                            need=None if need is None else np.asarray(need, bool).reshape(G)[ix])
            logp[ix] = sub.logp
            mean[ix] = sub.mean
            for key, v in sub.methods.items():
                methods[key] += v
            methods["bound"] -= int(sub.logp.size)
            ratio, nodes = sub.ratio, sub.nodes
        return GridSums(logp=logp, mean=mean, methods=methods, ratio=ratio, nodes=nodes)

    def _sums_by_rows(self, axes, t, log_cut, exact, need, G, rows) -> GridSums:
        """`_sums_on_lattice` over blocks of `rows` first-axis coordinates: a cell's value does
        not depend on the other cells asked for (its own row of each kernel matrix, summed
        in the same order), so the blocks give the whole call's values with matrices
        within CHUNK_BYTES (past MAX_MATRIX_BYTES the call used to go exact, cell by cell:
        at t ~ 1e-4 and n = 1e5 that was half a 1-D law's time)."""
        cut = None if log_cut is None or np.ndim(log_cut) == 0 else np.broadcast_to(
            np.asarray(log_cut, dtype=np.float64), G)
        want = None if need is None else np.asarray(need, dtype=bool).reshape(G)
        parts = []
        for i in range(0, G[0], rows):
            block = slice(i, min(i + rows, G[0]))
            parts.append(self._sums_on_lattice(
                [axes[0][block], *axes[1:]], t, log_cut if cut is None else cut[block], exact,
                None if want is None else want[block], (block.stop - block.start, *G[1:])))
        methods: dict[str, int] = {}
        for part in parts:
            for key, v in part.methods.items():
                methods[key] = methods.get(key, 0) + v
        done = [p for p in parts if p.nodes] or parts
        return GridSums(logp=np.concatenate([p.logp for p in parts]),
                        mean=np.concatenate([p.mean for p in parts]), methods=methods,
                        ratio=done[0].ratio, nodes=done[0].nodes)

    def sums(self, axes: Sequence[np.ndarray], t: float, *,
             log_cut: float | np.ndarray | None = None,
             exact: ExactFn | None = None, need: np.ndarray | None = None) -> GridSums:
        """(logp, mean) at every centre of the tensor grid `axes` at time t.

        log_cut : log p̂ at or below which a cell needs no value ("bound" cells); a number
            or an array broadcastable to the grid's shape (a cut that varies by cell).
        exact : the fallback (x (k, d), t) -> (logp, mean); required when some cell is not
            certified (a ValueError otherwise).
        need : optional bool (G_1, ..., G_d): cells outside it that the grid cannot vouch
            for are not computed ("skipped": logp -inf, mean x), e.g. cells the law drops.
        """
        d = self.d
        axes = [np.ascontiguousarray(a, dtype=np.float64).ravel() for a in axes]
        if len(axes) != d:
            raise ValueError(f"need {d} axes, got {len(axes)}")
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"t must be a finite number > 0, got {t!r}")
        G = tuple(a.size for a in axes)
        if log_cut is not None:
            on_slabs = self._sums_on_slabs(axes, float(t), log_cut, exact, need, G)
            if on_slabs is not None:
                return on_slabs
        return self._sums_on_lattice(axes, float(t), log_cut, exact, need, G)

    def _sums_on_lattice(self, axes, t, log_cut, exact, need, G) -> GridSums:
        """`sums` once the far slabs are set aside: certified cells from the lattice, the
        bound, the exact fallback (in blocks of rows past CHUNK_BYTES)."""
        d, n = self.d, self.n
        lattice = self._get_lattice(float(t))
        _, origin, h, C, hb, H = lattice
        size = 0 if C is None else _matrix_bytes(G, C.shape)
        if size > CHUNK_BYTES:
            rows = (_rows_within(G, C.shape, CHUNK_BYTES)
                    or _rows_within(G, C.shape, MAX_MATRIX_BYTES))
            if rows == 0 or (size > MAX_MATRIX_BYTES and sum(C.shape) > n):
                # one row beyond the memory budget, or a call past it whose lattice rows
                # hold more nodes than the data has points (a tiny t at small n: an exact
                # O(n) sum per cell is the cheaper): every cell goes exact
                C = None
            else:
                # blocks sized by what a row's matrices really hold (the values do not
                # depend on the blocks): on a wide axis, many rows per block, not one
                rows = max(rows, _rows_within(G, _held_nodes(C.shape, h, t, self.q),
                                              BLOCK_BYTES))
                if rows < G[0]:
                    return self._sums_by_rows(axes, float(t), log_cut, exact, need, G, rows)
        log_norm = -math.log(n) - 0.5 * d * math.log(2.0 * math.pi * t)
        logp = np.full(G, -np.inf)
        mean = np.zeros((*G, d))
        grid_ok = np.zeros(G, dtype=bool)
        bound = np.zeros(G, dtype=bool)
        above = np.zeros(G, dtype=bool)
        # coordinates whose squared distance to the data, over 2t, could overflow
        far_axes = [~(np.abs(a - 0.5 * (lo + hi)) <= 1e100 * min(1.0, math.sqrt(t)))
                    for a, lo, hi in zip(axes, self.lo, self.hi, strict=True)]
        if C is not None:
            U, W, off, kern = [], [], [], []
            fused = None
            inv = 0.5 / t
            starts = []
            for j, x in enumerate(axes):
                L = C.shape[j]
                g, occ, a_lo, a_hi = self._axis_nodes(lattice)[j]
                xs = np.where(far_axes[j], 0.5 * (self.lo[j] + self.hi[j]), x)
                dmin = np.maximum(np.maximum(a_lo - xs, xs - a_hi), 0.0)
                o = dmin * dmin * inv  # <= every exponent below: all factors <= 1
                band = _bin_band(xs, o, float(g[0]), 2.0 * h, L // 2, inv)
                if d == 1:
                    # one axis: the bounds' sums without their matrices (the same bits;
                    # most of a fine 1-D lattice's call went to building them); no band is
                    # the band of the whole axis
                    S, B = band if band is not None else (np.zeros(G[0], np.int64), L // 2)
                    Ed = np.exp(_edge_exponents_1d(xs, o, g, S, B, inv))
                    fused = _band_bounds_1d(xs, g, S, Ed, occ, H)
                    starts.append(S)
                    off.append(o)
                    kern.append((xs, o, g[:L], None))
                    continue
                # the kernel at the bin edges (the even nodes) bounds every cell: U takes the
                # nearer edge (1 inside the bin), W the farther one; the odd nodes are needed
                # only by the cells the bounds leave to the grid (below). On a wide axis (a
                # heavy tail, a tiny t) only each row's band where it is not an exact zero
                if band is None:
                    S, edges, oc = None, g[None, 0::2], occ
                else:
                    S, B = band
                    cols = S[:, None] + np.arange(B + 1)  # B bins: their B + 1 edges
                    edges, oc = g[2 * cols], occ[cols[:, :-1]]
                De = xs[:, None] - edges
                Ed = np.exp(np.minimum(o[:, None] - De * De * inv, 0.0))
                Dd = np.abs(De)
                inside = (De[:, :-1] >= 0) & (De[:, 1:] <= 0)
                nearer_left = Dd[:, :-1] <= Dd[:, 1:]
                U.append(np.where(oc, np.where(inside, 1.0, np.where(
                    nearer_left, Ed[:, :-1], Ed[:, 1:])), 0.0))
                W.append(np.where(oc, np.where(Dd[:, :-1] >= Dd[:, 1:], Ed[:, :-1],
                                               Ed[:, 1:]), 0.0))
                starts.append(np.zeros(G[j], dtype=np.int64) if S is None else S)
                off.append(o)
                # the second pass reads the even nodes' kernel from the full matrix only
                kern.append((xs, o, g[:L], Ed[:, :L // 2] if S is None else None))
            offs = np.zeros(G)
            for j, o in enumerate(off):
                offs = offs + o.reshape((-1,) + (1,) * (d - 1 - j))
            with np.errstate(divide="ignore", invalid="ignore"):
                if fused is None:
                    log_lo = np.log(_contract_band(H, W, starts)) - offs
                    log_hi = np.log(_contract_band(H, U, starts)) - offs
                else:
                    log_lo = np.log(fused[0]) - offs
                    log_hi = np.log(fused[1]) - offs
            lsm = log_s_min(n, d, self.q, h / math.sqrt(t), self.rtol)
            cut_S = None if log_cut is None else np.broadcast_to(
                np.asarray(log_cut, dtype=np.float64), G) - log_norm
            if cut_S is not None:
                bound = log_hi <= cut_S
                above = log_lo > cut_S
            grid_ok = (log_lo >= lsm) & ~bound
            if need is not None:
                grid_ok &= np.asarray(need, dtype=bool).reshape(G)
            if grid_ok.any():
                # contract only over the box of cells that need a value (truncated: the
                # cells near the data; the far ones were decided by the bound)
                box = []
                for j in range(d):
                    hit = np.flatnonzero(grid_ok.any(axis=tuple(i for i in range(d) if i != j)))
                    box.append(slice(int(hit[0]), int(hit[-1]) + 1))
                box = tuple(box)
                ok = grid_ok[box]
                win = _windows(kern, box, np.where(grid_ok, log_lo, np.inf)[box], n, self.q,
                               h, t, self.rtol, lsm)
                if d == 1:
                    # one axis: each row's run of nodes within its reach, without the
                    # window's (rows x nodes) matrices, whose other entries are zeros
                    (xs, o, g, _), ((cols, reach),) = kern[0], win
                    C = C[cols]
                    xb = np.ascontiguousarray(xs[box[0]])
                    first, start, ex = _reach_exponents_1d(
                        xb, np.ascontiguousarray(o[box[0]]), g, cols.start, cols.stop,
                        reach, inv)
                    S0, S1 = _reach_sums_1d(xb, g, cols.start, C, first, start, np.exp(ex))
                    S1s = [S1]
                else:
                    Kb, Mb = [], []
                    for j, (xs, o, g, even) in enumerate(kern):
                        cols, reach = win[j]
                        k0, k1 = cols.start, cols.stop
                        D = xs[box[j], None] - g[None, k0:k1]
                        Kj = np.empty(D.shape)
                        if even is None:  # banded bounds: the even nodes' kernel, same formula
                            De = D[:, 0::2]
                            Kj[:, 0::2] = np.exp(np.minimum(o[box[j], None] - De * De * inv,
                                                            0.0))
                        else:
                            Kj[:, 0::2] = even[box[j], k0 // 2:k0 // 2 + (k1 - k0 + 1) // 2]
                        Do = D[:, 1::2]
                        Kj[:, 1::2] = np.exp(np.minimum(o[box[j], None] - Do * Do * inv, 0.0))
                        Kj[~(np.abs(D) <= reach[:, None])] = 0.0  # beyond the row's own reach
                        Kb.append(Kj)
                        Mb.append(-D * Kj)
                    C = C[tuple(w for w, _ in win)]
                    S0 = _contract(C, Kb)
                    S1s = [_contract(C, [Mb[i] if i == j else Kb[i] for i in range(d)])
                           for j in range(d)]
                with np.errstate(divide="ignore", invalid="ignore"):
                    lp = np.log(S0) - offs[box] + log_norm
                ok &= np.isfinite(lp) & (S0 > 0)
                grid_ok[box] = ok
                logp[box][ok] = lp[ok]
                for j, S1 in enumerate(S1s):
                    xj = axes[j][box[j]].reshape((-1,) + (1,) * (d - 1 - j))
                    with np.errstate(divide="ignore", invalid="ignore"):
                        mj = xj + S1 / S0
                    mean[box + (j,)][ok] = mj[ok]
            if cut_S is not None and bound.any():
                logp[bound] = np.minimum(log_hi + log_norm, cut_S + log_norm)[bound]
                grids = np.meshgrid(*axes, indexing="ij")
                for j in range(d):
                    mean[..., j][bound] = grids[j][bound]
            far = np.zeros(G, dtype=bool)
            for j in range(d):
                far |= far_axes[j].reshape((-1,) + (1,) * (d - 1 - j))
            grid_ok &= ~far
            bound &= ~far
        rest = ~(grid_ok | bound)
        skipped = np.zeros(G, dtype=bool)
        if need is not None:
            skipped = rest & ~np.asarray(need, dtype=bool).reshape(G)
            rest &= ~skipped
            if skipped.any():
                grids = np.meshgrid(*axes, indexing="ij")
                for j in range(d):
                    mean[..., j][skipped] = grids[j][skipped]
        if rest.any():
            if exact is None:
                raise ValueError("some cells are not certified by the grid and no exact "
                                 "fallback was given")
            grids = np.meshgrid(*axes, indexing="ij")
            xq = np.stack([gj[rest] for gj in grids], axis=1)
            lp, mu = exact(xq, float(t))
            logp[rest] = lp
            mean[rest] = mu
        methods = {"grid": int(grid_ok.sum()), "bound": int(bound.sum()),
                   "exact": int(rest.sum()), "skipped": int(skipped.sum()),
                   "above": int((above & grid_ok).sum())}
        return GridSums(logp=logp, mean=mean, methods=methods,
                        ratio=h / math.sqrt(t) if C is not None else math.nan,
                        nodes=tuple(C.shape) if C is not None else ())
