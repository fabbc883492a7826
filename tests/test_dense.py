"""The compiled `dense` backend against the NumPy reference, mpmath, and itself (determinism)."""

from __future__ import annotations

import math

import mpmath
import numba
import numpy as np
import pytest

from scorerate.engine.base import BACKENDS
from scorerate.engine.dense import Q_BLOCK, Dense, _exp_nonpos
from scorerate.engine.numpy_dense import NumpyDense
from scorerate.seeding import rng


def _data(n, m, d, key):
    g = rng("test_dense", key, n, m, d)
    return g.standard_normal((n, d)), 1.5 * g.standard_normal((m, d))


def test_registered():
    assert BACKENDS["dense"] is Dense


@numba.njit
def _exp_vec(e):
    out = np.empty_like(e)
    for i in range(e.size):
        out[i] = _exp_nonpos(e[i])
    return out


def test_inlined_exp_matches_libm():
    # Oracle: numpy's exp (correctly rounded to <1 ulp); ours must be within a few ulp.
    e = -np.concatenate([np.linspace(0, 708, 200_001), rng("exp").uniform(0, 50, 100_000)])
    got, ref = _exp_vec(e), np.exp(e)
    assert np.max(np.abs(got / ref - 1)) < 1e-15
    assert _exp_vec(np.array([0.0]))[0] == 1.0
    # below the floor the weight is clamped to exp(-708) (normal, never 0 or subnormal)
    assert _exp_vec(np.array([-1e300, -np.inf]))[0] == pytest.approx(math.exp(-708), rel=1e-15)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("t", [1e-4, 1e-2, 1.0, 1e2])
def test_matches_numpy_reference(d, t):
    X, x = _data(700, 300, d, "ref")
    lp, mu = Dense(X).sums(x, t)
    lp_ref, mu_ref = NumpyDense(X, n_block=256).sums(x, t)
    # logp is O(1..1e5) in magnitude: 1e-12 relative, measured on the exponent scale
    np.testing.assert_allclose(lp, lp_ref, rtol=1e-12, atol=1e-12)
    # mean is a convex combination of points of size O(1): 1e-12 absolute ~ relative
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-12, atol=1e-12)


def _mp_sums(X, xq, t):
    """logp and mean in 50-digit arithmetic, the direct (non-log-space) definition."""
    mpmath.mp.dps = 50
    n, d = X.shape
    t = mpmath.mpf(t)
    ws = [mpmath.exp(-sum((mpmath.mpf(xq[k]) - mpmath.mpf(X[i, k])) ** 2 for k in range(d))
                     / (2 * t)) for i in range(n)]
    s = mpmath.fsum(ws)
    logp = mpmath.log(s / n) - mpmath.mpf(d) / 2 * mpmath.log(2 * mpmath.pi * t)
    mean = [mpmath.fsum(w * mpmath.mpf(X[i, k]) for i, w in enumerate(ws)) / s for k in range(d)]
    return float(logp), np.array([float(v) for v in mean])


@pytest.mark.parametrize("t", [1e-3, 0.3, 50.0])
def test_matches_mpmath(t):
    X, x = _data(40, 6, 2, "mp")
    x[0] = [30.0, -20.0]  # far in the tail: p̂ ~ exp(-600 / t) underflows in plain float64
    lp, mu = Dense(X).sums(x, t)
    for q in range(x.shape[0]):
        lp_mp, mu_mp = _mp_sums(X, x[q], t)
        assert lp[q] == pytest.approx(lp_mp, rel=1e-13, abs=1e-13)
        np.testing.assert_allclose(mu[q], mu_mp, rtol=1e-13, atol=1e-13)


def test_finite_far_away_and_tiny_t():
    # Queries 1e6 away, t = 1e-12: exponents ~ -5e23; log space keeps everything finite and the
    # softmax mean collapses exactly onto the nearest training point (all others weigh 0).
    X, _ = _data(500, 1, 3, "far")
    x = np.array([[1e6, 0.0, 0.0], [-1e6, 3e5, 1.0], [0.0, 0.0, -1e6]])
    for t in (1e-12, 1.0, 1e6):
        lp, mu = Dense(X).sums(x, t)
        assert np.all(np.isfinite(lp)) and np.all(np.isfinite(mu))
    lp, mu = Dense(X).sums(x, 1e-12)
    nearest = X[np.argmin(((x[:, None, :] - X[None]) ** 2).sum(-1), axis=1)]
    np.testing.assert_array_equal(mu, nearest)
    d2 = ((x - nearest) ** 2).sum(1)
    expected = -d2 / 2e-12 - math.log(500) - 1.5 * math.log(2 * math.pi * 1e-12)
    np.testing.assert_allclose(lp, expected, rtol=1e-15)


def test_bit_identical_for_threads_and_splits():
    X, x = _data(2000, 3 * Q_BLOCK + 17, 2, "det")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        lp1, mu1 = Dense(X).sums(x, 0.05)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        lp2, mu2 = Dense(X).sums(x, 0.05)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(lp1, lp2)
    np.testing.assert_array_equal(mu1, mu2)
    # different splits put each query at another lane of another block: same bits
    for cuts in ([1], [5, 300], [Q_BLOCK - 1, Q_BLOCK + 3, 700]):
        parts = [Dense(X).sums(c, 0.05) for c in np.split(x, cuts)]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), lp1)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), mu1)


def test_empty_and_single():
    X, x = _data(10, 1, 2, "edge")
    lp, mu = Dense(X).sums(np.empty((0, 2)), 1.0)
    assert lp.shape == (0,) and mu.shape == (0, 2)
    lp, mu = Dense(X[:1]).sums(x, 1.0)  # one training point: closed form
    d2 = ((x - X[:1]) ** 2).sum()
    assert lp[0] == pytest.approx(-d2 / 2 - math.log(2 * math.pi), rel=1e-14)
    np.testing.assert_array_equal(mu[0], X[0])
