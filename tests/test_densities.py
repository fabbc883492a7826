"""Densities: registry checks, sampling, p0 / p_t / score / box / L2 against independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

import scorerate as sr
from scorerate import seeding
from scorerate.densities import DENSITIES

CASES = [("sym_beta", 0.5), ("sym_beta", 1.0), ("sym_beta", 1.7), ("gauss_mix", 2.0),
         ("laplace", 1.0), ("sym_beta_mix", 0.75), ("sym_beta_mix", 1.5)]


# ---------------------------------------------------------------------------- registry
def test_registry_names_match_contract():
    assert set(DENSITIES) == {"sym_beta", "gauss_mix", "laplace", "sym_beta_mix"}


def test_seed_streams_are_independent_across_n():
    # the `seed=` convenience keys its stream by n too: no nested prefixes across sizes
    p = sr.density("sym_beta", beta=1.0, d=1)
    a, b = p.sample(10, seed=0), p.sample(20, seed=0)
    assert not np.array_equal(a, b[:10])
    np.testing.assert_array_equal(a, p.sample(10, seed=0))
    # an explicit rng= (what the job passes, keyed by its job key with n) is used as given
    g1, g2 = seeding.rng("k", 1), seeding.rng("k", 1)
    np.testing.assert_array_equal(p.sample(20, rng=g1)[:, 0], 2.0 * g2.beta(1.5, 1.5, 20) - 1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="nope", beta=1.0, d=1), "sym_beta"),
    (dict(name="sym_beta", beta=0.0, d=1), "beta"),
    (dict(name="sym_beta", beta=-1.0, d=1), "beta"),
    (dict(name="sym_beta", beta=math.nan, d=1), "beta"),
    (dict(name="sym_beta", beta=math.inf, d=1), "beta"),
    (dict(name="sym_beta", beta=True, d=1), "beta"),
    (dict(name="sym_beta", beta=1.0, d=0), "d must"),
    (dict(name="sym_beta", beta=1.0, d=1.5), "d must"),
    (dict(name="sym_beta", beta=1.0, d=2.0), "d must"),
    (dict(name="laplace", beta=1.5, d=1), "s < 3/2; beta must be < 1.5"),
    (dict(name="laplace", beta=2.0, d=3), "s < 3/2; beta must be < 1.5"),
])
def test_registry_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        sr.density(kwargs.pop("name"), **kwargs)
    assert "\n" not in str(info.value)


def test_attributes():
    p = sr.density("sym_beta", beta=1.25, d=3)
    assert (p.name, p.beta, p.d, p.smoothness) == ("sym_beta", 1.25, 3, 1.25)
    assert sr.density("laplace", beta=1.0, d=2).smoothness == 1.5
    assert sr.density("gauss_mix", beta=1.0, d=2).smoothness == math.inf


def test_argument_checks():
    p = sr.density("sym_beta", beta=1.0, d=2)
    for bad in (np.zeros(3), np.zeros((3, 3)), np.zeros((1, 2, 2))):
        with pytest.raises(ValueError, match=r"\(m, 2\)"):
            p.logpdf_t(bad, 1.0)
    for t in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="t must"):
            p.score_t(np.zeros((1, 2)), t)
    q = sr.density("sym_beta", beta=1.0, d=1)
    np.testing.assert_array_equal(q.logpdf(np.array([0.1, 0.2])),
                                  q.logpdf(np.array([[0.1], [0.2]])))


# ---------------------------------------------------------------------------- sampling
def test_sample_shape_and_seed_reproducible():
    p = sr.density("sym_beta_mix", beta=1.0, d=3)
    a = p.sample(500, seed=3)
    assert a.shape == (500, 3) and a.dtype == np.float64
    np.testing.assert_array_equal(a, p.sample(500, seed=3))
    assert not np.array_equal(a, p.sample(500, seed=4))
    b = p.sample(500, rng=seeding.rng("density-sample", "sym_beta_mix", 1.0, 3, 500, 3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, beta", CASES)
def test_sample_marginals_ks(name, beta):
    """Each coordinate's sample against the exact marginal cdf (box_prob of a half-space)."""
    p = sr.density(name, beta=beta, d=2)
    x = p.sample(4000, seed=11)
    lo_box, hi_box = p.support_box()
    for j in range(2):
        def cdf(v, j=j):
            v = np.atleast_1d(v)
            lo = np.tile(lo_box - 1.0, (v.size, 1))
            hi = np.tile(hi_box + 1.0, (v.size, 1))
            hi[:, j] = v
            lo[:, j] = np.minimum(lo[:, j], v)
            return p.box_prob(lo, hi)
        assert stats.kstest(x[:, j], cdf).pvalue > 1e-3


