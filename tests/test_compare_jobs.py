"""benchmarks/compare_jobs.py: the bit-for-bit check behind docs/results.md's rerun claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_jobs.py"


def _jobs(tv: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"density": "sym_beta", "beta": 1.0, "d": 1, "n": [100, 300, 1000],
                         "seed": 0, "estimator": "truncated", "tv_law": tv,
                         "tv_law_steps_check": [1e-3, np.nan, 2e-4]})


def _run(tmp_path: Path, published: pd.DataFrame, rerun: pd.DataFrame):
    published.to_csv(tmp_path / "pub.csv", index=False, float_format="%.17g")
    rerun.to_csv(tmp_path / "new.csv", index=False, float_format="%.17g")
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "pub.csv"),
                           str(tmp_path / "new.csv")], capture_output=True, text=True)


def test_a_subset_rerun_with_the_same_bits_passes(tmp_path):
    tv = [0.1, 1 / 3, 0.04]
    proc = _run(tmp_path, _jobs(tv), _jobs(tv).iloc[:2])
    assert proc.returncode == 0, proc.stdout
    assert "2 rerun job rows compared: bit-identical" in proc.stdout


def test_one_ulp_is_a_difference(tmp_path):
    tv = [0.1, 1 / 3, 0.04]
    moved = [tv[0], np.nextafter(tv[1], 1.0), tv[2]]
    proc = _run(tmp_path, _jobs(tv), _jobs(moved))
    assert proc.returncode == 1
    assert "tv_law: 1 of 3 jobs differ" in proc.stdout


def test_a_job_the_published_csv_lacks_fails(tmp_path):
    rerun = _jobs([0.1, 0.2, 0.3])
    rerun.loc[2, "seed"] = 7
    proc = _run(tmp_path, _jobs([0.1, 0.2, 0.3]), rerun)
    assert proc.returncode == 1
    assert "job not in the published CSV" in proc.stdout
