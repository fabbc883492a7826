"""Engine backends and the dispatcher against the exact NumPy reference.

Tolerance (engine.dispatch): where p̂_exact >= rho_n(t) = 1/(n t^(d/2)),
|p̂/p̂_exact - 1| <= rtol and |mean - mean_exact| <= rtol max(|mean_exact - x|, sqrt t)
(i.e. the score's error relative to max(|ŝ_exact|, 1/sqrt t)); everywhere, finite output.
The reference is the plain NumPy streaming log-sum-exp ("numpy"), exact up to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorerate.engine import BACKENDS, GaussianEngine, choose_backend
from scorerate.engine.binned import Binned, binned_ok, spacing_ratio
from scorerate.engine.cutoff import Cutoff
from scorerate.engine.dispatch import estimate_costs
from scorerate.seeding import rng

RTOL = 1e-6
TS = [1e-8, 1e-4, 1e-2, 1.0, 1e4]


def data(kind: str, n: int, d: int) -> np.ndarray:
    """'uniform' on [-1, 1]^d, or 'clustered': 90% in three tiny clusters, 10% spread."""
    g = rng("test_engine", kind, n, d)
    X = g.uniform(-1.0, 1.0, (n, d))
    if kind == "clustered":
        k = (9 * n) // 10
        centres = np.array([[-0.7] * d, [0.2] * d, [0.21] * d])
        X[:k] = centres[g.integers(0, 3, k)] + 1e-4 * g.standard_normal((k, d))
    return X


def queries(X: np.ndarray, t: float, m: int = 200) -> np.ndarray:
    """Near the data (jittered training points), a spread cloud, and far-away points."""
    g = rng("test_engine", "queries", X.shape[0], X.shape[1], t)
    n, d = X.shape
    near = X[g.integers(0, n, m // 2)] + math.sqrt(t) * g.standard_normal((m // 2, d))
    wide = (1.0 + math.sqrt(t)) * 1.5 * g.standard_normal((m // 2 - 4, d))
    far = np.array([[1e3] * d, [-1e6] * d, [50.0 * math.sqrt(t) + 1.0] * d, [-3.0] * d])
    return np.concatenate([near, wide, far])


def check(X, x, t, logp, mean, ref):
    """Assert finiteness and the tolerance; return how many queries are above rho_n(t)."""
    lp0, mu0 = ref
    n, d = X.shape
    assert logp.shape == lp0.shape and mean.shape == mu0.shape
    assert np.all(np.isfinite(logp)) and np.all(np.isfinite(mean))
    # The promise holds where p̂ >= rho_n(t); all backends here keep it at every query
    # (binned hands the queries below rho_n/2 to cutoff), so every query is checked. The
    # log of p̂ itself is only representable to ~1e-16 |log p̂| (huge for far queries).
    err_p = np.abs(logp - lp0) - 1e-14 * np.abs(lp0)
    scale = np.maximum(np.linalg.norm(mu0 - x, axis=1), math.sqrt(t))
    err_m = np.linalg.norm(mean - mu0, axis=1) / scale
    assert err_p.max() <= RTOL, f"p̂ rel err {err_p.max():.3g}"
    assert err_m.max() <= RTOL, f"ŝ rel err {err_m.max():.3g}"
    above = lp0 >= -math.log(n) - 0.5 * d * math.log(t)
    return int(above.sum())


_REF: dict = {}


def reference(X, x, t):
    key = (X.shape, float(X.sum()), float(x.sum()), t)
    if key not in _REF:
        _REF[key] = BACKENDS["numpy"](X, RTOL).sums(x, t)
    return _REF[key]


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
@pytest.mark.parametrize("d", [1, 2, 3, 8])
@pytest.mark.parametrize("backend", ["cutoff", "dense", "binned", "auto"])
def test_backend_matches_exact(backend, d, kind):
    if backend == "binned" and d > 2:
        with pytest.raises(ValueError, match="d <= 2"):
            Binned(np.zeros((3, d)))
        return
    n = 1500
    X = data(kind, n, d)
    eng = GaussianEngine(X, backend=backend, rtol=RTOL)
    n_above = 0
    for t in TS:
        if backend == "binned" and not binned_ok(n, d, t, RTOL, eng.span):
            with pytest.raises(ValueError, match="cannot meet rtol"):
                eng.sums(X[:2], t)
            continue
        x = queries(X, t)
        logp, mean = eng.sums(x, t)
        n_above += check(X, x, t, logp, mean, reference(X, x, t))
        # sensible everywhere: the mean is a convex combination of training points
        lo, hi = X.min(axis=0), X.max(axis=0)
        assert np.all(mean >= lo - 1e-9) and np.all(mean <= hi + 1e-9)
    # the promised region is well represented (in d = 8 with n = 1500, p̂_t < rho_n(t)
    # everywhere: sum_i w_i <= n < (2 pi)^4, so only the stronger everywhere-check applies)
    assert n_above >= 50 or d == 8


def test_binned_fft_noise_and_fallback_large_n():
    """n = 2e5 clustered in 1D (FFT round-off grows with n) and queries in the far tail."""
    n = 200_000
    X = data("clustered", n, 1)
    b = Binned(X, RTOL)
    dense = BACKENDS["dense"](X, RTOL)
    for t in [1e-4, 1e-2, 1.0, 1e2]:
        x = queries(X, t, m=400)
        # queries exactly around the truncation level: |x - c| with n phi = rho_n
        z = math.sqrt(2.0 * math.log(0.3 * n / math.sqrt(2 * math.pi)))
        x = np.concatenate([x, (0.21 + z * math.sqrt(t) * np.linspace(0.9, 1.1, 21))[:, None]])
        logp, mean = b.sums(x, t)
        assert check(X, x, t, logp, mean, dense.sums(x, t)) >= 100


def test_cutoff_keeps_few_points_at_small_t():
    """The point of cutoff: at small t each query sums a small fraction of the data."""
    X = data("uniform", 20_000, 2)
    c = Cutoff(X, RTOL)
    k = c.neighbour_counts(X[:100], 1e-4)
    assert k.min() >= 1 and k.mean() < 0.05 * X.shape[0]


def test_spacing_shrinks_with_tolerance_and_is_fine():
    assert spacing_ratio(10**6, 1, 1e-9) < spacing_ratio(10**6, 1, 1e-6) < 0.1
    assert spacing_ratio(10**6, 2, 1e-6) <= spacing_ratio(10**6, 1, 1e-6)


def test_choose_backend_positional_and_sensible():
    for n, m, d, t in [(10**6, 10**4, 1, 1.0), (10**5, 10**4, 2, 1e-8), (10**5, 10**4, 8, 1.0)]:
        name = choose_backend(n, m, d, t, RTOL)
        assert name in BACKENDS
    # large-n 1D: the binned grid is far cheaper than m n kernel evaluations
    assert choose_backend(10**6, 10**4, 1, 1.0, RTOL) == "binned"
    # tiny t in d = 8: only a few neighbours matter
    assert choose_backend(10**5, 10**4, 8, 1e-8, RTOL) == "cutoff"
    # never binned where it cannot meet the tolerance
    assert "binned" not in estimate_costs(10**5, 10**4, 3, 1.0, RTOL)
    assert "binned" not in estimate_costs(10**5, 10**4, 2, 1e-8, RTOL)


def test_engine_rejects_bad_input():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="unknown backend"):
        GaussianEngine(X, backend="fft")
    with pytest.raises(ValueError, match="rtol"):
        GaussianEngine(X, rtol=0.0)
    with pytest.raises(ValueError, match="t must be"):
        GaussianEngine(X).sums(X, -1.0)


def test_binned_reuses_its_grid_per_t_bit_for_bit_and_pickles_without_it():
    import pickle

    g = rng("test_engine-binned-cache")
    X = g.standard_normal((5000, 2))
    x = g.standard_normal((300, 2))
    b = Binned(X)
    first = b.sums(x, 0.3)
    assert len(b._grids) == 1
    again = b.sums(x[::-1], 0.3)[0][::-1], b.sums(x, 0.3)[1]
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert len(b._grids) == 1  # the same t: no second grid
    b.sums(x, 0.5)
    assert len(b._grids) == 2
    copy = pickle.loads(pickle.dumps(b))
    assert len(copy._grids) == 0
    fresh = copy.sums(x, 0.3)
    assert np.array_equal(fresh[0], first[0]) and np.array_equal(fresh[1], first[1])


@pytest.mark.parametrize("d", [2, 3, 5])
def test_cutoff_tree_walk_sums_each_ball_whatever_its_block(d):
    """d >= 2: blocks of nearby queries walk the k-d tree together, but each query sums
    exactly the points of its own ball in the tree's order: the same bits alone, in a
    shuffled call, in any sub-call and with 1 or 2 threads, within rtol of the exact sums
    near the data, in its tails and far away."""
    import numba

    n = 3000
    X = data("uniform", n, d)
    g = rng("test_engine", "tree-walk", d)
    c = Cutoff(X, RTOL)
    near = X[g.integers(0, n, 150)] + 0.01 * g.standard_normal((150, d))
    far = g.uniform(1.2, 4.0, (150, d)) * g.choice([-1.0, 1.0], (150, d))
    x = np.concatenate([near, far])
    for t in (5e-4, 0.05, 1.0):
        logp, mean = c.sums(x, t)
        check(X, x, t, logp, mean, reference(X, x, t))
        perm = g.permutation(x.shape[0])
        lp_p, mu_p = c.sums(x[perm], t)
        assert np.array_equal(lp_p, logp[perm]) and np.array_equal(mu_p, mean[perm])
        for part in (slice(0, 1), slice(7, 40), slice(149, 151), slice(200, 300)):
            lp_s, mu_s = c.sums(x[part], t)
            assert np.array_equal(lp_s, logp[part]) and np.array_equal(mu_s, mean[part])
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            lp_1, mu_1 = c.sums(x, t)
        finally:
            numba.set_num_threads(before)
        assert np.array_equal(lp_1, logp) and np.array_equal(mu_1, mean)


def test_cutoff_tail_queries_sum_a_thin_shell():
    """The point of the walk for the law's tail cells: a query dmin >> sqrt t from the data
    keeps a ball sqrt(dmin^2 + 2 t L) that holds only the shell of width ~ t L / dmin at the
    data's near edge (here < 10% of the points at t = 0.05), where dense sums all n."""
    n = 3000
    X = data("uniform", n, 2)
    g = rng("test_engine", "tail-shell")
    c = Cutoff(X, RTOL)
    t = 0.05
    far = g.uniform(4.0, 8.0, (150, 2)) * g.choice([-1.0, 1.0], (150, 2))
    near = X[g.integers(0, n, 150)]
    assert np.mean(c.neighbour_counts(far, t)) < 0.1 * n
    assert np.mean(c.neighbour_counts(near, t)) > 0.4 * n
    logp, mean = c.sums(far, t)
    check(X, far, t, logp, mean, reference(X, far, t))


