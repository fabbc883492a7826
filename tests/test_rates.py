"""Rates: slopes from synthetic power laws, interval coverage, verdicts, degenerate cases."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from scorerate import seeding
from scorerate.store.variables import exponent as theory_exponent
from scorerate.study.aggregate import combine_runs
from scorerate.study.rates import (
    COLUMNS,
    VERDICTS,
    bootstrap_means,
    fit_slope,
    rate_table,
    slope_ci_arrays,
    slope_with_ci,
    verdict,
    verdict_counts,
    verdicts,
)

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
    fit = slope_with_ci(NS, _power_law(slope, key=slope))
    assert fit["ci_low"] <= slope <= fit["ci_high"]
    assert fit["ci_high"] - fit["ci_low"] < 0.25
    assert abs(fit["slope"] - slope) < 0.1
    assert fit["num_points"] == len(NS) and fit["num_seeds"] == 8


def _study_noise(g, cv_lo, cv_hi, shape, dist):
    """Mean-one multiplicative noise, coefficient of variation geometric in n from cv_lo to
    cv_hi (a study's errors: relative spread grows towards a floor or shrinks as the error
    concentrates; 5-60% covers what the audit measured)."""
    cv = np.geomspace(cv_lo, cv_hi, shape[-2])[:, None]
    if dist == "lognormal":
        sig = np.sqrt(np.log1p(cv ** 2))
        return np.exp(sig * g.standard_normal(shape) - sig ** 2 / 2)
    k = 1 / cv ** 2
    return g.gamma(k, 1 / k, size=shape)


@pytest.mark.parametrize("seeds", [5, 10])
@pytest.mark.parametrize("k", [5, 7])
@pytest.mark.parametrize(("cv_lo", "cv_hi", "dist"), [(0.05, 0.6, "lognormal"),
                                                     (0.6, 0.05, "lognormal"),
                                                     (0.05, 0.6, "gamma"),
                                                     (0.6, 0.05, "gamma"),
                                                     (0.3, 0.3, "gamma")])
def test_interval_covers_95_percent_at_study_sizes(seeds, k, cv_lo, cv_hi, dist):
    # 2000 synthetic studies (n = 1e2..1e5, slope -0.4), vectorised: the 95% interval must
    # cover the true slope in 93-97% of them (binomial sd 0.5%) when the spread varies
    # with n. With a constant spread the df compromise (see rates) is conservative: 93-98%
    # is asked there (measured 97.5% at 5 seeds, where Welch alone gives ~95%).
    ns = np.geomspace(100, 1e5, k)
    g = seeding.rng("test-rates-coverage", seeds, k, cv_lo, cv_hi, dist)
    v = 2.0 * ns[:, None] ** -0.4 * _study_noise(g, cv_lo, cv_hi, (2000, k, seeds), dist)
    r = slope_ci_arrays(ns, v)
    cover = np.mean((r["ci_low"] <= -0.4) & (-0.4 <= r["ci_high"]))
    print(f"coverage S={seeds} K={k} cv {cv_lo}->{cv_hi} {dist}: {cover:.4f}")
    assert 0.93 <= cover <= (0.98 if cv_lo == cv_hi else 0.97), cover
    # the interval is not needlessly wide: its half-width is near 1.96 true standard errors
    assert np.median(r["ci_high"] - r["slope"]) < 2.6 * np.std(r["slope"])


@pytest.mark.xfail(strict=True, reason="measured 92.45%: the per-seed delta-method t "
                   "interval under-covers when per-seed levels are log-normal (skewed); "
                   "a skew correction is still to do")
def test_paired_interval_covers_95_percent():
    # one job's curve over t: a per-seed level shared by all t (paired) plus 10-40% noise;
    # the paired interval must cover ~95% (2000 replications, 5 seeds, 6 values of t)
    ts = np.geomspace(0.01, 1, 6)
    g = seeding.rng("test-rates-paired")
    level = np.exp(0.5 * g.standard_normal((2000, 1, 5)))
    v = ts[:, None] ** -1.5 * level * _study_noise(g, 0.1, 0.4, (2000, 6, 5), "gamma")
    r = slope_ci_arrays(ts, v, paired=True)
    cover = np.mean((r["ci_low"] <= -1.5) & (-1.5 <= r["ci_high"]))
    assert 0.93 <= cover <= 0.97, cover
    # the unpaired interval ignores the shared level and is far too wide here
    u = slope_ci_arrays(ts, v)
    assert np.median(u["ci_high"] - u["ci_low"]) > 2 * np.median(r["ci_high"] - r["ci_low"])


def test_ci_is_deterministic():
    v = _power_law(-0.5)
    assert slope_with_ci(NS, v) == slope_with_ci(NS, v)


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
    one = slope_with_ci(NS[:1], _power_law(-0.5)[:1])
    assert math.isnan(one["slope"]) and math.isnan(one["ci_low"])
    assert verdicts(one, -0.5)[0] == "no verdict"
    nan = slope_with_ci(NS, np.full((len(NS), 3), np.nan))
    assert nan["num_points"] == 0 and verdict(nan, -0.5) == "no verdict"


def test_nan_cells_are_left_out_not_zeroed():
    v = _power_law(-0.5)
    full = slope_with_ci(NS, v)
    v2 = v.copy()
    v2[2, :] = np.nan  # one whole n missing
    v2[4, :3] = np.nan  # some seeds missing at another n
    part = slope_with_ci(NS, v2)
    assert part["num_points"] == len(NS) - 1 and part["num_seeds"] == 5
    assert abs(part["slope"] - full["slope"]) < 0.1  # still near -0.5, not dragged to 0


def test_verdict_rules():
    fit = {"slope": -0.5, "ci_low": -0.6, "ci_high": -0.4, "num_points": 4, "num_seeds": 5}
    assert verdicts(fit, -0.5) == ("consistent", "no prediction", "")
    assert verdicts(fit, -0.3)[0] == "faster than the bound"  # interval below the exponent
    assert verdicts(fit, -1.0)[0] == "slower than the bound"  # interval above it
    assert verdicts(fit, -1.0, prediction_slope=-0.45)[1] == "matches"
    assert verdicts(fit, -1.0, prediction_slope=-0.3)[1] == "does not match"
    for kw, why in (({"theory": math.nan}, "no theorem"),
                    ({"fit": {**fit, "num_seeds": 4}}, "fewer than 5 seeds (4)"),
                    ({"fit": {**fit, "num_points": 2}}, "fewer than 3 values"),
                    ({"at_floor": True}, "within twice its floor")):
        args = {"fit": fit, "theory": -0.5, **kw}
        vt, vp, reason = verdicts(args.pop("fit"), args.pop("theory"), **args)
        assert (vt, vp) == ("no verdict", "no verdict") and why in reason
    assert set(VERDICTS) >= {"consistent", "faster than the bound", "slower than the bound",
                             "matches", "does not match", "no verdict"}
    assert verdict(fit, -0.5) == "consistent"


def _study(ns=(100, 300, 1000, 3000), seeds=(0, 1, 2, 3, 4), d=1):
    """A synthetic study: metrics n^-0.5, score MSE n^-1 t^-(d+2)/2 | t^-1, 5% noise."""
    runs = [make_run(d=d, n=n, seed=s, slope_n=-0.5, noise=0.05) for n in ns for s in seeds]
    return combine_runs(runs)


def test_rate_table_recovers_synthetic_exponents():
    study = _study(d=2)
    table = rate_table(study)
    assert list(table.columns) == COLUMNS
    # metrics in n were generated with slope -0.5
    tv = table[(table.metric == "tv") & (table.axis == "n")]
    assert len(tv) == 2 and np.all(np.abs(tv.slope + 0.5) < 0.05)
    assert (tv.theory == theory_exponent("tv", 1.0, 2)).all()
    # score MSE generated as n^-1 t^-(d+2)/2 (t < 1) / t^-1 (t > 1): theory inside the CI
    mse_n = table[(table.metric == "score_mse") & (table.axis == "n")]
    assert len(mse_n) == 2 * study.sizes["t"]
    assert (mse_n.verdict == "consistent").mean() > 0.8
    small = table[(table.axis == "t") & (table.regime == "t<1")]
    large = table[(table.axis == "t") & (table.regime == "t>1")]
    assert np.all(np.abs(small.slope + 2.0) < 0.05) and (small.theory == -2.0).all()
    assert np.all(np.abs(large.slope + 1.0) < 0.05) and (large.theory == -1.0).all()
    # w1/mmd2 have no theory
    nt = table[table.metric.isin(["w1", "mmd2"])]
    assert set(nt.verdict) == {"no verdict"} and set(nt.reason) == {"no theorem for this metric"}
    # estimator-free metrics appear once per cell
    assert set(table[table.metric == "tv_kde"].estimator) == {"ideal_kde"}


def test_rate_table_predictions_floors_and_seed_gate():
    study = _study(d=1)
    # TV/L2 generated with slope -0.5, theory -1/3 for beta = 1, d = 1: faster than the bound
    preds = {("sym_beta", 1.0, 1, "tv_kde"): 3.0 * np.asarray(study.n, float) ** -0.5,
             ("sym_beta", 1.0, 1, "l2_kde"): 3.0 * np.asarray(study.n, float) ** -0.2}
    floors = {("sym_beta", 1.0, 1, "truncated", "tv"): 0.06}
    table = rate_table(study, preds, floors)
    row = table[table.metric == "tv_kde"].iloc[0]
    assert row.verdict_theory == "faster than the bound" and row.verdict_prediction == "matches"
    assert row.prediction_slope == pytest.approx(-0.5, abs=1e-12)
    row = table[table.metric == "l2_kde"].iloc[0]
    assert row.verdict_prediction == "does not match"
    # the truncated tv sits at 100^-0.5 .. 3000^-0.5 = 0.1 .. 0.018 < 2 x 0.06: not judged
    tv = table[table.metric == "tv"].set_index("estimator")
    assert tv.loc["truncated", "verdict_theory"] == "no verdict"
    assert "floor" in tv.loc["truncated", "reason"]
    assert tv.loc["empirical", "verdict_theory"] == "faster than the bound"
    counts = verdict_counts(table)
    assert counts["rows"].sum() == len(table)
    # four seeds: no verdict anywhere, with the reason
    few = rate_table(_study(seeds=(0, 1, 2, 3)))
    assert set(few.verdict_theory) == {"no verdict"}
    assert few.reason.str.contains("fewer than 5 seeds|no theorem").all()


def test_rate_table_reads_predictions_and_floors_from_the_study():
    study = _study()
    # the aggregation stored the finite-n predictions of the ideal output for every n
    assert bool(study["tv_pred"].notnull().all()) and bool(study["l2_pred"].notnull().all())
    table = rate_table(study)
    kde = table[(table.axis == "n") & table.metric.isin(["tv_kde", "l2_kde"])]
    assert kde["prediction_slope"].notna().all()
    assert set(kde["verdict_prediction"]) <= {"matches", "does not match"}
    # a floor as high as the sample TV itself: no verdict, the reason says so
    high = study.copy()
    high["tv_floor"] = high["tv"].max("estimator")
    tv = rate_table(high)
    tv = tv[(tv.metric == "tv") & (tv.axis == "n")]
    assert set(tv["verdict_theory"]) == {"no verdict"}
    assert tv["reason"].str.contains("floor").all()


def test_l2_rows_fit_the_root_mean_square_over_seeds():
    # the L2 prediction is sqrt(E L2^2): the fit uses sqrt(mean of squares), so a spread
    # over seeds that shrinks with n (a Jensen gap of the plain mean) does not tilt it
    from scorerate.study.rates import fit_slope

    study = _study()
    l2 = study["l2_kde"].sel(density="sym_beta", beta=1.0, d=1)
    table = rate_table(study)
    row = table[(table.metric == "l2_kde") & (table.axis == "n")].iloc[0]
    vals = l2.transpose("n", "seed").values
    rms = np.sqrt(np.nanmean(vals ** 2, axis=1))
    assert row["slope"] == pytest.approx(float(fit_slope(study["n"].values, rms)), rel=1e-9)
    assert row["ci_low"] < row["slope"] < row["ci_high"]


def test_numerical_ratio_is_the_mean_error_over_the_standard_error_of_the_mean():
    from scorerate.study.rates import numerical_ratio

    vals = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, np.nan, 2.0]])
    num = np.array([[0.1, 0.3, 0.2, 0.2], [0.5, 0.5, 0.5, np.nan]])
    se0 = np.std([1.0, 2.0, 3.0, 4.0], ddof=1) / 2.0
    r = numerical_ratio(vals, num)
    assert r[0] == pytest.approx(0.2 / se0, rel=1e-12)
    assert np.isnan(r[1])  # no spread: no standard error to compare with


def _law_rows(steps, check, sampler=None):
    """The tv_law rows (axis n) of a synthetic study whose job of (n, seed) carries
    tv_law_steps = steps(n, seed) and tv_law_steps_check = check(n, seed), and the table."""
    runs = []
    for n in (100, 300, 1000, 3000):
        for s in range(6):
            r = make_run(n=n, seed=s, noise=0.05)
            r["tv_law_steps"][...] = steps(n, s)
            r["tv_law_steps_check"][...] = check(n, s)
            if sampler is not None:
                r["tv_sampler"][...] = sampler(n, s)
            runs.append(r)
    table = rate_table(combine_runs(runs, predictions=False))
    rows = table[(table["metric"] == "tv_law") & (table["axis"] == "n")]
    assert len(rows) == 2  # two estimators
    return rows, table


def _assert_gated(rows, judged: bool, source: str) -> None:
    from scorerate.study.rates import NUMERICAL_FRACTION

    for _, row in rows.iterrows():
        if judged:
            assert row["verdict_theory"] != "no verdict" and row["numerical_ratio"] < 1e-3
        else:
            assert row["verdict_theory"] == "no verdict"
            assert row["numerical_ratio"] > NUMERICAL_FRACTION
            assert f"numerical error ({source})" in row["reason"]


@pytest.mark.parametrize("scale, judged", [(1e-6, True), (0.5, False)])
def test_a_law_slope_whose_numerical_error_is_not_small_gets_no_verdict(scale, judged):
    """tv_law's verdict needs its numerical error (tv_law_steps) below NUMERICAL_FRACTION
    of the standard error of its seed mean at every n; else no verdict, and the reason says
    so. tv_sampler (the distance to p̂_t0, not numerical for truncated) does not decide."""
    rows, table = _law_rows(lambda n, s: scale * float(n) ** -0.5,
                            lambda n, s: np.nan,  # no step-check seeds
                            sampler=lambda n, s: 0.5 * float(n) ** -0.5)
    _assert_gated(rows, judged, "tv_law_steps")
    other = table[(table["metric"] == "tv_kde") & (table["axis"] == "n")]
    assert (other["verdict_theory"] != "no verdict").all()  # the KDE has no sampler error


@pytest.mark.parametrize("check, judged", [(1e-6, True), (0.5, False)])
def test_the_measured_step_error_of_the_check_seeds_replaces_the_estimate(check, judged):
    """Where a (cell, n) has step-check seeds (tv_law_steps_check finite on seeds 0, 1),
    their largest measurement is the numerical error, whatever the three-law estimate of
    every seed reads: a small measurement gives a verdict the estimate would deny, a large
    one denies it and the reason names the measurement."""
    rows, _ = _law_rows(lambda n, s: 0.5 * float(n) ** -0.5,  # would deny every verdict
                        lambda n, s: check * float(n) ** -0.5 * (1 + s) if s < 2 else np.nan)
    _assert_gated(rows, judged, "tv_law_steps_check")


def test_numerical_ratio_takes_the_largest_check_where_an_n_has_one():
    from scorerate.study.rates import numerical_ratio

    vals = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    num = np.full((2, 4), 0.2)
    check = np.array([[0.01, 0.03, np.nan, np.nan], [np.nan] * 4])
    se = np.std([1.0, 2.0, 3.0, 4.0], ddof=1) / 2.0
    r = numerical_ratio(vals, num, check)
    assert r[0] == pytest.approx(0.03 / se, rel=1e-12)  # measured: the largest check
    assert r[1] == pytest.approx(0.2 / se, rel=1e-12)  # not measured: the estimate's mean


def test_a_law_slope_whose_grid_hit_its_cap_gets_no_verdict():
    """One job's law ran coarser than the study asked (law_resolution_used below it: its
    lattice hit law.MAX_LATTICE): that estimator's law fits get no verdict, naming the n;
    the other estimator's are judged."""
    import json

    runs = []
    for n in (100, 300, 1000, 3000):
        for s in range(6):
            r = make_run(n=n, seed=s, noise=0.05)
            if n == 3000 and s == 2:
                r["law_resolution_used"].loc[{"estimator": "truncated"}] = 0.21
            runs.append(r)
    study = combine_runs(runs, predictions=False)
    table = rate_table(study)
    rows = table[table["metric"].isin(["tv_law", "l2_law"]) & (table["axis"] == "n")]
    for _, row in rows.iterrows():
        if row["estimator"] == "truncated":
            assert row["verdict_theory"] == "no verdict"
            assert "grid hit its cap" in row["reason"] and "n = 3000" in row["reason"]
            assert "0.21" in row["reason"]
        else:
            assert row["verdict_theory"] != "no verdict", row["reason"]
    # asked 0.2 in the study's config: 0.21 is not below it, every fit is judged
    study.attrs["config"] = json.dumps({"law_resolution": 0.2})
    again = rate_table(study)
    rows = again[again["metric"].isin(["tv_law", "l2_law"]) & (again["axis"] == "n")]
    assert (rows["verdict_theory"] != "no verdict").all()


