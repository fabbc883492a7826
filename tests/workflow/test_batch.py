"""The batching knob dask.jobs_per_client: the plan groups jobs into run-jobs batches."""

from __future__ import annotations

import re
import shutil

import pytest
from snakerun import TINY, smk, with_


def batches(workdir, config) -> dict[str, list[str]]:
    """rule name -> its output stores, for the run_batch_* rules of a dry run."""
    res = smk(workdir, config, "-n")
    assert res.returncode == 0, res.stdout
    out = {}
    for block in re.split(r"^\s*(?:localrule|rule) ", res.stdout, flags=re.M)[1:]:
        name = block.split(":", 1)[0].strip()
        assert name != "run_job", "batch mode must not plan one-job rules"
        if name.startswith("run_batch_"):
            line = re.search(r"^\s*output: (.*)$", block, flags=re.M).group(1)
            # " (update)": the stores are kept until replaced (common.smk, replaced_atomically)
            out[name] = sorted(p.removesuffix(" (update)") for p in line.split(", "))
    return out


def test_jobs_per_client_batches_seeds_of_one_n(tmp_path):
    cfg = with_(TINY, seeds=[0, 1, 2], dask={"jobs_per_client": 2})
    plan = batches(tmp_path, cfg)
    runs = "results/runs/sym_beta/beta=1.0/d=1"
    want = sorted([[f"{runs}/n={n}/seed={s}.zarr" for s in block]
                   for n in (50, 100) for block in ([0, 1], [2])])
    assert sorted(plan.values()) == want  # blocks by seed // 2, never across n


