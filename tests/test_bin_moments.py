"""The bins' Taylor moments (engine/bin_moments.py) against sums in 50-digit arithmetic, and
the cutoff backend's choice of them.

Claim under test: every query's log sum_i w_i and mean agree with the exact values to a few
units of float64 rounding (tolerance 1e-13 here, against ~1e-15 measured), near the data,
inside it and far off it, for data of small and wide spread and any t; and the cutoff
backend in d = 1 takes that path exactly where a query's ball holds most of a large
training set, so its results there are the exact sums (no point dropped).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from scorerate.engine import GaussianEngine
from scorerate.engine.bin_moments import RHO, TERMS, bin_moment_sums, worth_it
from scorerate.engine.cutoff import Cutoff
from scorerate.seeding import rng

TOL = 1e-13


def exact_sums(xs: np.ndarray, xq: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """log sum_i exp(-(x - X_i)^2 / 2t) and the weights' mean of the X_i, in 50 digits."""
    mpmath.mp.dps = 50
    T = mpmath.mpf(t)
    logs, means = [], []
    for x in xq:
        xm = mpmath.mpf(float(x))
        w = [mpmath.exp(-(xm - mpmath.mpf(float(v))) ** 2 / (2 * T)) for v in xs]
        s = mpmath.fsum(w)
        logs.append(float(mpmath.log(s)))
        means.append(float(mpmath.fsum(wi * mpmath.mpf(float(v)) for wi, v in zip(w, xs,
                                                                                  strict=True))
                           / s))
    return np.array(logs), np.array(means)


def test_terms_meet_the_stated_truncation_bound():
    """K + 1 = TERMS terms: rho^(K+1) e^(2 rho) / (K+1)! <= 2^-56, and one fewer would not."""
    def bound(K):
        return RHO ** (K + 1) * math.exp(2 * RHO) / math.factorial(K + 1)

    K = TERMS - 1
    assert bound(K) <= 2.0 ** -56 < bound(K - 1)


@pytest.mark.parametrize("span", [2.0, 24.0])
@pytest.mark.parametrize("t", [1e-4, 1e-2, 1.0, 100.0])
def test_sums_agree_with_50_digit_sums(span, t):
    g = rng("test_bin_moments", span, t)
    xs = np.sort(np.concatenate([g.uniform(-span / 2, span / 2, 150),
                                 0.3 + 1e-3 * g.standard_normal(50)]))  # a tight cluster
    st = math.sqrt(t)
    xq = np.concatenate([g.uniform(-span, span, 12),  # inside and beside the data
                         xs[-1] + st * np.array([1.0, 5.0, 10.0, 30.0, 100.0]),
                         xs[0] - st * np.array([3.0, 20.0])])
    logs, mean = bin_moment_sums(xs, xq, t)
    ref_logs, ref_mean = exact_sums(xs, xq, t)
    assert np.all(np.abs(logs - ref_logs) <= TOL * np.maximum(1.0, np.abs(ref_logs)))
    scale = np.maximum(np.abs(ref_mean - xq), st)  # the score's natural scale
    assert np.all(np.abs(mean - ref_mean) <= TOL * scale)


def test_one_point_and_equal_points():
    """No spread: one bin of width 0; the sums are n copies of one kernel."""
    for xs in (np.array([0.5]), np.full(7, -2.0)):
        logs, mean = bin_moment_sums(xs, np.array([0.5, 40.0]), 1.0)
        d = np.array([0.5, 40.0]) - xs[0]
        assert np.allclose(logs, math.log(xs.size) - d * d / 2.0, rtol=1e-15, atol=0)
        assert np.allclose(mean, xs[0], rtol=1e-15, atol=0)


def test_a_query_needing_too_many_bins_is_refused():
    with pytest.raises(ValueError, match="bins needed"):
        bin_moment_sums(np.array([0.0, 1.0]), np.array([1e100]), 1.0)


def test_worth_it_only_where_the_ball_holds_many_points():
    n = 30000
    span, t = 2.0, 1.0
    dist = np.array([31.0] * 10 + [1.5])
    assert worth_it(np.array([n] * 10 + [50]), dist, span, t, n).tolist() == [True] * 10 + [
        False]
    # two such queries do not pay for the call's moments (n (K + 2) terms)
    assert not worth_it(np.array([n, n]), dist[:2], span, t, n).any()
    # a small training set never pays for its moments
    assert not worth_it(np.array([40, 40]), np.array([31.0, 31.0]), span, t, 40).any()
    # an extreme query (inf bins) is never chosen
    assert not worth_it(np.array([n]), np.array([1e300]), span, 1e-300, n).any()


def test_cutoff_far_queries_are_the_exact_sums():
    """Cutoff in d = 1, queries 3-30 sqrt(t) off data of spread 2 at t = 10 (every point in
    the ball: the grid score's exact fallback of a 1-D law): the moments path is taken, and
    its logp and mean equal the 50-digit sums over all n points."""
    g = rng("test_bin_moments", "cutoff")
    X = g.uniform(-1.0, 1.0, 4000)
    t = 10.0
    off = math.sqrt(t) * np.array([3.0, 7.0, 12.0, 20.0, 30.0])
    xq = np.concatenate([1.0 + off, -1.0 - off])
    c = Cutoff(X[:, None], 1e-6)
    R = c.radii(xq[:, None], t)[1]
    kept = np.searchsorted(c._sorted, xq + R, "right") - np.searchsorted(c._sorted, xq - R)
    assert np.all(kept == X.size)  # the ball holds all n points
    dist = np.maximum(np.abs(xq - X.min()), np.abs(xq - X.max()))
    assert worth_it(kept, dist, float(np.ptp(X)), t, X.size).all()  # the path taken
    logp, mean = GaussianEngine(X[:, None], backend="cutoff").sums(xq[:, None], t)
    ref_logs, ref_mean = exact_sums(X, xq, t)
    log_norm = -math.log(X.size) - 0.5 * math.log(2 * math.pi * t)
    assert np.all(np.abs(logp - (ref_logs + log_norm)) <= TOL * np.abs(ref_logs + log_norm))
    assert np.all(np.abs(mean[:, 0] - ref_mean) <= TOL * np.abs(ref_mean - xq))
