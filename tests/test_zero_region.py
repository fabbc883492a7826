"""The zero-region prediction (scorerate.study.zero_region) against closed forms and the
importance sampler, the estimators' threshold it reads, and the rows it feeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scorerate import theory
from scorerate.densities import ProductMixture, density
from scorerate.densities.shapes import Gauss
from scorerate.estimators import build, log_zero_threshold
from scorerate.study.zero_region import zero_region_mse

SIGMA = 0.7


def _gauss(d: int) -> ProductMixture:
    return ProductMixture("gauss", 2.0, [1.0], [[Gauss()] * d], np.zeros((1, d)),
                          np.full((1, d), SIGMA), smoothness=math.inf)


def _closed_form(d: int, t: float, log_rho: float) -> tuple[float, float]:
    """For p0 = N(0, sigma^2 I): p_t = N(0, v I), v = sigma^2 + t, s_t = -x/v, and the
    region p_t <= rho is |x|^2 >= R^2; with |X|^2/v ~ chi2_d and E[chi2_d 1{chi2_d >= a}] =
    d P(chi2_{d+2} >= a): Z = (d/v) P(chi2_{d+2} >= a), M = P(chi2_d >= a), a = R^2/v."""
    v = SIGMA ** 2 + t
    a = max(0.0, -2.0 * (log_rho + 0.5 * d * math.log(2.0 * math.pi * v)))
    return d / v * stats.chi2.sf(a, d + 2), stats.chi2.sf(a, d)


@pytest.mark.parametrize("n", [100, 1000, 100_000])
def test_quadrature_matches_the_gaussian_closed_form(n):
    p0 = _gauss(1)
    ts = [1e-3, 0.1, 10.0, 100.0]
    got = zero_region_mse(p0, ts, lambda t: theory.log_rho_n(n, t, 1))
    for k, t in enumerate(ts):
        z, m = _closed_form(1, t, theory.log_rho_n(n, t, 1))
        assert got["mse"][k] == pytest.approx(z, rel=1e-8)
        assert got["mass"][k] == pytest.approx(m, rel=1e-8)
        assert got["se"][k] == 0.0


@pytest.mark.parametrize("n", [1000, 100_000])
def test_importance_sampling_matches_the_closed_form_in_2d(n):
    p0 = _gauss(2)
    ts = [1e-3, 0.1, 10.0]
    got = zero_region_mse(p0, ts, lambda t: theory.log_rho_n(n, t, 2), key=("test",))
    for k, t in enumerate(ts):
        z, _m = _closed_form(2, t, theory.log_rho_n(n, t, 2))
        assert 0 < got["se"][k] < 0.1 * z
        assert abs(got["mse"][k] - z) <= 4.0 * got["se"][k], (t, got["mse"][k], z)


def test_the_two_routes_agree_on_sym_beta():
    """Quadrature and the importance sampler on a density with edges (sym_beta, beta 1)."""
    p0 = density("sym_beta", beta=1.0, d=1)
    ts = [0.01, 1.0, 10.0]
    lr = lambda t: theory.log_rho_n(1000, t, 1)  # noqa: E731
    q = zero_region_mse(p0, ts, lr, method="quadrature")
    s = zero_region_mse(p0, ts, lr, method="importance", n_mc=40_000, key=("two",))
    assert np.all(q["mse"] > 0)
    assert np.all(np.abs(s["mse"] - q["mse"]) <= 4.0 * s["se"]), (s, q)


def test_bad_arguments_are_refused():
    p0 = _gauss(2)
    with pytest.raises(ValueError, match="quadrature needs d = 1"):
        zero_region_mse(p0, [1.0], lambda t: 0.0, method="quadrature")
    with pytest.raises(ValueError, match="method must be"):
        zero_region_mse(p0, [1.0], lambda t: 0.0, method="simpson")
    with pytest.raises(ValueError, match="finite times"):
        zero_region_mse(p0, [0.0], lambda t: 0.0)


def test_the_threshold_is_the_estimators_own():
    """log_zero_threshold reads c_rho as build does (job parameter, then an inline
    variant option) and is what a truncated estimate cuts at; estimators that never
    return 0 have none."""
    assert log_zero_threshold("truncated", 1000, 0.1, 2, {"c_rho": 2.0, "eps": None}) == \
        pytest.approx(math.log(2.0 / (1000 * 0.1)))
    assert log_zero_threshold("truncated[c_rho=3]", 1000, 0.1, 1, {"c_rho": 2.0}) == \
        pytest.approx(math.log(3.0 / (1000 * math.sqrt(0.1))))
    assert log_zero_threshold("regularized", 1000, 0.1, 1) is None
    assert log_zero_threshold("empirical", 1000, 0.1, 1) is None
    p0 = density("sym_beta", beta=1.0, d=1)
    est = build("truncated", p0.sample(200, seed=3), {"c_rho": 2.0})
    x = np.linspace(-3.0, 3.0, 2001)[:, None]
    t = 0.05
    below = np.log(est.density(x, t)) <= log_zero_threshold("truncated", 200, t, 1,
                                                             {"c_rho": 2.0})
    zero = np.all(est.score(x, t) == 0.0, axis=1)
    assert below.any() and (~below).any()
    assert np.array_equal(zero, below)


def _study_with_zero_part(part):
    """A synthetic study (tests/workflow/synthetic.py) whose truncated estimate has the
    zero-region part part(n, t) (x 3% log-normal noise per seed), with predictions."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "workflow"))
    from synthetic import make_run

    from scorerate import seeding
    from scorerate.study.aggregate import combine_runs

    ts = np.array([0.1, 1.0, 10.0])
    runs = []
    for n in (300, 1000, 3000, 10000):
        for s in range(6):
            r = make_run(n=n, seed=s, t_grid=ts)
            noise = np.exp(0.03 * seeding.rng("zero", n, s).standard_normal(ts.size))
            r["score_mse_zero"].loc[{"estimator": "truncated"}] = part(n, ts) * noise
            r["score_mse"].loc[{"estimator": "truncated"}] = 2.0 * part(n, ts) * noise
            runs.append(r)
    return combine_runs(runs)


