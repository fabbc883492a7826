# Combine every run store into results/study.zarr (metrics only; samples stay in the runs).


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
        config="results/study_config.yaml",
    output:
        study=directory(STUDY),
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
        "scorerate aggregate --out {output.study} --config {input.config} {input.runs}"
        " > {log} 2>&1"
