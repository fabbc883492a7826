"""The job's metric table: every stored metric is declared once, the job graph is built
from the table alone, and a NaN left by a metric that does not apply carries its reason
from the run store through the study into the report."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from scorerate.job import cluster
from scorerate.job.graph import JobSpec, run_job
from scorerate.job.metric_table import INPUTS, JOB_METRICS, JobMetric, metric
from scorerate.report.build import make_report
from scorerate.store.runstore import write_run
from scorerate.store.variables import VARIABLES
from scorerate.study.aggregate import combine_runs, write_study

JOB_SOURCE = Path(__file__).resolve().parents[1] / "src" / "scorerate" / "job" / "graph.py"


def test_every_stored_variable_but_the_data_is_one_job_metric():
    names = [m.name for m in JOB_METRICS]
    assert len(names) == len(set(names))
    assert set(names) == {v.name for v in VARIABLES if v.role != "data"}


def test_the_job_names_no_metric():
    """Adding a metric touches the table, not the job: no metric name is written in job/graph.py."""
    text = JOB_SOURCE.read_text()
    named = [m.name for m in JOB_METRICS if re.search(rf"[\"']{m.name}[\"']", text)]
    assert named == []


def test_a_declaration_must_name_a_declared_variable_and_a_known_input():
    with pytest.raises(ValueError, match="unknown metric or variable"):
        JobMetric("no_such_variable", "samples", lambda *a: 0.0)
    with pytest.raises(ValueError, match="reads 'pixels'"):
        JobMetric("tv", "pixels", lambda *a: 0.0)
    assert set(INPUTS) == {"samples", "chains", "law", "law_cells", "law_half",
                           "law_half_cells", "law_quarter_cells", "law_double_cells",
                           "score_t", "train", "p0"}


def test_applies_gives_the_reason_and_none_where_it_applies():
    d1 = JobSpec(density="sym_beta", beta=1.0, d=1, n=100)
    d3 = JobSpec(density="sym_beta", beta=1.0, d=3, n=100)
    flow = JobSpec(density="sym_beta", beta=1.0, d=2, n=100, integrator="probability_flow")
    assert metric("tv_law").applies(d1) is None and metric("tv_law").applies(d3) is None
    assert metric("tv_sampler").applies(d3) is None  # p̂_t0's cell masses exist in 3-D
    capped = JobSpec(density="sym_beta", beta=1.0, d=2, n=100, law_n_max_2d=50)
    assert "law_n_max_2d = 50" in metric("tv_sampler").applies(capped)
    assert "d = 1" in metric("l2_law").applies(flow)
    assert metric("tv").applies(d3) is None


def _run(**kw):
    spec = JobSpec(density="sym_beta", beta=1.0, seed=0, m=32, steps=4,
                   estimators=("truncated", "empirical"), n_mc=40, n_mc_kde=200,
                   t_grid=(0.1, 1.0, 2), **kw)
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        return run_job(spec, client, progress=False)


@pytest.fixture(scope="module")
def d3_run():
    return _run(d=3, n=60)


@pytest.fixture(scope="module")
def capped_run():
    """A 2-D job above the user's law_n_max_2d: no law, and every law metric says why."""
    return _run(d=2, n=60, law_n_max_2d=50)


WHY = "n > law_n_max_2d = 50 (the study's cost cap)"


def test_every_law_metric_exists_in_3d(d3_run):
    for name in ("tv", "tv_law", "l2_law", "tv_steps", "tv_sampler", "l2_sampler",
                 "law_exact_share", "tv_law_steps", "l2_law_steps"):
        assert bool(d3_run[name].notnull().all()), name
        assert "not_computed" not in d3_run[name].attrs


def test_the_job_records_which_method_scored_the_laws_cells():
    """law_exact_share: the share of the law's cell-scores sent to the engine's exact sums,
    as the law's own method counts give it (the same law recomputed here). 3-D, n = 1000:
    the lattice cannot vouch for empirical's tail cells (~12% of them), none of them for
    truncated, whose tails the grid's bound decides."""
    from scorerate.job.graph import _build_estimator
    from scorerate.job.metric_table import law_of

    spec = JobSpec(density="sym_beta", beta=1.0, seed=0, m=32, steps=4, d=3, n=1000,
                   estimators=("truncated", "empirical"), n_mc=40, n_mc_kde=200,
                   t_grid=(0.1, 1.0, 2))
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        run = run_job(spec, client, progress=False)
    share = {}
    for name in spec.estimators:
        grid = law_of(_build_estimator(spec, name), spec)
        m = grid.methods
        share[name] = float(run["law_exact_share"].sel(estimator=name))
        assert share[name] == pytest.approx(m["exact"] / (m["grid"] + m["bound"] + m["exact"]),
                                            rel=1e-12)
        # and the resolution it ran at: the asked one (no lattice hit its cap here)
        used = float(run["law_resolution_used"].sel(estimator=name))
        assert used == grid.resolution and used >= spec.law_resolution
    assert share["truncated"] == 0.0 and 0.05 < share["empirical"] < 0.5


