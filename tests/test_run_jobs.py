"""`scorerate run-jobs`: K jobs in one process write the same stores as K `run-job` runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from scorerate.store import runstore as store

SHARED = ["--m", "40", "--steps", "5", "--estimators", "truncated", "empirical",
          "--t-grid", "0.01", "10", "3", "--n-mc", "100", "--n-ref", "100", "--n-int", "3",
          "--n-mc-kde", "500", "--threads", "1", "--quiet"]
#: (density, beta, d, n, seed): two n and two seeds, so a state leaking from one job into
#: the next (an estimator cached under a shared key, a reused stream) would show
JOBS = [("sym_beta", "1.0", "1", "120", "0"), ("sym_beta", "1.0", "1", "80", "3")]
#: attrs that record when and how fast, not what
VOLATILE = {"created", "wall_time_s", "history", "date_created"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scorerate", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # three processes of ~3-5 s each on 2 shared cores
def test_batch_writes_bit_identical_stores_to_one_by_one_runs(tmp_path):
    batch = []
    for j in JOBS:
        batch += ["--job", *j, str(tmp_path / f"batch_{j[3]}_{j[4]}.zarr")]
    res = cli("run-jobs", *SHARED, *batch)
    assert res.returncode == 0, res.stderr
    for density, beta, d, n, seed in JOBS:
        single = tmp_path / f"single_{n}_{seed}.zarr"
        res = cli("run-job", "--density", density, "--beta", beta, "--d", d, "--n", n,
                  "--seed", seed, *SHARED, "--timings", "--out", str(single))
        assert res.returncode == 0, res.stderr
        phases = [line.split()[2] for line in res.stderr.splitlines()
                  if line.startswith("scorerate timing: ")]
        assert phases == ["imports", "validate", "cluster_start", "work", "cluster_stop",
                          "write"]
        a = store.open_run(tmp_path / f"batch_{n}_{seed}.zarr")  # verifies its checksum
        b = store.open_run(single)
        assert set(a.variables) == set(b.variables)
        for name in a.variables:  # bitwise, NaN where NaN
            x, y = np.asarray(a[name].values), np.asarray(b[name].values)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            if x.dtype.kind == "f":
                assert x.tobytes() == y.tobytes(), name
            else:
                assert (x == y).all(), name
        assert {k: v for k, v in a.attrs.items() if k not in VOLATILE} == {
            k: v for k, v in b.attrs.items() if k not in VOLATILE}
        assert a.attrs["n"] == int(n) and a.attrs["seed"] == int(seed)
    # the two jobs really differ (a batch writing one job's numbers twice would pass above
    # only if run-job did the same)
    s0 = store.open_run(tmp_path / "batch_120_0.zarr")
    s1 = store.open_run(tmp_path / "batch_80_3.zarr")
    assert s0["train"].shape != s1["train"].shape
    assert not np.array_equal(s0["samples"].values, s1["samples"].values)


def test_a_bad_job_is_one_error_before_any_work(tmp_path):
    good = ["--job", "sym_beta", "1.0", "1", "100", "0", str(tmp_path / "good.zarr")]
    bad = ["--job", "gauss", "1.0", "1", "100", "1", str(tmp_path / "bad.zarr")]
    res = cli("run-jobs", *SHARED, *good, *bad)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorerate run-jobs: error: --job gauss")
    assert "unknown density" in lines[0]
    assert not (tmp_path / "good.zarr").exists()  # nothing ran


def test_the_same_output_twice_is_refused(tmp_path):
    out = str(tmp_path / "x.zarr")
    res = cli("run-jobs", *SHARED, "--job", "sym_beta", "1.0", "1", "100", "0", out,
              "--job", "sym_beta", "1.0", "1", "100", "1", out)
    assert res.returncode == 2 and "output named twice" in res.stderr