def test_the_figures_band_is_the_verdicts_interval_per_n():
    """mean_band: per n, the delta-method t interval of log(mean) whose variances
    slope_with_ci combines into the slope's interval (not a bootstrap band)."""
    from scipy import stats as st

    from scorerate.study.rates import mean_band

    v = np.array([[1.0, 2.0, 4.0], [3.0, np.nan, 3.0], [5.0, np.nan, np.nan]])
    mean, lo, hi = mean_band(v)
    m0 = 7.0 / 3.0
    half = st.t.ppf(0.975, 2) * math.sqrt(np.var([1.0, 2.0, 4.0], ddof=1) / (3 * m0 * m0))
    assert mean[0] == pytest.approx(m0) and lo[0] == pytest.approx(m0 * math.exp(-half))
    assert hi[0] == pytest.approx(m0 * math.exp(half))
    assert lo[1] == hi[1] == 3.0  # no spread
    assert np.isnan(lo[2]) and np.isnan(hi[2])  # one seed: no interval


def test_the_score_mse_at_fixed_t_is_judged_with_the_polylog_factor_allowed():
    """A score MSE falling like (log n)^(d/2)/n (the truncation region's own scaling) is
    consistent with n^-1 up to that factor, not slower than the bound; one falling like
    n^-0.7 is slower; where the estimate is 0 on most of p_t's mass there is no verdict."""
    from scorerate.study.rates import polylog_slope

    ns = (100, 1000, 10000, 100000)
    d = 2

    def table(shape, zero_mass=0.0):
        runs = []
        for n in ns:
            for s in range(8):
                r = make_run(n=n, seed=s, d=d, noise=0.02)
                r["score_mse"][...] = shape(float(n)) * np.exp(
                    0.02 * seeding.rng("mse", n, s).standard_normal(r["score_mse"].shape))
                r["score_zero_mass"][...] = zero_mass
                runs.append(r)
        t = rate_table(combine_runs(runs, predictions=False))
        return t[(t["metric"] == "score_mse") & (t["axis"] == "n")]

    poly = table(lambda n: np.log(n) ** (d / 2) / n)
    assert poly["theory_polylog"].iloc[0] == pytest.approx(polylog_slope(np.array(ns), d))
    lx = np.log(np.array(ns, dtype=float))  # independently: a least-squares line in log-log
    assert polylog_slope(np.array(ns), d) == pytest.approx(
        np.polyfit(lx, (d / 2) * np.log(lx) - lx, 1)[0], rel=1e-12)
    assert -1 < poly["theory_polylog"].iloc[0] < -0.8
    # each row's interval covers the truth 95% of the time: most rows, not all, are
    # consistent; against exactly -1 every one would be "slower than the bound"
    assert (poly["verdict_theory"] == "consistent").mean() >= 0.75
    assert (poly["ci_low"] > -1).all()
    slow = table(lambda n: n ** -0.7)
    assert (slow["verdict_theory"] == "slower than the bound").all()
    zero = table(lambda n: 1.0 / n, zero_mass=0.9)
    assert (zero["verdict_theory"] == "no verdict").all()
    assert zero["reason"].str.contains("0 on most of p_t's mass").all()