def test_a_law_whose_lattice_hits_its_cap_reports_the_resolution_it_reached(monkeypatch):
    """law_resolution_used falls below the asked resolution exactly when a lattice hits
    law.MAX_LATTICE (here made tiny), so a study can see a law whose grid error is no
    longer controlled (what 1024 steps at n = 1e5 in d = 1 do with the real cap)."""
    from scorerate.job.graph import _build_estimator
    from scorerate.job.metric_table import LawCells, law_of, law_resolution_used
    from scorerate.metrics import law

    spec = JobSpec(density="sym_beta", beta=1.0, seed=0, d=1, n=200, steps=64,
                   estimators=("truncated",))
    est = _build_estimator(spec, "truncated")
    free = law_of(est, spec)
    assert free.resolution >= spec.law_resolution
    monkeypatch.setattr(law, "MAX_LATTICE", 32)  # too few bins even for the moving mass
    capped = law_of(est, spec)
    used = law_resolution_used(LawCells(capped, None, None), None, spec)
    assert used == capped.resolution < spec.law_resolution / 4


def test_mass_at_rest_far_out_does_not_coarsen_the_moving_law(monkeypatch):
    """truncated leaves mass at rest hundreds of units out (here +-240 at n = 200); a cap
    of 256 lattice bins cannot span that at the asked spacing, but it spans the moving
    mass: the law keeps its resolution and its tv_law stays within 1e-3 of the uncapped
    law's (the same law on a different layout of cells), where before it ran at ~0.3."""
    from scorerate.densities import density
    from scorerate.job.graph import _build_estimator
    from scorerate.job.metric_table import law_cells, law_of, tv_law
    from scorerate.metrics import law

    spec = JobSpec(density="sym_beta", beta=1.0, seed=0, d=1, n=200, steps=64,
                   estimators=("truncated",))
    p0 = density("sym_beta", beta=1.0, d=1)
    est = _build_estimator(spec, "truncated")
    free = law_of(est, spec)
    span = free.edges[0][-1] - free.edges[0][0]
    assert span > 400.0  # the stranded mass is there
    monkeypatch.setattr(law, "MAX_LATTICE", 256)
    capped = law_of(est, spec)
    assert span / 256 > 20 * math.sqrt(spec.t0) / spec.law_resolution  # the old lattice's cap
    assert capped.resolution >= spec.law_resolution
    ref, got = (tv_law(law_cells(g, p0, spec), p0, spec) for g in (free, capped))
    assert abs(got - ref) < 1e-3


def test_a_metric_that_does_not_apply_is_nan_with_its_reason(capped_run):
    for name in ("tv_law", "l2_law", "tv_sampler", "l2_sampler", "tv_steps", "tv_law_steps",
                 "l2_law_steps"):
        assert bool(capped_run[name].isnull().all()), name
        assert capped_run[name].attrs["not_computed"] == WHY
    assert bool(capped_run["tv"].notnull().all())


def test_the_reason_travels_to_the_study_and_the_report(capped_run, tmp_path):
    path = write_run(capped_run, tmp_path / "run.zarr")
    study = combine_runs([capped_run], paths=[str(path)], predictions=False)
    assert study["tv_sampler"].attrs["not_computed"] == f"{WHY} (1 job)"
    spath = write_study(study, tmp_path / "study.zarr")
    make_report(spath, tmp_path / "report")
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert f"`tv_sampler`: {WHY} (1 job)" in summary
    assert np.isnan(float(study["tv_sampler"].max()))


def test_every_job_stores_the_samplers_own_error():
    """tv_sampler, l2_sampler, tv_steps are stored beside tv_law: finite where the law is,
    and the sampler's error from the law alone (S vs S/2) within a factor 2 of it."""
    spec = JobSpec(density="sym_beta", beta=1.0, d=1, n=200, seed=0, m=32, steps=64,
                   estimators=("regularized", "empirical"), n_mc=40, n_mc_kde=200,
                   t_grid=(0.1, 1.0, 2), law_resolution=2.0)
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        run = run_job(spec, client, progress=False)
    for name in ("tv_sampler", "l2_sampler", "tv_steps"):
        assert bool(run[name].notnull().all()) and bool((run[name] > 0).all())
    ratio = run["tv_steps"] / run["tv_sampler"]
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio.values


