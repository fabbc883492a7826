"""A tiny study end to end, then the incremental reruns: nothing changed, new seeds and n,
changed job parameters, a deleted store (each checked on Snakemake's dry-run plan)."""

from __future__ import annotations

import shutil

import pytest
import xarray as xr
import yaml
from snakerun import TINY, other_rules, planned, run_jobs, smk, with_

# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The tiny study, run to its report."""
    work = tmp_path_factory.mktemp("wf")
    res = smk(work, TINY, "--cores", "2")
    assert res.returncode == 0, res.stdout + "".join(
        p.read_text() for p in (work / "logs").rglob("*.log"))
    return work


@pytest.mark.slow
def test_end_to_end_outputs(done):
    report = done / "results" / "report"
    for name in ("index.html", "rates.csv", "summary.md"):
        assert (report / name).stat().st_size > 0
    figs = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert figs == ["memorisation_sym_beta_beta1_d1.png", "rates_n_sym_beta_beta1_d1.png",
                    "samples_sym_beta_beta1_d1.png", "score_t_sym_beta_beta1_d1.png",
                    "verdicts.png"]
    study = xr.open_zarr(done / "results" / "study.zarr")
    assert dict(study["score_mse"].sizes) == {"density": 1, "beta": 1, "d": 1, "n": 2,
                                              "seed": 2, "estimator": 2, "t": 5}
    assert bool(study["tv"].notnull().all()) and bool(study["score_mse"].notnull().all())
    assert yaml.safe_load(study.attrs["config"])["steps"] == 8
    # every rule wrote its log and its benchmark
    bench = done / "results" / "benchmarks"
    for name in ("study_config", "aggregate", "report"):
        assert (bench / f"{name}.tsv").stat().st_size > 0
        assert (done / "logs" / f"{name}.log").is_file()
    assert len(list((bench / "runs").rglob("*.tsv"))) == 4
    assert len(list((done / "logs" / "runs").rglob("*.log"))) == 4


@pytest.mark.slow
def test_rerun_with_nothing_changed_does_nothing(done):
    res = smk(done, TINY, "-n")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout, res.stdout


@pytest.mark.slow
def test_adding_a_seed_or_an_n_runs_only_the_new_jobs(done):
    jobs = planned(done, with_(TINY, seeds=[0, 1, 2]))
    assert run_jobs(jobs) == {("50", "2"), ("100", "2")}
    assert other_rules(jobs) <= {"study_config", "check_stores", "aggregate", "report", "all"}
    jobs = planned(done, with_(TINY, n=[50, 100, 200]))
    assert run_jobs(jobs) == {("200", "0"), ("200", "1")}


ALL = {("50", "0"), ("50", "1"), ("100", "0"), ("100", "1")}


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"steps": 9}, {"m": 60}, {"c_rho": 2.0},
                                    {"estimators": ["truncated"]},
                                    {"integrator": "ancestral"}])
def test_changing_a_job_parameter_reruns_the_affected_jobs(done, change):
    assert run_jobs(planned(done, with_(TINY, **change))) == ALL


@pytest.mark.slow
def test_a_step_check_seed_reruns_only_its_jobs(done):
    """step_check_seeds: 1 adds a law to seed 0's jobs, and changes no other job."""
    assert run_jobs(planned(done, with_(TINY, step_check_seeds=1))) == {("50", "0"),
                                                                        ("100", "0")}


@pytest.mark.slow
def test_threads_and_scheduler_rerun_nothing(done):
    # where the work runs does not change the numbers, so it is not a rerun trigger
    res = smk(done, with_(TINY, dask={"scheduler_address": "tcp://10.0.0.1:8786"}), "-n")
    assert "Nothing to be done" in res.stdout, res.stdout
    res = smk(done, TINY, "-n", "--set-threads", "run_job=2")
    assert "Nothing to be done" in res.stdout, res.stdout


@pytest.mark.slow
def test_deleting_one_store_recomputes_only_it_then_aggregate_and_report(done):
    runs = done / "results" / "runs" / "sym_beta" / "beta=1.0" / "d=1"
    gone = runs / "n=100" / "seed=1.zarr"
    keep = [p for p in runs.rglob("seed=*.zarr") if p != gone]
    before = {p: p.stat().st_mtime_ns for p in keep}
    study_before = (done / "results" / "study.zarr").stat().st_mtime_ns
    shutil.rmtree(gone)
    jobs = planned(done, TINY)
    assert run_jobs(jobs) == {("100", "1")}
    assert other_rules(jobs) == {"check_stores", "aggregate", "report", "all"}
    res = smk(done, TINY, "--cores", "2")
    assert res.returncode == 0, res.stdout
    assert gone.is_dir()
    assert {p: p.stat().st_mtime_ns for p in keep} == before  # the others were not touched
    assert (done / "results" / "study.zarr").stat().st_mtime_ns != study_before
    assert "Nothing to be done" in smk(done, TINY, "-n").stdout
