"""A researcher's own estimator, named by import path in the study config, runs through the
real workflow without touching the package: stored, aggregated and reported like a built-in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml
from snakerun import SNAKEFILE, TINY, with_

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from plugin_sources import GAUSS_FIT, HANG  # noqa: E402


@pytest.mark.slow
def test_a_plugin_estimator_runs_a_tiny_study_end_to_end(tmp_path):
    pkg = tmp_path / "plugins"
    pkg.mkdir()
    (pkg / "myscores.py").write_text(GAUSS_FIT)
    name = "myscores:GaussFit"
    work = tmp_path / "work"
    work.mkdir()
    cfg = work / "config.test.yaml"
    cfg.write_text(yaml.safe_dump(with_(TINY, estimators=["truncated", name])))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(pkg), *filter(None, [os.environ.get("PYTHONPATH")])])}
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work),
         "--configfile", str(cfg), "--cores", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout + "".join(
        p.read_text() for p in (work / "logs").rglob("*.log"))
    study = xr.open_zarr(work / "results" / "study.zarr")
    assert list(study["estimator"].values) == ["truncated", name]
    fit = study["score_mse"].sel(estimator=name)
    assert bool(fit.notnull().all()) and bool((fit > 0).all())
    rates = pd.read_csv(work / "results" / "report" / "rates.csv")
    assert (rates["estimator"] == name).any()
    assert name in (work / "results" / "report" / "index.html").read_text()


def test_an_estimator_that_does_not_resolve_is_one_clear_error(tmp_path):
    from snakerun import smk

    res = smk(tmp_path, with_(TINY, estimators=["nosuchmodule:Score"]), "-n")
    assert res.returncode != 0
    assert "config estimators" in res.stdout and "nosuchmodule" in res.stdout
    assert not (tmp_path / "results").exists()




@pytest.mark.slow
def test_a_hanging_plugin_ends_the_workflow_with_one_line(tmp_path):
    """dask.time_limit reaches every job: a plug-in whose score() never returns ends its
    job with one line, and Snakemake stops with an error instead of waiting forever (the
    subprocess timeout only guards the suite against that hang)."""
    pkg = tmp_path / "plugins"
    pkg.mkdir()
    (pkg / "hang.py").write_text(HANG)
    work = tmp_path / "work"
    work.mkdir()
    cfg = work / "config.test.yaml"
    cfg.write_text(yaml.safe_dump(with_(TINY, n=[50], seeds=[0], estimators=["hang:Hang"],
                                        dask={"time_limit": 3})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(pkg), *filter(None, [os.environ.get("PYTHONPATH")])])}
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(work),
         "--configfile", str(cfg), "--cores", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env=env)
    assert res.returncode != 0, res.stdout
    assert "--time-limit 3" in res.stdout  # the failed job's command, as Snakemake shows it
    log = (work / "logs/runs/sym_beta/beta=1.0/d=1/n=50/seed=0.log").read_text()
    errors = [ln for ln in log.splitlines() if "error" in ln]
    assert len(errors) == 1 and "time limit of 3 s (--time-limit)" in errors[0], log
    assert not (work / "results/runs/sym_beta/beta=1.0/d=1/n=50/seed=0.zarr").exists()
