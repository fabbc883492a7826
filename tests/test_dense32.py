"""The float32 `dense32` backend: its exp, and its accuracy against the float64 `dense`."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from scorerate.engine import GaussianEngine, choose_backend
from scorerate.engine.dense import Dense
from scorerate.engine.dense32 import Dense32, _exp32, expected_error
from scorerate.seeding import rng

#: what the module promises is a typical error; the tests allow 3x that, no more
SLACK = 3.0
TOL = 2e-5


@numba.njit
def _exp_vec(e):
    out = np.empty_like(e)
    for i in range(e.size):
        out[i] = _exp32(e[i])
    return out


def test_float32_exp_matches_libm_to_a_few_ulp():
    e = -np.concatenate([np.linspace(0, 87, 100_001), rng("exp32").uniform(0, 20, 50_000)])
    e = e.astype(np.float32)
    got = _exp_vec(e).astype(np.float64)
    ref = np.exp(e.astype(np.float64))  # exact exp of the float32 argument
    assert np.max(np.abs(got / ref - 1)) < 4 * np.finfo(np.float32).eps
    assert _exp_vec(np.array([0.0], dtype=np.float32))[0] == 1.0


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


def test_finite_far_away_and_at_tiny_t():
    X = rng("test_dense32-far").standard_normal((500, 2))
    x = np.array([[1e6, -1e6], [0.3, 0.1], [-40.0, 2.0]])
    for t in (1e-12, 1e-3, 1e4):
        lp, mu = Dense32(X).sums(x, t)
        assert np.all(np.isfinite(lp)) and np.all(np.isfinite(mu))


def test_dispatcher_offers_float32_only_for_a_loose_tolerance():
    assert choose_backend(10**5, 10**4, 2, 1.0, 1e-6) != "dense32"
    assert choose_backend(10**5, 10**4, 8, 1.0, 1e-3) == "dense32"
    # at tiny t the rounding of the inputs dominates: no float32 even for rtol 1e-4
    assert choose_backend(10**5, 10**4, 8, 1e-8, 1e-4) != "dense32"
    X = rng("test_dense32-engine").standard_normal((300, 1))
    lp, _ = GaussianEngine(X, backend="dense32").sums(X[:5], 0.5)
    ref, _ = GaussianEngine(X, backend="dense").sums(X[:5], 0.5)
    assert np.max(np.abs(lp - ref)) < TOL
