"""The compiled `dense` (float64) and `dense32` (float32) backends, one kernel in two precisions.

Both against exact oracles (libm exp, the NumPy reference, mpmath) and against themselves
(bit-identity over threads and query splits); dense32 against dense within its stated error.
"""

from __future__ import annotations

import math

import mpmath
import numba
import numpy as np
import pytest

from scorerate.engine import GaussianEngine, choose_backend
from scorerate.engine.base import BACKENDS
from scorerate.engine.dense import Q_BLOCK, Dense, _exp_nonpos
from scorerate.engine.dense32 import Dense32, _exp32, expected_error
from scorerate.engine.numpy_dense import NumpyDense
from scorerate.seeding import rng

#: what dense32 promises is a typical error; the tests allow 3x that, no more
SLACK = 3.0
TOL = 2e-5

#: name -> (class, exp, float type, floor of the exp's argument, max relative exp error)
PRECISIONS = {
    "dense": (Dense, _exp_nonpos, np.float64, 708.0, 1e-15),
    "dense32": (Dense32, _exp32, np.float32, 87.0, 4 * np.finfo(np.float32).eps),
}


def _data(n, m, d, key):
    g = rng("test_dense", key, n, m, d)
    return g.standard_normal((n, d)), 1.5 * g.standard_normal((m, d))


@numba.njit
def _exp_vec64(e):
    out = np.empty_like(e)
    for i in range(e.size):
        out[i] = _exp_nonpos(e[i])
    return out


@numba.njit
def _exp_vec32(e):
    out = np.empty_like(e)
    for i in range(e.size):
        out[i] = _exp32(e[i])
    return out


@pytest.mark.parametrize("name", PRECISIONS)
def test_registered(name):
    assert BACKENDS[name] is PRECISIONS[name][0]


@pytest.mark.parametrize("name", PRECISIONS)
def test_inlined_exp_matches_libm(name):
    # Oracle: numpy's float64 exp of the same argument (< 1 ulp); ours within a few ulp.
    _, _, ftype, floor, tol = PRECISIONS[name]
    vec = _exp_vec64 if ftype is np.float64 else _exp_vec32
    e = -np.concatenate([np.linspace(0, floor, 200_001), rng("exp", name).uniform(0, 50, 100_000)])
    e = e.astype(ftype)
    got, ref = vec(e).astype(np.float64), np.exp(e.astype(np.float64))
    assert np.max(np.abs(got / ref - 1)) < tol
    assert vec(np.array([0.0], dtype=ftype))[0] == 1.0
    # below the floor the weight is clamped to exp(-floor) (normal, never 0 or subnormal)
    low = vec(np.array([-1e30, -np.inf], dtype=ftype)).astype(np.float64)
    np.testing.assert_allclose(low, math.exp(-floor), rtol=tol)


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


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("t", [1e-4, 1e-2, 1.0, 1e2])
def test_within_tolerance_of_float64_above_the_truncation_level(d, t):
    g = rng("test_dense32", d, t)
    n = 2000
    X = g.standard_normal((n, d)) + 3.0  # off-centre data: the centring must handle it
    x = np.concatenate([X[:200] + math.sqrt(t) * g.standard_normal((200, d)),
                        3.0 + 2.0 * g.standard_normal((300, d))])
    lp, mu = Dense(X).sums(x, t)
    lp32, mu32 = Dense32(X).sums(x, t)
    assert np.all(np.isfinite(lp32)) and np.all(np.isfinite(mu32))
    # where p̂ is above rho_n = 1/(n t^(d/2)), and (so that small t in d >= 2, where almost
    # nothing clears rho_n, is tested too) down to e^-10 rho_n
    keep = lp > -math.log(n) - 0.5 * d * math.log(t) - 10.0
    assert keep.sum() >= 100
    extent = float(np.max(np.abs(X - X.mean(axis=0))))
    tol = SLACK * expected_error(t, extent)
    assert np.max(np.abs(np.expm1(lp32[keep] - lp[keep]))) < tol
    # score error relative to max(|s|, 1/sqrt t), as the engine's tolerance is stated
    s, s32 = (mu - x) / t, (mu32 - x) / t
    scale = np.maximum(np.linalg.norm(s, axis=1), 1 / math.sqrt(t))[keep]
    assert np.max(np.linalg.norm(s32 - s, axis=1)[keep] / scale) < tol