def test_the_study_predicts_and_judges_the_zero_region_part():
    """The aggregation stores Z_n(t) for the estimator that truncates (NaN for the other);
    the rate table gives the truncated zero part one row per t, judged against the theory
    with its polylog factor and against the prediction's slope."""
    from scorerate.study.rates import rate_table

    p0 = density("sym_beta", beta=1.0, d=1)

    def predicted(n, ts):
        return zero_region_mse(p0, ts, lambda t: theory.log_rho_n(n, t, 1))["mse"]

    study = _study_with_zero_part(predicted)
    pred = study["score_mse_zero_pred"].sel(density="sym_beta", beta=1.0, d=1)
    assert np.all(np.isnan(pred.sel(estimator="empirical").values))
    assert np.allclose(pred.sel(estimator="truncated", n=1000).values,
                       predicted(1000, study["t"].values), rtol=1e-12)
    table = rate_table(study)
    rows = table[table["metric"] == "score_mse_zero"]
    assert set(rows["estimator"]) == {"truncated"} and len(rows) == 3
    assert (rows["verdict_prediction"] == "matches").all(), rows[["t", "slope", "ci_low",
                                                                   "ci_high", "prediction_slope"]]
    assert np.isfinite(rows["theory_polylog"]).all()
    # a part falling like n^-1/2 is slower than the bound and than its prediction
    slow = rate_table(_study_with_zero_part(lambda n, ts: 0.1 * n ** -0.5 + 0 * ts))
    rows = slow[slow["metric"] == "score_mse_zero"]
    assert (rows["verdict_prediction"] == "does not match").all()
    assert (rows["verdict_theory"] == "slower than the bound").all()
