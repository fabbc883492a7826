"""The exact law of the discretised reverse sampler on a grid, d <= 3 (DESIGN.md section 5).

A sample of m output points measures TV to p0 only down to a Monte Carlo floor of about
sqrt(B / (2 pi m)). In d <= 2 the law of the discretised chain itself is computable:
every Euler-Maruyama or ancestral step is a Gaussian transition

    p_{k+1}(y) = int p_k(x) N(y; x + a_k(x), c_k I) dx,

with the drift a_k and variance c_k of `sampler.integrate`, and a probability-flow (Heun)
step is the deterministic map x -> x + a_k(x). `output_law` propagates cell masses on a
rectilinear grid (per-axis edges) from N(0, T I) down to t0; `tv_law` and `l2_law` compare
the result with p0 with no sampling noise at all.

A stochastic Heun step is not a Gaussian transition: in d = 1 its noise is stratified
(`_heun_law_1d`), in d = 2, 3 the step is replaced by the Gaussian with its mean and
covariance (heun_closure.py; `heun_law`).

One step, given cell masses mu_c (the law within a cell taken as uniform):

1. drift at the cell centres x_c: one batched score call (two for Heun);
2. a new grid per axis that covers every image x_c + a_c, widened by `band` noise sds,
   with spacing h = min(sqrt(c_k), sqrt(t_{k+1})) / resolution wherever the image's
   marginal holds mass (so both the noise scale and the scale sqrt(t) of the estimate
   are resolved, sqrt(t0) at the end), and coarse cells holding about `tail_mass` each
   elsewhere (tails, and particles stranded far out where a truncated score is zero:
   they stay on the grid, in wide cells, never dropped);
3. drift and noise, per axis, split by `_noise_split` in each landing cell of width w:
   - where the step's noise variance c_k >= w^2 / 4 (the fine cells), the drifted centre
     y_c = x_c + a_c goes onto three new centres with weights matching its mass, mean y_c
     and variance w^2 / 4 exactly (non-negative at every offset), and a Gaussian from each
     new centre into the new cells' exact probabilities (normal cdf differences, cut at
     `band` sds) carries the rest: its sd is chosen so that its *binned* variance is
     c_k - w^2 / 4. Every step's mean and variance are exact with cells up to 2 noise sds
     wide, so the grid follows the law's scale sqrt(t), not the step noise;
   - elsewhere (coarse tail cells, c_k = 0) the shifted source cell [y_c +- w_c / 2] is
     deposited by overlap (conservative, exact in mass and mean; it adds w^2 / 12 on
     average, Sheppard) and the noise keeps c_k - w^2 / 12. With c_k = 0 (probability
     flow) nothing is compensated: the deterministic map gains about w^2 / 12 of variance
     per step, w ~ sqrt(t) / resolution (tested against a Monte Carlo).

In 2-D, deposit and noise are sparse per-axis matrices: the step is M1^T (D1^T diag(mu) D2) M2,
never a (cells x cells) kernel; in 3-D the deposit is one outer product of per-axis rows per
source cell and the noise one sparse matrix per axis (tensorstep.py). Given an estimator
with `grid_score` (the Gaussian ones) instead of a score callable, the score of a step
comes from engine/grid.py on the whole tensor grid at a cost that does not grow with n.
Cost per step: one score call on the cells holding more
than `floor` mass (two for Heun), O(cells) to deposit and O(cells x band x resolution x d)
for the noise (about 80 entries per axis at the default resolution). Mass: cells below
`floor` are skipped and the Gaussian cut at `band` sds loses ~1e-23 per step; both are
counted in `GridLaw.lost` and the masses renormalised to sum 1 after each step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import sparse, special

from ..engine.normal_cells import normal_cell_probs
from ..sampler import INTEGRATORS, time_grid
from .heun_closure import heun_moments, node_shifts
from .tensorstep import apply_axes, deposit_outer

__all__ = ["GridLaw", "GridTooLarge", "cell_masses", "cell_volumes", "l2_law", "l2_masses",
           "law_density", "output_law", "tv_law", "tv_masses"]

ScoreFn = Callable[[np.ndarray, float], np.ndarray]


class GridScoreEstimator(Protocol):
    """An estimator that scores a whole tensor grid at once (estimators/gaussian.py)."""

    def grid_score(self, axes: list[np.ndarray], t: float,
                   need: np.ndarray | None = None) -> tuple[np.ndarray, dict]: ...


#: bisections locating a truncation edge inside a Heun noise stratum (to 2^-12 of it)
_BISECT = 12
#: the Heun closure's noise levels: the cells' variance quantiles _CLIP and 1 - _CLIP by mass
_CLIP = 1e-3
#: a cell whose step moves it by at most this fraction of its width counts as at rest when
#: the next grid is laid out (its fine spacing follows the moving mass only)
AT_REST = 1e-6
#: lattice bins per axis at most while laying out one axis (the grid is coarsened beyond)
MAX_LATTICE = 1 << 20


class GridTooLarge(ValueError):
    """The law's grid would exceed its cell budget (a diverging chain)."""