@pytest.mark.parametrize("name", PRECISIONS)
def test_finite_far_away_and_tiny_t(name):
    # Queries 1e6 away, t = 1e-12: exponents ~ -5e23; log space keeps everything finite and the
    # softmax mean collapses onto the nearest training point (all others weigh 0).
    cls = PRECISIONS[name][0]
    X, _ = _data(500, 1, 3, "far")
    x = np.array([[1e6, 0.0, 0.0], [-1e6, 3e5, 1.0], [0.0, 0.0, -1e6]])
    for t in (1e-12, 1e-3, 1.0, 1e6):
        lp, mu = cls(X).sums(x, t)
        assert np.all(np.isfinite(lp)) and np.all(np.isfinite(mu))
    lp, mu = cls(X).sums(x, 1e-12)
    nearest = X[np.argmin(((x[:, None, :] - X[None]) ** 2).sum(-1), axis=1)]
    if name == "dense":  # exact: the same bits as the nearest point and the closed form
        np.testing.assert_array_equal(mu, nearest)
        d2 = ((x - nearest) ** 2).sum(1)
        expected = -d2 / 2e-12 - math.log(500) - 1.5 * math.log(2 * math.pi * 1e-12)
        np.testing.assert_allclose(lp, expected, rtol=1e-15)
    else:  # float32 inputs: the nearest point to float32 rounding of the centred data
        np.testing.assert_allclose(mu, nearest, atol=1e-6)


@pytest.mark.parametrize("name", PRECISIONS)
def test_bit_identical_for_threads_and_splits(name):
    cls = PRECISIONS[name][0]
    X, x = _data(2000, 3 * Q_BLOCK + 17, 2, "det")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        lp1, mu1 = cls(X).sums(x, 0.05)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        lp2, mu2 = cls(X).sums(x, 0.05)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(lp1, lp2)
    np.testing.assert_array_equal(mu1, mu2)
    # different splits put each query at another lane of another block: same bits
    for cuts in ([1], [5, 300], [Q_BLOCK - 1, Q_BLOCK + 3, 700]):
        parts = [cls(X).sums(c, 0.05) for c in np.split(x, cuts)]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), lp1)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), mu1)


@pytest.mark.parametrize("name", PRECISIONS)
def test_empty_and_single(name):
    cls = PRECISIONS[name][0]
    rel = 1e-14 if name == "dense" else 1e-6
    X, x = _data(10, 1, 2, "edge")
    lp, mu = cls(X).sums(np.empty((0, 2)), 1.0)
    assert lp.shape == (0,) and mu.shape == (0, 2)
    lp, mu = cls(X[:1]).sums(x, 1.0)  # one training point: closed form
    d2 = ((x - X[:1]) ** 2).sum()
    assert lp[0] == pytest.approx(-d2 / 2 - math.log(2 * math.pi), rel=rel)
    np.testing.assert_allclose(mu[0], X[0], rtol=0, atol=0 if name == "dense" else 1e-12)


def test_dispatcher_offers_float32_only_for_a_loose_tolerance():
    assert choose_backend(10**5, 10**4, 2, 1.0, 1e-6) != "dense32"
    assert choose_backend(10**5, 10**4, 8, 1.0, 1e-3) == "dense32"
    # at tiny t the rounding of the inputs dominates: no float32 even for rtol 1e-4
    assert choose_backend(10**5, 10**4, 8, 1e-8, 1e-4) != "dense32"
    X = rng("test_dense32-engine").standard_normal((300, 1))
    lp, _ = GaussianEngine(X, backend="dense32").sums(X[:5], 0.5)
    ref, _ = GaussianEngine(X, backend="dense").sums(X[:5], 0.5)
    assert np.max(np.abs(lp - ref)) < TOL
