"""Rates: slopes recovered from synthetic power laws, bootstrap CIs, degenerate cases."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from scorerate import seeding
from scorerate.aggregate import combine_runs
from scorerate.rates import (
    COLUMNS,
    bootstrap_means,
    fit_slope,
    rate_table,
    slope_with_ci,
    verdict,
)
from scorerate.variables import exponent as theory_exponent

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import make_run  # noqa: E402

NS = np.array([100, 200, 400, 800, 1600, 3200])


def _power_law(slope, *, seeds=8, noise=0.2, key="pl"):
    g = seeding.rng("test-rates", key)
    return 3.0 * NS[:, None] ** slope * np.exp(noise * g.standard_normal((len(NS), seeds)))


def test_fit_slope_exact_on_noiseless_power_law():
    # y = 5 x^-0.7 exactly: least squares in log-log returns -0.7 to rounding
    assert fit_slope(NS, 5.0 * NS ** -0.7) == pytest.approx(-0.7, abs=1e-12)


def test_fit_slope_skips_nan_and_nonpositive_and_needs_two_points():
    y = 2.0 * NS ** -1.0
    y[1], y[3] = np.nan, 0.0
    assert fit_slope(NS, y) == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(fit_slope(NS[:1], y[:1]))
    assert math.isnan(fit_slope(NS, np.full(len(NS), np.nan)))


@pytest.mark.parametrize("slope", [-1.0, -0.4, -0.2])
def test_ci_covers_true_slope_under_noise(slope):
    # 20% log-normal noise, 8 seeds, 6 n over 1.5 decades: the 95% CI must cover the truth
    # (fixed seeds, so this is deterministic) and be reasonably tight (< 0.25 wide).
    fit = slope_with_ci(NS, _power_law(slope, key=slope), key=("t", slope))
    assert fit["ci_low"] <= slope <= fit["ci_high"]
    assert fit["ci_high"] - fit["ci_low"] < 0.25
    assert abs(fit["slope"] - slope) < 0.1
    assert fit["num_points"] == len(NS) and fit["num_seeds"] == 8


def test_ci_coverage_rate_is_near_nominal():
    # Over 60 independent synthetic studies the 95% percentile CI should cover the truth in
    # most of them; with 8 seeds the percentile bootstrap under-covers somewhat, so we ask
    # for >= 80% (a bug such as fitting the wrong axis or a zero-width CI gives ~0%).
    hits = 0
    for rep in range(60):
        fit = slope_with_ci(NS, _power_law(-0.5, key=("cov", rep)), key=("cov", rep),
                            n_boot=300)
        hits += fit["ci_low"] <= -0.5 <= fit["ci_high"]
    assert hits >= 48


def test_ci_is_reproducible_and_keyed():
    v = _power_law(-0.5)
    a = slope_with_ci(NS, v, key=("k", 1))
    b = slope_with_ci(NS, v, key=("k", 1))
    c = slope_with_ci(NS, v, key=("k", 2))
    assert a == b
    assert a["ci_low"] != c["ci_low"]


def test_bootstrap_means_unpaired_and_paired():
    g = seeding.rng("boot")
    v = g.standard_normal((3, 5))
    v[1, 2] = np.nan
    b = bootstrap_means(v, n_boot=2000, rng=seeding.rng("b1"))
    assert b.shape == (2000, 3)
    # the bootstrap mean of means equals the sample mean (NaN seed left out) to MC error
    np.testing.assert_allclose(b.mean(0), np.nanmean(v, axis=1), atol=0.1)
    # paired: every replicate uses the same seed indices for all rows, so for rows that are
    # exact shifts of each other the replicate differences are constant
    w = np.vstack([v[0], v[0] + 1.0])
    p = bootstrap_means(w, n_boot=100, rng=seeding.rng("b2"), paired=True)
    np.testing.assert_allclose(p[:, 1] - p[:, 0], 1.0, atol=1e-12)


def test_degenerate_one_n_and_all_nan():
    one = slope_with_ci(NS[:1], _power_law(-0.5)[:1], key=("one",))
    assert math.isnan(one["slope"]) and math.isnan(one["ci_low"])
    assert verdict(one, -0.5) == "not enough data"
    nan = slope_with_ci(NS, np.full((len(NS), 3), np.nan), key=("nan",))
    assert nan["num_points"] == 0 and verdict(nan, -0.5) == "not enough data"


def test_nan_cells_are_left_out_not_zeroed():
    v = _power_law(-0.5)
    full = slope_with_ci(NS, v, key=("x",))
    v2 = v.copy()
    v2[2, :] = np.nan  # one whole n missing
    v2[4, :3] = np.nan  # some seeds missing at another n
    part = slope_with_ci(NS, v2, key=("x",))
    assert part["num_points"] == len(NS) - 1 and part["num_seeds"] == 5
    assert abs(part["slope"] - full["slope"]) < 0.1  # still near -0.5, not dragged to 0


def test_verdict_rules():
    fit = {"slope": -0.5, "ci_low": -0.6, "ci_high": -0.4, "num_points": 4, "num_seeds": 3}
    assert verdict(fit, -0.5) == "inside CI"
    assert verdict(fit, -1.0) == "outside CI"
    assert verdict(fit, math.nan) == "no theory"
    assert verdict({**fit, "num_points": 2}, -0.5) == "not enough data"
    assert verdict({**fit, "num_seeds": 1}, -0.5) == "not enough data"


def _study(ns=(100, 300, 1000, 3000), seeds=(0, 1, 2, 3), d=1):
    """A synthetic study: metrics n^-0.5, score MSE n^-1 t^-(d+2)/2 | t^-1, 5% noise."""
    runs = [make_run(d=d, n=n, seed=s, slope_n=-0.5, noise=0.05) for n in ns for s in seeds]
    return combine_runs(runs)


def test_rate_table_recovers_synthetic_exponents():
    study = _study(d=2)
    table = rate_table(study, n_boot=300)
    assert list(table.columns) == COLUMNS
    # metrics in n were generated with slope -0.5
    tv = table[(table.metric == "tv") & (table.axis == "n")]
    assert len(tv) == 2 and np.all(np.abs(tv.slope + 0.5) < 0.05)
    assert (tv.theory == theory_exponent("tv", 1.0, 2)).all()
    # score MSE generated as n^-1 t^-(d+2)/2 (t < 1) / t^-1 (t > 1): theory inside the CI
    mse_n = table[(table.metric == "score_mse") & (table.axis == "n")]
    assert len(mse_n) == 2 * study.sizes["t"]
    assert (mse_n.verdict == "inside CI").mean() > 0.8
    small = table[(table.axis == "t") & (table.regime == "t<1")]
    large = table[(table.axis == "t") & (table.regime == "t>1")]
    assert np.all(np.abs(small.slope + 2.0) < 0.05) and (small.theory == -2.0).all()
    assert np.all(np.abs(large.slope + 1.0) < 0.05) and (large.theory == -1.0).all()
    # w1/mmd2 have no theory
    assert set(table[table.metric.isin(["w1", "mmd2"])].verdict) == {"no theory"}
    # estimator-free metrics appear once per cell
    assert set(table[table.metric == "tv_kde"].estimator) == {"ideal_kde"}