@dataclass
class GridLaw:
    """Cell masses of a law on a rectilinear grid in d <= 3 dimensions.

    Attributes
    ----------
    edges : d increasing arrays of cell edges, one per axis (G_j + 1 entries).
    mass : (G_1, ..., G_d) non-negative cell masses summing to 1.
    t : forward time of the law (t0 for the sampler's output).
    lost : mass discarded on the way (cells below the floor, Gaussian tails past the
        band, rounding), before renormalisation; ~1e-12 or less in practice.
    cells : grid cells per step (cost record), the start grid first.
    resolution : smallest ratio min(sqrt(c_k), sqrt(t_k)) / spacing actually used (less
        than the requested resolution only where a lattice hit MAX_LATTICE).
    methods : with a grid score, cells per method summed over the steps (engine/grid.py:
        "grid", "bound", "exact", "skipped", "above"); empty with a plain score callable.
    """

    edges: tuple[np.ndarray, ...]
    mass: np.ndarray
    t: float
    lost: float = 0.0
    cells: list[int] = field(default_factory=list)
    resolution: float = math.inf
    methods: dict[str, int] = field(default_factory=dict)

    @property
    def d(self) -> int:
        """Dimension."""
        return len(self.edges)

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (cells, d): the cell boxes in C order of `mass`."""
        lo = np.meshgrid(*[e[:-1] for e in self.edges], indexing="ij")
        hi = np.meshgrid(*[e[1:] for e in self.edges], indexing="ij")
        return (np.stack([a.ravel() for a in lo], axis=1),
                np.stack([a.ravel() for a in hi], axis=1))

    def volumes(self) -> np.ndarray:
        """Cell volumes, shaped like `mass`."""
        return cell_volumes(self.edges)


def cell_volumes(edges: tuple[np.ndarray, ...]) -> np.ndarray:
    """Volumes of the cells of a rectilinear grid given by its per-axis edges."""
    v = np.ones(())
    for e in edges:
        v = np.multiply.outer(v, np.diff(e))
    return v


# ---------------------------------------------------------------- 1-D building blocks

def _overlap_entries(edges: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    G = edges.size - 1
    jlo = np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, G - 1)
    jhi = np.clip(np.searchsorted(edges, hi, side="left"), jlo + 1, G)
    counts = jhi - jlo
    rows = np.repeat(np.arange(lo.size), counts)
    cols = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols += np.repeat(jlo, counts)
    ov = np.minimum(hi[rows], edges[cols + 1]) - np.maximum(lo[rows], edges[cols])
    return rows, cols, np.clip(ov, 0.0, None) / (hi - lo)[rows]


def _binned_variance(r: np.ndarray) -> np.ndarray:
    """Variance, in units of w^2, of N(0, (r w)^2) binned onto the centres of a uniform lattice
    of spacing w, centred on a centre: 0 at r = 0, r^2 + 1/12 (Sheppard) for r >~ 1."""
    j = np.arange(1, 40)[:, None]
    r = np.maximum(np.asarray(r, dtype=np.float64), 1e-12)[None, :]
    p = special.ndtr(-(j - 0.5) / r) - special.ndtr(-(j + 0.5) / r)
    return 2.0 * np.sum(j * j * p, axis=0)


#: the inverse of _binned_variance, tabulated (its argument r = sd / w up to 3, beyond
#: which Sheppard's r^2 + 1/12 holds to e^(-2 pi^2 9))
_R_TABLE = np.linspace(0.0, 3.0, 3001)
_B_TABLE = _binned_variance(_R_TABLE)
_B_TABLE[0] = 0.0


def _noise_split(edges: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """How a step's noise variance c is carried in each landing cell of width w: (V, sd).

    Where c >= w^2 / 4, the deposit places the mass on three centres with mean y and
    variance V = w^2 / 4 (non-negative weights at every offset), and the Gaussian matrix
    carries the rest with the sd whose *binned* variance is c - V (_binned_variance: the
    Gaussian sent from a centre onto the cells has variance sd^2 + w^2 / 12 only for sd
    >~ w; near sd ~ 0 it keeps the mass in its own cell). Mean and variance of every step
    are then exact for any cell as wide as 2 sqrt(c), so the grid need not resolve the
    step's noise. Where c < w^2 / 4 (coarse cells), V is NaN: the overlap deposit, which
    adds ~w^2 / 12, and the noise c - w^2 / 12 (at least 0).
    """
    w2 = np.diff(edges) ** 2
    three = c >= 0.25 * w2 * (1.0 - 1e-9)  # 2 sds per cell exactly, up to rounding
    V = np.where(three, np.minimum(0.25 * w2, c), np.nan)
    rest = np.where(three, c - V, 0.0) / w2
    big = rest > _B_TABLE[-1]
    r = np.where(big, np.sqrt(np.maximum(rest - 1.0 / 12.0, 0.0)),
                 np.interp(rest, _B_TABLE, _R_TABLE))
    sd = np.where(three, r * np.sqrt(w2), np.sqrt(np.maximum(c - w2 / 12.0, 0.0)))
    return V, sd


def _deposit(edges: np.ndarray, y: np.ndarray, ws: np.ndarray, V3: np.ndarray,
             slope: bool = False):
    """(k, G) deposit of the uniform intervals [y_i +- ws_i / 2] onto the cell centres.

    Where the landing cell's V3 is finite (_noise_split: the noise is at least w^2 / 4 there),
    three centres get the non-negative weights matching mass, mean y_i and variance V3
    exactly: no offset-dependent variance error. The moment is set by the landing cell's w,
    not the source width ws (ws left a variance deficit of (ws^2 - w^2) / 12 per step while
    the fine spacing shrinks; 1-D linear chain, 64 steps: variance 0.3323 against the exact
    0.3340). Elsewhere (coarse cells, c = 0, or weights that would be negative where the
    spacing changes) the overlap fractions, whose added variance is w^2 / 12 on average
    over the offset.

    With slope (the Gaussian Heun closure's cross-covariances, heun_closure.py), also
    returns the (k, G) first-derivative rows on the same three centres (weights g with
    sum 0, first moment 1, second moment 0; zero rows where the deposit is not three-point):
    mu c g_1 x g_2 added to a 2-D deposit gives its source the cross-covariance c and leaves
    both marginals unchanged.
    """
    G = edges.size - 1
    x = 0.5 * (edges[1:] + edges[:-1])
    k0 = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, G - 1)
    three = (k0 >= 1) & (k0 <= G - 2)
    three &= np.isfinite(V3[k0])
    p = np.zeros((y.size, 3))
    g = np.zeros((y.size, 3))
    if three.any():
        kk = k0[three]
        V = V3[kk]
        u = np.stack([x[kk - 1], x[kk], x[kk + 1]], axis=1) - y[three, None]
        for a, (b, c) in enumerate(((1, 2), (0, 2), (0, 1))):
            den = (u[:, a] - u[:, b]) * (u[:, a] - u[:, c])
            p[three, a] = (V + u[:, b] * u[:, c]) / den
            g[three, a] = -(u[:, b] + u[:, c]) / den
        three[three] = np.all(p[three] >= -1e-12, axis=1)
        p = np.clip(p, 0.0, None)
    idx3 = np.flatnonzero(three)
    rows3 = np.repeat(idx3, 3)
    cols3 = (k0[idx3, None] + np.array([-1, 0, 1])).ravel()
    vals3 = p[idx3].ravel()
    rest = np.flatnonzero(~three)
    r, cc, v = _overlap_entries(edges, y[rest] - 0.5 * ws[rest], y[rest] + 0.5 * ws[rest])
    rows = np.concatenate([rows3, rest[r]])
    cols = np.concatenate([cols3, cc])
    vals = np.concatenate([vals3, v])
    D = sparse.csr_matrix((vals, (rows, cols)), shape=(y.size, G))
    if not slope:
        return D
    return D, sparse.csr_matrix((g[idx3].ravel(), (rows3, cols3)), shape=(y.size, G))


def _marginal_cdf(lo: np.ndarray, hi: np.ndarray, mu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """F(x) = sum_i mu_i clip((x - lo_i) / (hi_i - lo_i), 0, 1) at sorted x; O(k log k)."""
    dens = mu / (hi - lo)
    pts = np.concatenate([lo, hi])
    dslope = np.concatenate([dens, -dens])
    order = np.argsort(pts, kind="stable")
    pts, dslope = pts[order], dslope[order]
    slope = np.cumsum(dslope)
    F = np.concatenate([[0.0], np.cumsum(slope[:-1] * np.diff(pts))])
    return np.interp(x, pts, F, left=0.0, right=F[-1])


def _geometric_edges(start: float, stop: float, width: float, growth: float) -> np.ndarray:
    """Edges from start to stop (either side of it), the first cell `growth` x width wide and
    each next one `growth` x wider; the last cell ends at stop (merged into the one before
    where it would be narrower). [start] alone where stop is not beyond start."""
    span = abs(stop - start)
    if span <= 0.0:
        return np.array([start])
    # cells w g, w g^2, ...: k of them cover w g (g^k - 1) / (g - 1)
    k = max(1, math.ceil(math.log1p(span * (growth - 1.0) / (width * growth))
                         / math.log(growth)))
    offsets = width * growth * np.cumsum(growth ** np.arange(k))
    offsets = offsets[offsets < span]
    if offsets.size and span - offsets[-1] < width * growth ** offsets.size:
        offsets = offsets[:-1]
    edges = start + math.copysign(1.0, stop - start) * np.concatenate([[0.0], offsets])
    return np.append(edges, stop)


def _axis_edges(lo: np.ndarray, hi: np.ndarray, mu: np.ndarray, sd: float, h: float,
                tail_mass: float, band: float, moving: np.ndarray | None = None,
                growth: float = 1.15) -> tuple[np.ndarray, float]:
    """Edges for one axis holding intervals [lo_i, hi_i] of mass mu_i, blurred by sd.

    Spacing h on every lattice bin where the marginal of the *moving* mass (mu where
    `moving`; cells a truncated score leaves at rest are smooth at a far larger scale)
    exceeds tail_mass, dilated by 5 sd; away from those bins the cells grow geometrically
    (factor `growth`), so stranded mass far out and empty tails cost O(log(span / h))
    cells; the outer edges leave band sd of room. Returns (edges, spacing used).
    Cost O(k log k + span / h).
    """
    L = float(lo.min()) - band * sd
    U = float(hi.max()) + band * sd
    pad = 1e-9 * max(U - L, abs(L), abs(U), 1e-300)
    L, U = L - pad, U + pad
    if (U - L) / h > MAX_LATTICE and moving is not None and moving.any() and not moving.all():
        # mass at rest far out (a truncated score's zero): the lattice spans only the moving
        # mass, geometric cells reach the rest, so the cap does not coarsen the moving law
        inner, h_used = _axis_edges(lo[moving], hi[moving], mu[moving], sd, h, tail_mass,
                                    band, None, growth)
        if inner[0] > L or inner[-1] < U:
            left = _geometric_edges(inner[0], L, inner[1] - inner[0], growth)
            right = _geometric_edges(inner[-1], U, inner[-1] - inner[-2], growth)
            return np.concatenate([left[:0:-1], inner, right[1:]]), h_used
    nb = min(max(1, math.ceil((U - L) / h)), MAX_LATTICE)
    lat = np.linspace(L, U, nb + 1)
    h_used = (U - L) / nb
    sel = slice(None) if moving is None or not moving.any() else moving
    F = _marginal_cdf(lo[sel], hi[sel], mu[sel], lat)
    sig = np.diff(F) > tail_mass
    if not sig.any():
        sig[np.argmax(np.diff(F))] = True
    r = math.ceil(5.0 * sd / h_used) if sd > 0 else 0
    idx = np.arange(nb)
    if r > 0:
        c = np.concatenate([[0], np.cumsum(sig)])
        sig = (c[np.minimum(idx + r + 1, nb)] - c[np.maximum(idx - r, 0)]) > 0
    # distance (in bins) from each bin to the nearest significant bin
    last = np.maximum.accumulate(np.where(sig, idx, -1))
    nxt = np.minimum.accumulate(np.where(sig, idx, 2 * nb)[::-1])[::-1]
    dist = np.minimum(np.where(last >= 0, idx - last, 2 * nb), nxt - idx)
    level = np.floor(np.log1p(dist * (growth - 1.0)) / math.log(growth))
    # the geometric level advances by one per cell: keep an edge where it changes, and
    # every edge of a significant bin
    keep = np.zeros(nb + 1, dtype=bool)
    keep[0] = keep[-1] = True
    keep[1:-1] = sig[:-1] | sig[1:] | (level[:-1] != level[1:])
    return lat[keep], h_used


# ---------------------------------------------------------------- propagation

def _check_args(d: int, t0: float, T: float, steps: int, integrator: str, resolution: float,
                tail_mass: float, band: float, floor: float, noise_resolution: float,
                growth: float = 1.15) -> None:
    if not (isinstance(growth, int | float) and 1.0 < growth <= 4.0):
        raise ValueError(f"growth must be a number in (1, 4], got {growth!r}")
    if not (isinstance(noise_resolution, int | float) and math.isfinite(noise_resolution)
            and noise_resolution >= 0.5):
        raise ValueError("noise_resolution must be a finite number >= 0.5, "
                         f"got {noise_resolution!r}")
    if isinstance(d, bool) or d not in (1, 2, 3):
        raise ValueError(f"output_law handles d = 1, 2 or 3, got d={d!r}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"unknown integrator {integrator!r}; choose one of {list(INTEGRATORS)}")
    for name, v in (("resolution", resolution), ("band", band)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 1.0):
            raise ValueError(f"{name} must be a finite number >= 1, got {v!r}")
    for name, v in (("tail_mass", tail_mass), ("floor", floor)):
        if not (isinstance(v, int | float) and 0.0 < v < 1e-2):
            raise ValueError(f"{name} must be a number in (0, 1e-2), got {v!r}")
    time_grid(t0, T, steps)  # validates t0, T, steps


def output_law(score: ScoreFn | GridScoreEstimator, *, d: int, t0: float, T: float,
               steps: int, integrator: str = "euler_maruyama", resolution: float = 4.0,
               tail_mass: float = 1e-6, band: float = 10.0, floor: float = 1e-20,
               max_cells: int = 2_000_000,
               noise_resolution: float | None = None, schedule: str = "geometric",
               strata: int = 80, score_spacing: float | None = 1.0 / 16.0,
               growth: float = 1.15, heun_law: str | None = None) -> GridLaw:
    """Law of `sampler.sample(score, ...)`'s output (start N(0, T I)), on a grid, d <= 3.

    Parameters
    ----------
    score : callable score(x (k, d), t) -> (k, d), e.g. estimators.build(...).score; called once
        per step on all cell centres holding mass (twice for "probability_flow"). Or an
        estimator with `grid_score(axes, t, need)` (the Gaussian ones): then each step asks
        it once for the score on the whole tensor grid of cell centres, at a cost that does
        not grow with n (engine/grid.py); the counts of its methods add up in
        `GridLaw.methods`.
    d : 1, 2 or 3.
    t0, T, steps, integrator : as in `sampler.sample` (same `time_grid`, same step formulas).
    resolution : cells per min(sqrt(c_k), sqrt(t_{k+1})) where the law holds mass (c_k the
        step's noise variance); refining it is how convergence of tv_law is checked.
    tail_mass : marginal mass per coarse cell outside the fine region.
    band : the Gaussian transition is cut at band standard deviations.
    floor : cells with less mass skip the score; their mass is dropped (counted in `lost`).
    max_cells : a step whose grid would hold more cells raises GridTooLarge (a diverging
        chain spreads its mass over a span the fine spacing cannot cover in memory).
    noise_resolution : cells per noise sd sqrt(c_k), at least 0.5; None: `resolution`. The
        fine spacing is min(sqrt(t_{k+1}) / resolution, sqrt(c_k) / noise_resolution). With
        many steps c_k << t_k, and resolving the step noise would set the cell count: in
        3-D at 256 steps ~(sqrt(t / c_k))^3 ~ 140 times more cells than the law's scale
        needs. Cells up to 2 noise sds wide keep every step's mean and variance exact
        (_noise_split), so 0.5 costs little accuracy: 1-D linear chain, 256 steps, TV to
        its closed form 4.9e-4 at 0.5, 1.0e-4 at 0.7, 6.7e-5 at 1 (tests/test_law.py).
    schedule : the time grid's schedule (`sampler.time_grid`; the job's is "geometric").
    strata : "heun" with heun_law "strata" only: equal-width strata of the step noise over
        +-band sds (`_heun_law_1d`).
    heun_law : how a "heun" step's non-Gaussian transition is carried. "strata" (d = 1, the
        default there): pushed forward stratum by stratum, exact up to the grid. "gaussian"
        (the default in d = 2, 3; allowed in d = 1 to compare): the Gaussian with the
        step's mean and covariance from 2 d + 1 score calls (heun_closure.py), each axis's
        per-cell variance as a two-level noise mixture and the cross-covariances as
        first-derivative deposit rows; second order like the chain it stands for, its
        distance to the strata law below the strata law's own step error
        (tests/test_heun_closure.py).
    growth : width ratio of neighbouring coarse cells outside the fine region (tails and
        stranded mass cost O(log(span / spacing) / log(growth)) cells per axis; in 3-D these
        cells multiply across axes, so a larger growth pays there).
    score_spacing : "heun" only: the second score call of a step is interpolated (cubic)
        from nodes spaced score_spacing x min(sqrt(h), sqrt(t')) around its (strata + 1) x
        cells points (exact where a stencil mixes a zero and a non-zero score, a truncation
        edge); None: exact at every point.

    Returns
    -------
    GridLaw at t0. Cost per step: one score call on ~cells points (two for Heun) plus
    O(cells x 2 band resolution) arithmetic; cells ~ (span / spacing)^d, a few hundred
    per axis for a law of width ~1 at the default resolution.
    """
    if noise_resolution is None:
        noise_resolution = resolution
    _check_args(d, t0, T, steps, integrator, resolution, tail_mass, band, floor,
                noise_resolution, growth)
    on_grid = hasattr(score, "grid_score") and not callable(score)
    if on_grid and integrator == "probability_flow":
        raise ValueError("probability_flow evaluates the score off the grid: pass est.score")
    times = time_grid(t0, T, steps, schedule)
    if heun_law is None:
        heun_law = "strata" if d == 1 else "gaussian"
    if heun_law not in ("strata", "gaussian") or (heun_law == "strata" and d != 1):
        raise ValueError(f"heun_law must be 'gaussian', or 'strata' in d = 1, got {heun_law!r}")
    closure = integrator == "heun" and heun_law == "gaussian"
    if integrator == "heun" and not closure:
        return _heun_law_1d(score, on_grid, times, resolution, noise_resolution, tail_mass,
                            band, floor, max_cells, strata, score_spacing)
    if integrator == "probability_flow":
        if d != 1:
            raise ValueError("probability_flow: the grid law is implemented for d = 1 only "
                             "(a remapped deterministic map gains ~w^2/12 variance per step)")
        return _flow_law_1d(score, times, resolution, band)
    hs = times[:-1] - times[1:]
    if integrator in ("euler_maruyama", "heun"):
        cs = hs.copy()
    elif integrator == "ancestral":
        cs = times[1:] * hs / times[:-1]
    else:
        cs = np.zeros_like(hs)

    # start: N(0, T I), exact normal cell masses on a lattice of spacing ~ the first scale
    sT = math.sqrt(T)
    h0 = min(sT, math.sqrt(cs[0]) if cs[0] > 0 else math.sqrt(times[1])) / resolution
    lat = np.arange(-band * sT, band * sT + h0, h0)
    p_lat = np.diff(special.ndtr(lat / sT))
    e0, _ = _axis_edges(lat[:-1], lat[1:], p_lat, 0.0, h0, tail_mass, band, growth=growth)
    p1 = np.diff(special.ndtr(e0 / sT))
    edges = tuple(e0.copy() for _ in range(d))
    mass = p1
    for _ in range(d - 1):
        mass = np.multiply.outer(mass, p1)
    lost = 1.0 - float(mass.sum())
    methods: dict[str, int] = {}
    mass = mass / mass.sum()
    cells = [mass.size]
    res_used = math.inf

    for k in range(steps):
        tau, tau1, h, c = float(times[k]), float(times[k + 1]), float(hs[k]), float(cs[k])
        keep = mass.ravel() > floor
        lost += float(mass.ravel()[~keep].sum())
        mu = mass.ravel()[keep]
        centres = [0.5 * (e[1:] + e[:-1]) for e in edges]
        ctr = np.meshgrid(*centres, indexing="ij")
        wid = np.meshgrid(*[np.diff(e) for e in edges], indexing="ij")
        x = np.stack([a.ravel()[keep] for a in ctr], axis=1)
        w = np.stack([a.ravel()[keep] for a in wid], axis=1)
        cross = None
        levels = [[(None, c)] for _ in range(d)]  # per axis: (weights, noise variance)
        if closure:  # Gaussian closure of the Heun step (heun_closure.py)
            r = math.sqrt(h)
            s1 = _score_cells(score, on_grid, centres, x, keep, mass > floor, tau, methods)
            nodes = [_score_cells(score, on_grid, [ax + v[j] for j, ax in enumerate(centres)],
                                  x + v, keep, mass > floor, tau1, methods)
                     for v in node_shifts(d, r)]
            y, cov = heun_moments(x, s1, nodes, h, r)
            levels = [_variance_levels(cov[:, j, j], mu) for j in range(d)]
            cross = cov
        elif on_grid:
            s_all, used = score.grid_score(centres, tau, need=mass > floor)
            for key, v in used.items():
                methods[key] = methods.get(key, 0) + int(v)
            y = x + h * np.asarray(s_all, dtype=np.float64)[keep]
        elif integrator == "probability_flow":
            k1 = np.asarray(score(x, tau), dtype=np.float64)
            k2 = np.asarray(score(x + (0.5 * h) * k1, tau1), dtype=np.float64)
            y = x + (0.25 * h) * (k1 + k2)
        else:
            y = x + h * np.asarray(score(x, tau), dtype=np.float64)
        if y.shape != x.shape or not np.all(np.isfinite(y)):
            raise ValueError(f"score returned non-finite values or a wrong shape at t={tau!r}")
        # at rest: moved by under AT_REST of its width (a truncated score's zero, or a far
        # tail where a score below the engine's tolerance may be computed or set to 0)
        moving = np.any(np.abs(y - x) > AT_REST * w, axis=1)
        # the closure's narrowest noise level sets the cells' noise scale (down to half the
        # step's sd), so that coarse noise_resolution keeps its three-point deposit exact
        sd = math.sqrt(max(min(c, *(lev[0][1] for lev in levels)), c / 4.0))
        h_fine = min(sd / noise_resolution if c > 0 else math.inf,
                     math.sqrt(tau1) / resolution)
        sd_span = math.sqrt(max(lev[-1][1] for lev in levels))  # the widest noise
        new_edges = []
        for j in range(d):
            lo, hi = y[:, j] - 0.5 * w[:, j], y[:, j] + 0.5 * w[:, j]
            e, h_used = _axis_edges(lo, hi, mu, sd_span, h_fine, tail_mass, band, moving,
                                    growth)
            res_used = min(res_used, resolution * h_fine / h_used)
            new_edges.append(e)
        size = math.prod(len(e) - 1 for e in new_edges)
        if size > max_cells:
            raise GridTooLarge(f"the law's grid would need {size} cells at t={tau1!r} "
                               f"(max_cells {max_cells}): the chain spreads too far")
        # per axis and noise level: deposit rows D, noise matrix M (and, for the closure's
        # cross-covariances, first-derivative rows S at the widest level)
        D, M, S = [], [], []
        for j in range(d):
            e = new_edges[j]
            Dj, Mj = [], []
            for i, (_, cl) in enumerate(levels[j]):
                V3, sd_eff = _noise_split(e, cl)
                if cross is not None and i == len(levels[j]) - 1:
                    Dl, Sl = _deposit(e, y[:, j], w[:, j], V3, slope=True)
                    S.append(Sl)
                else:
                    Dl = _deposit(e, y[:, j], w[:, j], V3)
                Dj.append(Dl)
                Mj.append(normal_cell_probs(e, 0.5 * (e[1:] + e[:-1]), sd_eff, band))
            D.append(Dj)
            M.append(Mj)
        new = 0.0
        last = tuple(len(lev) - 1 for lev in levels)
        for combo in itertools.product(*[range(len(lev)) for lev in levels]):
            wts = mu
            for j, i in enumerate(combo):
                if levels[j][i][0] is not None:
                    wts = wts * levels[j][i][0]
            Dc = [D[j][i] for j, i in enumerate(combo)]
            Mc = [M[j][i] for j, i in enumerate(combo)]
            if d == 1:
                new = new + Mc[0].T @ (Dc[0].T @ wts)
            elif d == 2:
                q = (Dc[0].multiply(wts[:, None]).T.tocsr() @ Dc[1].tocsc()).toarray()
                if cross is not None and combo == last:
                    q += (S[0].multiply((mu * cross[:, 0, 1])[:, None]).T.tocsr()
                          @ S[1].tocsc()).toarray()
                new = new + (Mc[1].T @ (Mc[0].T @ q).T).T
            else:
                q = deposit_outer(wts, Dc)
                for a, b in ((0, 1), (0, 2), (1, 2)) if cross is not None and combo == last else ():
                    rows = [S[j] if j in (a, b) else Dc[j] for j in range(3)]
                    q += deposit_outer(mu * cross[:, a, b], rows)
                new = new + apply_axes(q, Mc)
        new = np.clip(np.asarray(new, dtype=np.float64), 0.0, None)
        total = float(new.sum())
        lost += abs(float(mu.sum()) - total)
        edges = tuple(new_edges)
        mass = new / total
        cells.append(mass.size)
    return GridLaw(edges=edges, mass=mass, t=float(t0), lost=lost, cells=cells,
                   resolution=res_used, methods=methods)


def _weighted_quantile(v: np.ndarray, wts: np.ndarray, q: float) -> float:
    """The wts-weighted q-quantile of v."""
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(wts[order])
    return float(v[order][min(np.searchsorted(cum, q * cum[-1]), v.size - 1)])


def _variance_levels(v: np.ndarray, mu: np.ndarray) -> list[tuple[np.ndarray | None, float]]:
    """One axis's per-cell step variances v as a two-level mixture: each cell sends the
    share 1 - lam of its mass with the noise variance lo and lam with hi, lam chosen so that
    its variance is v exactly (clipped to [lo, hi], the cells' mass quantiles _CLIP and
    1 - _CLIP). One level where every cell's variance is the same (a linear score)."""
    lo, hi = _weighted_quantile(v, mu, _CLIP), _weighted_quantile(v, mu, 1.0 - _CLIP)
    if not hi > lo * (1.0 + 1e-12):
        return [(None, lo)]
    lam = (np.clip(v, lo, hi) - lo) / (hi - lo)
    return [(1.0 - lam, lo), (lam, hi)]


def _score_cells(score, on_grid: bool, axes: list[np.ndarray], x: np.ndarray,
                 keep: np.ndarray, need: np.ndarray, t: float,
                 methods: dict[str, int]) -> np.ndarray:
    """Score at the kept cells' points x (k, d), which are the tensor grid `axes` at `keep`:
    one grid-score call on the whole tensor grid, or the callable on x."""
    if not on_grid:
        return np.asarray(score(x, t), dtype=np.float64)
    s_all, used = score.grid_score(axes, t, need=need)
    for key, v in used.items():
        methods[key] = methods.get(key, 0) + int(v)
    return np.asarray(s_all, dtype=np.float64).reshape(-1, len(axes))[keep]


def _score_1d(score, on_grid: bool, x: np.ndarray, t: float, methods: dict[str, int],
              chunk: int = 8192) -> np.ndarray:
    """Score at arbitrary 1-D points x (k,): the grid score (a 1-D "tensor grid" is any list
    of points; chunked, to bound its per-call matrices) or the callable."""
    if not on_grid:
        return np.asarray(score(x[:, None], t), dtype=np.float64)[:, 0]
    out = np.empty(x.size)
    for i in range(0, x.size, chunk):
        s, used = score.grid_score([x[i:i + chunk]], t)
        for key, v in used.items():
            methods[key] = methods.get(key, 0) + int(v)
        out[i:i + chunk] = np.asarray(s, dtype=np.float64)[:, 0]
    return out


def _score_1d_cubic(score, on_grid: bool, x: np.ndarray, t: float, delta: float,
                    methods: dict[str, int]) -> np.ndarray:
    """Score at 1-D points x by 4-point Lagrange interpolation from nodes k delta (only the
    nodes some point's stencil uses are scored); exact where a stencil holds both a zero
    and a non-zero score (a truncated estimate's edge, where interpolation would smear)."""
    k = np.floor(x / delta).astype(np.int64)
    nodes = np.unique(np.concatenate([k - 1, k, k + 1, k + 2]))
    sv = _score_1d(score, on_grid, nodes * delta, t, methods)
    i = np.searchsorted(nodes, k - 1)
    st = np.stack([sv[i + a] for a in range(4)], axis=1)
    u = x / delta - k
    wts = np.stack([-u * (u - 1) * (u - 2) / 6, (u + 1) * (u - 1) * (u - 2) / 2,
                    -(u + 1) * u * (u - 2) / 2, (u + 1) * u * (u - 1) / 6], axis=1)
    out = np.sum(wts * st, axis=1)
    zero = st == 0
    mixed = zero.any(axis=1) & ~zero.all(axis=1)
    if mixed.any():
        out[mixed] = _score_1d(score, on_grid, x[mixed], t, methods)
    return out


def _heun_law_1d(score, on_grid: bool, times: np.ndarray, resolution: float,
                 noise_resolution: float, tail_mass: float, band: float, floor: float,
                 max_cells: int, strata: int, score_spacing: float | None) -> GridLaw:
    """Stochastic Heun in 1-D: the step's map z -> y(z) is not affine in the noise z, so its
    transition is not Gaussian; it is pushed forward stratum by stratum in z.

    From a cell centre x (mass mu), with s1 = s(x, tau) and noise sd r:
    y(z) = x + h/2 (s1 + s(x + h s1 + r z, tau')) + r z. The noise range +-band is cut into
    `strata` equal strata; stratum j carries mass mu (Phi(z_{j+1}) - Phi(z_j)) and is laid
    on [y(z_j), y(z_{j+1})] with y linear in z inside the stratum: a new cell [a, b] gets
    mu |Phi(z(b')) - Phi(z(a'))| of it, [a', b'] its overlap with the stratum's image and
    z(.) the linear inverse (exact where the score is linear, e.g. for a Gaussian p0).
    Conservative (mass exact but for the tails beyond band) and valid where y is not
    monotone (a truncated score's jumps). The cell's mass sitting at its centre adds w^2 / 12
    of variance (Sheppard; w the cell's width): the noise variance is r^2 = h - w^2 / 12 to
    compensate. A coarse tail cell (w^2 / 12 > h / 2) is instead kept uniform over its width
    (its strata widened by w, deposited by plain overlap) with the full noise: as points,
    such cells pile their masses into spikes where the grid coarsens (seen with `truncated`:
    0.5% of the mass in one cell at |x| ~ 1.8, a Monte Carlo shows 0.03%). Score calls per
    step: the centres,
    (strata + 1) x centres points at tau' (interpolated, see output_law's score_spacing).
    Grid: as for Euler-Maruyama (_axis_edges).
    """
    K = int(strata)
    if K < 2:
        raise ValueError(f"strata must be an integer >= 2, got {strata!r}")
    sT = math.sqrt(float(times[0]))
    h0 = min(sT, math.sqrt(float(times[0] - times[1]))) / resolution
    lat = np.arange(-band * sT, band * sT + h0, h0)
    p_lat = np.diff(special.ndtr(lat / sT))
    edges, _ = _axis_edges(lat[:-1], lat[1:], p_lat, 0.0, h0, tail_mass, band)
    mass = np.diff(special.ndtr(edges / sT))
    lost = 1.0 - float(mass.sum())
    mass = mass / mass.sum()
    cells = [mass.size]
    methods: dict[str, int] = {}
    res_used = math.inf
    zE = np.linspace(-band, band, K + 1)
    for k in range(times.size - 1):
        tau, tau1 = float(times[k]), float(times[k + 1])
        h = tau - tau1
        keep = mass > floor
        lost += float(mass[~keep].sum())
        mu = mass[keep]
        x = 0.5 * (edges[1:] + edges[:-1])
        w = np.diff(edges)[keep]
        if on_grid:
            s_all, used = score.grid_score([x], tau, need=keep)
            for key, v in used.items():
                methods[key] = methods.get(key, 0) + int(v)
            s1 = np.asarray(s_all, dtype=np.float64)[keep, 0]
        else:
            s1 = _score_1d(score, False, x[keep], tau, methods)
        x = x[keep]
        # a cell narrow against the noise is a point at its centre with the noise reduced
        # by its w^2 / 12; a wider one (a coarse tail cell) stays uniform over its width
        # (points there would pile up into spikes as the coarse cells merge)
        coarse = w * w / 12.0 > 0.5 * h
        r = np.sqrt(np.where(coarse, h, h - w * w / 12.0))
        widen = np.where(coarse, w, 0.0)
        pred = (x + h * s1)[:, None] + r[:, None] * zE[None, :]
        if score_spacing is None:
            s2 = _score_1d(score, on_grid, pred.ravel(), tau1, methods)
        else:
            s2 = _score_1d_cubic(score, on_grid, pred.ravel(), tau1,
                                 score_spacing * math.sqrt(min(h, tau1)), methods)
        s2 = s2.reshape(pred.shape)
        y = (x + 0.5 * h * s1)[:, None] + 0.5 * h * s2 + r[:, None] * zE[None, :]
        if not np.all(np.isfinite(y)):
            raise ValueError(f"score returned non-finite values at t={tau!r}")
        # pieces (source cell, z_a, z_b, y(z_a), y(z_b)): one per stratum, two where the
        # score jumps between zero and non-zero inside it (a truncation edge, found by
        # bisection in z): y is linear in z on each side, not across the jump
        src = np.repeat(np.arange(x.size), K)
        za, zb = np.tile(zE[:-1], x.size), np.tile(zE[1:], x.size)
        ya, yb = y[:, :-1].ravel(), y[:, 1:].ravel()
        jump = ((s2[:, :-1] == 0) != (s2[:, 1:] == 0)).ravel()
        if jump.any():
            c = src[jump]
            lo_z, hi_z = za[jump].copy(), zb[jump].copy()
            left_zero = (s2[:, :-1] == 0).ravel()[jump]
            base = x[c] + h * s1[c]
            for _ in range(_BISECT):
                mid = 0.5 * (lo_z + hi_z)
                sm = _score_1d(score, on_grid, base + r[c] * mid, tau1, methods)
                same = (sm == 0) == left_zero
                lo_z, hi_z = np.where(same, mid, lo_z), np.where(same, hi_z, mid)
            zs = 0.5 * (lo_z + hi_z)
            head = x[c] + 0.5 * h * s1[c] + r[c] * zs
            y_left = head + 0.5 * h * s2[:, :-1].ravel()[jump]
            y_right = head + 0.5 * h * s2[:, 1:].ravel()[jump]
            src = np.concatenate([src, c])
            za = np.concatenate([za, zs])
            zb = np.concatenate([np.where(jump, np.nan, zb), zb[jump]])
            ya = np.concatenate([ya, y_right])
            yb = np.concatenate([yb, yb[jump]])
            zb[:jump.size][jump] = zs
            yb[:jump.size][jump] = y_left
        pm = np.where(zb <= 0, special.ndtr(zb) - special.ndtr(za),
                      special.ndtr(-za) - special.ndtr(-zb))
        m = mu[src] * pm
        lo = np.minimum(ya, yb) - 0.5 * widen[src]
        hi = np.maximum(ya, yb) + 0.5 * widen[src]
        hi = lo + np.maximum(hi - lo, 1e-12 * np.maximum(1.0, np.abs(lo)))
        mov = (s1 != 0) | np.any(s2 != 0, axis=1)
        h_fine = min(math.sqrt(h) / noise_resolution, math.sqrt(tau1) / resolution)
        new_edges, h_used = _axis_edges(lo, hi, m, 0.0, h_fine, tail_mass, band, mov[src])
        res_used = min(res_used, resolution * h_fine / h_used)
        if new_edges.size - 1 > max_cells:
            raise GridTooLarge(f"the law's grid would need {new_edges.size - 1} cells at "
                               f"t={tau1!r} (max_cells {max_cells}): the chain spreads too far")
        rows, cols, frac = _overlap_entries(new_edges, lo, hi)
        # Gaussian weights inside each piece (y linear in z there), where not widened
        pa, pb = ya[rows], yb[rows]
        gauss = (widen[src][rows] == 0) & (np.abs(pb - pa) > 0)
        a = np.maximum(lo[rows], new_edges[cols])
        b = np.minimum(hi[rows], new_edges[cols + 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (zb[rows] - za[rows]) / np.where(gauss, pb - pa, 1.0)
        z1 = np.clip(za[rows] + (a - pa) * slope, za[rows], zb[rows])
        z2 = np.clip(za[rows] + (b - pa) * slope, za[rows], zb[rows])
        zl, zu = np.minimum(z1, z2), np.maximum(z1, z2)
        phi = np.where(zl > 0, special.ndtr(-zl) - special.ndtr(-zu),
                       special.ndtr(zu) - special.ndtr(zl))
        w_entry = np.where(gauss, mu[src][rows] * np.clip(phi, 0.0, None), m[rows] * frac)
        new = np.bincount(cols, weights=w_entry, minlength=new_edges.size - 1)
        total = float(new.sum())
        lost += abs(float(mu.sum()) - total)
        edges, mass = new_edges, new / total
        cells.append(mass.size)
    return GridLaw(edges=(edges,), mass=mass, t=float(times[-1]), lost=lost, cells=cells,
                   resolution=res_used, methods=methods)


def _flow_law_1d(score: ScoreFn, times: np.ndarray, resolution: float, band: float) -> GridLaw:
    """Probability flow in 1-D, Lagrangian: the cell edges themselves are transported.

    A monotone map carries the mass between two points to the mass between their images,
    so with edges at K = 500 x resolution equal-mass quantiles of N(0, T) (outer edges at
    +-band sqrt(T)) each cell keeps its mass exactly and the Heun map is applied to the
    edges (2 score calls per step on K + 1 points). No remapping, hence no numerical
    diffusion; the only approximation is a uniform law within each final cell. Raises if
    the discrete map stops being monotone (too few steps for the score's Lipschitz scale).
    """
    T = float(times[0])
    K = int(500 * resolution)
    sT = math.sqrt(T)
    inner = sT * special.ndtri(np.arange(1, K) / K)
    e = np.concatenate([[-band * sT], inner, [band * sT]])
    mass = np.diff(special.ndtr(e / sT))
    lost = 1.0 - float(mass.sum())
    x = e[:, None]
    for k in range(times.size - 1):
        tau, tau1 = float(times[k]), float(times[k + 1])
        h = tau - tau1
        k1 = np.asarray(score(x, tau), dtype=np.float64)
        k2 = np.asarray(score(x + (0.5 * h) * k1, tau1), dtype=np.float64)
        x = x + (0.25 * h) * (k1 + k2)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"score returned non-finite values at t={tau!r}")
        if not np.all(np.diff(x[:, 0]) > 0):
            raise ValueError(f"the probability-flow map is not monotone at t={tau!r}: "
                             "use more steps")
    return GridLaw(edges=(x[:, 0].copy(),), mass=mass / mass.sum(), t=float(times[-1]),
                   lost=lost, cells=[K] * times.size, resolution=resolution)


# ---------------------------------------------------------------- distances to p0

def cell_masses(law: GridLaw, p0) -> np.ndarray:
    """p0's exact masses on the law's cells (p0.box_prob), flat in C order of law.mass.
    Cost O(cells x p0's components)."""
    if int(p0.d) != law.d:
        raise ValueError(f"p0 has d={p0.d}, the law d={law.d}")
    lo, hi = law.boxes()
    return np.clip(np.asarray(p0.box_prob(lo, hi), dtype=np.float64), 0.0, 1.0)


def tv_masses(law: GridLaw, P: np.ndarray) -> float:
    """TV between the law and a reference law given by its masses P on the law's cells
    (flat); the reference's mass outside the grid (1 - sum P) counts in full."""
    P = np.asarray(P, dtype=np.float64).ravel()
    m = law.mass.ravel()
    return 0.5 * (float(np.abs(P - m).sum()) + abs(1.0 - float(P.sum()) - (1.0 - float(m.sum()))))


def l2_masses(law: GridLaw, P: np.ndarray) -> float:
    """L2 distance between the law and a reference's masses P, both as cell-average
    densities on the law's cells (the reference's mass outside the grid is not counted)."""
    P = np.asarray(P, dtype=np.float64).ravel()
    vol = law.volumes().ravel()
    return math.sqrt(float(np.sum((law.mass.ravel() - P) ** 2 / vol)))


def tv_law(law: GridLaw, p0) -> float:
    """TV between p0 and the law, on the law's cells: 1/2 sum |P0(cell) - law(cell)|.

    p0's cell masses are exact (p0.box_prob) and its mass outside the grid counts in
    full. This is the TV of the binned laws, a lower bound on the true TV that converges
    to it as the cells shrink (the cells are a fraction of sqrt(t0) where the law lives;
    refining `resolution` moves it by < 1e-3, tested). Cost O(cells x p0's components).
    """
    return tv_masses(law, cell_masses(law, p0))


def l2_law(law: GridLaw, p0) -> float:
    """L2 distance between the law and p0 binned on the law's cells (histogram densities).

    sqrt(sum_cells (law(cell) - P0(cell))^2 / vol(cell)), P0 exact (p0.box_prob): the
    L2 distance of the two cell-average densities, a lower bound on the true L2 distance
    (averaging over cells is an L2 projection) that converges to it as the cells shrink,
    like tv_law. p0's mass outside the grid is not counted (the grid covers the law's
    support to band sds; tv_law counts it). Cost O(cells x p0's components).
    """
    return l2_masses(law, cell_masses(law, p0))


def law_density(law: GridLaw, x: np.ndarray) -> np.ndarray:
    """The law's piecewise-constant density at points x (k, d) (0 outside the grid); (k,)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and law.d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != law.d:
        raise ValueError(f"x must have shape (k, {law.d}), got {x.shape}")
    dens = law.mass / law.volumes()
    inside = np.ones(x.shape[0], dtype=bool)
    idx = []
    for j, e in enumerate(law.edges):
        i = np.searchsorted(e, x[:, j], side="right") - 1
        inside &= (i >= 0) & (i < e.size - 1)
        idx.append(np.clip(i, 0, e.size - 2))
    out = dens[tuple(idx)]
    return np.where(inside, out, 0.0)
