"""The command line as a user meets it: help, one clear error per bad input, real jobs."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from scorerate.store import runstore as store

SMALL = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "300", "--seed", "0",
         "--m", "40", "--steps", "6", "--estimators", "truncated", "empirical",
         "--n-t", "3", "--n-mc", "100", "--n-ref", "100", "--n-int", "3", "--threads", "1",
         "--quiet"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scorerate", *args], capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_lists_the_commands_and_the_job_options():
    top = cli("--help")
    assert top.returncode == 0
    for name in ("run-job", "aggregate", "report"):
        assert name in top.stdout
    job = cli("run-job", "--help")
    assert job.returncode == 0
    for option in ("--density", "--estimators", "--scheduler", "--t-grid", "--overwrite"):
        assert option in job.stdout


def _bad(tmp_path, **change) -> list[str]:
    args = [*SMALL]
    for flag, value in change.items():
        flag = "--" + flag.replace("_", "-")
        i = args.index(flag)
        args[i + 1] = value
    return [*args, "--out", str(tmp_path / "run.zarr")]


@pytest.mark.parametrize("change, words", [
    (dict(density="gauss"), "unknown density"),
    (dict(beta="1.5", density="laplace"), "1.5"),
    (dict(beta="-1"), "beta"),
    (dict(d="0"), "d must be"),
    (dict(n="1"), "n must be"),
    (dict(m="0"), "m must be"),
    (dict(estimators="kde"), "unknown estimator"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(tmp_path, change, words):
    proc = cli("run-job", *_bad(tmp_path, **change), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorerate run-job: error:"), proc.stderr
    assert words in lines[0]
    assert not (tmp_path / "run.zarr").exists()


def test_t0_not_below_T_is_refused(tmp_path):
    proc = cli("run-job", *_bad(tmp_path), "--t0", "5", "--T", "1", timeout=60)
    assert proc.returncode == 2 and "t0 < T" in proc.stderr


def test_unwritable_output_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = cli("run-job", *SMALL, "--out", str(blocker / "run.zarr"), timeout=60)
    assert proc.returncode == 2 and "not a directory" in proc.stderr


def test_unreachable_scheduler_fails_within_seconds(tmp_path):
    port = free_port()  # nothing listens there
    # the subprocess timeout is the hang guard (the connect timeout is a few seconds); no
    # test asserts a duration
    proc = cli("run-job", *SMALL, "--out", str(tmp_path / "run.zarr"),
               "--scheduler", f"tcp://127.0.0.1:{port}", timeout=60)
    assert proc.returncode == 2 and f"127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert not (tmp_path / "run.zarr").exists()


def test_a_job_writes_a_store_that_xarray_opens_and_is_never_overwritten(tmp_path):
    out = tmp_path / "runs" / "run.zarr"
    proc = cli("run-job", *SMALL, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    ds = xr.open_zarr(out)
    assert set(store.SCHEMA) <= set(ds.variables)
    assert ds.samples.shape == (2, 40, 1) and ds.attrs["n"] == 300
    first = ds.samples.values.copy()
    again = cli("run-job", *SMALL, "--out", str(out), timeout=60)
    assert again.returncode == 2 and "already a complete run store" in again.stderr
    assert np.array_equal(xr.open_zarr(out).samples.values, first)
    # --overwrite replaces it, here with the same numbers (same parameters, another chunk)
    redo = cli("run-job", *SMALL, "--chunk", "7", "--out", str(out), "--overwrite")
    assert redo.returncode == 0, redo.stderr
    assert np.array_equal(xr.open_zarr(out).samples.values, first)


def test_a_job_on_an_existing_scheduler_gives_the_embedded_numbers(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as lc:
        remote = cli("run-job", *SMALL, "--out", str(tmp_path / "remote.zarr"),
                     "--scheduler", lc.scheduler_address)
    assert remote.returncode == 0, remote.stderr
    local = cli("run-job", *SMALL, "--out", str(tmp_path / "local.zarr"))
    assert local.returncode == 0, local.stderr
    a, b = store.open_run(tmp_path / "remote.zarr"), store.open_run(tmp_path / "local.zarr")
    for name in store.SCHEMA:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name
