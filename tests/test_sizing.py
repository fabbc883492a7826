"""The cost model's defaults are the job's, and the workflow's requests come from it."""

from __future__ import annotations

import pytest

from scorerate.config.sizing import (
    MIN_REQUEST_MB,
    estimate,
    estimate_params,
    estimate_spec,
    resource_request,
    study_job_estimate,
)
from scorerate.config.spec import BY_NAME, JobSpec


def test_an_unset_argument_takes_the_jobs_default():
    spec = JobSpec(density="sym_beta", beta=1.0, d=2, n=3000)
    assert estimate(n=3000, d=2) == estimate_spec(spec)
    assert estimate(n=3000, d=2, m=BY_NAME["m"].default) == estimate(n=3000, d=2)
    assert estimate(n=3000, d=2, m=10 * BY_NAME["m"].default).wall_s > estimate(
        n=3000, d=2).wall_s


def test_a_study_job_is_estimated_as_the_job_resolves_it():
    cfg = {"estimators": ["truncated", "empirical"], "m": 400, "steps": 40, "n_mc": 2000,
           "t_grid": {"tmin": 0.001, "tmax": 100.0, "num": 11}}
    spec = JobSpec(density="sym_beta", beta=1.0, d=2, n=3000, m=400, steps=40, n_mc=2000,
                   estimators=("truncated", "empirical"), t_grid=(0.001, 100.0, 11))
    assert study_job_estimate(cfg, 3000, 2) == estimate_spec(spec)


def test_requests_carry_a_margin_and_grow_with_the_attempt():
    est = estimate(n=100_000, d=2, m=1000, steps=256)
    mem, minutes = resource_request(est)
    assert mem >= 2 * est.mem_mb and minutes * 60 >= 2 * est.wall_s
    assert resource_request(est, attempt=2) == (2 * mem, 2 * minutes)
    from scorerate.config.sizing import Estimate

    assert resource_request(Estimate(mem_mb=10.0, wall_s=1.0, store_bytes=1.0)) == (
        MIN_REQUEST_MB, 10)


# every parameter that scales a job's memory or time moves the estimate, and its huge
# values (issue 18: they hung or allocated until killed) are refused by check_fits
_BASE = dict(density="sym_beta", beta=1.0, d=1, n=300, m=40, steps=6, n_t=3, n_mc=100,
             n_ref=100, n_int=3, estimators=("truncated",))
SCALES = {  # parameter change -> a value the guard must refuse
    "t_grid num": (dict(t_grid=(0.1, 1.0, 1000)), dict(t_grid=(0.1, 1.0, 100_000_000))),
    "n_t": (dict(n_t=1000), dict(n_t=100_000_000)),
    "n_int": (dict(n_int=1000), dict(n_int=1_000_000_000)),
    "n_mc": (dict(n_mc=10**6), dict(n_mc=10**12)),
    "n_ref": (dict(n_ref=10**6), dict(n_ref=10**12)),
    "n_mc_kde": (dict(n_mc_kde=10**7), dict(n_mc_kde=10**13)),
    "m": (dict(m=10**5), dict(m=10**10)),
    "n": (dict(n=10**5), dict(n=10**9)),
    "steps": (dict(steps=1000), dict(steps=10**8)),
    "steps_power": (dict(steps_power=1.0, steps_at_n=2),
                    dict(steps_power=1.99, steps_at_n=2, n=10**6)),
    "chunk": (dict(chunk=40, steps=10**4), dict(chunk=10**6, m=10**6, steps=10**5)),
    "highorder order": (dict(estimators=("highorder[order=20]",)),
                        dict(estimators=("highorder[order=63]",), n=10**6, m=10**5, steps=1024)),
    "law_resolution": (dict(d=2, law_resolution=30.0),
                       dict(d=2, law_resolution=1e6, steps=10**5)),
}


