"""Damaged run stores in a finished study: the next snakemake run moves them aside to
results/corrupt/, recomputes exactly those jobs and ends with a valid study."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import xarray as xr
from snakerun import REPO, TINY, planned, run_jobs, smk
from synthetic import rot_a_byte

from scorerate.store import runstore as store

RUNS = ("results", "runs", "sym_beta", "beta=1.0", "d=1")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study, run to its report with this checkout's library."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO / "src")  # the rules' `scorerate` must be this one
    work = tmp_path_factory.mktemp("corrupt")
    res = smk(work, TINY, "--cores", "2")
    assert res.returncode == 0, res.stdout
    yield work
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


def _store(work, n, seed):
    return work.joinpath(*RUNS, f"n={n}", f"seed={seed}.zarr")


def _delete_chunk(path):
    chunk = next(p for p in (path / "samples").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    chunk.unlink()


def _flip_byte(path):
    chunk = next(p for p in (path / "w1").rglob("*") if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))


def _edit_n(path):
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["n"] = 3000
    (path / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_damaged_stores_are_recomputed_by_the_next_run(study):
    damage = {("50", "0"): _delete_chunk, ("50", "1"): _flip_byte,
              ("100", "0"): lambda p: (p / "zarr.json").unlink(), ("100", "1"): _edit_n}
    for (n, seed), hurt in damage.items():
        hurt(_store(study, n, seed))
    # the dry run already sees them missing (moved aside at load) and plans them
    jobs = planned(study, TINY)
    assert run_jobs(jobs) == set(damage)
    moved = sorted(p.name for p in (study / "results" / "corrupt").glob("*.why.txt"))
    assert len(moved) == 4
    res = smk(study, TINY, "--cores", "2")
    assert res.returncode == 0, res.stdout
    for n, seed in damage:
        ds = store.open_run(_store(study, n, seed))  # checksum of data and identity
        assert ds.attrs["n"] == int(n) and ds.attrs["seed"] == int(seed)
    st = xr.open_zarr(study / "results" / "study.zarr")
    assert bool(st["tv"].notnull().all()) and st.attrs["n_runs"] == 4
    assert sorted(int(v) for v in st["n"].values) == [50, 100]
    assert "Nothing to be done" in smk(study, TINY, "-n").stdout


@pytest.mark.slow
def test_check_stores_refuses_a_bad_store_and_moves_it_aside(study, tmp_path):
    # what rule check_stores does for a store damaged after the workflow loaded: exit 2
    # (the aggregate job never starts, so study.zarr and the report stay), store moved
    good, bad = _store(study, "50", "0"), _store(study, "50", "1")
    _flip_byte(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "scorerate", "check-stores", "--corrupt-dir",
         str(tmp_path / "corrupt"), "--ok", str(tmp_path / "ok"), str(good), str(bad)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 2, proc.stderr
    assert "1 of 2 run stores bad or missing; run snakemake again" in proc.stderr
    assert not bad.exists() and good.is_dir() and not (tmp_path / "ok").exists()
    assert len(list((tmp_path / "corrupt").glob("*.why.txt"))) == 1
    jobs = planned(study, TINY)  # the aggregate waits for the check, which waits for the job
    assert run_jobs(jobs) == {("50", "1")}
    assert {"check_stores", "aggregate"} <= {name for name, _ in jobs}


@pytest.mark.slow
def test_a_study_lost_mid_aggregation_is_rebuilt_by_the_next_run(study):
    """A kill during the aggregation leaves no study.zarr (atomic writer; Snakemake deletes
    the incomplete output): the next snakemake must aggregate again, not say 'Nothing to
    be done', and the report follows the new study."""
    import shutil

    shutil.rmtree(study / "results" / "study.zarr")
    jobs = planned(study, TINY)
    assert {"aggregate", "report"} <= {name for name, _ in jobs}
    res = smk(study, TINY, "--cores", "2")
    assert res.returncode == 0, res.stdout
    assert xr.open_zarr(study / "results" / "study.zarr").attrs["n_runs"] == 4
    assert (study / "results" / "report" / "index.html").is_file()
    assert "Nothing to be done" in smk(study, TINY, "-n").stdout


@pytest.mark.slow
def test_bit_rot_with_size_and_mtime_kept_is_caught_before_aggregation(study):
    """The verification cache is keyed by content: a byte flipped in a verified store,
    with its size and mtime restored, is found at the next load and recomputed."""
    assert "Nothing to be done" in smk(study, TINY, "-n").stdout  # cache holds every store
    path = _store(study, "100", "1")
    rot_a_byte(path)
    jobs = planned(study, TINY)
    assert run_jobs(jobs) == {("100", "1")}
    assert {"check_stores", "aggregate", "report"} <= {name for name, _ in jobs}