# ---------------------------------------------------------------------------- densities
@pytest.mark.parametrize("name, beta", CASES)
def test_pdf_integrates_to_one_1d(name, beta):
    p = sr.density(name, beta=beta, d=1)
    lo, hi = p.support_box()
    kinks = sorted({float(v) for v in np.concatenate([p.loc[:, 0] - p.scale[:, 0],
                                                      p.loc[:, 0], p.loc[:, 0] + p.scale[:, 0]])
                    if lo[0] < v < hi[0]})
    val, _ = integrate.quad(lambda v: p.pdf(np.array([[v]]))[0], lo[0], hi[0], points=kinks,
                            limit=400)
    assert val == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name, beta", [("sym_beta", 1.5), ("gauss_mix", 1.0),
                                        ("sym_beta_mix", 2.0)])
def test_pdf_integrates_to_one_2d(name, beta):
    p = sr.density(name, beta=beta, d=2)
    lo, hi = p.support_box()
    # Midpoint rule on a fine grid: error O(h^2) for these continuous densities.
    g = [np.linspace(lo[j], hi[j], 801) for j in range(2)]
    mids = [0.5 * (v[1:] + v[:-1]) for v in g]
    xx, yy = np.meshgrid(*mids, indexing="ij")
    f = p.pdf(np.column_stack([xx.ravel(), yy.ravel()]))
    h = np.prod([v[1] - v[0] for v in g])
    assert f.sum() * h == pytest.approx(1.0, abs=2e-4)


def test_pdf_t_2d_matches_dblquad_gauss_mix():
    """p_t(x) = int p0(y) phi_t(x - y) dy by scipy dblquad (a smooth case)."""
    p = sr.density("gauss_mix", beta=1.0, d=2)
    t = 0.3
    for x in ([0.4, -0.2], [2.5, 0.7], [-1.0, 1.0]):
        def f(y1, y0, x=x):
            q = np.array([[y0, y1]])
            return p.pdf(q)[0] * math.exp(-((x[0] - y0) ** 2 + (x[1] - y1) ** 2) / (2 * t)) \
                / (2 * math.pi * t)
        val, _ = integrate.dblquad(f, -6, 6, -4, 4, epsabs=1e-12, epsrel=1e-10)
        assert p.pdf_t(np.array([x]), t)[0] == pytest.approx(val, rel=1e-7)


def test_pdf_t_mixture_composition():
    """p_t of a d=2 mixture = sum_k w_k prod_j (1-D smoothed scaled shapes), built by hand
    from the d=1 shapes with 1-D quadrature of each factor (independent of the grouping)."""
    p = sr.density("sym_beta_mix", beta=1.0, d=2)
    shape = p.shapes[0][0]
    t = 0.05
    x = np.array([[-1.4, 0.1], [1.0, -0.3], [0.0, 0.9]])
    expect = np.zeros(len(x))
    for k in range(2):
        term = np.full(len(x), p.weights[k])
        for j in range(2):
            mu, s = p.loc[k, j], p.scale[k, j]
            for i, xi in enumerate(x[:, j]):
                def g(y, xi=xi, mu=mu, s=s):
                    return shape.pdf((y - mu) / s) / s * math.exp(-(xi - y) ** 2 / (2 * t)) \
                        / math.sqrt(2 * math.pi * t)
                term[i] *= integrate.quad(g, mu - s, mu + s, epsabs=0, epsrel=1e-12,
                                          limit=200)[0]
        expect += term
    np.testing.assert_allclose(p.pdf_t(x, t), expect, rtol=1e-8)


@pytest.mark.parametrize("name, beta", CASES)
@pytest.mark.parametrize("t", [1e-3, 0.1, 10.0])
def test_score_is_gradient_of_logpdf_t(name, beta, t):
    p = sr.density(name, beta=beta, d=2)
    x = p.sample(20, seed=5) + math.sqrt(t) * seeding.rng("score-fd", name, t).standard_normal(
        (20, 2))
    h = 1e-4 * math.sqrt(t)
    fd = np.empty_like(x)
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd[:, j] = (p.logpdf_t(x + e, t) - p.logpdf_t(x - e, t)) / (2 * h)
    sc = p.score_t(x, t)
    # central difference error ~ h^2 |d^3 log p_t| ~ 1e-8 / sqrt(t)
    np.testing.assert_allclose(sc, fd, rtol=1e-6, atol=1e-6 / math.sqrt(t))
    gp = p.grad_pdf_t(x, t)
    np.testing.assert_allclose(gp, p.pdf_t(x, t)[:, None] * sc, rtol=1e-12)


