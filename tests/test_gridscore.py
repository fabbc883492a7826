"""The grid score (engine/grid.py) against the exact `dense` backend.

Oracle: the dense engine (exact to rounding). Tolerance: the engine's promise, relative
error <= rtol = 1e-6 of p̂_t where p̂_t >= rho_n(t), of the mean relative to
max(|mean - x|, sqrt t) (so of the score relative to max(|ŝ|, 1/sqrt t)), finite
everywhere. Grids reach 12 standard deviations sqrt(t) past the data, so every method
(grid, bound, exact fallback) runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from scorerate import density, theory
from scorerate.engine import GaussianEngine
from scorerate.engine.grid import R_FLOOR, GridScorer
from scorerate.engine.gridbound import eps_binning, lebesgue, log_s_min
from scorerate.estimators import build

RTOL = 1e-6


def axes_for(d: int, t: float, G: int, reach: float = 12.0) -> list[np.ndarray]:
    """G centres per axis from reach sds left of the data to reach sds right (uneven)."""
    a = np.linspace(-1.0 - reach * math.sqrt(t), 1.0 + reach * math.sqrt(t), G)
    return [a + 0.013 * j for j in range(d)]


def flat(axes: list[np.ndarray]) -> np.ndarray:
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)


def errors(logp, mean, ref_logp, ref_mean, x, t, cut):
    """(max rel. error of p̂ above cut, max rel. error of the mean, all finite)."""
    ok = ref_logp >= cut
    ep = float(np.max(np.abs(np.expm1(logp - ref_logp))[ok])) if ok.any() else 0.0
    scale = np.maximum(np.linalg.norm(ref_mean - x, axis=1), math.sqrt(t))
    em = np.linalg.norm(mean - ref_mean, axis=1) / scale
    return ep, float(np.max(em[ok])) if ok.any() else 0.0, bool(np.all(np.isfinite(logp)))


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("t", [0.01, 0.3])
@pytest.mark.parametrize("floor", [R_FLOOR, 1.0], ids=["refined", "coarse"])
def test_sums_match_dense_on_every_cell(d, t, floor):
    n = 300
    X = density("sym_beta", beta=1.0, d=d).sample(n, seed=11 + d)
    dense = GaussianEngine(X, backend="dense")
    axes = axes_for(d, t, {1: 200, 2: 60, 3: 22}[d])
    x = flat(axes)
    ref_lp, ref_mu = dense.sums(x, t)
    cut = theory.log_rho_n(n, t, d)
    gs = GridScorer(X, ratio_floor=floor)
    for log_cut in (None, cut):
        r = gs.sums(axes, t, log_cut=log_cut, exact=dense.sums)
        lp, mu = r.logp.ravel(), r.mean.reshape(-1, d)
        assert sum(r.methods[k] for k in ("grid", "bound", "exact")) == x.shape[0]
        assert np.all(np.isfinite(mu))
        if log_cut is None:
            ep, em, fin = errors(lp, mu, ref_lp, ref_mu, x, t, -np.inf)  # every cell
            assert fin and ep <= RTOL and em <= RTOL, (ep, em, r.methods)
        else:
            bound = np.zeros(x.shape[0], dtype=bool)
            assert r.methods["bound"] > 0
            # a "bound" cell is truly at or below the cut, and says so
            decided = lp <= cut
            assert np.all(ref_lp[decided & (ref_lp > cut)] - cut < 1e-9), "bound too low"
            bound |= decided
            ep, em, fin = errors(lp, mu, ref_lp, ref_mu, x, t, cut)
            assert ep <= RTOL and em <= RTOL, (ep, em, r.methods)


@pytest.mark.parametrize("name", ["truncated", "regularized", "empirical"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_estimator_grid_score_matches_its_score(name, d):
    n, t = 250, 0.05
    X = density("sym_beta", beta=1.0, d=d).sample(n, seed=3)
    est = build(name, X, {"backend": "dense"})
    axes = axes_for(d, t, {1: 120, 2: 40, 3: 16}[d])
    s, methods = est.grid_score(axes, t)
    ref = est.score(flat(axes), t)
    scale = np.maximum(np.linalg.norm(ref, axis=1), 1.0 / math.sqrt(t))
    assert np.all(np.isfinite(s))
    assert float(np.max(np.linalg.norm(s - ref, axis=1) / scale)) <= RTOL
    assert methods["grid"] > 0
    if name != "empirical":
        assert methods["bound"] > 0  # the far cells: no sum at all


def test_a_coarse_floor_keeps_the_certifying_lattice_and_the_estimators_pass_it_on():
    """grid_ratio_floor (a job parameter): at or above the certifying ratio the lattice is
    not refined (fewer nodes, same tolerance); the estimators hand it to their grid."""
    n, t = 2000, 1e-3
    X = density("sym_beta", beta=0.5, d=1).sample(n, seed=5)
    fine, coarse = GridScorer(X), GridScorer(X, ratio_floor=1.0)
    assert fine.lattice_shape(t)[0] > 2 * coarse.lattice_shape(t)[0]
    _, h = coarse._level(t)
    assert h <= coarse.r * math.sqrt(t) < 2 ** 0.25 * h  # the certifying level itself
    for bad in (0.0, -1.0, math.nan, math.inf, "0.1"):
        with pytest.raises(ValueError, match="ratio_floor"):
            GridScorer(X, ratio_floor=bad)
    axes = axes_for(1, t, 400)
    for name in ("truncated", "regularized", "empirical"):
        est = build(name, X, {"backend": "dense", "grid_ratio_floor": 1.0})
        s, _ = est.grid_score(axes, t)
        assert est._grid.lattice_shape(t) == coarse.lattice_shape(t)
        ref = est.score(flat(axes), t)
        scale = np.maximum(np.linalg.norm(ref, axis=1), 1.0 / math.sqrt(t))
        assert float(np.max(np.linalg.norm(s - ref, axis=1) / scale)) <= RTOL, name


@pytest.mark.parametrize("d", [2, 3])
def test_regularized_far_tails_need_no_exact_sum_at_large_n(d):
    """regularized at n = 1e5: cells far out, where p̂ / eps is tiny, are decided by the
    grid's upper bound (|ŝ| <= rtol / (8 sqrt t) there, set to 0), so almost none goes to
    the O(n) fallback; the score still matches the dense one on a subset of every kind."""
    n, t = 100_000, 0.1
    X = density("sym_beta", beta=1.0, d=d).sample(n, seed=21)
    est = build("regularized", X, {"backend": "dense"})
    G = {2: 60, 3: 20}[d]  # near the data (12 sds) and far out (40 sds), unevenly
    axes = [np.unique(np.concatenate([a, b])) for a, b in
            zip(axes_for(d, t, G), axes_for(d, t, G // 2, reach=40.0), strict=True)]
    x = flat(axes)
    s, methods = est.grid_score(axes, t)
    assert np.all(np.isfinite(s))
    assert methods["bound"] > 0
    # measured: 2-D none (22% without the cut), 3-D 5.8% (94% without)
    assert methods["exact"] <= {2: 0, 3: 0.1}[d] * x.shape[0], methods
    dist = np.max(np.maximum(np.abs(x) - 1.0, 0.0), axis=1) / math.sqrt(t)
    rng = np.random.default_rng(4)
    pools = [np.flatnonzero(dist > 8.0), np.flatnonzero((dist > 2.0) & (dist <= 8.0)),
             np.flatnonzero(dist <= 2.0)]
    pick = np.unique(np.concatenate([rng.choice(p, min(80, p.size), replace=False)
                                     for p in pools]))
    ref = est.score(x[pick], t)
    scale = np.maximum(np.linalg.norm(ref, axis=1), 1.0 / math.sqrt(t))
    assert float(np.max(np.linalg.norm(s[pick] - ref, axis=1) / scale)) <= RTOL
    zero = np.all(s[pick] == 0, axis=1)
    assert zero.sum() >= 20 and np.any(ref[zero] != 0)  # set to 0 where it is tiny, not 0


@pytest.mark.parametrize("d", [2, 3])
def test_large_n_on_a_subset_with_tails_and_both_sides_of_the_cut(d):
    """n = 1e5: cells drawn from the far tail (beyond 6 sds), just below and just above the
    truncation level (|log p̂ - log rho_n| < 1, by the dense oracle), and the bulk."""
    n, t = 100_000, 0.1
    X = density("sym_beta", beta=1.0, d=d).sample(n, seed=21)
    dense = GaussianEngine(X, backend="dense")
    axes = axes_for(d, t, {2: 90, 3: 30}[d])
    x = flat(axes)
    cut = theory.log_rho_n(n, t, d)
    r = GridScorer(X).sums(axes, t, log_cut=cut, exact=dense.sums)
    r_all = GridScorer(X).sums(axes, t, exact=dense.sums)
    rng = np.random.default_rng(5)
    lp_coarse = r_all.logp.ravel()  # only to pick candidates; checked below by dense
    dist = np.max(np.maximum(np.abs(x) - 1.0, 0.0), axis=1) / math.sqrt(t)
    pools = [np.flatnonzero(dist > 6.0), np.flatnonzero((lp_coarse < cut) & (lp_coarse > cut - 1)),
             np.flatnonzero((lp_coarse > cut) & (lp_coarse < cut + 1)),
             np.flatnonzero(lp_coarse > cut + 3)]
    pick = np.unique(np.concatenate([rng.choice(p, min(60, p.size), replace=False)
                                     for p in pools if p.size]))
    ref_lp, ref_mu = dense.sums(x[pick], t)
    assert np.sum(ref_lp < cut) >= 20 and np.sum(ref_lp > cut) >= 20
    assert np.sum(np.abs(ref_lp - cut) < 1.0) >= 20
    assert np.sum(dist[pick] > 6.0) >= 20
    for res, lo in ((r_all, -np.inf), (r, cut)):
        lp, mu = res.logp.ravel()[pick], res.mean.reshape(-1, d)[pick]
        ep, em, fin = errors(lp, mu, ref_lp, ref_mu, x[pick], t, lo)
        assert fin and ep <= RTOL and em <= RTOL, (ep, em, res.methods)
    # truncation decisions agree with the oracle's away from rtol of the level
    clear = np.abs(ref_lp - cut) > 1e-5
    lp = r.logp.ravel()[pick]
    assert np.array_equal((lp > cut)[clear], (ref_lp > cut)[clear])
    # cost does not depend on n: the fallback is rare
    assert r.methods["exact"] <= 0.05 * x.shape[0], r.methods


def test_bound_constants_are_consistent():
    """The error bound grows with distance, shrinks with the spacing; Lebesgue >= 1."""
    assert lebesgue(16) >= 1.0
    assert eps_binning(16, 0.05, 2.0) < eps_binning(16, 0.05, 8.0) < eps_binning(16, 0.1, 8.0)
    assert log_s_min(1000, 2, 16, 0.03, 1e-6) < log_s_min(1000, 2, 16, 0.06, 1e-6)


def test_far_queries_are_finite_and_need_the_fallback():
    X = density("sym_beta", beta=1.0, d=2).sample(100, seed=1)
    dense = GaussianEngine(X, backend="dense")
    axes = [np.array([-1e200, 0.0, 1e5]), np.array([0.0, 3.0])]
    r = GridScorer(X).sums(axes, 0.01, exact=dense.sums)
    ref_lp, ref_mu = dense.sums(flat(axes), 0.01)
    assert np.all(np.isfinite(r.logp)) and np.all(np.isfinite(r.mean))
    assert np.allclose(r.logp.ravel(), ref_lp, rtol=1e-6)
    with pytest.raises(ValueError, match="fallback"):
        GridScorer(X).sums(axes, 0.01)


_SCRIPT = """
import hashlib, numpy as np
from scorerate import density
from scorerate.engine.grid import GridScorer
X = density("sym_beta", beta=1.0, d=3).sample(2000, seed=4)
ax = [np.linspace(-2, 2, 37) + 0.01 * j for j in range(3)]
r = GridScorer(X).sums(ax, 0.05, exact=lambda x, t: (np.zeros(len(x)), x))
print(hashlib.sha256(r.logp.tobytes() + r.mean.tobytes()).hexdigest())
"""


def test_bit_identical_over_thread_counts():
    """The BLAS contractions give the same bits on 1 and 2 threads (fresh processes)."""
    out = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                             text=True, check=True)
        out.append(res.stdout.strip())
    assert out[0] == out[1]


def test_cells_outside_need_are_skipped_not_sent_to_the_fallback():
    """Uncertified cells outside `need` cost nothing; the needed ones still go exact."""
    X = density("sym_beta", beta=1.0, d=2).sample(200, seed=2)
    dense = GaussianEngine(X, backend="dense")
    axes = [np.array([-1e200, 0.0, 0.5]), np.array([1e150, 0.2])]
    need = np.array([[True, False], [True, True], [False, True]])
    sent = []

    def exact(x, t):
        sent.append(x.shape[0])
        return dense.sums(x, t)

    r = GridScorer(X).sums(axes, 0.05, exact=exact, need=need)
    assert r.methods["skipped"] + r.methods["exact"] + r.methods["grid"] == 6
    assert sum(sent) == r.methods["exact"] and r.methods["skipped"] >= 1
    ref_lp, _ = dense.sums(flat(axes), 0.05)
    got = r.logp.ravel()
    assert np.allclose(got[need.ravel()], ref_lp[need.ravel()], rtol=1e-6)


@pytest.mark.parametrize("d", [1, 2])
def test_slabs_beyond_the_data_are_bound_by_distance_alone(d):
    """Coordinates so far from the data's range that p̂ <= (2 pi t)^(-d/2) e^(-dist^2 / 2t)
    is already at or below the cut are decided without a sum: the exact fallback never sees
    them, the near cells get the very numbers a grid of the near coordinates alone gets,
    and every far cell is truly at or below the cut (dense oracle)."""
    n, t = 400, 0.02
    X = density("sym_beta", beta=1.0, d=d).sample(n, seed=5)
    dense = GaussianEngine(X, backend="dense")
    cut = theory.log_rho_n(n, t, d)
    near = axes_for(d, t, {1: 150, 2: 40}[d], reach=3.0)
    far = [np.concatenate([a, np.linspace(1.5, 40.0, 30) + 0.003 * j, [-1e200]])
           for j, a in enumerate(near)]
    sent = []

    def exact(x, t_):
        sent.append(x.copy())
        return dense.sums(x, t_)

    r = GridScorer(X).sums(far, t, log_cut=cut, exact=exact)
    ref = GridScorer(X).sums(near, t, log_cut=cut, exact=dense.sums)
    inner = np.ix_(*[np.arange(a.size) for a in near])
    assert np.array_equal(r.logp[inner], ref.logp) and np.array_equal(r.mean[inner], ref.mean)
    x = flat(far)
    lp = r.logp.ravel()
    assert np.all(np.isfinite(r.mean))
    assert sum(r.methods[k] for k in ("grid", "bound", "exact")) == x.shape[0]
    assert r.methods["bound"] >= x.shape[0] - np.prod([a.size for a in near])
    if sent:  # only near coordinates reach the O(n) fallback
        assert np.max(np.abs(np.concatenate(sent))) < 1.0 + 3.0 * math.sqrt(t) + 0.1
    finite = np.all(np.abs(x) < 1e3, axis=1)
    ref_lp, _ = dense.sums(x[finite], t)
    decided = lp[finite] <= cut
    assert decided.sum() > 0 and np.all(ref_lp[decided] <= cut + 1e-9)


@pytest.mark.parametrize("n", [300, 3000])
@pytest.mark.parametrize("d", [1, 2])
def test_a_call_past_the_block_budget_gives_the_whole_calls_bits(d, n, monkeypatch):
    """A call whose matrices exceed CHUNK_BYTES runs in blocks of first-axis coordinates: the
    very bits of one whole call (each cell reads only its own kernel rows), with `need` and a
    per-cell cut sliced along. Past MAX_MATRIX_BYTES it still does so where a lattice row
    holds no more nodes than the data has points; where it holds more (n = 300: ~1000
    nodes) an exact O(n) sum per cell is cheaper, and the cells go exact, within rtol."""
    from scorerate.engine import grid

    t = 0.01
    X = density("sym_beta", beta=1.0, d=d).sample(n, seed=21)
    dense = GaussianEngine(X, backend="dense")
    axes = axes_for(d, t, {1: 240, 2: 50}[d], reach=4.0)
    G = tuple(a.size for a in axes)
    cut = theory.log_rho_n(n, t, d) + np.linspace(-1.0, 1.0, G[-1])  # varies by cell
    need = np.ones(G, dtype=bool)
    need[::7] = False
    whole = GridScorer(X).sums(axes, t, log_cut=cut, exact=dense.sums, need=need)
    calls = []
    real = GridScorer._sums_by_rows

    def spy(self, *args):
        calls.append(args[-1])
        return real(self, *args)

    monkeypatch.setattr(GridScorer, "_sums_by_rows", spy)
    nodes = GridScorer(X).lattice_shape(t)
    monkeypatch.setattr(grid, "CHUNK_BYTES", grid._matrix_bytes((17, *G[1:]), nodes))
    monkeypatch.setattr(grid, "BLOCK_BYTES", grid.CHUNK_BYTES)  # the held nodes' budget too
    blocks = GridScorer(X).sums(axes, t, log_cut=cut, exact=dense.sums, need=need)
    assert calls and calls[0] < G[0]  # split into blocks (of >= 17 rows less the far slabs)
    assert np.array_equal(blocks.logp, whole.logp) and np.array_equal(blocks.mean, whole.mean)
    assert blocks.methods == whole.methods
    calls.clear()
    monkeypatch.setattr(grid, "MAX_MATRIX_BYTES", grid.CHUNK_BYTES)  # every call past it
    again = GridScorer(X).sums(axes, t, log_cut=cut, exact=dense.sums, need=need)
    if sum(nodes) <= n:
        assert calls and np.array_equal(again.logp, whole.logp)
        assert again.methods == whole.methods
    else:
        assert not calls and again.methods["grid"] == 0 and again.methods["exact"] > 0
        x = flat(axes)
        ref_lp, ref_mu = dense.sums(x, t)
        want = need.ravel() & (again.logp.ravel() > cut.min())
        ep, em, _ = errors(again.logp.ravel()[want], again.mean.reshape(-1, d)[want],
                           ref_lp[want], ref_mu[want], x[want], t, -np.inf)
        assert ep <= RTOL and em <= RTOL


def test_one_scorer_shared_by_threads_at_different_times_gives_each_call_its_own_bits():
    # A Dask worker runs tasks on one estimator object from several threads at once (a job's
    # laws at S and S/2 steps ask for different t): the lattice and its per-axis nodes are
    # cached per level, so a call must read the lattice of its own t, never the one another
    # thread has just put in the cache (this race once moved a 2-D tv_law by 3% in CI).
    from concurrent.futures import ThreadPoolExecutor

    X = density("sym_beta", beta=1.0, d=2).sample(400, seed=5)
    dense = GaussianEngine(X, backend="dense")
    times = [0.002, 0.03, 0.4, 0.005, 0.09, 1.3]
    calls = [(axes_for(2, t, 40), t) for t in times] * 6

    def run(scorer, call):
        axes, t = call
        r = scorer.sums(axes, t, exact=dense.sums)
        return r.logp, r.mean

    want = [run(GridScorer(X), c) for c in calls]   # a fresh scorer per call: no sharing
    shared = GridScorer(X)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: run(shared, c), calls))
    for (lp, mu), (lp0, mu0) in zip(got, want, strict=True):
        assert np.array_equal(lp, lp0) and np.array_equal(mu, mu0)


@pytest.mark.parametrize("d", [1, 2])
def test_banded_bounds_give_the_full_matrices_bits_on_a_wide_axis(d, monkeypatch):
    """On an axis many kernel widths wide (a heavy tail, a small t) the bounds' kernel is
    built only where it is not an exact zero (grid.ZERO_EXPONENT): every sum, method and
    bit equals the full (cells x bins) matrices'. The band must be in use (narrower than
    the axis) on every axis, and the far cells past the data must still be bound."""
    from scorerate.engine import grid

    t = 4e-3
    X = density("laplace", beta=1.0, d=d).sample(3000, seed=5)
    dense = GaussianEngine(X, backend="dense")
    lo, hi = X.min(axis=0), X.max(axis=0)
    axes = [np.linspace(lo[j] - 1.0, hi[j] + 1.0, {1: 200, 2: 40}[d]) + 0.003 * j
            for j in range(d)]
    cut = theory.log_rho_n(3000, t, d)
    bands = []
    real = grid._bin_band

    def spy(*args):
        out = real(*args)
        bands.append(None if out is None else (out[1], args[4]))
        return out

    monkeypatch.setattr(grid, "_bin_band", spy)
    banded = GridScorer(X).sums(axes, t, log_cut=cut, exact=dense.sums)
    assert bands and all(b is not None and b[0] < b[1] / 2 for b in bands)
    monkeypatch.setattr(grid, "_bin_band", lambda *args: None)
    full = GridScorer(X).sums(axes, t, log_cut=cut, exact=dense.sums)
    assert np.array_equal(banded.logp, full.logp) and np.array_equal(banded.mean, full.mean)
    assert banded.methods == full.methods
    assert full.methods["grid"] > 0 and full.methods["bound"] > 0


@pytest.mark.parametrize("whole_axis", [False, True])
def test_fused_1d_band_bounds_equal_the_matrices_contraction_bit_for_bit(whole_axis):
    """d = 1 sums the bounds over each row's band without building its (cells x bins)
    matrices (`_band_bounds_1d`): the same bits as contracting the histogram with the
    matrices U (nearer edge, 1 inside a bin) and W (farther edge) that d >= 2 builds, on
    rows inside, beside and far from the data, with empty bins among the occupied; on a
    band and on the whole axis (the band of a call whose kernel reaches everywhere)."""
    from scorerate.engine import grid

    g_rng = np.random.default_rng(7)
    bins = 400
    g = -1.3 + 0.01 * np.arange(2 * bins + 1)          # nodes; bin edges are the even ones
    H = np.where(g_rng.uniform(size=bins) < 0.7, g_rng.uniform(0, 5, bins), 0.0)
    H[:40] = 0.0                                        # empty stretches: the data
    H[300:] = 0.0                                       # lie in bins 40 .. 299
    occ = H > 0
    xs = np.sort(np.concatenate([g_rng.uniform(-1.5, 7.0, 300), g[::2][100:110]]))
    inv = 0.5 / 5e-4
    a_lo, a_hi = g[2 * 40], g[2 * 300]
    dmin = np.maximum(np.maximum(a_lo - xs, xs - a_hi), 0.0)
    o = dmin * dmin * inv
    S, B = grid._bin_band(xs, o, float(g[0]), 0.02, bins, inv)
    assert B < bins // 2                                # a real band
    if whole_axis:
        S, B = np.zeros(xs.size, dtype=np.int64), bins
    lo, hi = grid._band_bounds_1d(xs, g, S, np.exp(grid._edge_exponents_1d(
        xs, o, g, S, B, inv)), occ, H)
    # the matrices, as the d >= 2 path builds them
    cols = S[:, None] + np.arange(B + 1)
    De = xs[:, None] - g[2 * cols]
    Ed = np.exp(np.minimum(o[:, None] - De * De * inv, 0.0))
    Dd = np.abs(De)
    oc = occ[cols[:, :-1]]
    inside = (De[:, :-1] >= 0) & (De[:, 1:] <= 0)
    U = np.where(oc, np.where(inside, 1.0, np.where(Dd[:, :-1] <= Dd[:, 1:], Ed[:, :-1],
                                                    Ed[:, 1:])), 0.0)
    W = np.where(oc, np.where(Dd[:, :-1] >= Dd[:, 1:], Ed[:, :-1], Ed[:, 1:]), 0.0)
    assert np.array_equal(hi, grid._contract_band(H, [U], [S]))
    assert np.array_equal(lo, grid._contract_band(H, [W], [S]))
    assert np.all(lo <= hi) and np.all(hi > 0)
    assert (xs < a_lo).any() and (xs > a_hi + 0.5).any()  # rows beside and far from data


def test_fused_1d_reach_sums_equal_the_window_matrices_bit_for_bit():
    """d = 1 sums each certified row over its own run of nodes within its reach
    (`_reach_exponents_1d`, `_reach_sums_1d`) instead of building the window's (rows x
    nodes) kernel and moment matrices and contracting the lattice counts with them (the
    d >= 2 path): the same S0 and S1, bit for bit, with rows whose reach is -inf (no
    certified cell: both sums 0), signed counts and zero counts."""
    from scorerate.engine import grid

    g_rng = np.random.default_rng(11)
    g = -2.0 + 0.004 * np.arange(1201)
    k0, k1 = 100, 1100
    xs = np.sort(g_rng.uniform(-1.8, 2.6, 250))
    o = np.maximum(xs - 2.0, 0.0) ** 2 * 50.0
    reach = g_rng.uniform(0.05, 0.6, xs.size)
    reach[::17] = -np.inf
    C = g_rng.normal(size=k1 - k0)
    C[g_rng.uniform(size=C.size) < 0.2] = 0.0
    inv = 50.0
    first, start, ex = grid._reach_exponents_1d(xs, o, g, k0, k1, reach, inv)
    S0, S1 = grid._reach_sums_1d(xs, g, k0, C, first, start, np.exp(ex))
    D = xs[:, None] - g[None, k0:k1]
    K = np.exp(np.minimum(o[:, None] - D * D * inv, 0.0))
    K[~(np.abs(D) <= reach[:, None])] = 0.0
    assert np.array_equal(S0, grid._contract(C, [K]))
    assert np.array_equal(S1, grid._contract(C, [-D * K]))
    assert np.all(S0[::17] == 0) and np.count_nonzero(S0) > 200
    # each row's run is exactly its nodes within reach
    runs = np.diff(start)
    assert np.array_equal(runs, (np.abs(D) <= reach[:, None]).sum(axis=1))
