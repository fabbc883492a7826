"""A job that hangs (a plug-in estimator whose score() never returns) is ended by its
wall-time limit with one line and exit status 2, instead of hanging forever; run-job and
run-jobs share the limit (run_job.job_deadline), its default from scorerate.config.sizing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from plugin_sources import HANG

from scorerate.config.sizing import MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR, estimate, time_limit

JOB = ["--estimators", "hang:Hang", "--m", "20", "--steps", "4", "--n-mc", "50",
       "--t-grid", "0.1", "1", "3", "--threads", "1"]


def scorerate(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The CLI with the plug-in's directory on PYTHONPATH; the timeout only guards the suite
    against the hang this tests (it is no assertion on the duration)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "hang.py").write_text(HANG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(plugins), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "scorerate", *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=tmp_path)


def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if "error" in ln.lower()]


def test_run_job_ends_a_hanging_plugin_with_one_line(tmp_path):
    out = tmp_path / "run.zarr"
    res = scorerate(tmp_path, "run-job", "--density", "sym_beta", "--beta", "1.0", "--d", "1",
                    "--n", "50", "--seed", "0", *JOB, "--time-limit", "3", "--out", str(out))
    assert res.returncode == 2, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1, res.stderr
    assert "time limit of 3 s (--time-limit)" in lines[0] and str(out) in lines[0]
    assert "Traceback" not in res.stderr
    assert not out.exists()
    assert not (tmp_path / ".run.zarr.lock").exists()  # released before the process ended


def test_run_jobs_ends_a_hanging_plugin_with_one_line(tmp_path):
    outs = [tmp_path / f"seed={s}.zarr" for s in (0, 1)]
    jobs = [w for s, o in enumerate(outs)
            for w in ("--job", "sym_beta", "1.0", "1", "50", str(s), str(o))]
    res = scorerate(tmp_path, "run-jobs", *jobs, *JOB, "--time-limit", "3")
    assert res.returncode == 2, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1 and "time limit of 3 s" in lines[0], res.stderr
    assert str(outs[0]) in lines[0]
    assert not any(o.exists() for o in outs)


@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
def test_a_bad_time_limit_is_refused_before_work(tmp_path, value):
    res = scorerate(tmp_path, "run-job", "--density", "sym_beta", "--beta", "1.0", "--d", "1",
                    "--n", "50", "--seed", "0", "--time-limit", value, "--out",
                    str(tmp_path / "x.zarr"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].endswith(
        f"--time-limit must be a number of seconds >= 0, got {float(value)}")


def test_default_limit_is_the_estimate_times_the_factor_with_a_floor():
    small = estimate(n=50, d=1, m=20, steps=4)
    assert time_limit(small) == MIN_TIME_LIMIT_S
    big = estimate(n=100_000, d=2, m=10_000, steps=256)
    assert big.wall_s * TIME_LIMIT_FACTOR > MIN_TIME_LIMIT_S
    assert time_limit(big) == pytest.approx(TIME_LIMIT_FACTOR * big.wall_s)
    assert time_limit(big, factor=2) == pytest.approx(max(MIN_TIME_LIMIT_S, 2 * big.wall_s))
