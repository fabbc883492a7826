# Helpers shared by the rules: output paths, per-job resources and the unknown-key check.
# Shell lines: a config value reaches one only (a) inside a param built here or in
# scorerate.config.spec.job_args, each word through scorerate.config.shell.quote (shlex.quote), after the
# schema and check_config have validated it; or (b) as a path or wildcard, whose parts the
# schema's patterns and the wildcard_constraints limit to names and numbers.
# The job grid, the study checks and the job's arguments come from the library
# (scorerate.config.file, scorerate.config.spec). No mathematics here: the rules call the CLI.
import functools
import json
import sys
from pathlib import Path

import yaml

from scorerate.config.file import (DENSITY_PATTERN, check_config, jobs, normalise_config,
                                   step_check_seeds)
from scorerate.config.file import step_check_option as seed_check_option
from scorerate.config.shell import option, words
from scorerate.config.sizing import resource_request, seeds_per_batch, study_job_estimate
from scorerate.config.spec import job_args
from scorerate.store.runstore import quarantine_bad_stores

RUNS = "results/runs"
RUN = "{density}/beta={beta}/d={d}/n={n}/seed={seed}"
STUDY = "results/study.zarr"
REPORT = "results/report"
CORRUPT = "results/corrupt"
STORE_CACHE = "results/checks/stores_verified.json"
JOB_ARGS_DIR = "results/checks/job_args"


def check_names(cfg, schema_path):
    """Raise one ValueError for an unknown key, naming the valid ones (the schema's own
    message does not list them). Runs before the schema check."""
    import difflib

    schema = yaml.safe_load(Path(schema_path).read_text())

    def unknown(given, valid, what):
        bad = [k for k in given if k not in valid]
        if bad:
            hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(
                str(k), list(valid), n=1)) else repr(k) for k in bad]
            raise ValueError(f"config: unknown {what} {', '.join(hints)}; "
                             f"valid: {', '.join(sorted(valid))}")

    if not isinstance(cfg, dict):
        raise ValueError("config: expected a mapping of keys to values")
    unknown(cfg, schema["properties"], "key")


def check_schema(cfg, schema_path):
    """Raise one ValueError naming where the config breaks its JSON schema and how (the
    message Snakemake would print after its own header lines)."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    checker = jsonschema.validators.validator_for(schema)(schema)
    err = jsonschema.exceptions.best_match(checker.iter_errors(cfg))
    if err is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        raise ValueError(f"config {where.lstrip('.') or '(top level)'}: {err.message}")


def admit_config(cfg, schema_path):
    """Check a config before any job is planned: unknown keys (the valid ones listed), the
    schema (types, ranges; defaults filled), then what only the library knows (finite
    numbers, registries, sizes). A bad config ends Snakemake here with one line on stderr
    and exit status 2, before any work (Snakemake would report it over several lines)."""
    try:
        check_names(cfg, schema_path)
        check_schema(cfg, schema_path)
        validate(cfg, schema_path, set_default=True)
        normalise_config(cfg)
        check_config(cfg)
    except ValueError as exc:
        sys.stderr.write("scorerate: error: " + " ".join(str(exc).split()) + "\n")
        sys.exit(2)


def replaced_atomically(path):
    """A directory output whose command replaces it only once the new one is complete
    (run-job, run-jobs, aggregate). Flagged update so that Snakemake does not delete it
    before the job starts; it backs it up instead and restores it if the job fails, so a
    rerun that fails (an unreachable scheduler, a full disk) keeps the old store."""
    return update(directory(path))


def drop_stale_backups(paths):
    """Remove the backups a killed Snakemake left of outputs that still exist (they copy a
    complete store: the commands replace atomically). Snakemake would otherwise fail to
    back up such an output again. Run at start, under the lock of this run."""
    for path in paths:
        if Path(path).exists():
            workflow.persistence.cleanup_backup(Path(path))


def sacct_answers():
    """Whether sacct reports jobs here. Without an accounting database it exits non-zero
    (Slurm accounting storage is disabled) although the command exists."""
    import subprocess

    try:
        res = subprocess.run(["sacct", "-X", "-n", "-P", "-j", "1", "--format=JobIDRaw"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


def slurm_status_without_accounting():
    """With the SLURM executor set to ask sacct for job states (its default wherever the
    sacct command exists) and sacct unable to answer, ask squeue instead and say so: the
    executor would otherwise wait for finished jobs forever, without a word. Run at start,
    when the executor settings exist."""
    settings = getattr(workflow, "executor_settings", None)
    if getattr(settings, "status_command", None) != "sacct" or sacct_answers():
        return
    settings.status_command = "squeue"
    print("scorerate: sacct cannot report jobs on this cluster (no accounting database?); "
          "job states come from squeue (as with slurm-status-command: squeue)",
          file=sys.stderr)


def run_stores():
    """Paths of all run stores of the study."""
    return list(run_store_jobs())


def run_store_jobs():
    """Each run store's path -> the job it must hold (density, beta, d, n, seed)."""
    return {f"{RUNS}/{RUN}.zarr".format(**j): j for j in jobs(config)}