def test_binned_wide_query_box_sends_outside_queries_to_cutoff():
    """The slow path found by law.output_law: 2-D, queries far outside binned's grid (which
    the dispatcher picks for n = 1e4, m = 4e4 at t = 1). The outside queries reach binned's
    cutoff fallback (its tree walk, bit for bit) and stay within the tolerance."""
    from scorerate.engine.binned import Q

    n = 4000
    X = data("uniform", n, 2)
    x = rng("test_engine", "wide-box").uniform(-8.0, 8.0, (3000, 2))
    t = 1.0
    assert choose_backend(10_000, 40_000, 2, t, 1e-4, span=np.full(2, 2.0)) == "binned"
    eng = GaussianEngine(X, backend="binned", rtol=1e-4)
    logp, mean = eng.sums(x, t)
    b = eng._get("binned")
    h, origin, nodes, _ = b._grid(t)
    u = (x - origin) / h
    outside = ~np.all((u >= Q // 2) & (u <= np.asarray(nodes) - Q // 2 - 1), axis=1)
    assert 0.2 < outside.mean() < 0.8
    lp_c, mu_c = b.fallback().sums(x[outside], t)
    assert np.array_equal(logp[outside], lp_c) and np.array_equal(mean[outside], mu_c)
    lp0, mu0 = reference(X, x, t)
    assert np.max(np.abs(logp - lp0)) <= 1e-4
    assert np.max(np.linalg.norm(mean - mu0, axis=1)
                  / np.maximum(np.linalg.norm(mu0 - x, axis=1), 1.0)) <= 1e-4
