# The job options of the study (JOB_ARGS), written to a directory that every run store
# depends on. Snakemake reruns a job whose params changed, but when that rerun fails it
# records the new params (and the checksums of its input files) beside the old store it
# restores (replaced_atomically), so neither the params trigger nor a file input would
# rerun the old store next time. A directory input is compared by its timestamp only:
# it is rewritten only when the options change, and a restored store keeps its old
# timestamp, so the store stays older than it, and is rerun, until a rerun succeeds.


rule job_args:
    output:
        directory(JOB_ARGS_DIR),
    log:
        "logs/job_args.log",
    benchmark:
        "results/benchmarks/job_args.tsv"
    params:
        text=JOB_ARGS,
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "mkdir -p {output} && printf '%s' {params.text:q} > {output}/job_args.txt 2> {log}"
