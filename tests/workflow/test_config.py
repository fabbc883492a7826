"""Config validation: each bad config is one clear error before any job; lint; Dask address."""

from __future__ import annotations

import re

import pytest
from snakerun import TINY, planned, smk, with_

# ---------------------------------------------------------------- config validation

BAD = {
    "typo": (with_(TINY, seedz=[0]), r"unknown key 'seedz' \(did you mean 'seeds'\?\)"),
    "wrong type": (with_(TINY, m="fifty"), r"'fifty' is not of type 'integer'"),
    "unknown density": (with_(TINY, densities=[{"name": "gauss", "beta": [1.0]}]),
                        r"unknown density 'gauss'.*valid: gauss_mix, laplace, sym_beta"),
    "impossible beta": (with_(TINY, densities=[{"name": "laplace", "beta": [2.0]}]),
                        r"laplace beta=2\.0 d=1: .*beta must be < 1\.5, got 2\.0"),
    "empty list": (with_(TINY, n=[]), r"\[\] should be non-empty"),
    "empty beta list": (with_(TINY, densities=[{"name": "sym_beta", "beta": []}]),
                        r"\[\] should be non-empty"),
    "t grid": (with_(TINY, t_grid={"tmin": 1.0, "tmax": 0.1, "num": 3}),
               r"tmin \(1\.0\) must be < tmax \(0\.1\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_one_clear_error_before_any_job(case, tmp_path):
    config, message = BAD[case]
    res = smk(tmp_path, config, "-n")
    assert res.returncode != 0
    assert re.search(message, res.stdout), res.stdout
    said = [line for line in res.stdout.splitlines() if not line.startswith("Config file ")]
    assert len(said) == 1 and said[0].startswith("scorerate: error: "), res.stdout
    assert "Job stats" not in res.stdout  # rejected before any job was planned
    assert not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path):
    res = smk(tmp_path, TINY, "--lint")
    assert res.returncode == 0, res.stdout
    assert "Congratulations, your workflow is in a good condition" in res.stdout


def test_scheduler_address_reaches_run_job_without_rerunning(tmp_path):
    plain = smk(tmp_path, TINY, "-n", "-p")
    remote = smk(tmp_path, with_(TINY, dask={"scheduler_address": "tcp://10.0.0.1:8786"}),
                 "-n", "-p")
    assert plain.returncode == 0 and remote.returncode == 0, remote.stdout
    cmds = [ln for ln in remote.stdout.splitlines() if "scorerate run-job" in ln]
    assert len(cmds) == 4 and all("--scheduler tcp://10.0.0.1:8786" in c for c in cmds)
    assert "--scheduler" not in plain.stdout and "--threads 1" in plain.stdout


def test_a_ragged_grid_plans_exactly_its_jobs(tmp_path):
    """densities entries with their own d / n: one run_job per job of the union, no more."""
    cfg = with_(TINY, d=[1, 2], n=[50, 100],
                densities=[{"name": "sym_beta", "beta": [1.0], "d": [1, 2]},
                           {"name": "sym_beta", "beta": [2.0], "d": [1], "n": [50]}])
    jobs = planned(tmp_path, cfg)
    runs = sorted((wc["beta"], wc["d"], wc["n"], wc["seed"]) for name, wc in jobs
                  if name == "run_job")
    want = sorted([("1.0", d, n, s) for d in ("1", "2") for n in ("50", "100")
                   for s in ("0", "1")] + [("2.0", "1", "50", s) for s in ("0", "1")])
    assert runs == want
    assert {"aggregate", "report", "check_stores"} <= {name for name, _ in jobs}


def test_variants_reach_run_job_as_quoted_canonical_labels(tmp_path):
    cfg = with_(TINY, estimators=["truncated", "highorder[order=4,C=2]"], highorder_C=3.0)
    res = smk(tmp_path, cfg, "-n", "-p")
    assert res.returncode == 0, res.stdout
    cmds = [ln for ln in res.stdout.splitlines() if "scorerate run-job" in ln]
    assert len(cmds) == 4
    assert all("--estimators truncated 'highorder[C=2,order=4]'" in c for c in cmds)
    assert all("--highorder-C 3.0" in c for c in cmds)  # highorder's params reach variants
    bad = smk(tmp_path, with_(TINY, estimators=["highorder[ordr=4]"]), "-n")
    assert bad.returncode != 0 and "unknown option 'ordr'" in bad.stdout
