"""Built-in estimators vs brute force, finite differences, the truncation boundary, Monte Carlo."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from scipy.stats import norm

import scorerate.estimators.highorder as est_mod
from scorerate import theory
from scorerate.estimators import ESTIMATORS, build, options_of, resolve
from scorerate.estimators.kernels import legendre_kernel
from scorerate.seeding import rng

GAUSS = ("truncated", "regularized", "empirical")
KINDS = tuple(ESTIMATORS)


def _est(X, kind="truncated", **options):
    """The registered estimator `kind` on X with these options (its factory, called directly)."""
    return resolve(kind)(X, **options)


def _data(n, m, d, key="est"):
    g = rng("test_estimators", key, n, m, d)
    return g.standard_normal((n, d)), 1.3 * g.standard_normal((m, d))


def _brute_gauss(X, x, t, dtype=np.longdouble):
    """p̂_t and grad p̂_t by the direct sums of DESIGN.md section 1 (extended precision)."""
    X, x = X.astype(dtype), x.astype(dtype)
    n, d = X.shape
    diff = X[None, :, :] - x[:, None, :]
    w = np.exp(-(diff**2).sum(-1) / (2 * t)) / (2 * np.pi * dtype(t)) ** (dtype(d) / 2)
    return w.sum(1) / n, (w[:, :, None] * diff).sum(1) / (n * t)


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="kde"), "truncated"),
    (dict(c_rho=0.0), "c_rho"),
    (dict(c_rho=-1.0), "c_rho"),
    (dict(kind="regularized", eps=0.0), "eps"),
    (dict(kind="highorder", order=0), "order"),
    (dict(kind="highorder", order=2.5), "order"),
    (dict(kind="highorder", C=-1.0), "C"),
    (dict(backend="gpu"), "backend"),
])
def test_rejects_bad_options(kwargs, match):
    X, _ = _data(10, 1, 2)
    with pytest.raises(ValueError, match=match):
        _est(X, **kwargs)


@pytest.mark.parametrize("kind, option", [("empirical", "c_rho"), ("highorder", "backend"),
                                           ("truncated", "eps"), ("regularized", "order")])
def test_refuses_an_option_it_does_not_use(kind, option):
    X, _ = _data(10, 1, 2)
    with pytest.raises(ValueError, match=f"does not take.*{option}") as err:
        _est(X, kind, **{option: 1.0})
    for valid in options_of(resolve(kind)):  # the message names the valid ones
        assert valid in str(err.value)


def test_build_passes_each_estimator_only_its_declared_options():
    X, x = _data(30, 5, 2, "build")
    params = dict(c_rho=0.5, eps=1e-3, backend="dense", rtol=1e-6, plan_m=64, order=3, C=2.0,
                  noise_seed=4, steps=100)  # steps: a job parameter no estimator takes
    tr = build("truncated", X, params)
    assert tr.c_rho == 0.5 and tr.engine.backend == "dense" and tr.engine.plan_m == 64
    assert build("regularized", X, params).eps == 1e-3
    ho = build("highorder", X, params)
    assert (ho.order, ho.C, ho.noise_seed) == (3, 2.0, 4)
    np.testing.assert_array_equal(build("empirical", X, params).score(x, 0.3),
                                  _est(X, "empirical", backend="dense", rtol=1e-6,
                                       plan_m=64).score(x, 0.3))


@pytest.mark.parametrize("X", [np.zeros((1, 2)), np.zeros(5), np.zeros((3, 0)),
                               np.array([[0.0, 1.0], [np.nan, 0.0]])])
def test_rejects_bad_data(X):
    with pytest.raises(ValueError, match="X"):
        _est(X)


def test_rejects_bad_queries_and_times():
    X, x = _data(10, 3, 2)
    e = _est(X)
    for t in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="t must"):
            e.score(x, t)
    with pytest.raises(ValueError, match="columns"):
        e.score(np.zeros((3, 3)), 1.0)


def test_attributes_and_defaults():
    X, _ = _data(50, 1, 3)
    e = _est(X, kind="highorder")
    assert (e.n, e.d, e.name) == (50, 3, "highorder")
    assert e.order == math.ceil(math.log(50)) and e.C == pytest.approx(3 * math.e)
    assert _est(X, kind="regularized").eps == 50.0**-2
    assert set(KINDS) == {"truncated", "regularized", "empirical", "highorder"}


# -- Gaussian kinds ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["dense", "numpy"])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("t", [1e-2, 0.5, 20.0])
def test_gaussian_density_and_gradient_vs_brute_force(backend, d, t):
    X, x = _data(300, 40, d)
    e = _est(X, kind="empirical", backend=backend)
    p_ref, g_ref = _brute_gauss(X, x, t)
    p, g = e.density(x, t), e.grad_density(x, t)
    keep = p_ref > 1e-250  # below, long double and float64 both lose the value
    np.testing.assert_allclose(p[keep], p_ref[keep].astype(float), rtol=1e-12)
    scale = np.abs(g_ref[keep]).max(axis=1, keepdims=True).astype(float)
    np.testing.assert_allclose(g[keep] / scale, (g_ref[keep] / scale).astype(float),
                               atol=1e-11)
    np.testing.assert_allclose(e.score(x, t)[keep] * p[keep, None], g[keep],
                               rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("d", [1, 2])
def test_dense_and_numpy_backends_agree(d):
    X, x = _data(1500, 200, d, "backends")
    x[:5] *= 40  # far queries too
    for t in (1e-4, 1.0):
        a = _est(X, kind="empirical", backend="dense").score(x, t)
        b = _est(X, kind="empirical", backend="numpy").score(x, t)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("d", [1, 2, 3])
def test_score_is_gradient_of_log_density(d):
    X, x = _data(200, 25, d, "fd")
    t, h = 0.3, 1e-5
    e = _est(X, kind="empirical")
    s = e.score(x, t)
    for k in range(d):
        dx = np.zeros(d)
        dx[k] = h
        fd = (np.log(e.density(x + dx, t)) - np.log(e.density(x - dx, t))) / (2 * h)
        # central differences: truncation O(h^2 |s'''|), rounding O(1e-16 / h)
        np.testing.assert_allclose(s[:, k], fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_finite_far_away_and_tiny_t(kind):
    X, _ = _data(400, 1, 2, "far")
    x = np.array([[1e6, 0.0], [-1e6, 1e6], [0.3, -1e6]])
    e = _est(X, kind=kind)
    for t in (1e-12, 1e-3, 1.0, 1e8):
        assert np.all(np.isfinite(e.score(x, t)))
        assert np.all(np.isfinite(e.density(x, t)))
        assert np.all(np.isfinite(e.grad_density(x, t)))
    if kind == "empirical":
        nearest = X[np.argmin(((x[:, None] - X[None]) ** 2).sum(-1), axis=1)]
        np.testing.assert_allclose(e.score(x, 1e-12), (nearest - x) / 1e-12, rtol=1e-15)
    if kind in ("truncated", "highorder"):
        np.testing.assert_array_equal(e.score(x, 1e-12), 0.0)  # p̂ = 0 < rho_n


def test_truncation_boundary_exact():
    # Bisection on a ray from the data outwards brackets the point where log p̂ = log rho_n
    # to ~1e-13; the two end points fall on either side and the score switches exactly there.
    X, _ = _data(100, 1, 2, "boundary")
    t, c_rho = 0.05, 0.05  # c_rho < 1: rho_n = 1/(n t^{d/2}) exceeds a lone point's peak
    tr = _est(X, kind="truncated", c_rho=c_rho)
    em = _est(X, kind="empirical")
    log_rho = theory.log_rho_n(100, t, 2, c_rho)
    direction = np.array([0.6, 0.8])

    def f(s):
        logp, _ = tr.engine.sums(X[:1] + s * direction[None], t)
        return logp[0] - log_rho

    lo, hi = 0.0, 50.0
    assert f(lo) > 0 > f(hi)
    while hi - lo > 1e-13 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    assert f(lo) > 0 >= f(hi)
    pts = X[:1] + np.array([lo, hi])[:, None] * direction[None]
    s_tr, s_em = tr.score(pts, t), em.score(pts, t)
    np.testing.assert_array_equal(s_tr[0], s_em[0])
    assert np.all(s_em[0] != 0)
    np.testing.assert_array_equal(s_tr[1], 0.0)
    # and p̂ itself agrees with rho_n there to the bisection's resolution
    assert tr.density(pts, t)[0] == pytest.approx(math.exp(log_rho), rel=1e-9)


def test_regularized_equals_empirical_above_eps_and_scaled_below():
    X, x = _data(300, 400, 2, "reg")
    x *= 2.0
    t = 0.1
    p = _est(X, kind="empirical").density(x, t)
    eps = float(np.median(p))
    s_reg = _est(X, kind="regularized", eps=eps).score(x, t)
    s_em = _est(X, kind="empirical").score(x, t)
    above = p >= eps
    assert 0 < above.sum() < len(p)
    np.testing.assert_allclose(s_reg[above], s_em[above], rtol=1e-14)
    np.testing.assert_allclose(s_reg[~above], s_em[~above] * (p[~above] / eps)[:, None],
                               rtol=1e-12, atol=1e-300)


def test_truncated_matches_its_definition():
    X, x = _data(300, 500, 3, "trunc")
    x *= 2.0
    t = 1.0
    p = _est(X, kind="empirical").density(x, t)
    rho = theory.rho_n(300, t, 3, 1.0)
    keep = p > rho
    assert 0 < keep.sum() < len(p)
    s_tr = _est(X, kind="truncated").score(x, t)
    s_em = _est(X, kind="empirical").score(x, t)
    np.testing.assert_array_equal(s_tr[keep], s_em[keep])
    np.testing.assert_array_equal(s_tr[~keep], 0.0)


# -- highorder -----------------------------------------------------------------------


def _brute_highorder(e, x, t):
    """p̂_t and grad p̂_t of "highorder" by the direct product-kernel sums over all n."""
    h = e.bandwidth(t)
    Xt = e.X + math.sqrt(t) * e.Z
    U = (x[:, None, :] - Xt[None]) / h
    K = legendre_kernel(e.order)
    Kv, Kd = K(U), K.deriv(U)
    p = Kv.prod(-1).sum(1) / (e.n * h**e.d)
    g = np.empty_like(x)
    for k in range(e.d):
        others = np.delete(Kv, k, axis=-1).prod(-1)
        g[:, k] = (Kd[..., k] * others).sum(1) / (e.n * h ** (e.d + 1))
    return p, g


@pytest.mark.parametrize("d, order, C", [(1, None, None), (2, 3, 1.0), (3, 2, 0.5)])
def test_highorder_vs_brute_force(d, order, C):
    X, x = _data(800, 150, d, "ho")
    x = 0.5 * x
    e = _est(X, kind="highorder", order=order, C=C)
    for t in (0.05, 1.0):
        p_ref, g_ref = _brute_highorder(e, x, t)
        p, g = e.density(x, t), e.grad_density(x, t)
        assert np.count_nonzero(p_ref) > 50
        np.testing.assert_allclose(p, p_ref, rtol=1e-10, atol=1e-12 * np.abs(p_ref).max())
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12 * np.abs(g_ref).max())
        rho = 1.0 / (800 * t ** (d / 2))
        keep = p_ref > rho
        s = e.score(x, t)
        np.testing.assert_allclose(s[keep], g_ref[keep] / p_ref[keep, None], rtol=1e-9)
        np.testing.assert_array_equal(s[~keep], 0.0)


def test_highorder_independent_of_query_blocking(monkeypatch):
    X, x = _data(1000, 300, 2, "hoblk")
    e = _est(X, kind="highorder", C=1.0)
    full = e.score(x, 0.2), e.density(x, 0.2)
    monkeypatch.setattr(est_mod, "MAX_PAIRS", 37)  # many tiny sub-blocks
    small = e.score(x, 0.2), e.density(x, 0.2)
    parts = [e.score(c, 0.2) for c in np.split(x, [1, 120])]
    np.testing.assert_array_equal(full[0], small[0])
    np.testing.assert_array_equal(full[1], small[1])
    np.testing.assert_array_equal(full[0], np.concatenate(parts))


def test_highorder_noise_keyed_by_seed_and_data():
    X, _ = _data(50, 1, 2, "noise")
    a = _est(X, kind="highorder", noise_seed=0).Z
    np.testing.assert_array_equal(a, _est(X, kind="highorder", noise_seed=0).Z)
    assert not np.array_equal(a, _est(X, kind="highorder", noise_seed=1).Z)
    assert not np.array_equal(a, _est(X + 1.0, kind="highorder", noise_seed=0).Z)


def test_highorder_unbiased_up_to_kernel_bias():
    # p0 = N(0, 1), so p_t = N(0, 1 + t). Over fresh data and noise, E p̂_t(x) =
    # int K(u) p_t(x - h u) du exactly (computed by Gauss-Legendre quadrature, exact up to
    # the smoothness of p_t); the Monte Carlo mean of R replicates must match it within
    # 4.5 standard errors, and that expectation must be p_t up to a small kernel bias.
    n, R, t = 400, 300, 0.5
    x = np.array([[-1.2], [0.0], [0.7], [2.0]])
    sd = math.sqrt(1 + t)
    vals = np.empty((R, len(x)))
    for r in range(R):
        X = rng("test_estimators", "unbiased", r).standard_normal((n, 1))
        vals[r] = _est(X, kind="highorder", noise_seed=r).density(x, t)
    e = _est(X, kind="highorder")
    h = e.bandwidth(t)
    nodes, weights = np.polynomial.legendre.leggauss(60)
    K = legendre_kernel(e.order)(nodes)
    expect = np.array([np.sum(weights * K * norm.pdf(xi - h * nodes, scale=sd)) for xi in x[:, 0]])
    truth = norm.pdf(x[:, 0], scale=sd)
    mean, se = vals.mean(0), vals.std(0, ddof=1) / math.sqrt(R)
    assert np.all(np.abs(mean - expect) < 4.5 * se)
    # bias O(h^{l+1}): tiny for l = ceil(log n) = 6 and h ~ 0.1
    np.testing.assert_allclose(expect, truth, rtol=1e-6)
    assert np.all(np.abs(mean - truth) < 4.5 * se + 1e-6)
    assert np.all(se < 0.05 * truth)  # the test has power: SE is a few % of p_t


def test_pickles_for_dask():
    X, x = _data(100, 10, 2, "pickle")
    for kind in KINDS:
        e = _est(X, kind=kind)
        s = e.score(x, 0.3)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(e)).score(x, 0.3), s)


def test_highorder_keeps_one_tree_per_t_and_pickles_without_them():
    X = rng("test_estimators-trees").standard_normal((400, 2))
    x = X[:50] + 0.01
    est = _est(X, kind="highorder")
    first = [est.score(x, t) for t in (0.1, 0.2)]
    assert len(est._trees) == 2
    again = [est.score(x, t) for t in (0.1, 0.2)]
    assert len(est._trees) == 2  # the same times: no new trees
    copy = pickle.loads(pickle.dumps(est))
    assert len(copy._trees) == 0
    fresh = [copy.score(x, t) for t in (0.1, 0.2)]
    for a, b, c in zip(first, again, fresh, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
