# Fan-out in batches (dask.jobs_per_client = K > 1): one `scorerate run-jobs` process per
# batch of up to K run stores, instead of one `scorerate run-job` process per store. Each
# store is still one job's own store (same path, same numbers); the batch saves the
# per-process start-up (interpreter, imports, registries, the embedded Dask cluster), which
# exceeds the work of a small job several times over (benchmarks/README.md).
#
# Batches by cost: the jobs of one (density, beta, d, n) whose seed // k agree (the
# step-check seeds, which also compute a law at twice the steps, apart), k = K or
# fewer where a job is long (scorerate.config.sizing.seeds_per_batch: a batch's estimated
# time stays within ~2 min, so the slowest cells run as separate processes over all the
# cores instead of ten in a row on one). Stable under a growing grid: adding an n or a
# block of seeds plans only new batches (a new cost model may move k, which re-plans
# those batches once). Job options
# are the same `params.job` as rule run_job (a changed option reruns exactly the jobs whose
# numbers it changes); the job list is derived from the outputs and the Dask options from
# the threads, so neither is a params rerun trigger. A store missing from a batch (new seed
# in a partial block, deleted store) reruns its whole batch, rewriting the others with the
# same numbers. Switching K on an existing study changes the rule that writes the stores,
# which Snakemake's `code` trigger sees: for that one run pass
# `--rerun-triggers mtime params input software-env` (the numbers do not depend on K).


def job_batches():
    """{batch label: [job, ...]}: the study's jobs grouped by (density, beta, d, n, seed // k),
    k = jobs_per_client or fewer for slow (n, d) (scorerate.config.sizing.seeds_per_batch),
    each batch in seed order; the label is the batch's path under results/runs."""
    K = int(config["dask"]["jobs_per_client"])
    out = {}
    for j in jobs(config):
        check = j["seed"] in check_seeds()
        k = seeds_per_batch(job_estimate(j["density"], j["beta"], j["d"], j["n"], j["seed"]), K)
        label = ("{density}/beta={beta}/d={d}/n={n}".format(**j) + f"/seeds={j['seed'] // k}"
                 + ("-check" if check else ""))
        out.setdefault(label, []).append(j)
    return {label: sorted(js, key=lambda j: int(j["seed"])) for label, js in out.items()}


def batch_job_list(wildcards, output):
    """The `--job DENSITY BETA D N SEED OUT` arguments of a batch, one per output store.
    Reads the outputs (so it is a derived param: Snakemake keeps it out of the params
    trigger); every word through the one quoting helper (scorerate.config.shell.quote)."""
    keys = ("density", "beta", "d", "n", "seed")
    return " ".join("--job " + words([*(BATCHED[s][k] for k in keys), s]) for s in output)


def batch_estimate(jobs_):
    """The cost model's estimate of each job of a batch (scorerate.config.sizing): one for
    all of them, since a batch's jobs share (density, beta, d, n) and whether they
    check the steps."""
    j = jobs_[0]
    return job_estimate(j["density"], j["beta"], j["d"], j["n"], j["seed"])


def batch_mem_mb(estimate):
    """Memory of a batch: one job's (jobs run one after another in one process)."""
    return resource_request(estimate)[0]


def batch_priority(estimate, count):
    """The batch's estimated seconds (scorerate.config.sizing): Snakemake starts the costliest
    ready batches first, so the last minutes are not one long job on one core."""
    return int(count * estimate.wall_s)


def batch_runtime(estimate, count):
    """Minutes of a batch: the sum of its jobs' requests (scorerate.config.sizing)."""
    return count * resource_request(estimate)[1]


#: run store path -> its job, for batch_job_list
BATCHED = {f"{RUNS}/{RUN}.zarr".format(**j): j for j in jobs(config)}

for _i, (_label, _jobs) in enumerate(job_batches().items()):
    _estimate = batch_estimate(_jobs)

    rule:
        name:
            f"run_batch_{_i}"
        input:
            args=JOB_ARGS_DIR,
        output:
            stores=[replaced_atomically(f"{RUNS}/{RUN}.zarr".format(**j)) for j in _jobs],
        log:
            f"logs/batches/{_label}.log",
        benchmark:
            f"results/benchmarks/batches/{_label}.tsv"
        params:
            job=JOB_ARGS + step_check_option(_jobs[0]["seed"]),  # a batch is all or none
            dask=dask_options,
            jobs=batch_job_list,
        threads: 1
        priority: batch_priority(_estimate, len(_jobs))
        resources:
            mem_mb=batch_mem_mb(_estimate),
            runtime=batch_runtime(_estimate, len(_jobs)),
        conda:
            "../../envs/scorerate.yaml"
        shell:
            "scorerate run-jobs {params.jobs} {params.job} {params.dask} --overwrite"
            " --mem-mb {resources.mem_mb}"
            " > {log} 2>&1"
