"""A job whose parameters changed keeps its old store until the new one is complete, also
inside the workflow: Snakemake must not delete the old store before the rerun starts, nor
after the rerun fails (here: its scheduler address refuses connections on loopback)."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
from snakerun import TINY, planned, run_jobs, smk, with_

from scorerate.store.runstore import open_run

#: one job, so each run of the workflow is one run-job
ONE = with_(TINY, n=[50], seeds=[0])
STORE = Path("results/runs/sym_beta/beta=1.0/d=1/n=50/seed=0.zarr")


def closed_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps_of(work: Path) -> int:
    """The step count recorded in the job's store (opened with its checksum verified)."""
    with open_run(work / STORE) as ds:
        return int(ds.attrs["steps"])


def output_lines(config: dict, work: Path) -> list[str]:
    """The `output:` lines of a dry run's plan."""
    res = smk(work, config, "-n", "--forceall")
    assert res.returncode == 0, res.stdout
    return [ln.strip() for ln in res.stdout.splitlines() if ln.strip().startswith("output:")]


@pytest.mark.parametrize("per_client", [1, 2], ids=["run_job", "run_batch"])
def test_every_store_output_is_marked_update(tmp_path, per_client):
    """Every rule that writes a store (run_job, run_batch_*, aggregate) marks it update, so
    Snakemake neither deletes it before the job nor after a failure."""
    cfg = with_(TINY, dask={"jobs_per_client": per_client})
    lines = [ln for ln in output_lines(cfg, tmp_path) if ".zarr" in ln]
    stores = [p for ln in lines for p in re.findall(r"[\w/=.]+\.zarr(?: \(\w+\))?", ln)]
    assert len(stores) == 5, lines  # four run stores and the study
    assert all(p.endswith("(update)") for p in stores), lines


@pytest.mark.slow
def test_a_failed_rerun_keeps_the_old_store(tmp_path):
    work = tmp_path / "wf"
    work.mkdir()
    res = smk(work, ONE, "--cores", "1")
    assert res.returncode == 0, res.stdout
    assert steps_of(work) == 8

    # steps changed, so the job reruns; its scheduler refuses connections, so it fails
    address = f"tcp://127.0.0.1:{closed_port()}"
    res = smk(work, with_(ONE, steps=9, dask={"scheduler_address": address}),
              "--cores", "1")
    assert res.returncode != 0, res.stdout
    assert re.search(r"reason: .*[Pp]arams have changed", res.stdout), res.stdout
    log = (work / "logs/runs/sym_beta/beta=1.0/d=1/n=50/seed=0.log").read_text()
    assert address in log and "error" in log, log
    assert steps_of(work) == 8  # the old store, whole and verified
    assert (work / "results" / "study.zarr").is_dir()
    # and the next run still knows that it must be recomputed (Snakemake recorded the
    # failed job's params beside the restored store: the params trigger alone would not)
    assert run_jobs(planned(work, with_(ONE, steps=9))) == {("50", "0")}

    # a backup left by a Snakemake killed mid-job (its place under .snakemake/backups is
    # Snakemake's own layout) does not stop the next run from backing the store up again
    shutil.copytree(work / STORE, work / ".snakemake" / "backups" / STORE)
    res = smk(work, with_(ONE, steps=9), "--cores", "1")
    assert res.returncode == 0, res.stdout
    assert steps_of(work) == 9
    assert not (work / ".snakemake" / "backups" / STORE).exists()