def test_slow_cells_get_smaller_batches(tmp_path):
    """Batch by cost: seeds of a cell whose job is estimated long are not queued in one
    process (the study's last minutes on one core); the cheap cell keeps its K-batch."""
    from scorerate.config.sizing import seeds_per_batch, study_job_estimate

    cfg = with_(TINY, n=[50, 1_000_000], seeds=[0, 1, 2, 3], dask={"jobs_per_client": 4})
    k = {n: seeds_per_batch(study_job_estimate(cfg, n, 1, density="sym_beta", beta=1.0), 4)
         for n in (50, 1_000_000)}
    assert k[50] == 4 and k[1_000_000] < 4, k  # else the config tests nothing
    plan = batches(tmp_path, cfg)
    runs = "results/runs/sym_beta/beta=1.0/d=1"
    want = sorted([[f"{runs}/n={n}/seed={s}.zarr" for s in range(4) if s // k[n] == b]
                   for n in (50, 1_000_000) for b in range(4) if b * k[n] < 4])
    assert sorted(plan.values()) == want


def test_costlier_batches_are_scheduled_first(tmp_path):
    """Each batch's Snakemake priority is its estimated seconds, so the costliest ready
    batches start first and the last minutes are not one large job on one core (without
    it, the 2-D part's last n = 1e5 job ran alone for its final ~5 min of 86)."""
    from scorerate.config.sizing import study_job_estimate

    cfg = with_(TINY, n=[50, 1_000_000], seeds=[0, 1, 2, 3], dask={"jobs_per_client": 4})
    res = smk(tmp_path, cfg, "-n")
    assert res.returncode == 0, res.stdout
    prio = {}
    for block in re.split(r"^\s*(?:localrule|rule) ", res.stdout, flags=re.M)[1:]:
        if block.startswith("run_batch_"):
            n = int(re.search(r"/n=(\d+)/", block).group(1))
            prio.setdefault(n, set()).add(int(re.search(r"^\s*priority: (\d+)$", block,
                                                        flags=re.M).group(1)))
    est = {n: study_job_estimate(cfg, n, 1, density="sym_beta", beta=1.0).wall_s for n in prio}
    assert est[1_000_000] > 2 * est[50]  # else the config tests nothing
    assert min(prio[1_000_000]) > max(prio[50]) > 0, prio


def test_batch_command_names_every_job_and_the_study_options(tmp_path):
    res = smk(tmp_path, with_(TINY, dask={"jobs_per_client": 4}), "-n", "-p")
    assert res.returncode == 0, res.stdout
    cmds = [line for line in res.stdout.splitlines() if "scorerate run-jobs" in line]
    assert len(cmds) == 2  # one per n: seeds 0, 1 form one block
    for cmd in cmds:
        assert len(re.findall(r"--job sym_beta 1\.0 1 (?:50|100) [01] results/runs/", cmd)) == 2
        assert "--steps 8" in cmd and "--m 50" in cmd and "--threads 1" in cmd


def test_step_check_seeds_run_in_batches_of_their_own_with_the_option(tmp_path):
    """The step-check seeds (the lowest step_check_seeds) get `--step-check 1`; a batch never
    mixes them with other seeds, whose command has no such option."""
    cfg = with_(TINY, seeds=[0, 1, 2], step_check_seeds=2, dask={"jobs_per_client": 4})
    res = smk(tmp_path, cfg, "-n", "-p")
    assert res.returncode == 0, res.stdout
    cmds = [line for line in res.stdout.splitlines() if "scorerate run-jobs" in line]
    assert len(cmds) == 4  # per n: seeds 0, 1 checked; seed 2 alone
    for cmd in cmds:
        seeds = set(re.findall(r"--job sym_beta 1\.0 1 (?:50|100) (\d) ", cmd))
        assert seeds in ({"0", "1"}, {"2"}), cmd
        assert ("--step-check 1" in cmd) == (seeds == {"0", "1"}), cmd


def test_default_is_one_process_per_job_and_lint_is_clean_with_batches(tmp_path):
    res = smk(tmp_path, TINY, "-n")
    assert res.returncode == 0 and "run_batch_" not in res.stdout
    assert re.search(r"^run_job\s+4$", res.stdout, flags=re.M), res.stdout
    res = smk(tmp_path, with_(TINY, dask={"jobs_per_client": 2}), "--lint")
    assert res.returncode == 0, res.stdout
    res = smk(tmp_path, with_(TINY, dask={"jobs_per_client": 0}), "-n")
    assert res.returncode != 0 and "jobs_per_client" in res.stdout


@pytest.mark.slow
def test_batched_study_reruns_exactly(tmp_path):
    """After a batched run: nothing to do; a changed job option reruns every batch; one used
    by no estimator of the study reruns none; a deleted store reruns its batch only."""
    cfg = with_(TINY, dask={"jobs_per_client": 2})
    res = smk(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stdout
    assert "Nothing to be done" in smk(tmp_path, cfg, "-n").stdout
    assert len(batches(tmp_path, with_(cfg, steps=9))) == 2
    # eps is read by `regularized` only, which TINY does not run: no job's numbers change
    assert batches(tmp_path, with_(cfg, eps=0.5)) == {}
    # a step-check seed computes one more law: only its jobs rerun, in batches of their own
    plan = batches(tmp_path, with_(cfg, step_check_seeds=1))
    assert sorted(plan.values()) == [[f"results/runs/sym_beta/beta=1.0/d=1/n={n}/seed=0.zarr"]
                                     for n in (100, 50)]
    gone = tmp_path / "results/runs/sym_beta/beta=1.0/d=1/n=100/seed=1.zarr"
    shutil.rmtree(gone)
    plan = batches(tmp_path, cfg)
    assert list(plan.values()) == [sorted(
        f"results/runs/sym_beta/beta=1.0/d=1/n=100/seed={s}.zarr" for s in (0, 1))]


@pytest.mark.slow
def test_a_part_split_by_targets_runs_each_store_once(tmp_path):
    """README's recipe for a part over 90 minutes: invocations naming run stores as targets,
    then the plain command. The first runs only the stores it names (no aggregation); the
    last runs only the rest, leaves the first's stores alone, and aggregates every n."""
    cfg = with_(TINY, dask={"jobs_per_client": 2}, step_check_seeds=1)
    runs = "results/runs/sym_beta/beta=1.0/d=1"
    first = [f"{runs}/n=50/seed={s}.zarr" for s in (0, 1)]
    res = smk(tmp_path, cfg, "--cores", "2", *first)
    assert res.returncode == 0, res.stdout
    made = {p: (tmp_path / p).stat().st_mtime_ns for p in first}
    assert not (tmp_path / runs / "n=100").exists()
    assert not (tmp_path / "results" / "study.zarr").exists()
    plan = batches(tmp_path, cfg)
    assert sorted(sum(plan.values(), [])) == [f"{runs}/n=100/seed={s}.zarr" for s in (0, 1)]
    res = smk(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stdout
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in first} == made
    assert (tmp_path / "results" / "report" / "rates.csv").stat().st_size > 0
    assert "Nothing to be done" in smk(tmp_path, cfg, "-n").stdout
