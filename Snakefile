# scorerate study workflow: config -> one job per (density, beta, d, n, seed) -> study store
# -> convergence-rate report. Rules call the `scorerate` CLI; the mathematics lives in the
# library (src/scorerate), never here.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"


# One clear error for a bad config before any job is planned: unknown keys first (with the
# valid ones listed), then types and ranges (schema), then what only the job and the
# registries know (finite numbers, density names and betas, estimators).
SCHEMA = workflow.source_path("workflow/schemas/config.schema.yaml")
admit_config(config, SCHEMA)
# every job option a study sets, generated from scorerate.config.spec.PARAMS: a params value, so a
# change reruns exactly the jobs whose numbers it changes
JOB_ARGS = job_args(config)


report: "workflow/report/workflow.rst"
localrules: all, study_config, job_args, check_stores  # trivial: run in the main Snakemake process, never queued


wildcard_constraints:
    density=DENSITY_PATTERN,
    beta="[0-9]+\.[0-9]+(e-?[0-9]+)?",
    d="[0-9]+",
    n="[0-9]+",
    seed="[0-9]+",


rule all:
    input:
        all_targets(),
    default_target: True


# one process per job, or (dask.jobs_per_client > 1) batches of jobs per process
if config["dask"]["jobs_per_client"] > 1:

    include: "workflow/rules/batch.smk"

else:

    include: "workflow/rules/simulate.smk"

include: "workflow/rules/params.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# at start: drop backups a killed run left (stores are replaced_atomically), and on SLURM
# without accounting ask squeue for job states
onstart:
    drop_stale_backups([STUDY, *run_stores()])
    slurm_status_without_accounting()
