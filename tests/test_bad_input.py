"""Bad input, one table: each malformed command line or study config gives exit status != 0,
one clear message (a regex), nothing written or changed, and takes under 5 s.

Also the run-job faults that need no cluster: the output lock, a full disk at write time,
too little free space, and --overwrite on what is not a run store.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "workflow"))
from snakerun import SNAKEFILE, TINY, with_  # noqa: E402

from scorerate.store import runstore as store  # noqa: E402

# Per case, start-up of Python / Snakemake included: the CPU time of the child process must
# stay under LIMIT_S (the work done before refusing), and its wall time under HANG_S (a hang
# guard only: the 2 shared cores of the test machine often run at load 6, where the same
# 3 s refusal takes 8 s of wall time).
LIMIT_S = 5.0
HANG_S = 30.0
SMALL = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "300", "--m", "40",
         "--steps", "6", "--estimators", "truncated", "empirical", "--n-t", "3",
         "--n-mc", "100", "--n-ref", "100", "--n-int", "3", "--threads", "1", "--quiet"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under root, files with (size, mtime_ns): 'nothing written or changed'
    (a directory's own mtime is left out: run-job's write probe creates and removes a file)."""
    return {str(p.relative_to(root)): None if p.is_dir() else
            (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _timed(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run cmd; return it with its wall time and its CPU time (user + sys of the children)."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, **kw)
    wall = time.perf_counter() - started
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return proc, wall, cpu


def _set(args: list[str], flag: str, *values: str) -> list[str]:
    """SMALL with `flag` set to `values` (replacing its value if SMALL has it)."""
    out = list(args)
    if flag in out:
        i = out.index(flag)
        j = i + 1
        while j < len(out) and not out[j].startswith("--"):
            j += 1
        out[i + 1:j] = values
    else:
        out += [flag, *values]
    return out


def _fake_store(path: Path) -> Path:
    """A real (tiny) run store written by store.write_run."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_store import fake_run

    return store.write_run(fake_run(), path)


# (name) -> (argument list after `run-job`, with OUT for the tmp store, message regex)
CLI = {
    "n 1e9": (_set(SMALL, "--n", "1000000000"), r"needs ~\S+ GB memory.*more than"),
    "m 1e10": (_set(SMALL, "--m", "10000000000"), r"needs ~\S+ TB memory"),
    "steps huge": (_set(SMALL, "--steps", "1000000000000"), r"longer than the 7 days limit"),
    "n_mc huge": (_set(SMALL, "--n-mc", "1000000000000"), r"needs ~\S+ TB memory"),
    "n_mc 1": (_set(SMALL, "--n-mc", "1"), r"n_mc must be an integer >= 2, got 1"),
    "c_rho inf": (_set(SMALL, "--c-rho", "inf"), r"c_rho must be a finite number > 0, got inf"),
    "c_rho nan": (_set(SMALL, "--c-rho", "nan"), r"c_rho must be a finite number > 0, got nan"),
    "eps nan": (_set(SMALL, "--eps", "nan"), r"eps must be a finite number > 0, got nan"),
    "t_grid tmax inf": (_set(SMALL, "--t-grid", "0.01", "inf", "5"),
                        r"t_grid tmax must be a finite number"),
    "t_grid num 0": (_set(SMALL, "--t-grid", "0.01", "1", "0"), r"t_grid num must be"),
    "t_grid words": (_set(SMALL, "--t-grid", "a", "b", "c"), r"--t-grid needs TMIN TMAX NUM"),
    "unknown density": (_set(SMALL, "--density", "gauss"), r"unknown density 'gauss'"),
    "unknown estimator": (_set(SMALL, "--estimators", "kde"), r"unknown estimator 'kde'"),
    "estimator twice": (_set(SMALL, "--estimators", "empirical", "empirical"),
                        r"names listed twice"),
    "unknown integrator": (_set(SMALL, "--integrator", "rk4"), r"unknown integrator 'rk4'"),
    "unknown backend": (_set(SMALL, "--backend", "gpu"), r"unknown backend 'gpu'"),
    "beta 0": (_set(SMALL, "--beta", "0"), r"beta must be a finite number > 0"),
    "laplace beta 1.5": (_set(_set(SMALL, "--density", "laplace"), "--beta", "1.5"),
                         r"beta must be < 1\.5, got 1\.5"),
    "negative seed": (_set(SMALL, "--seed", "-1"),
                      r"seed must be an integer in \[0, 2\^63\), got -1"),
    "n string": (_set(SMALL, "--n", "many"), r"argument --n: invalid int value: 'many'"),
    "n fractional": (_set(SMALL, "--n", "1.5"), r"argument --n: invalid int value: '1.5'"),
    "d 0": (_set(SMALL, "--d", "0"), r"d must be an integer >= 1, got 0"),
    "m 0": (_set(SMALL, "--m", "0"), r"m must be an integer >= 1, got 0"),
    "rtol 1": (_set(SMALL, "--rtol", "1"), r"rtol must be a finite number in \(0, 1\)"),
    "t0 above T": (_set(_set(SMALL, "--t0", "5"), "--T", "1"), r"need t0 < T"),
    "threads 0": (_set(SMALL, "--threads", "0"), r"--threads must be >= 1, got 0"),
    "mem-mb too small": (_set(SMALL, "--mem-mb", "100"), r"more than the --mem-mb \(100 MB\)"),
    "mem-mb negative": (_set(SMALL, "--mem-mb", "-5"), r"--mem-mb must be > 0"),
    "missing --out": (list(SMALL), r"the following arguments are required: --out"),
}
OUT_CASES = {  # --out problems: (setup(tmp) -> out path, extra args, regex)
    "out . overwrite": (lambda tmp: Path("."), ["--overwrite"], r"working directory"),
    "out / overwrite": (lambda tmp: Path("/"), ["--overwrite"], r"working directory or one"),
    "out cwd ancestor": (lambda tmp: tmp.parent, ["--overwrite"], r"working directory or one"),
    "out plain dir overwrite": (lambda tmp: _plain_dir(tmp), ["--overwrite"],
                                r"not a scorerate run store; refusing to replace it"),
    "out plain dir": (lambda tmp: _plain_dir(tmp), [],
                      r"exists and is a directory, not a scorerate run store"),
    "out is a file": (lambda tmp: _file(tmp), ["--overwrite"], r"not a scorerate run store"),
    "out under a file": (lambda tmp: _file(tmp) / "run.zarr", [], r"not a directory"),
    "out complete store": (lambda tmp: _fake_store(tmp / "run.zarr"), [],
                           r"already a complete run store; pass --overwrite"),
    "out locked": (lambda tmp: _locked(tmp / "run.zarr"), [],
                   r"being written by another run-job \(process \d+"),
}


def _plain_dir(tmp: Path) -> Path:
    d = tmp / "results"
    (d / "runs").mkdir(parents=True)
    (d / "runs" / "keep.txt").write_text("a finished study's file")
    return d


def _file(tmp: Path) -> Path:
    f = tmp / "notes.txt"
    f.write_text("not a store")
    return f


def _locked(out: Path) -> Path:
    """A lock held by a live process (this test's own PID) on this host."""
    (out.parent / f".{out.name}.lock").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    return out


def _run_cli(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    return _timed([sys.executable, "-m", "scorerate", "run-job", *args], cwd=cwd,
                  capture_output=True, text=True, timeout=60, env=_env())


def _assert_fast(wall: float, cpu: float) -> None:
    assert cpu < LIMIT_S, f"used {cpu:.1f} s of CPU"
    assert wall < HANG_S, f"took {wall:.1f} s"


def _assert_one_clear_error(proc, pattern: str, wall: float, cpu: float) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert last.startswith("scorerate run-job: error:"), proc.stderr
    assert re.search(pattern, last), last
    _assert_fast(wall, cpu)


@pytest.mark.parametrize("case", list(CLI))
def test_bad_command_line(case, tmp_path):
    args, pattern = CLI[case]
    if "--out" not in args and case != "missing --out":
        args = [*args, "--out", str(tmp_path / "run.zarr")]
    before = _snapshot(tmp_path)
    proc, wall, cpu = _run_cli(args, tmp_path)
    _assert_one_clear_error(proc, pattern, wall, cpu)
    assert _snapshot(tmp_path) == before  # no store, no lock, no directory left


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_bad_output_path(case, tmp_path):
    setup, extra, pattern = OUT_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    out = setup(work)
    before = _snapshot(tmp_path)
    proc, wall, cpu = _run_cli([*SMALL, "--out", str(out), *extra], work)
    _assert_one_clear_error(proc, pattern, wall, cpu)
    assert _snapshot(tmp_path) == before  # the directory given as --out is untouched


# ---------------------------------------------------------------- study configs (snakemake -n)

CONFIG = {
    "n 1e9": (with_(TINY, n=[1_000_000_000]), r"a job with n=1000000000, d=1.*GB memory"),
    "m 1e10": (with_(TINY, m=10_000_000_000), r"m=10000000000.*TB memory"),
    "steps huge": (with_(TINY, steps=10**12), r"longer than the 7 days limit"),
    "n_mc huge": (with_(TINY, n_mc=10**12), r"TB memory"),
    "n_mc 1": (with_(TINY, n_mc=1), r"n_mc"),
    "c_rho inf": (with_(TINY, c_rho=float("inf")), r"c_rho must be a finite number"),
    "c_rho nan": (with_(TINY, c_rho=float("nan")), r"c_rho"),
    "eps nan": (with_(TINY, eps=float("nan")), r"eps"),
    "t_grid tmax inf": (with_(TINY, t_grid={"tmin": 0.01, "tmax": float("inf"), "num": 5}),
                        r"t_grid"),
    "unknown estimator": (with_(TINY, estimators=["kde"]), r"kde"),
    "unknown integrator": (with_(TINY, integrator="rk4"), r"rk4"),
    "beta out of range": (with_(TINY, densities=[{"name": "laplace", "beta": [1.5]}]),
                          r"laplace beta=1\.5 d=1: .*beta must be < 1\.5"),
    "densities mapping": (with_(TINY, densities={"sym_beta": {"beta": [1.0]}}),
                          r"expected a list of \{name, beta\} entries|is not of type 'array'"),
    "empty d": (with_(TINY, d=[]), r"\[\] should be non-empty"),
    "negative seed": (with_(TINY, seeds=[-1]), r"-1 is less than the minimum of 0"),
    "string for a number": (with_(TINY, steps="eight"), r"'eight' is not of type 'integer'"),
    "malformed yaml": ("densities: [{name: sym_beta, beta: [1.0]}\nn: [50\n", r"(?i)yaml|mapping"),
}


def _smk_dry(tmp: Path, config) -> tuple[subprocess.CompletedProcess, float, float]:
    cfg = tmp / "config.test.yaml"
    cfg.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return _timed(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp),
         "--configfile", str(cfg), "-n"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, env=_env())


@pytest.mark.parametrize("case", list(CONFIG))
def test_bad_study_config(case, tmp_path):
    config, pattern = CONFIG[case]
    proc, wall, cpu = _smk_dry(tmp_path, config)
    assert proc.returncode != 0, proc.stdout
    assert re.search(pattern, proc.stdout), proc.stdout
    assert "Job stats" not in proc.stdout  # refused before any job was planned
    assert not (tmp_path / "results").exists()
    _assert_fast(wall, cpu)


#: values each job would refuse only once it runs (a worker traceback, or an aggregation
#: that dies): refused at `snakemake -n` by the parameter's declared bound
BOUNDS = {
    "truncated c_rho -1": (with_(TINY, estimators=["truncated[c_rho=-1]"]),
                           r"'truncated\[c_rho=-1\]': c_rho must be a finite number > 0, got -1"),
    "highorder order 0": (with_(TINY, estimators=["highorder[order=0]"]),
                          r"'highorder\[order=0\]': order must be an integer in \[1, 64\), got 0"),
    "highorder order 2.5": (with_(TINY, estimators=["highorder[order=2.5]"]),
                            r"order must be an integer in \[1, 64\), got 2\.5"),
    "regularized eps -1": (with_(TINY, estimators=["regularized[eps=-1]"]),
                           r"'regularized\[eps=-1\]': eps must be a finite number > 0"),
    "truncated rtol 5": (with_(TINY, estimators=["truncated[rtol=5]"]),
                         r"'truncated\[rtol=5\]': rtol must be a finite number in \(0, 1\), got 5"),
    "seeds 1e30": (with_(TINY, seeds=[1e30]), r"1e\+30 is greater than or equal to the max"),
    "seeds 2^64": (with_(TINY, seeds=[2**64]), r"greater than or equal to the maximum"),
    "t0 1e10": (with_(TINY, t0=1e10), r"config t0: 10000000000\.0 must be below the horizon"),
}


@pytest.mark.parametrize("case", list(BOUNDS))
def test_out_of_bound_values_are_refused_at_dry_run(case, tmp_path):
    config, pattern = BOUNDS[case]
    proc, _wall, _cpu = _smk_dry(tmp_path, config)
    assert proc.returncode != 0, proc.stdout
    assert re.search(pattern, proc.stdout), proc.stdout
    assert "Job stats" not in proc.stdout
    assert not (tmp_path / "results").exists()


def test_whole_number_floats_for_n_are_normalised(tmp_path):
    proc, wall, cpu = _smk_dry(tmp_path, with_(TINY, n=[100.0, 300.0]))
    assert proc.returncode == 0, proc.stdout
    assert "n=100/" in proc.stdout and "n=300/" in proc.stdout
    assert "n=100.0" not in proc.stdout
    _assert_fast(wall, cpu)


# ---------------------------------------------------------------- run-job faults, in process

class _Args:
    """What argparse would give run-job for SMALL with `out`."""

    def __init__(self, out: Path, **kw):
        import argparse

        from scorerate.commands import run_job

        p = argparse.ArgumentParser()
        run_job.configure(p)
        self.ns = p.parse_args([*SMALL, "--out", str(out), *kw.pop("extra", [])])


def _no_cluster(monkeypatch, ds_factory):
    """Replace the cluster and the computation by a ready dataset (no Dask, no numbers)."""
    import contextlib

    from scorerate.job import cluster
    from scorerate.job import graph as job

    monkeypatch.setattr(cluster, "dask_client", lambda *a, **k: contextlib.nullcontext(None))
    monkeypatch.setattr(job, "run_job", lambda spec, client, **kw: ds_factory())


def _fake_ds():
    sys.path.insert(0, str(REPO / "tests"))
    from test_store import fake_run

    return fake_run()


def test_full_disk_at_write_is_one_line_exit_2_and_nothing_left(tmp_path, monkeypatch, capsys):
    from scorerate.commands import run_job

    _no_cluster(monkeypatch, _fake_ds)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store, "write_run", full)
    out = tmp_path / "run.zarr"
    assert run_job.run(_Args(out).ns) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device (errno 28)" in err[0], err
    assert str(out) in err[0]
    assert list(tmp_path.iterdir()) == []  # no store, and the lock was released


def test_too_little_free_space_is_refused_before_work(tmp_path, monkeypatch):
    import shutil

    from scorerate.commands import run_job

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(ValueError, match=r"not enough free space .*0 MB free"):
        run_job.check_output(tmp_path / "run.zarr", False, need_bytes=1e6)


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, monkeypatch):
    from scorerate.commands import run_job

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its PID is free now (reuse within the test is practically impossible)
    out = tmp_path / "run.zarr"
    lock = tmp_path / ".run.zarr.lock"
    lock.write_text(f"{socket.gethostname()} {dead.pid}\n")
    _no_cluster(monkeypatch, _fake_ds)
    assert run_job.run(_Args(out).ns) == 0
    assert store.is_complete(out) and not lock.exists()


def test_overwrite_replaces_a_damaged_run_store_of_ours(tmp_path, monkeypatch):
    from scorerate.commands import run_job

    out = _fake_store(tmp_path / "run.zarr")
    xr_ = xr.open_zarr(out)
    old = xr_["w1"].values.copy()
    import zarr

    arr = zarr.open_array(out / "w1", mode="r+")
    arr[:] = arr[:] + 1.0  # damaged, but still ours: --overwrite may replace it
    with pytest.raises(ValueError, match="damaged run store"):
        run_job.check_output(out, False)
    _no_cluster(monkeypatch, _fake_ds)
    assert run_job.run(_Args(out, extra=["--overwrite"]).ns) == 0
    np.testing.assert_array_equal(store.open_run(out)["w1"].values, old)


def test_a_lock_from_another_host_is_stale_once_its_lease_runs_out(tmp_path, monkeypatch):
    """A job killed on another node leaves its lock; the retry takes it over once the
    lock has not been renewed for its lease, and not before."""
    from scorerate.commands import run_job

    out = tmp_path / "run.zarr"
    lock = tmp_path / ".run.zarr.lock"
    lock.write_text("some-other-node 12345\n")
    with pytest.raises(ValueError, match="process 12345 on some-other-node"):
        run_job.acquire_lock(out)
    old = time.time() - 2 * run_job.LOCK_LEASE_S
    os.utime(lock, (old, old))
    _no_cluster(monkeypatch, _fake_ds)
    assert run_job.run(_Args(out).ns) == 0
    assert store.is_complete(out) and not lock.exists()


def test_a_held_lock_is_renewed_while_its_job_works(tmp_path):
    from scorerate.commands import run_job

    lock, token = run_job.acquire_lock(tmp_path / "run.zarr")
    os.utime(lock, (1.0, 1.0))
    with run_job.LockLease(lock, token, lease=0.2):
        deadline = time.monotonic() + 30
        while lock.stat().st_mtime < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lock.stat().st_mtime > 10  # renewed
    run_job.release_lock(lock, token)
    assert not lock.exists()


def test_what_killed_writers_left_is_cleaned_and_an_interrupted_swap_restored(tmp_path,
                                                                               monkeypatch):
    from scorerate.commands import run_job

    out = tmp_path / "run.zarr"
    kept = _fake_store(tmp_path / "keep.zarr")
    (tmp_path / ".run.zarr.tmp-0123").mkdir()  # a killed write
    os.replace(kept, tmp_path / ".run.zarr.old-4567")  # a swap killed half way
    done = run_job.clean_orphans(out)
    assert store.is_complete(out) and "restored run.zarr from an interrupted swap" in done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]
    (tmp_path / ".run.zarr.old-89ab").mkdir()  # the store exists: the old copy goes
    run_job.clean_orphans(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]