@pytest.mark.parametrize("integrator, steps, factor, estimators, d", [
    ("euler_maruyama", 64, 16, ("truncated", "regularized"), 1),
    ("heun", 64, 4, ("truncated",), 1),
    ("heun", 32, 4, ("empirical",), 2),
])
def test_the_law_metrics_step_error_against_far_more_steps(integrator, steps, factor,
                                                           estimators, d):
    """tv_law_steps and l2_law_steps (from S, S/2, S/4 steps) against the error they
    estimate, measured: |tv_law(S) - tv_law(factor x S)|, a reference whose own error is
    ~1/16 (EM) or ~1/8 (Heun on truncated, order ~1.5) of S's. In 2-D the job's Heun law
    is the Gaussian closure (metrics/heun_closure.py). The estimate must not be
    below 0.6 x the reference (the gate would pass a biased fit) nor above 20 x (it would
    cost steps for nothing; a law passing its turning point is near its limit by chance,
    which the estimate cannot know: truncated's l2_law at 64 EM steps reads 14 x). At 64
    steps regularized's tv_law (EM) and truncated's l2_law (Heun) pass
    a turning point between S/4 and S: the case the rule's second term is for."""
    from scorerate.densities import density
    from scorerate.job.graph import _build_estimator
    from scorerate.job.metric_table import l2_law, law_cells, law_of, tv_law

    spec = JobSpec(density="sym_beta", beta=1.0, d=d, n=200, seed=0, m=16, steps=steps,
                   estimators=estimators, n_mc=20, n_mc_kde=100, t_grid=(0.1, 1.0, 2),
                   law_resolution=2.0, integrator=integrator)
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        run = run_job(spec, client, progress=False)
    p0 = density("sym_beta", beta=1.0, d=d)
    for name in spec.estimators:
        est = _build_estimator(spec, name)
        here, ref = (law_cells(law_of(est, spec, s), p0, spec) for s in (steps, factor * steps))
        for metric_name, dist in (("tv_law_steps", tv_law), ("l2_law_steps", l2_law)):
            err = abs(dist(here, p0, spec) - dist(ref, p0, spec))
            got = float(run[metric_name].sel(estimator=name))
            assert 0.6 * err <= got <= 20.0 * err, (name, metric_name, got, err)


def test_a_step_check_job_measures_its_step_error_on_the_law_at_twice_the_steps():
    """step_check = 1: tv_law_steps_check and l2_law_steps_check are 2 |v(S) - v(2S)|, with
    v(2S) from a separate job of 2S steps (the same t0, T); against a law at 16 S (its own
    error ~1/16 of S's, Euler-Maruyama) they read 0.5-3x the error, where the three-law
    estimate (tv_law_steps) may read far more. A job without step_check leaves them NaN and
    says why."""
    from scorerate.densities import density
    from scorerate.job.graph import _build_estimator
    from scorerate.job.metric_table import l2_law, law_cells, law_of, tv_law

    steps = 64
    spec = JobSpec(density="sym_beta", beta=1.0, d=1, n=200, seed=0, m=16, steps=steps,
                   estimators=("truncated", "regularized"), n_mc=20, n_mc_kde=100,
                   t_grid=(0.1, 1.0, 2), law_resolution=2.0, step_check=1)
    double = JobSpec(**{**spec.params(), "steps": 2 * steps, "step_check": 0,
                        "t0": spec.t0, "T": spec.T})
    plain = JobSpec(**{**spec.params(), "step_check": 0})
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        run, run2, run0 = (run_job(s, client, progress=False) for s in (spec, double, plain))
    p0 = density("sym_beta", beta=1.0, d=1)
    for name in spec.estimators:
        ref = law_cells(law_of(_build_estimator(spec, name), spec, 16 * steps), p0, spec)
        for check, law_metric, dist in (("tv_law_steps_check", "tv_law", tv_law),
                                        ("l2_law_steps_check", "l2_law", l2_law)):
            here, there = (float(r[law_metric].sel(estimator=name)) for r in (run, run2))
            got = float(run[check].sel(estimator=name))
            assert got == pytest.approx(2.0 * abs(here - there), rel=1e-9, abs=1e-15)
            err = abs(here - dist(ref, p0, spec))
            assert 0.5 * err <= got <= 3.0 * err, (name, check, got, err)
            assert np.isnan(float(run0[check].sel(estimator=name)))
            assert "step-check seeds" in run0[check].attrs["not_computed"]
    for name in ("tv_law", "l2_law", "tv_law_steps", "samples"):  # the check adds, changes nothing
        assert np.array_equal(run[name].values, run0[name].values), name


def test_a_job_runs_and_records_the_step_count_its_n_asks_for():
    """steps_power > 0: the sampler, the law and the half-steps law use spec.n_steps."""
    spec = JobSpec(density="sym_beta", beta=1.0, d=1, n=200, seed=0, m=16, steps=8,
                   steps_power=1.0, steps_at_n=100, estimators=("empirical",), n_mc=20,
                   n_mc_kde=100, t_grid=(0.1, 1.0, 2), law_resolution=1.5)
    assert spec.n_steps == 16
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        run = run_job(spec, client, progress=False)
    assert run.attrs["n_steps"] == 16 and run.attrs["steps"] == 8
    assert run.attrs["steps_power"] == 1.0
    fixed = JobSpec(**{**spec.params(), "steps": 16, "steps_power": 0.0,
                       "t0": spec.t0, "T": spec.T})
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        same = run_job(fixed, client, progress=False)
    for name in ("tv_law", "tv_steps", "samples"):  # the same 16 steps, the same numbers
        assert np.array_equal(run[name].values, same[name].values), name
