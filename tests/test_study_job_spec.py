"""config.load_configs merges study files as Snakemake does, and config.study_job_spec gives
the JobSpec the workflow's job gets (the one home benchmarks and reruns take a job from)."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from scorerate.config.file import load_configs, study_job_spec

ROOT = Path(__file__).resolve().parents[1]
PART = [ROOT / "config.yaml", ROOT / "workflow" / "studies" / "paper.yaml",
        ROOT / "workflow" / "studies" / "paper" / "d1_sym_beta_2.yaml"]


def test_merge_is_snakemakes():
    """Snakemake's own update_config over the same files is the oracle."""
    want: dict = {}
    for path in PART:
        update_config(want, copy.deepcopy(yaml.safe_load(path.read_text())))
    got = load_configs(*PART)
    assert got["densities"] == want["densities"] == [{"name": "sym_beta", "beta": [2.0]}]
    assert got["dask"] == want["dask"]
    assert set(got) == set(want)
    for key in want:
        assert got[key] == want[key] or float(got[key]) == float(want[key]), key


def test_nested_keys_merge_and_lists_replace(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("n: [100, 300]\ndask: {scheduler_address: null, jobs_per_client: 10}\n")
    b.write_text("n: [1000]\ndask: {jobs_per_client: 2}\n")
    cfg = load_configs(a, b)
    assert cfg["n"] == [1000]
    assert cfg["dask"] == {"scheduler_address": None, "jobs_per_client": 2}


def test_bad_file_names_itself(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("n: [0]\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_configs(PART[0], bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_published_part_s_jobs(seed):
    """The beta 2 part's published jobs ran with these step counts, and seeds 0, 1 were its
    step-check seeds (their tv_law_steps_check is a number, the others' NaN)."""
    part = ROOT / "docs" / "results" / "d1_sym_beta_2"
    cfg = load_configs(part / "config.yaml")
    rows = pd.read_csv(part / "jobs.csv")
    rows = rows[(rows.seed == seed) & (rows.estimator == "regularized")]
    assert len(rows) == 7
    for _, row in rows.iterrows():
        spec = study_job_spec(cfg, density=row.density, beta=row.beta, d=int(row.d),
                              n=int(row.n), seed=seed)
        assert spec.n_steps == int(row.n_steps)
        assert bool(spec.step_check) == pd.notna(row.tv_law_steps_check)
        assert spec.integrator == "heun" and spec.law_resolution == 2.0


def test_overrides_replace_after_the_study():
    cfg = load_configs(*PART)
    base = study_job_spec(cfg, density="sym_beta", beta=2.0, d=1, n=1000, seed=5)
    finer = study_job_spec(cfg, density="sym_beta", beta=2.0, d=1, n=1000, seed=5,
                           law_resolution=4.0)
    assert (base.law_resolution, finer.law_resolution) == (2.0, 4.0)
    assert finer.n_steps == base.n_steps == 200 and base.step_check == 0
    with pytest.raises(TypeError):
        study_job_spec(cfg, density="sym_beta", beta=2.0, d=1, n=1000, seed=5, nonsense=1)