@pytest.mark.parametrize("name, beta", CASES)
def test_far_queries_and_tiny_t_finite(name, beta):
    p = sr.density(name, beta=beta, d=2)
    x = np.array([[1e6, -1e6], [-1e6, 3.0], [0.2, 0.1], [5.0, 5.0]])
    for t in (1e-12, 1e-6, 1.0, 1e4):
        lp, sc = p.logpdf_t(x, t), p.score_t(x, t)
        assert np.all(np.isfinite(lp)) and np.all(np.isfinite(sc))
        # the score of a far query points back towards the mass
        assert sc[0, 0] < 0 and sc[0, 1] > 0 and sc[1, 0] > 0


# ---------------------------------------------------------------------------- integrals
@pytest.mark.parametrize("name, beta", CASES)
def test_box_prob_vs_monte_carlo_and_partition(name, beta):
    p = sr.density(name, beta=beta, d=2)
    lo, hi = p.support_box()
    edges = [np.linspace(lo[j] - 1e-9, hi[j] + 1e-9, 6) for j in range(2)]
    edges = [np.concatenate([[-np.inf], e[1:-1], [np.inf]]) for e in edges]
    a, b = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    blo = np.column_stack([edges[0][a.ravel()], edges[1][b.ravel()]])
    bhi = np.column_stack([edges[0][a.ravel() + 1], edges[1][b.ravel() + 1]])
    prob = p.box_prob(blo, bhi)
    assert prob.sum() == pytest.approx(1.0, abs=1e-12)
    n = 40000
    x = p.sample(n, seed=2)
    inside = np.all((x[:, None, :] > blo) & (x[:, None, :] <= bhi), axis=2).mean(axis=0)
    se = np.sqrt(np.maximum(prob * (1 - prob), 1e-12) / n)
    assert np.all(np.abs(inside - prob) <= 5 * se + 1e-12)


def test_box_prob_far_tail_no_cancellation():
    """Upper-tail boxes come from sf, so tiny probabilities keep their relative accuracy."""
    p = sr.density("gauss_mix", beta=1.0, d=1)
    got = p.box_prob(np.array([[5.0]]), np.array([[6.0]]))[0]
    # component at +2, sd 0.5: 0.5 (Phi(-6) - Phi(-8)) + the far component's negligible share
    expect = 0.5 * (stats.norm.sf(6.0) - stats.norm.sf(8.0)) + 0.5 * (
        stats.norm.sf(14.0) - stats.norm.sf(16.0))
    assert got == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("name, beta", CASES)
def test_l2_norm_sq_vs_quadrature_1d(name, beta):
    p = sr.density(name, beta=beta, d=1)
    lo, hi = p.support_box()
    pts = sorted({float(v) for v in np.concatenate([p.loc[:, 0] - p.scale[:, 0], p.loc[:, 0],
                                                    p.loc[:, 0] + p.scale[:, 0]])
                  if lo[0] < v < hi[0]})
    val, _ = integrate.quad(lambda v: p.pdf(np.array([[v]]))[0] ** 2, lo[0], hi[0],
                            points=pts, limit=400)
    assert p.l2_norm_sq() == pytest.approx(val, rel=1e-6)


@pytest.mark.parametrize("name, beta", [("sym_beta", 1.0), ("sym_beta_mix", 1.0),
                                        ("gauss_mix", 1.0), ("laplace", 0.8)])
def test_l2_norm_sq_vs_monte_carlo_2d(name, beta):
    """int p0^2 = E_{X ~ p0} p0(X); 5 standard errors of the Monte Carlo mean."""
    p = sr.density(name, beta=beta, d=2)
    v = p.pdf(p.sample(200000, seed=9))
    assert abs(v.mean() - p.l2_norm_sq()) <= 5 * v.std() / math.sqrt(v.size)


def test_support_box_holds_the_mass():
    for name, beta in CASES:
        p = sr.density(name, beta=beta, d=3)
        lo, hi = p.support_box()
        assert p.box_prob(lo[None], hi[None])[0] == pytest.approx(1.0, abs=1e-11)
