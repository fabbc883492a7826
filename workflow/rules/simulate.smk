# Fan-out: one job per (density, beta, d, n, seed), each writing its own run store.
# --mem-mb: the job's memory resource, so run-job refuses (before any work, with its
# estimate) a job that cannot fit it; an execution option, not a job parameter.
# The store is replaced only once the new one is complete (replaced_atomically).


rule run_job:
    input:
        args=JOB_ARGS_DIR,
    output:
        store=replaced_atomically(f"{RUNS}/{RUN}.zarr"),
    log:
        f"logs/runs/{RUN}.log",
    benchmark:
        f"results/benchmarks/runs/{RUN}.tsv"
    params:
        job=job_options,
        dask=dask_options,
    threads: 1
    resources:
        mem_mb=run_mem_mb,
        runtime=run_runtime,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "scorerate run-job --density {wildcards.density} --beta {wildcards.beta}"
        " --d {wildcards.d} --n {wildcards.n} --seed {wildcards.seed} {params.job}"
        " {params.dask} --mem-mb {resources.mem_mb} --overwrite --out {output.store}"
        " > {log} 2>&1"
