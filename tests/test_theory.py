"""Theory constants: definitions checked against their defining relations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorerate import theory
from scorerate.store.variables import exponent


@pytest.mark.parametrize("beta,d", [(0.5, 1), (1.0, 2), (1.5, 3), (2.0, 1), (0.75, 8)])
def test_t0_and_T_satisfy_their_relations(beta, d):
    n = 1234
    t0, T = theory.t0_early_stop(n, beta, d), theory.T_horizon(n, beta, d)
    # t0 is the KDE bandwidth^2 of the minimax KDE: sqrt(t0) = n^(-1/(2 beta + d)).
    assert math.isclose(math.log(t0) / math.log(n), -2 / (2 * beta + d), rel_tol=1e-12)
    # T = t0^(-beta): the horizon where the Gaussian start's error matches the rate.
    assert math.isclose(T, t0 ** (-beta), rel_tol=1e-12)
    assert t0 < 1 < T


def test_integrated_exponent_is_n_to_minus_one_times_t0_to_minus_d_over_2():
    for beta, d in [(0.5, 1), (1.0, 2), (2.0, 3)]:
        n1, n2 = 1e3, 1e5
        # n^-1 t0^(-d/2): the integrated score error of Theorem 3.8's proof, on two n.
        v = [n ** -1 * theory.t0_early_stop(n, beta, d) ** (-d / 2) for n in (n1, n2)]
        slope = math.log(v[1] / v[0]) / math.log(n2 / n1)
        assert math.isclose(slope, theory.integrated_score_exponent(beta, d), rel_tol=1e-12)


def test_rho_n_and_its_log_agree_and_log_stays_finite():
    assert math.isclose(theory.rho_n(100, 0.5, 2, 3.0), 3.0 / (100 * 0.5), rel_tol=1e-14)
    assert np.isfinite(theory.log_rho_n(10**6, 1e-300, 8))


def test_exponents_and_unknown_metric():
    assert exponent("tv", 1.0, 2) == -0.25
    assert exponent("score_mse", 1.0, 2) == -1.0
    assert math.isnan(exponent("w1", 1.0, 2))
    assert theory.score_mse_t_exponent(3, "small") == -2.5
    assert theory.score_mse_t_exponent(3, "large") == -1.0
    with pytest.raises(ValueError, match="unknown metric"):
        exponent("nope", 1.0, 1)
    with pytest.raises(ValueError, match="t_regime"):
        theory.score_mse_t_exponent(1, "medium")


@pytest.mark.parametrize("beta,d", [(0.0, 1), (-1.0, 1), (float("inf"), 1), (1.0, 0), (1.0, 1.5)])
def test_bad_beta_or_d_rejected(beta, d):
    with pytest.raises(ValueError):
        theory.t0_early_stop(100, beta, d)
