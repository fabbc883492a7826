# Fan-out: one job per (density, beta, d, n, seed), each writing its own run store.


rule run_job:
    output:
        store=directory(f"{RUNS}/{RUN}.zarr"),
    log:
        f"logs/runs/{RUN}.log",
    benchmark:
        f"results/benchmarks/runs/{RUN}.tsv"
    params:
        **JOB_OPTIONS,
        dask=dask_options,
    threads: 1
    resources:
        mem_mb=run_mem_mb,
        runtime=run_runtime,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "scorerate run-job --density {wildcards.density} --beta {wildcards.beta}"
        " --d {wildcards.d} --n {wildcards.n} --seed {wildcards.seed}"
        " --estimators {params.estimators} --m {params.m} --steps {params.steps}"
        " --integrator {params.integrator} {params.c_rho} {params.eps}"
        " --t-grid {params.t_grid} --n-mc {params.n_mc} --study-seed {params.study_seed}"
        " {params.dask} --overwrite --out {output.store} > {log} 2>&1"
