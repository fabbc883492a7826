"""One job end to end: validation, the store it returns, and bit-identity over clusters."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from scorerate import theory
from scorerate.job import cluster
from scorerate.job.graph import JobSpec, run_job
from scorerate.store import runstore as store

SMALL = dict(density="sym_beta", beta=1.0, d=2, n=200, seed=3, m=48, steps=8,
             estimators=("truncated", "empirical", "highorder"), n_t=4, n_mc=200, n_ref=200,
             n_int=4, n_mc_kde=500)


@pytest.mark.parametrize("change, words", [
    (dict(density="sym_betta"), "sym_beta"),
    (dict(density="laplace", beta=1.5), "1.5"),
    (dict(beta=0.0), "beta"),
    (dict(d=0), "d must be"),
    (dict(n=1), "n must be"),
    (dict(m=0), "m must be"),
    (dict(estimators=("truncated", "kde")), "unknown estimator"),
    (dict(integrator="rk4"), "unknown integrator"),
    (dict(t0=2.0, T=1.0), "t0 < T"),
    (dict(c_rho=-1.0), "c_rho"),
    (dict(t_grid=(1.0, 0.1, 5)), "t_grid"),
    (dict(backend="gpu"), "unknown backend"),
])
def test_bad_parameters_are_refused_on_construction(change, words):
    with pytest.raises(ValueError, match=words):
        JobSpec(**{**SMALL, **change})


def test_defaults_come_from_the_theory_and_the_hash_ignores_the_chunk():
    spec = JobSpec(**SMALL)
    assert spec.t0 == theory.t0_early_stop(200, 1.0, 2)
    assert spec.T == theory.T_horizon(200, 1.0, 2)
    assert JobSpec(**SMALL, chunk=7).params_hash == spec.params_hash
    assert JobSpec(**{**SMALL, "steps": 9}).params_hash != spec.params_hash
    assert JobSpec(**{**SMALL, "seed": 4}).params_hash != spec.params_hash


def _run(spec: JobSpec, threads: int, n_workers: int) -> xr.Dataset:
    with cluster.dask_client(None, threads=threads, n_workers=n_workers) as client:
        return run_job(spec, client, progress=False)


@pytest.fixture(scope="module")
def reference() -> xr.Dataset:
    return _run(JobSpec(**SMALL, chunk=48), threads=1, n_workers=1)


def test_store_schema_attrs_and_values(reference, tmp_path):
    ds = reference
    store.validate_run(ds)
    assert list(ds.estimator.values) == list(SMALL["estimators"])
    assert ds.samples.shape == (3, 48, 2) and ds.train.shape == (200, 2)
    assert np.all(np.isfinite(ds.samples)) and np.all(np.abs(ds.train) <= 1.0)
    for name in ("score_mse", "score_mse_se", "score_mse_int", "tv", "w1", "mmd2"):
        assert np.all(np.isfinite(ds[name])), name
    assert np.all(ds.score_mse > 0) and np.all(ds.score_mse_se > 0)
    assert 0 < float(ds.tv_kde) < 1 and float(ds.l2_kde) > 0
    assert np.all((ds.tv >= 0) & (ds.tv <= 1))
    for key in store.REQUIRED_ATTRS:
        assert key in ds.attrs, key
    assert ds.attrs["wall_time_s"] > 0 and len(ds.attrs["params_hash"]) == 64
    path = store.write_run(ds, tmp_path / "run.zarr")
    back = xr.open_zarr(path)
    assert np.array_equal(back.samples.values, ds.samples.values)
    assert back.attrs["params_hash"] == ds.attrs["params_hash"]


def test_the_same_job_is_bit_identical_over_workers_threads_and_chunks(reference):
    # 2 workers x 2 threads with chunk 7, and 1 worker x 4 threads with chunk 20: every
    # number must equal the 1-thread, one-chunk reference bit for bit.
    for threads, workers, chunk in [(4, 2, 7), (4, 1, 20)]:
        other = _run(JobSpec(**SMALL, chunk=chunk), threads=threads, n_workers=workers)
        for name in store.SCHEMA:
            assert np.array_equal(other[name].values, reference[name].values,
                                  equal_nan=True), (name, threads, workers, chunk)


def test_another_seed_gives_other_numbers(reference):
    other = _run(JobSpec(**{**SMALL, "seed": 4}, chunk=48), threads=2, n_workers=1)
    assert not np.array_equal(other.train.values, reference.train.values)
    assert not np.array_equal(other.samples.values, reference.samples.values)


def test_estimators_sample_differently(reference):
    # empirical, truncated and highorder are different scores, so their outputs differ
    s = reference.samples.values
    assert not np.array_equal(s[0], s[1]) and not np.array_equal(s[0], s[2])


def test_concurrent_jobs_on_one_scheduler_keep_their_own_estimators(reference):
    # Two jobs that differ only in their data (seed), submitted at once to one client:
    # each must get the numbers it gets alone (task names carry the job's parameters).
    from concurrent.futures import ThreadPoolExecutor

    other_spec = JobSpec(**{**SMALL, "seed": 4}, chunk=48)
    alone = _run(other_spec, threads=1, n_workers=1)
    with cluster.dask_client(None, threads=2, n_workers=1) as client:
        with ThreadPoolExecutor(2) as pool:
            futs = [pool.submit(run_job, spec, client, progress=False)
                    for spec in (JobSpec(**SMALL, chunk=48), other_spec)]
            both = [f.result() for f in futs]
    for got, want in zip(both, (reference, alone), strict=True):
        for name in store.SCHEMA:
            assert np.array_equal(got[name].values, want[name].values, equal_nan=True), name


def test_memorisation_against_the_stopping_time():
    # empirical score, t0 far below the squared spacing of 200 points in 1D (~2.5e-5): the
    # chains stopped at t0 sit on training points (ratio near 0: copies), the same chains
    # stopped 1e4 - 1e6 times earlier are spread like fresh draws (ratio near 1)
    spec = JobSpec(density="sym_beta", beta=1.0, d=1, n=200, seed=0, m=200, steps=120,
                   estimators=("empirical",), t0=1e-9, T=10.0, n_t=2, n_mc=50, n_ref=50,
                   n_int=2, n_mc_kde=50)
    ds = _run(spec, threads=1, n_workers=1)
    memo = ds["memorisation_stop"].sel(estimator="empirical")
    assert float(memo.sel(stop=1.0)) == pytest.approx(float(ds["memorisation"][0]))
    assert float(memo.sel(stop=1.0)) < 0.1
    assert 0.5 < float(memo.sel(stop=1e6)) < 2.0
    # 1e9 * t0 = 1 is inside [t0, T]; beyond T / t0 = 1e10 there is no stop: all inside here
    assert bool(memo.notnull().all())
    # T / t0 = 1e3: the chains pass 10 t0 and 100 t0; 1e3 t0 is their start, not a stop
    short = _run(JobSpec(**{**SMALL, "estimators": ("empirical",), "t0": 1e-3, "T": 1.0}),
                 threads=1, n_workers=1)
    m2 = short["memorisation_stop"].sel(estimator="empirical")
    assert bool(m2.sel(stop=[1.0, 10.0, 100.0]).notnull().all())
    assert bool(m2.sel(stop=[1e3, 1e4]).isnull().all())


def test_the_2d_law_is_skipped_above_its_cap_and_the_1d_law_is_not():
    """law_n_max_2d caps only the 2-D law (its cost), with the reason; the 1-D law and the
    rest are computed."""
    from scorerate.densities import density
    from scorerate.job.metric_table import law_of, metric
    from scorerate.metrics import law

    class Zero:  # the score of a sampler that only adds noise: its law is N(0, T)-like
        def __call__(self, x, t):
            return np.zeros_like(x)

    small = dict(density="sym_beta", beta=1.0, n=200, steps=4, law_resolution=1.0)
    capped = JobSpec(**small, d=2, law_n_max_2d=100)
    for name in ("tv_law", "l2_law"):
        assert "law_n_max_2d = 100" in metric(name).applies(capped)
    for spec in (JobSpec(**small, d=2, law_n_max_2d=200), JobSpec(**small, d=1, law_n_max_2d=2)):
        assert metric("tv_law").applies(spec) is None
        grid = law_of(Zero(), spec)
        p0 = density("sym_beta", beta=1.0, d=spec.d)
        tv, l2 = law.tv_law(grid, p0), law.l2_law(grid, p0)
        assert 0 < tv < 1 and l2 > 0
