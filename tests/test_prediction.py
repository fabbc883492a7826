"""Finite-n predictions for p̂_t0 against direct Monte Carlo over training sets and quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from scorerate import seeding
from scorerate.densities import density
from scorerate.densities.shapes import Gauss, SymBeta
from scorerate.metrics.samples import l2_kde
from scorerate.study.prediction import (
    expected_l2_sq,
    expected_tv,
    predict,
    prediction_dataset,
    smoothed_overlap,
)


def _training_sets(p0, n, sets, key):
    g = seeding.rng("test-prediction", *key)
    return np.stack([p0.sample(n, rng=g) for _ in range(sets)])  # (sets, n, d)


def _l2_sq_per_set(p0, X, t0):
    """||p̂ - p0||^2 per training set, closed form: n^-2 sum phi_2t0 - 2 mean p_t0 + int p0^2."""
    sets, n, d = X.shape
    diff = X[:, :, None, :] - X[:, None, :, :]
    kern = np.exp(-(diff ** 2).sum(-1) / (4 * t0)) / (4 * math.pi * t0) ** (d / 2)
    cross = p0.pdf_t(X.reshape(-1, d), t0).reshape(sets, n).mean(1)
    return kern.mean((1, 2)) - 2 * cross + p0.l2_norm_sq()


def _tv_per_set_1d(p0, X, t0, grid=2000):
    """TV(p0, p̂) per set by the midpoint rule (error ~1e-5, far below the MC error)."""
    lo, hi = p0.support_box()
    rs = math.sqrt(t0)
    edges = np.linspace(lo[0] - 10 * rs, hi[0] + 10 * rs, grid + 1)
    h = edges[1] - edges[0]
    xm = 0.5 * (edges[1:] + edges[:-1])
    p0x = p0.pdf(xm[:, None])
    out = np.empty(X.shape[0])
    for i, x in enumerate(X[:, :, 0]):
        ph = np.exp(-(xm[:, None] - x[None, :]) ** 2 / (2 * t0)).mean(1) / math.sqrt(
            2 * math.pi * t0)
        out[i] = 0.5 * h * np.abs(ph - p0x).sum()
    return out


def _edgeworth_allowance(p0, t0, n):
    """1/2 int |first Edgeworth term of E|p̂(x) - p0(x)|| dx (d = 1).

    With xi = phi_t0(x - X) - p_t0(x), sigma1^2 = Var xi, kappa3 = E xi^3 and
    a = (p_t0 - p0) / (sigma1 / sqrt n), the one-term Edgeworth expansion of the law of
    p̂(x) changes E|p̂ - p0| by -kappa3 a phi(a) / (3 n sigma1^2): the normal
    approximation's leading error, largest in the tails where few kernels contribute.
    """
    lo, hi = p0.support_box()
    rs = math.sqrt(t0)
    x = np.linspace(lo[0] - 12 * rs, hi[0] + 12 * rs, 20001)[:, None]
    pt, pz = p0.pdf_t(x, t0), p0.pdf(x)
    e2 = (4 * math.pi * t0) ** -0.5 * p0.pdf_t(x, t0 / 2)       # E phi^2
    e3 = (2 * math.pi * t0) ** -1 * 3 ** -0.5 * p0.pdf_t(x, t0 / 3)  # E phi^3
    var1 = np.maximum(e2 - pt ** 2, 1e-300)
    k3 = e3 - 3 * pt * e2 + 2 * pt ** 3
    a = (pt - pz) / np.sqrt(var1 / n)
    corr = k3 * a * np.exp(-a * a / 2) / math.sqrt(2 * math.pi) / (3 * n * var1)
    return 0.5 * (x[1, 0] - x[0, 0]) * float(np.abs(corr).sum())


CASES = [("sym_beta", 1, 50), ("gauss_mix", 1, 50), ("sym_beta", 1, 20), ("gauss_mix", 1, 100)]


@pytest.mark.parametrize(("name", "d", "n"), CASES)
def test_l2_and_tv_match_monte_carlo_over_training_sets_1d(name, d, n):
    # 1000 training sets of n draws at t0 = n^(-2/3) (the theory's t0 for beta = 1, d = 1).
    # E L2^2 is exact: agreement within 3.5 MC standard errors. E TV rests on the pointwise
    # normal approximation: allow 3.5 se plus twice its first Edgeworth term (below 10% of
    # TV here; measured gaps 0.3-5.5% for gauss_mix, whose tails have few kernels).
    p0 = density(name, 1.0, d)
    t0 = n ** (-2 / 3)
    X = _training_sets(p0, n, 1000, (name, d, n))
    l2 = _l2_sq_per_set(p0, X, t0)
    assert l2[0] == pytest.approx(l2_kde(X[0], t0, p0) ** 2, rel=1e-9)  # same closed form
    pred = expected_l2_sq(p0, t0, n)
    se = l2.std(ddof=1) / math.sqrt(len(l2))
    assert abs(l2.mean() - pred["total"]) < 3.5 * se
    assert 0 < pred["bias_share"] < 1
    tv = _tv_per_set_1d(p0, X, t0)
    ptv = expected_tv(p0, t0, n)
    allow = 2 * _edgeworth_allowance(p0, t0, n)
    assert allow < 0.1 * ptv["tv"]
    assert abs(tv.mean() - ptv["tv"]) < 3.5 * tv.std(ddof=1) / math.sqrt(len(tv)) + allow
    assert ptv["tv_bias"] < ptv["tv"]  # the noise only adds (E|m + noise| >= |m|)


@pytest.mark.parametrize("name", ["sym_beta", "gauss_mix"])
def test_l2_matches_monte_carlo_2d(name):
    p0 = density(name, 1.0, 2)
    n, t0 = 40, 40 ** -0.5
    X = _training_sets(p0, n, 1000, (name, 2, n))
    l2 = _l2_sq_per_set(p0, X, t0)
    pred = expected_l2_sq(p0, t0, n)["total"]
    assert abs(l2.mean() - pred) < 3.5 * l2.std(ddof=1) / math.sqrt(len(l2))


def _fine_rule(a, b, edges, pieces=3000, nodes=20):
    """Composite 20-point Gauss-Legendre on [a, b]: 3000 equal pieces, graded by powers of
    10 (down to 1e-9) towards each edge (independent of prediction._axis_rule)."""
    br = set(np.linspace(a, b, pieces + 1))
    for e in edges:
        br.update(e + sgn * 10.0 ** -k for k in range(1, 10) for sgn in (-1, 1))
    br = np.array(sorted(v for v in br if a <= v <= b))
    z, w = np.polynomial.legendre.leggauss(nodes)
    half, mid = 0.5 * np.diff(br), 0.5 * (br[1:] + br[:-1])
    return (mid[:, None] + half[:, None] * z).ravel(), (half[:, None] * w).ravel()


@pytest.mark.parametrize(("name", "beta"), [("sym_beta", 1.0), ("sym_beta", 0.75),
                                            ("sym_beta", 2.0), ("sym_beta", 2.5),
                                            ("gauss_mix", 1.0), ("sym_beta_mix", 1.0)])
@pytest.mark.parametrize("t0", [0.05, 1e-3])
def test_bias_terms_against_direct_quadrature(name, beta, t0):
    # ||p_t0 - p0||^2 and ||p_t0 - p0||_1 by a fine quadrature of the pointwise difference
    # (p0.pdf_t, p0.pdf), independent of the pairwise-overlap formula and the TV rule
    p0 = density(name, beta, 1)
    lo, hi = p0.support_box()
    rs = math.sqrt(t0)
    edges = [float(v) for k in range(len(p0.weights))
             for v in (p0.loc[k, 0] - p0.scale[k, 0], p0.loc[k, 0] + p0.scale[k, 0])]
    x, w = _fine_rule(lo[0] - 12 * rs, hi[0] + 12 * rs, edges)
    diff = p0.pdf_t(x[:, None], t0) - p0.pdf(x[:, None])
    ref2, ref1 = float(w @ diff ** 2), float(w @ np.abs(diff))
    assert expected_l2_sq(p0, t0, 100)["bias_sq"] == pytest.approx(ref2, rel=1e-7)
    assert expected_tv(p0, t0, 100)["tv_bias"] == pytest.approx(0.5 * ref1, rel=2e-4)


def test_smoothed_overlap_closed_form_and_symmetry():
    g = Gauss()
    # Gaussians: N(ma - mb; 0, ca^2 + cb^2 + s)
    v = 0.25 + 0.64 + 0.1
    assert smoothed_overlap(g, 0.3, 0.5, g, -0.2, 0.8, 0.1) == pytest.approx(
        math.exp(-0.125 / v) / math.sqrt(2 * math.pi * v), rel=1e-14)
    # int (f_a * phi_s) f_b = int f_a (f_b * phi_s): the quadrature smooths only one side
    s = SymBeta(0.5)
    u = SymBeta(1.5)
    ab = smoothed_overlap(s, 0.1, 0.8, u, -0.3, 1.2, 0.02)
    ba = smoothed_overlap(u, -0.3, 1.2, s, 0.1, 0.8, 0.02)
    assert ab == pytest.approx(ba, rel=1e-9)
    # SymBeta against a Gaussian: direct quad of the smoothed Gaussian times the SymBeta
    sg = smoothed_overlap(g, 0.2, 0.5, s, 0.0, 1.0, 0.05)
    sd = math.sqrt(0.25 + 0.05)
    ref = integrate.quad(lambda x: float(s.pdf(np.array([x]))[0]) * math.exp(
        -0.5 * ((x - 0.2) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), -1, 1,
        epsabs=0, epsrel=1e-12)[0]
    assert sg == pytest.approx(ref, rel=1e-9)


def test_tv_importance_sampling_agrees_with_tensor_grid_in_2d():
    # the d >= 3 route (importance sampling from (p0 + p_t0)/2) run in d = 2 against the grid
    p0 = density("sym_beta", 1.0, 2)
    t0, n = 0.01, 1000
    grid = expected_tv(p0, t0, n)
    mc = expected_tv(p0, t0, n, method="importance", n_mc=100_000)
    assert grid["method"] == "tensor grid" and mc["method"] == "importance sampling"
    assert 0 < mc["se"] < 0.01 * mc["tv"]
    assert abs(mc["tv"] - grid["tv"]) < 4 * mc["se"]
    assert abs(mc["tv_bias"] - grid["tv_bias"]) < 4 * mc["se_bias"]


def test_predict_slopes_and_study_keys():
    p0 = density("sym_beta", 1.0, 1)
    ns = np.array([100.0, 1000.0, 10000.0])
    r = predict(p0, ns)
    # sqrt(E L2^2) falls with n; its local slope is finite and between -1/2 and 0
    assert np.all(np.diff(r["l2"]) < 0) and np.all(np.diff(r["tv"]) < 0)
    assert np.all((r["slope_l2"] < 0) & (r["slope_l2"] > -0.5))
    assert np.all((r["slope_tv"] < 0) & (r["slope_tv"] > -0.5))
    # bias share: variance and bias balanced at the theory's t0 (neither negligible)
    assert np.all((r["l2_bias_share"] > 0.02) & (r["l2_bias_share"] < 0.98))
    with pytest.raises(ValueError, match="t0"):
        expected_l2_sq(p0, 0.0, 10)
    import xarray as xr

    study = xr.Dataset(coords={"density": ["sym_beta"], "beta": [1.0], "d": [1],
                               "n": ns.astype(int)})
    out = prediction_dataset(study)
    assert {"tv_pred", "l2_pred", "tv_bias_pred", "l2_bias_share"} <= set(out.data_vars)
    assert out["l2_pred"].dims == ("density", "beta", "d", "n")
    assert out["l2_pred"].attrs["long_name"]
    np.testing.assert_allclose(out["l2_pred"].values.ravel(), r["l2"], rtol=1e-12)
    np.testing.assert_allclose(out["tv_pred"].values.ravel(), r["tv"], rtol=1e-12)
