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

from scorerate.commands import output_lock  # noqa: E402
from scorerate.store import runstore as store  # noqa: E402

# "Before any work" is shown by behaviour, not by time (no test asserts a duration; the
# time a refusal takes is measured by benchmarks/refusal.py): a refused run-job never
# starts its job on a Dask client (no "result tasks" line), a refused snakemake plans no
# job ("Job stats"), and nothing is written. Subprocess timeouts are hang guards only.
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


def _timed(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run cmd (its timeout, if given, is a hang guard)."""
    return subprocess.run(cmd, **kw)


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
    "steps huge": (_set(SMALL, "--steps", "1000000000000"),
                   r"TB memory|longer than the 7 days limit"),
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


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return _timed([sys.executable, "-m", "scorerate", "run-job", *args], cwd=cwd,
                  capture_output=True, text=True, timeout=60, env=_env())


def _assert_one_clear_error(proc, pattern: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert last.startswith("scorerate run-job: error:"), proc.stderr
    assert re.search(pattern, last), last
    assert "result tasks" not in proc.stderr  # no job was started on a Dask client


@pytest.mark.parametrize("case", list(CLI))
def test_bad_command_line(case, tmp_path):
    args, pattern = CLI[case]
    if "--out" not in args and case != "missing --out":
        args = [*args, "--out", str(tmp_path / "run.zarr")]
    before = _snapshot(tmp_path)
    proc = _run_cli(args, tmp_path)
    _assert_one_clear_error(proc, pattern)
    assert _snapshot(tmp_path) == before  # no store, no lock, no directory left


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_bad_output_path(case, tmp_path):
    setup, extra, pattern = OUT_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    out = setup(work)
    before = _snapshot(tmp_path)
    proc = _run_cli([*SMALL, "--out", str(out), *extra], work)
    _assert_one_clear_error(proc, pattern)
    assert _snapshot(tmp_path) == before  # the directory given as --out is untouched


# ---------------------------------------------------------------- study configs (snakemake -n)

CONFIG = {
    "n 1e9": (with_(TINY, n=[1_000_000_000]), r"a job with n=1000000000, d=1.*GB memory"),
    "m 1e10": (with_(TINY, m=10_000_000_000), r"m=10000000000.*TB memory"),
    "steps huge": (with_(TINY, steps=10**12), r"TB memory|longer than the 7 days limit"),
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


def _smk_dry(tmp: Path, config) -> subprocess.CompletedProcess:
    cfg = tmp / "config.test.yaml"
    cfg.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return _timed(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp),
         "--configfile", str(cfg), "-n"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, env=_env())


@pytest.mark.parametrize("case", list(CONFIG))
def test_bad_study_config(case, tmp_path):
    config, pattern = CONFIG[case]
    proc = _smk_dry(tmp_path, config)
    assert proc.returncode != 0, proc.stdout
    assert re.search(pattern, proc.stdout), proc.stdout
    assert "Job stats" not in proc.stdout  # refused before any job was planned
    assert not (tmp_path / "results").exists()


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
    proc = _smk_dry(tmp_path, config)
    assert proc.returncode != 0, proc.stdout
    assert re.search(pattern, proc.stdout), proc.stdout
    assert "Job stats" not in proc.stdout
    assert not (tmp_path / "results").exists()


def test_whole_number_floats_for_n_are_normalised(tmp_path):
    proc = _smk_dry(tmp_path, with_(TINY, n=[100.0, 300.0]))
    assert proc.returncode == 0, proc.stdout
    assert "n=100/" in proc.stdout and "n=300/" in proc.stdout
    assert "n=100.0" not in proc.stdout


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


    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(ValueError, match=r"not enough free space .*0 MB free"):
        output_lock.check_output(tmp_path / "run.zarr", False, need_bytes=1e6)


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
        output_lock.check_output(out, False)
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
        output_lock.acquire_lock(out)
    old = time.time() - 2 * output_lock.LOCK_LEASE_S
    os.utime(lock, (old, old))
    _no_cluster(monkeypatch, _fake_ds)
    assert run_job.run(_Args(out).ns) == 0
    assert store.is_complete(out) and not lock.exists()


def test_a_held_lock_is_renewed_while_its_job_works(tmp_path):

    lock, token = output_lock.acquire_lock(tmp_path / "run.zarr")
    os.utime(lock, (1.0, 1.0))
    with output_lock.LockLease(lock, token, lease=0.2):
        deadline = time.monotonic() + 30
        while lock.stat().st_mtime < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert lock.stat().st_mtime > 10  # renewed
    output_lock.release_lock(lock, token)
    assert not lock.exists()


def test_what_killed_writers_left_is_cleaned_and_an_interrupted_swap_restored(tmp_path,
                                                                               monkeypatch):

    out = tmp_path / "run.zarr"
    kept = _fake_store(tmp_path / "keep.zarr")
    (tmp_path / ".run.zarr.tmp-0123").mkdir()  # a killed write
    os.replace(kept, tmp_path / ".run.zarr.old-4567")  # a swap killed half way
    done = output_lock.clean_orphans(out)
    assert store.is_complete(out) and "restored run.zarr from an interrupted swap" in done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]
    (tmp_path / ".run.zarr.old-89ab").mkdir()  # the store exists: the old copy goes
    output_lock.clean_orphans(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


# ---------------------------------------------------------------- the in-process table
# Every command, many more malformed inputs: run through `scorerate.cli.main` in this
# process (no interpreter start per case), with the cluster and the report's work replaced
# by a tripwire, so "refused before any work" is checked, not assumed. Each case: exit
# status 2, exactly one line on stderr, no traceback, the line matching its regex, and
# nothing under the working directory written or changed.

J = ["--job", "sym_beta", "1.0", "1", "300", "0", "b.zarr"]  # one good run-jobs job
SHARED = ["--m", "40", "--steps", "6", "--estimators", "truncated", "--n-mc", "100",
          "--n-ref", "100", "--n-int", "3", "--threads", "1", "--quiet"]


def _rj(*change: str) -> list[str]:
    """run-job SMALL with flags replaced (pairs flag, value; a value may be a list)."""
    args = list(SMALL)
    items = list(change)
    while items:
        flag, value = items.pop(0), items.pop(0)
        args = _set(args, flag, *(value if isinstance(value, list) else [value]))
    return ["run-job", *args, "--out", "a.zarr"]


def _rjs(*extra: str, jobs: list[str] = J) -> list[str]:
    return ["run-jobs", *SHARED, *extra, *jobs]


#: case -> (argv, regex of the one line, files to create first {name: text})
TABLE: dict[str, tuple[list[str], str, dict[str, str]]] = {
    # run-job: variant options out of their declared bounds (issue 18)
    "rj truncated c_rho -1": (_rj("--estimators", "truncated[c_rho=-1]"),
                              r"c_rho must be a finite number > 0, got -1", {}),
    "rj highorder order 0": (_rj("--estimators", "highorder[order=0]"),
                             r"order must be an integer in \[1, 64\), got 0", {}),
    "rj highorder order 2.5": (_rj("--estimators", "highorder[order=2.5]"),
                               r"order must be an integer .*got 2\.5", {}),
    "rj highorder order 1e6": (_rj("--estimators", "highorder[order=1000000]"),
                               r"order must be an integer in \[1, 64\)", {}),
    "rj highorder C 0": (_rj("--estimators", "highorder[C=0]"), r"C must be a finite", {}),
    "rj regularized eps -1": (_rj("--estimators", "regularized[eps=-1]"),
                              r"eps must be a finite number > 0", {}),
    "rj truncated rtol 5": (_rj("--estimators", "truncated[rtol=5]"),
                            r"rtol must be a finite number in \(0, 1\), got 5", {}),
    "rj variant c_rho 1e999": (_rj("--estimators", "truncated[c_rho=1e999]"),
                               r"option c_rho must be finite", {}),
    "rj variant unknown option": (_rj("--estimators", "highorder[foo=1]"),
                                  r"unknown option 'foo'.*highorder takes", {}),
    "rj variant word value": (_rj("--estimators", "highorder[order=four]"),
                              r"option order must be a number", {}),
    "rj variant unclosed": (_rj("--estimators", "highorder[order=4"),
                            r"malformed estimator", {}),
    "rj variant twice": (_rj("--estimators", "highorder[order=4,order=5]"),
                         r"option 'order' given twice", {}),
    "rj variant on empirical": (_rj("--estimators", "empirical[c_rho=2]"),
                                r"unknown option 'c_rho'", {}),
    "rj import path missing": (_rj("--estimators", "nosuchpkg.mod:Score"),
                               r"nosuchpkg", {}),
    # run-job: sizes that hung or blew up memory (sizing covers them now)
    "rj t_grid num 1e8": (_rj("--t-grid", ["0.1", "1", "100000000"]), r"TB memory", {}),
    "rj n_int 1e9": (_rj("--n-int", "1000000000"), r"TB memory", {}),
    "rj n_t 1e9": (_rj("--n-t", "1000000000"), r"TB memory", {}),
    "rj n_ref 1e12": (_rj("--n-ref", "1000000000000"), r"TB memory", {}),
    "rj n_mc_kde 1e13": (_rj("--n-mc-kde", "10000000000000"), r"TB memory", {}),
    "rj steps 1e8": (_rj("--steps", "100000000"), r"GB memory|days limit", {}),
    "rj chunk huge": (_rj("--chunk", "10000000", "--m", "10000000", "--steps", "10000"),
                      r"TB memory", {}),
    "rj steps_power": (_rj("--steps-power", "1.99", "--steps-at-n", "2", "--n", "100000"),
                       r"memory|days limit", {}),
    # run-job: every kind of bad number
    "rj steps_power 5": (_rj("--steps-power", "5"), r"steps_power must be .* \[0, 2\)", {}),
    "rj chunk 0": (_rj("--chunk", "0"), r"chunk must be an integer >= 1, got 0", {}),
    "rj steps_min 0": (_rj("--steps-min", "0"), r"steps_min must be an integer >= 1", {}),
    "rj n_t 0": (_rj("--n-t", "0"), r"n_t must be an integer >= 1", {}),
    "rj n_int 1": (_rj("--n-int", "1"), r"n_int must be an integer >= 2", {}),
    "rj n_ref 0": (_rj("--n-ref", "0"), r"n_ref must be an integer >= 2", {}),
    "rj n_mc_kde 1": (_rj("--n-mc-kde", "1"), r"n_mc_kde must be", {}),
    "rj law_resolution -1": (_rj("--law-resolution", "-1"), r"law_resolution must be", {}),
    "rj law_resolution nan": (_rj("--law-resolution", "nan"), r"law_resolution must be", {}),
    "rj law_n_max_2d 1": (_rj("--law-n-max-2d", "1"), r"law_n_max_2d must be", {}),
    "rj highorder_order 0": (_rj("--highorder-order", "0"), r"order must be an integer", {}),
    "rj highorder_C -1": (_rj("--highorder-C", "-1"), r"C must be a finite number > 0", {}),
    "rj study_seed -1": (_rj("--study-seed", "-1"), r"study_seed must be an integer", {}),
    "rj seed 2^63": (_rj("--seed", str(2 ** 63)), r"seed must be an integer in \[0, 2\^63\)",
                     {}),
    "rj seed 1e30": (_rj("--seed", "1e30"), r"argument --seed: invalid int value", {}),
    "rj t0 0": (_rj("--t0", "0"), r"t0 must be a finite number > 0", {}),
    "rj t0 1e10": (_rj("--t0", "1e10"), r"need t0 < T", {}),
    "rj T inf": (_rj("--T", "inf"), r"T must be a finite number > 0, got inf", {}),
    "rj T nan": (_rj("--T", "nan"), r"T must be a finite number > 0, got nan", {}),
    "rj beta nan": (_rj("--beta", "nan"), r"beta must be a finite number > 0", {}),
    "rj beta inf": (_rj("--beta", "inf"), r"beta must be a finite number > 0, got inf", {}),
    "rj d 1.5": (_rj("--d", "1.5"), r"argument --d: invalid int value", {}),
    "rj n 1": (_rj("--n", "1"), r"n must be an integer >= 2, got 1", {}),
    "rj n -5": (_rj("--n", "-5"), r"n must be an integer >= 2", {}),
    "rj m -1": (_rj("--m", "-1"), r"m must be an integer >= 1", {}),
    "rj rtol 0": (_rj("--rtol", "0"), r"rtol must be a finite number in \(0, 1\)", {}),
    "rj c_rho 0": (_rj("--c-rho", "0"), r"c_rho must be a finite number > 0, got 0", {}),
    "rj eps -1": (_rj("--eps", "-1"), r"eps must be a finite number > 0", {}),
    "rj t_grid tmin 0": (_rj("--t-grid", ["0", "1", "5"]), r"t_grid tmin must be", {}),
    "rj t_grid reversed": (_rj("--t-grid", ["1", "0.1", "5"]), r"needs tmin < tmax", {}),
    "rj t_grid num 2.5": (_rj("--t-grid", ["0.1", "1", "2.5"]), r"--t-grid needs TMIN", {}),
    "rj t_grid two values": (["run-job", *SMALL, "--t-grid", "0.1", "1", "--out", "a.zarr"],
                             r"argument --t-grid: expected 3 arguments", {}),
    "rj empty density": (_rj("--density", ""), r"density must be a name", {}),
    "rj density import path": (_rj("--density", "nosuchpkg.mod:Dens"), r"nosuchpkg", {}),
    "rj worker timeout 0": (_rj("--worker-timeout", "0"), r"--worker-timeout must be > 0",
                            {}),
    "rj scheduler injection": (_rj("--scheduler", "tcp://x$(id):8786"), r"scheduler", {}),
    "rj unknown flag": (["run-job", *SMALL, "--out", "a.zarr", "--nn", "3"],
                        r"unrecognized arguments: --nn 3", {}),
    "rj mem-mb nan": (_rj("--mem-mb", "nan"), r"--mem-mb must be > 0, got nan", {}),
    # run-jobs: the same front door as run-job
    "rjs n 1e9": (_rjs(jobs=["--job", "sym_beta", "1.0", "1", "1000000000", "0", "b.zarr"]),
                  r"--job sym_beta .*GB memory", {}),
    "rjs t_grid num 1e8": (_rjs("--t-grid", "0.1", "1", "100000000"), r"TB memory", {}),
    "rjs n_int 1e9": (_rjs("--n-int", "1000000000"), r"TB memory", {}),
    "rjs mem-mb too small": (_rjs("--mem-mb", "10"), r"more than the --mem-mb", {}),
    "rjs locked output": (_rjs(), r"b\.zarr is being written by another run-job",
                          {".b.zarr.lock": f"{socket.gethostname()} {os.getpid()}\n"}),
    "rjs output a plain dir": (_rjs(jobs=[*J[:-1], "plain"]),
                               r"exists and is a directory, not a scorerate run store", {}),
    "rjs output cwd overwrite": (_rjs("--overwrite", jobs=[*J[:-1], "."]),
                                 r"working directory", {}),
    "rjs output a run store": (_rjs(jobs=[*J[:-1], "r1.zarr"]),
                               r"already a complete run store", {}),
    "rjs beta word": (_rjs(jobs=["--job", "sym_beta", "x", "1", "300", "0", "b.zarr"]),
                      r"BETA must be a number", {}),
    "rjs d 0": (_rjs(jobs=["--job", "sym_beta", "1.0", "0", "300", "0", "b.zarr"]),
                r"d must be an integer >= 1", {}),
    "rjs seed -1": (_rjs(jobs=["--job", "sym_beta", "1.0", "1", "300", "-1", "b.zarr"]),
                    r"seed must be an integer", {}),
    "rjs job short": (["run-jobs", *SHARED, "--job", "sym_beta", "1.0"],
                      r"argument --job: expected 6 arguments", {}),
    "rjs no job": (["run-jobs", *SHARED], r"the following arguments are required: --job", {}),
    "rjs variant bound": (_rjs("--estimators", "highorder[order=0]"), r"order must be", {}),
    "rjs threads 0": (_rjs("--threads", "0"), r"--threads must be >= 1, got 0", {}),
    # aggregate
    "agg config missing": (["aggregate", "--out", "s.zarr", "--config", "no.yaml", "r1.zarr"],
                           r"config no\.yaml: cannot be read", {}),
    "agg config a directory": (["aggregate", "--out", "s.zarr", "--config", "plain",
                                "r1.zarr"], r"cannot be read", {}),
    "agg config bad yaml": (["aggregate", "--out", "s.zarr", "--config", "c.yaml", "r1.zarr"],
                            r"not valid YAML", {"c.yaml": "densities: [\n"}),
    "agg config a list": (["aggregate", "--out", "s.zarr", "--config", "c.yaml", "r1.zarr"],
                          r"expected a mapping at top level", {"c.yaml": "- 1\n"}),
    "agg config densities int": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                                  "r1.zarr"], r"densities: expected a list",
                                 {"c.yaml": "densities: 3\n"}),
    "agg config entry no name": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                                  "r1.zarr"], r"densities\[0\]: expected \{name, beta\}",
                                 {"c.yaml": "densities: [{beta: [1.0]}]\n"}),
    "agg config beta word": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                              "r1.zarr"], r"densities\[0\]\.beta: beta must be",
                             {"c.yaml": "densities: [{name: sym_beta, beta: [x]}]\n"}),
    "agg config beta not a list": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                                    "r1.zarr"], r"densities\[0\]\.beta: expected a non-empty",
                                   {"c.yaml": "densities: [{name: sym_beta, beta: 1.0}]\n"}),
    "agg config d 0": (["aggregate", "--out", "s.zarr", "--config", "c.yaml", "r1.zarr"],
                       r"config d: d must be an integer >= 1", {"c.yaml": "d: [0]\n"}),
    "agg config n 1.5": (["aggregate", "--out", "s.zarr", "--config", "c.yaml", "r1.zarr"],
                         r"config n: n must be an integer", {"c.yaml": "n: [1.5]\n"}),
    "agg config seeds 1e30": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                               "r1.zarr"], r"config seeds: seed must be",
                              {"c.yaml": "seeds: [1.0e+30]\n"}),
    "agg config estimators int": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                                   "r1.zarr"], r"estimator must be named by a string",
                                  {"c.yaml": "estimators: [3]\n"}),
    "agg config estimators str": (["aggregate", "--out", "s.zarr", "--config", "c.yaml",
                                   "r1.zarr"], r"estimators: expected a non-empty list",
                                  {"c.yaml": "estimators: truncated\n"}),
    "agg out cwd": (["aggregate", "--out", ".", "r1.zarr"], r"working directory", {}),
    "agg out plain dir": (["aggregate", "--out", "plain", "r1.zarr"],
                          r"not a scorerate study store; refusing", {}),
    "agg out an input": (["aggregate", "--out", "r1.zarr", "r1.zarr"],
                         r"is or holds the input", {}),
    "agg input missing": (["aggregate", "--out", "s.zarr", "nothere.zarr"],
                          r"no such directory", {}),
    "agg input not a store": (["aggregate", "--out", "s.zarr", "plain"],
                              r"corrupt or incomplete", {}),
    "agg same run twice": (["aggregate", "--out", "s.zarr", "r1.zarr", "r1.zarr"],
                           r"are the same job", {}),
    "agg no runs": (["aggregate", "--out", "s.zarr"],
                    r"the following arguments are required: RUN\.zarr", {}),
    # report: on anything that is not a study
    "report on a run store": (["report", "--study", "r1.zarr", "--out", "rep"],
                              r"not a scorerate study store", {}),
    "report on a plain dir": (["report", "--study", "plain", "--out", "rep"],
                              r"not a scorerate study store", {}),
    "report on a file": (["report", "--study", "afile", "--out", "rep"],
                         r"does not exist", {}),
    "report on nothing": (["report", "--study", "nothere", "--out", "rep"],
                          r"does not exist", {}),
    "report on a damaged study": (["report", "--study", "fake.zarr", "--out", "rep"],
                                  r"study store fake\.zarr (does not open|is not a complete)",
                                  {"fake.zarr/zarr.json": '{"zarr_format": 3, "node_type": '
                                   '"group", "attributes": {"scorerate_store": "study/1"}}'}),
    "report out cwd": (["report", "--study", "s.zarr", "--out", "."], r"working directory",
                       {}),
    "report out plain dir": (["report", "--study", "s.zarr", "--out", "plain"],
                             r"not a scorerate report directory", {}),
    "report bad config": (["report", "--study", "s.zarr", "--out", "rep", "--config",
                           "c.yaml"], r"densities: expected a list",
                          {"c.yaml": "densities: 3\n"}),
    # check-stores
    "check corrupt-dir a file": (["check-stores", "r1.zarr", "--corrupt-dir", "afile"],
                                 r"--corrupt-dir afile exists and is not a directory", {}),
    "check corrupt-dir in an input": (["check-stores", "r1.zarr", "--corrupt-dir",
                                       "r1.zarr/bad"], r"lies inside the input r1\.zarr", {}),
    "check cache a directory": (["check-stores", "r1.zarr", "--corrupt-dir", "cor",
                                 "--cache", "plain"], r"--cache plain exists and is not a file",
                                {}),
    "check ok under a file": (["check-stores", "r1.zarr", "--corrupt-dir", "cor", "--ok",
                               "afile/ok"], r"--ok afile/ok: .* is not a directory", {}),
    "check no corrupt-dir": (["check-stores", "r1.zarr"],
                             r"required: --corrupt-dir", {}),
    # the top level
    "unknown command": (["bogus"], r"invalid choice: 'bogus'", {}),
    "no command": ([], r"the following arguments are required: COMMAND", {}),
}


@pytest.fixture(scope="module")
def _template(tmp_path_factory) -> Path:
    """A working directory holding a run store r1.zarr, a study s.zarr, a plain directory
    and a file; copied for each case."""
    from scorerate.study.aggregate import aggregate, write_study

    root = tmp_path_factory.mktemp("template")
    run = _fake_store(root / "r1.zarr")
    write_study(aggregate([str(run)]), root / "s.zarr")
    (root / "plain").mkdir()
    (root / "plain" / "keep.txt").write_text("a user's file")
    (root / "afile").write_text("not a store")
    return root


@pytest.mark.parametrize("case", list(TABLE))
def test_table_bad_input_is_one_line_before_any_work(case, _template, tmp_path,
                                                     monkeypatch, capsys):
    import shutil

    from scorerate.cli import main
    from scorerate.job import cluster
    from scorerate.report import build as report

    argv, pattern, files = TABLE[case]
    work = tmp_path / "work"
    shutil.copytree(_template, work)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    monkeypatch.chdir(work)

    def tripwire(*a, **k):
        raise AssertionError(f"{case}: work started")

    monkeypatch.setattr(cluster, "dask_client", tripwire)
    monkeypatch.setattr(report, "rate_table", tripwire)  # report's work, after the study opens
    before = _snapshot(work)
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, (status, err)
    assert "Traceback" not in err and len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    assert _snapshot(work) == before  # nothing written, moved or changed


# ---------------------------------------------------------------- study configs, in process
# The Snakefile's own checks (the statements between `SCHEMA =` and `JOB_ARGS =`, with the
# helpers of common.smk) run here on each config, so the table below costs no Snakemake
# start per case; the `snakemake -n` cases above show the same checks in a real dry run.

def _C(**change) -> dict:
    return with_(TINY, **change)


CONFIG_TABLE: dict[str, tuple[dict, str]] = {
    "n_int 1e9": (_C(n_int=1e9), r"TB memory"),
    "t_grid num 1e8": (_C(t_grid={"tmin": 0.1, "tmax": 1.0, "num": 100_000_000}), r"TB memory"),
    "steps_power grows past a week": (_C(steps_power=1.9, steps_at_n=2, n=[10**6]), r"TB memory"),
    "law_resolution huge": (_C(law_resolution=1e6, d=[2], steps=10**5), r"days limit"),
    "highorder order 1e6 variant": (_C(estimators=["highorder[order=1000000]"]),
        r"order must be an integer in \[1, 64\)"),
    "highorder C 0 variant": (_C(estimators=["highorder[C=0]"]), r"C must be a finite number > 0"),
    "regularized eps 0 variant": (_C(estimators=["regularized[eps=0]"]),
        r"eps must be a finite number > 0"),
    "truncated rtol 0 variant": (_C(estimators=["truncated[rtol=0]"]),
        r"rtol must be a finite number in \(0, 1\)"),
    "variant unknown option": (_C(estimators=["truncated[order=3]"]), r"unknown option 'order'"),
    "variant malformed": (_C(estimators=["highorder[order=]"]), r"option order must be a number"),
    "highorder_order 0": (_C(estimators=["highorder"], highorder_order=0),
        r"0 is less than the minimum of 1"),
    "highorder_order 2.5": (_C(estimators=["highorder"], highorder_order=2.5),
        r"2\.5 is not of type 'integer'"),
    "highorder_C -1": (_C(estimators=["highorder"], highorder_C=-1),
        r"-1 is less than or equal to the minimum of 0"),
    "c_rho 0": (_C(c_rho=0), r"0 is less than or equal to the minimum of 0"),
    "c_rho -inf": (_C(c_rho=float("-inf")), r"-inf is less than or equal"),
    "eps 0": (_C(eps=0, estimators=["regularized"]),
        r"0 is less than or equal to the minimum of 0"),
    "law_resolution 0": (_C(law_resolution=0), r"less than or equal to the minimum of 0"),
    "law_resolution nan": (_C(law_resolution=float("nan")),
        r"law_resolution must be a finite number > 0, got nan"),
    "law_n_max_2d 1": (_C(law_n_max_2d=1), r"1 is less than the minimum of 2"),
    "n_mc 1e30": (_C(n_mc=1e30), r"TB memory"),
    "n_ref 1": (_C(n_ref=1), r"1 is less than the minimum of 2"),
    "n_mc_kde 1e15": (_C(n_mc_kde=10**15), r"TB memory"),
    "m 0": (_C(m=0), r"0 is less than the minimum of 1"),
    "m 1.5": (_C(m=1.5), r"1\.5 is not of type 'integer'"),
    "steps 0": (_C(steps=0), r"less than the minimum of 1"),
    "steps_power 5": (_C(steps_power=5), r"5 is greater than or equal to the maximum of 2"),
    "steps_at_n 1": (_C(steps_at_n=1), r"1 is less than the minimum of 2"),
    "steps_min 0": (_C(steps_min=0), r"0 is less than the minimum of 1"),
    "steps_min huge": (_C(steps_min=10**9), r"steps=1000000000 needs .* memory"),
    "integrator number": (_C(integrator=3), r"3 is not of type 'string'"),
    "study_seed -1": (_C(study_seed=-1), r"-1 is less than the minimum of 0"),
    "study_seed 2^64": (_C(study_seed=2**64), r"greater than or equal to the maximum"),
    "seeds word": (_C(seeds=["a"]), r"'a' is not of type 'integer'"),
    "seeds empty": (_C(seeds=[]), r"\[\] should be non-empty"),
    "seeds 1.5": (_C(seeds=[1.5]), r"1\.5 is not of type 'integer'"),
    "d 1.5": (_C(d=[1.5]), r"1\.5 is not of type 'integer'"),
    "n 1": (_C(n=[1]), r"1 is less than the minimum of 2"),
    "n 1e30": (_C(n=[1e30]), r"TB memory"),
    "beta -1": (_C(densities=[{"name": "sym_beta", "beta": [-1.0]}]),
        r"-1\.0 is less than or equal to the minimum of 0"),
    "beta nan": (_C(densities=[{"name": "sym_beta", "beta": [float("nan")]}]),
        r"densities\[0\]\.beta: beta must be a finite number > 0, got nan"),
    "beta word": (_C(densities=[{"name": "sym_beta", "beta": ["x"]}]),
        r"'x' is not of type 'number'"),
    "densities empty": (_C(densities=[]), r"\[\] should be non-empty"),
    "density without name": (_C(densities=[{"beta": [1.0]}]), r"'name' is a required property"),
    "density import path": (_C(densities=[{"name": "mypkg.dens:MyDensity", "beta": [1.0]}]),
        r"'mypkg\.dens:MyDensity' cannot name a study's density"),
    "density capitals": (_C(densities=[{"name": "Sym_beta", "beta": [1.0]}]),
        r"'Sym_beta' cannot name a study's density"),
    "density unknown": (_C(densities=[{"name": "sym_betta", "beta": [1.0]}]),
        r"unknown density 'sym_betta' \(did you mean 'sym_beta'\?\)"),
    "entry d 0": (_C(densities=[{"name": "sym_beta", "beta": [1.0], "d": [0]}]),
        r"0 is less than the minimum of 1"),
    "t0 -1": (_C(t0=-1), r"-1 is less than or equal to the minimum of 0"),
    "t0 0": (_C(t0=0), r"0 is less than or equal to the minimum of 0"),
    "t0 above T of a job": (_C(t0=50.0), r"config t0: 50\.0 must be below the horizon"),
    "t_grid reversed": (_C(t_grid={"tmin": 1.0, "tmax": 0.1, "num": 5}),
        r"config t_grid: tmin \(1\.0\) must be < tmax"),
    "t_grid no num": (_C(t_grid={"tmin": 0.1, "tmax": 1.0}), r"'num' is a required property"),
    "t_grid num 0": (_C(t_grid={"tmin": 0.1, "tmax": 1.0, "num": 0}),
        r"0 is less than the minimum of 1"),
    "unknown key": (_C(n_intt=3), r"unknown key 'n_intt' \(did you mean 'n_int'\?\)"),
    "scheduler injection": (_C(dask={"scheduler_address": "tcp://x$(id -un > I.txt):8786"}),
        r"does not match"),
    "scheduler backticks": (_C(dask={"scheduler_address": "tcp://`id`:8786"}), r"does not match"),
    "scheduler not a string": (_C(dask={"scheduler_address": 8786}),
        r"8786 is not of type 'string'"),
    "jobs_per_client 0": (_C(dask={"jobs_per_client": 0}), r"0 is less than the minimum of 1"),
    "estimators empty": (_C(estimators=[]), r"\[\] should be non-empty"),
    "estimators with a space": (_C(estimators=["trunc ated"]), r"'trunc ated' does not match"),
    "estimators twice": (_C(estimators=["truncated", "truncated"]), r"has non-unique elements"),
    "estimator import path missing": (_C(estimators=["nosuchpkg.mod:Score"]),
        r"cannot import estimator 'nosuchpkg\.mod:Score'"),
}


class _NoWorkflow:
    """Stands for Snakemake's `workflow` in the Snakefile's lines: false (so validate reads
    the schema from the working directory, the repository) and a source_path."""

    def __bool__(self) -> bool:
        return False

    def source_path(self, path: str) -> str:
        return str(REPO / path)


def _snakefile_checks(config: dict) -> str:
    """Run the Snakefile's config checks on `config`; returns the job arguments."""
    from snakemake.utils import validate

    text = SNAKEFILE.read_text()
    start, end = text.index("SCHEMA = "), text.index("JOB_ARGS = job_args(config)")
    ns = {"config": config, "workflow": _NoWorkflow(), "validate": validate}
    common = REPO / "workflow" / "rules" / "common.smk"
    exec(compile(common.read_text(), str(common), "exec"), ns)
    exec(compile(text[start:end] + "JOB_ARGS = job_args(config)", str(SNAKEFILE), "exec"), ns)
    return ns["JOB_ARGS"]


def test_the_snakefile_checks_run_here_accept_the_tiny_study(monkeypatch):
    import copy

    monkeypatch.chdir(REPO)
    assert "--m 50" in _snakefile_checks(copy.deepcopy(TINY))


@pytest.mark.parametrize("case", list(CONFIG_TABLE))
def test_config_table_is_refused_by_the_snakefiles_checks(case, monkeypatch, capsys):
    import copy

    config, pattern = CONFIG_TABLE[case]
    monkeypatch.chdir(REPO)  # read only: the schema's relative path
    with pytest.raises(SystemExit) as info:
        _snakefile_checks(copy.deepcopy(config))
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorerate: error: "), lines
    assert re.search(pattern, lines[0]), lines


def test_the_table_is_large():
    assert len(TABLE) + len(CONFIG_TABLE) + len(CLI) + len(OUT_CASES) + len(CONFIG) + len(
        BOUNDS) >= 100