def all_targets():
    """The default targets: the report files, the study store, every run store and the
    job options record. The stores are named too so that a missing one is rebuilt
    (Snakemake does not rerun a job for a missing intermediate file when everything
    downstream is up to date): a deleted run store is recomputed, and a study.zarr lost to
    a kill mid-aggregation (the atomic writer leaves none) is aggregated again, and the
    report with it. JOB_ARGS_DIR is named so that it exists whenever the stores do: made
    later by a job that needs it, it would be newer than every store and rerun them all."""
    return [f"{REPORT}/index.html", f"{REPORT}/rates.csv", f"{REPORT}/summary.md", STUDY,
            *run_stores(), JOB_ARGS_DIR]


@functools.cache
def check_seeds():
    """Seeds whose jobs also compute the law at twice the steps (scorerate.config.file);
    read once, after admit_config has checked the config (not at include time)."""
    return step_check_seeds(config)


def step_check_option(seed):
    """The run-job option of a step-check seed's job, else nothing (the library's rule)."""
    return seed_check_option(seed, check_seeds())


def job_options(wildcards):
    """The job options of one job: the study's (JOB_ARGS) and step_check_option, so a change
    of step_check_seeds reruns exactly the jobs it adds or removes."""
    return JOB_ARGS + step_check_option(wildcards.seed)


def job_estimate(density, beta, d, n, seed):
    """The cost model's estimate (scorerate.config.sizing) of one job of the study: the one
    call behind a job's batch, memory and runtime (its density and beta price a 1-D law)."""
    return study_job_estimate(config, int(n), int(d), int(seed) in check_seeds(),
                              density=str(density), beta=float(beta))


def run_mem_mb(wildcards, attempt):
    """Memory (MB) of one job: the cost model of scorerate.config.sizing for this job of the study,
    with its margin, times the attempt (a retry after an out-of-memory kill asks for more)."""
    w = wildcards
    return resource_request(job_estimate(w.density, w.beta, w.d, w.n, w.seed), attempt)[0]


def run_runtime(wildcards, attempt):
    """Minutes of one job: the cost model of scorerate.config.sizing, with its margin, times the
    attempt."""
    w = wildcards
    return resource_request(job_estimate(w.density, w.beta, w.d, w.n, w.seed), attempt)[1]


def dask_options(wildcards, threads):
    """Where a job's Dask work runs: `--threads N` (the embedded LocalCluster gets the threads
    Snakemake gave the job) and, with dask.scheduler_address set, `--scheduler ADDRESS` (an
    existing cluster; without it run-job uses $DASK_SCHEDULER_ADDRESS if set, else its
    embedded cluster); with dask.time_limit set, `--time-limit SECONDS`. A param that takes `threads` counts as derived, so Snakemake keeps
    it out of the params rerun trigger: jobs give bit-identical numbers on any cluster and
    thread count, so changing either reruns nothing."""
    scheduler = option("--scheduler", config["dask"]["scheduler_address"])
    limit = option("--time-limit", config["dask"].get("time_limit"))
    return " ".join(filter(None, (option("--threads", threads), scheduler, limit)))


def report_dir(wildcards, output):
    """The report directory, from the index.html output."""
    return str(Path(output.html).parent)


def config_text():
    """The validated config (defaults filled) as YAML, recorded in the study's attrs. The
    dask section is left out: where the jobs ran changes no number, so pointing the study
    at a cluster must not rerun the aggregation either."""
    study = {k: v for k, v in config.items() if k != "dask"}
    return yaml.safe_dump(json.loads(json.dumps(study)), sort_keys=True)