@pytest.mark.parametrize("case", list(SCALES))
def test_each_cost_parameter_moves_the_estimate_and_its_huge_values_are_refused(case):
    from scorerate.config.sizing import check_fits

    bigger, huge = SCALES[case]
    base = estimate_spec(JobSpec(**_BASE))
    grown = estimate_spec(JobSpec(**{**_BASE, **bigger}))
    assert grown.mem_mb > base.mem_mb or grown.wall_s > base.wall_s
    check_fits(base, mem_mb=4000)
    with pytest.raises(ValueError, match=r"needs ~.*(more than the --mem-mb|days limit)"):
        check_fits(estimate_spec(JobSpec(**{**_BASE, **huge})), mem_mb=64000)


def test_a_study_job_with_variants_and_a_law_resolution_is_estimated_as_the_job():
    cfg = {"estimators": ["truncated", "highorder[order=9]", "highorder"], "m": 400,
           "steps": 40, "steps_power": 0.5, "steps_at_n": 500, "n_int": 30,
           "highorder_order": 5, "law_resolution": 6.0}
    spec = JobSpec(density="sym_beta", beta=1.0, d=2, n=3000, m=400, steps=40,
                   steps_power=0.5, steps_at_n=500, n_int=30, highorder_order=5,
                   law_resolution=6.0,
                   estimators=("truncated", "highorder[order=9]", "highorder"))
    assert study_job_estimate(cfg, 3000, 2) == estimate_spec(spec)


def test_the_same_highorder_job_fits_at_its_default_order_and_not_at_order_63():
    from scorerate.config.sizing import check_fits

    job = {**_BASE, "n": 10**6, "m": 10**5, "steps": 1024}
    check_fits(estimate_spec(JobSpec(**job, highorder_order=None)), mem_mb=64000)
    with pytest.raises(ValueError, match="days limit"):
        check_fits(estimate_spec(JobSpec(**{**job, "estimators": ("highorder",)},
                                         highorder_order=63)), mem_mb=64000)


def test_a_3d_law_without_truncation_costs_o_n_per_step_and_with_it_does_not():
    """3-D: regularized and empirical send their uncertified tail cells to cutoff's ball
    sums (a share of n each), truncated does not: the estimate's excess over truncated
    grows like n, and at n = 1e5, 256 steps it is of the size measured (benchmarks/
    README.md: regularized 644 s, empirical 623 s, truncated 280 s, in one run under load)."""
    def wall(ests, n, d=3, steps=64):
        return estimate_params({"n": n, "d": d, "estimators": ests, "steps": steps}).wall_s

    def excess(n, steps=64):
        return wall(["regularized"], n, steps=steps) - wall(["truncated"], n, steps=steps)

    assert excess(100_000) == pytest.approx(10 * excess(10_000))
    assert 300 < excess(100_000, steps=256) < 1000
    assert wall(["empirical"], 100_000) == wall(["regularized"], 100_000)
    # not in 2-D: there the grid certifies every cell at any n (no fallback measured)
    assert (wall(["regularized"], 100_000, d=2) - wall(["regularized"], 1000, d=2)
            == pytest.approx(wall(["truncated"], 100_000, d=2) - wall(["truncated"], 1000, d=2)))


