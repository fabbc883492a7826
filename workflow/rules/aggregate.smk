# Combine every run store into results/study.zarr (metrics only; samples stay in the runs).
#
# Damaged run stores. Snakemake decides what to rerun from mtimes, and the mtime of a
# directory() output is that of the .snakemake_timestamp file it writes inside when the job
# ends: a chunk deleted, a byte flipped or an attribute edited inside a store changes
# nothing it looks at ("Nothing to be done"); its checksum and --rerun-triggers cover
# inputs, params and code, not the contents of finished outputs. study.zarr itself is
# kept when an aggregation fails (replaced_atomically: Snakemake backs it up instead of
# deleting it, and restores it), but a bad store would then fail every aggregation.
# Hence two checks, both `scorerate check-stores` (open_run with the checksum over data and
# identity attrs, plus the job named by the path), each moving a bad store to
# results/corrupt/ (kept, with a .why.txt) instead of deleting it:
# 1. at workflow load (main process only, not in cluster jobs), before the plan is made: the
#    store is then missing, so this very run recomputes it (rule all names every store) and
#    the new store reruns the aggregation and the report. A cache of content hashes keeps
#    this to one read of the files per unchanged store (not size and mtime: bit rot keeps
#    both, and a rotten store would then fail every aggregation). Also on a dry run (-n):
#    moving a bad store aside loses nothing and the plan then shows its recomputation.
# 2. rule check_stores, upstream of aggregate: a store damaged after the load makes it fail,
#    so the aggregate job never starts and the previous study.zarr and report stay in
#    place; the next snakemake run recomputes the store.
# 3. the aggregation itself reads every store with its checksum: a store damaged after
#    check_stores is moved aside by it too (--corrupt-dir), so the next run recomputes it.
if workflow.is_main_process:
    for _line in quarantine_bad_stores(
        run_store_jobs(),
        CORRUPT,
        cache=STORE_CACHE,
    ):
        print(f"scorerate: {_line} (a moved store is recomputed by this run)",
              file=sys.stderr)


rule check_stores:
    input:
        runs=run_stores(),
    output:
        ok=temp("results/checks/stores.ok"),
    log:
        "logs/check_stores.log",
    benchmark:
        "results/benchmarks/check_stores.tsv"
    params:
        corrupt=CORRUPT,
        cache=STORE_CACHE,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "scorerate check-stores --corrupt-dir {params.corrupt} --cache {params.cache}"
        " --ok {output.ok} {input.runs} > {log} 2>&1"


rule study_config:
    output:
        "results/study_config.yaml",
    log:
        "logs/study_config.log",
    benchmark:
        "results/benchmarks/study_config.tsv"
    params:
        text=config_text(),
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "printf '%s' {params.text:q} > {output} 2> {log}"


rule aggregate:
    input:
        runs=run_stores(),
        checked="results/checks/stores.ok",
        config="results/study_config.yaml",
    output:
        study=replaced_atomically(STUDY),
    params:
        corrupt=CORRUPT,
    log:
        "logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "scorerate aggregate --out {output.study} --config {input.config}"
        " --corrupt-dir {params.corrupt} {input.runs}"
        " > {log} 2>&1"
