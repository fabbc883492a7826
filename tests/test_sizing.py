"""The cost model's defaults are the job's, and the workflow's requests come from it."""

from __future__ import annotations

from scorerate.config.sizing import (
    MIN_REQUEST_MB,
    estimate,
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