def test_a_heun_job_is_priced_at_its_laws_cost():
    """The stochastic Heun law pushes every stratum of every cell through the score
    (d = 1), ~10 x Euler-Maruyama's law per step. Measured (a d = 1 study's job, n = 1e5,
    183 Heun steps, three estimators, m = 300, one thread, beside two other processes on
    2 cores): 112 s CPU (320 s before the grid score set far slabs aside). Priced as
    an Euler-Maruyama job it would fall below that; Heun's estimate reaches it, so its time
    limit (10 x the estimate) is not the wrong side of a loaded machine."""
    params = {"n": 100_000, "d": 1, "steps": 183, "m": 300, "law_resolution": 2.0,
              "t_grid": {"tmin": 0.001, "tmax": 100.0, "num": 6}, "n_mc": 250, "n_int": 8}
    heun = estimate_params({**params, "integrator": "heun"}).wall_s
    em = estimate_params({**params, "integrator": "euler_maruyama"}).wall_s
    assert em < 112.0 <= heun < 3 * 112.0
    # 2-D (the Gaussian closure): one law per estimator at n = 1e5, 128 steps, resolution
    # 2, single-threaded beside one other process, measured 24.9 + 34.0 + 30.1 s CPU
    # (truncated, regularized, empirical); a job computes three (S, S/2, S/4)
    p2 = {**params, "d": 2, "steps": 128}
    em2 = estimate_params({**p2, "integrator": "euler_maruyama"}).wall_s
    heun2 = estimate_params({**p2, "integrator": "heun"}).wall_s
    assert em2 + 89.0 <= heun2 < em2 + 10 * 89.0


def test_a_1d_heun_law_is_priced_by_the_cells_its_density_makes_it_visit():
    """A 1-D law's cells follow the data's span / sqrt(t0), not the steps alone. Measured
    per job (paper parts, 2 cores each busy with one single-threaded job, wall time, the
    runs' benchmark files): sym_beta beta 0.5 (t0 = 1e-5) at n = 1e5, 366 steps: 836 s, its
    step-check job 2238 s; beta 2.5 at n = 1e5, 1262 steps: 303 s and 2455 s; beta 3 (out of
    sample, after the constant was set; medians of the jobs' wall_time_s,
    benchmarks/results/cost_model_check_d1_sym_beta_3.md) 292 s and 2928 s. The per-step
    price asked 416 s and 877 s for beta 0.5, so a scheduler's request (2 x the estimate)
    would have killed its check job; priced by cells the estimates sit at 0.97-1.2 x the
    costly jobs and never below 0.9 x any of them (beta 3's check job: 0.95 x)."""
    from scorerate.config.spec import JobSpec

    base = {"d": 1, "m": 300, "law_resolution": 2.0, "integrator": "heun", "n_mc": 250,
            "n_int": 8, "t_grid": {"tmin": 0.001, "tmax": 100.0, "num": 6},
            "estimators": ["truncated", "regularized", "empirical"]}
    measured = {(0.5, 366, False): 836.0, (0.5, 366, True): 2238.0,
                (2.5, 1262, False): 303.0, (2.5, 1262, True): 2455.0,
                (3.0, 1262, False): 292.0, (3.0, 1262, True): 2928.0}
    for (beta, steps, check), wall in measured.items():
        cfg = {**base, "steps": steps}
        est = study_job_estimate(cfg, 100_000, 1, check, density="sym_beta", beta=beta)
        assert 0.9 * wall <= est.wall_s <= 5.0 * wall, (beta, check, est.wall_s, wall)
        assert resource_request(est)[1] * 60 >= 1.5 * wall
        # the workflow's estimate is the job's own
        spec = JobSpec(density="sym_beta", beta=beta, d=1, n=100_000, m=300, steps=steps,
                       law_resolution=2.0, integrator="heun", n_mc=250, n_int=8,
                       t_grid=(0.001, 100.0, 6), step_check=int(check),
                       estimators=("truncated", "regularized", "empirical"))
        assert estimate_spec(spec) == est
    # the cells: a span wide against sqrt(t0) sets them, like span / sqrt(t0) over the
    # schedule's log(T / t0)^1.5 (t0 100x smaller: 10 x (13.8 / 18.4)^1.5 = 6.5, less the
    # law's spread, which does not grow); a per-step price would not move at all
    from scorerate.config.sizing import law_cells_1d

    def cells(t0, span):
        return law_cells_1d(t0=t0, T=100.0, steps=400, span=span, resolution=2.0)

    assert cells(1e-6, 2.0) / cells(1e-4, 2.0) > 4.0
    assert cells(1e-6, 4.0) / cells(1e-6, 2.0) == pytest.approx(2.0, rel=0.05)
