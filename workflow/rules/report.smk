# Rates with delta-method 95% intervals beside the theory, figures, and the self-contained HTML report.
# The run stores are inputs so the report follows them; it finds each through the path
# the study records (relative to the working directory), not through this layout.


rule report:
    input:
        study=STUDY,
        runs=run_stores(),
        config="results/study_config.yaml",
    output:
        html=report(
            f"{REPORT}/index.html",
            caption="../report/index.rst",
            category="1. Report",
        ),
        rates=report(
            f"{REPORT}/rates.csv",
            caption="../report/rates.rst",
            category="2. Rates",
        ),
        jobs=report(
            f"{REPORT}/jobs.csv",
            caption="../report/jobs.rst",
            category="2. Rates",
        ),
        summary=report(
            f"{REPORT}/summary.md",
            caption="../report/summary.rst",
            category="2. Rates",
        ),
        figures=report(
            directory(f"{REPORT}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="3. Figures",
        ),
    params:
        out=report_dir,
    log:
        "logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/scorerate.yaml"
    shell:
        "scorerate report --study {input.study} --config {input.config} --out {params.out}"
        " > {log} 2>&1"
