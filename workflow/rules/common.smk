# Helpers shared by the rules: the job grid, output paths, per-job resources and the
# checks the JSON schema cannot express. No mathematics here: the rules call the CLI.
import json
from pathlib import Path

import yaml

RUNS = "results/runs"
RUN = "{density}/beta={beta}/d={d}/n={n}/seed={seed}"
STUDY = "results/study.zarr"
REPORT = "results/report"


def beta_label(beta):
    """Canonical text of a beta value in paths (repr of the float: 1 -> '1.0')."""
    return repr(float(beta))


def check_names(cfg, schema_path):
    """Raise one ValueError for an unknown key or density name, naming the valid ones (the
    schema's own message for these does not list them). Runs before the schema check."""
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
    dens = cfg.get("densities")
    if isinstance(dens, dict):
        unknown(dens, schema["properties"]["densities"]["properties"], "density")


def check_config(cfg):
    """Raise one ValueError for what the schema cannot see: a (density, beta, d) the
    registry rejects, or tmin >= tmax. Runs before any job is planned."""
    tg = cfg["t_grid"]
    if not tg["tmin"] < tg["tmax"]:
        raise ValueError(f"config t_grid: tmin ({tg['tmin']}) must be < tmax ({tg['tmax']})")
    try:
        from scorerate import density
    except ImportError:  # registry not importable here: the schema's bounds still hold
        return
    bad = []
    for name, spec in cfg["densities"].items():
        for beta in spec["beta"]:
            for d in cfg["d"]:
                try:
                    density(name, beta=float(beta), d=int(d))
                except ValueError as exc:
                    bad.append(f"  {name} beta={beta} d={d}: {exc}")
    if bad:
        raise ValueError("config: the density registry rejects\n" + "\n".join(bad))


def jobs():
    """Every (density, beta, d, n, seed) of the study, as wildcard dicts."""
    return [
        dict(density=name, beta=beta_label(b), d=d, n=n, seed=s)
        for name, spec in config["densities"].items()
        for b in spec["beta"]
        for d in config["d"]
        for n in config["n"]
        for s in config["seeds"]
    ]


def run_stores():
    """Paths of all run stores of the study."""
    return [f"{RUNS}/{RUN}.zarr".format(**j) for j in jobs()]


def all_targets():
    """The default targets: the report files and every run store. The stores are named too
    so that a deleted store is recomputed (Snakemake does not rerun a job for a missing
    intermediate file when everything downstream is up to date); the new store then makes
    the aggregation and the report rerun."""
    return [f"{REPORT}/index.html", f"{REPORT}/rates.csv", f"{REPORT}/summary.md",
            *run_stores()]


def run_mem_mb(wildcards, attempt):
    """Memory of one job: base + the training set and kernel blocks (grows with n, d)."""
    return (1500 + int(wildcards.n) * int(wildcards.d) // 100) * attempt


def run_runtime(wildcards, attempt):
    """Minutes of one job (generous: the sampler is O(steps m n) kernel evaluations)."""
    return (10 + int(wildcards.n) * int(wildcards.d) // 2000) * attempt


def opt(flag, value):
    """'--flag value', or '' when value is None (the CLI's default then applies)."""
    return "" if value is None else f"{flag} {value}"


def job_options(cfg):
    """Options that change a job's numbers, passed as params so that a change reruns exactly
    the affected jobs (Snakemake's params rerun trigger). c_rho only reaches the numbers
    through the `truncated` estimator and eps through `regularized`, so each is passed
    only when its estimator runs (otherwise changing it reruns nothing)."""
    ests = cfg["estimators"]
    return {
        "estimators": " ".join(ests),
        "m": cfg["m"],
        "steps": cfg["steps"],
        "integrator": cfg["integrator"],
        "c_rho": opt("--c-rho", cfg["c_rho"] if "truncated" in ests else None),
        "eps": opt("--eps", cfg["eps"] if "regularized" in ests else None),
        "t_grid": "{tmin} {tmax} {num}".format(**cfg["t_grid"]),
        "n_mc": cfg["n_mc"],
        "study_seed": cfg["study_seed"],
    }



def dask_options(wildcards, threads):
    """Where a job's Dask work runs: `--threads N` (the embedded LocalCluster gets the threads
    Snakemake gave the job) and, with dask.scheduler_address set, `--scheduler ADDRESS` (an
    existing cluster; without it run-job uses $DASK_SCHEDULER_ADDRESS if set, else its
    embedded cluster). A param that takes `threads` counts as derived, so Snakemake keeps
    it out of the params rerun trigger: jobs give bit-identical numbers on any cluster and
    thread count, so changing either reruns nothing."""
    return f"--threads {threads} " + opt("--scheduler", config["dask"]["scheduler_address"])


def runs_dir(wildcards, input):
    """Root of the run stores, from the first input store ({density}/beta/d/n/seed.zarr)."""
    return str(Path(input.runs[0]).parents[4])


def report_dir(wildcards, output):
    """The report directory, from the index.html output."""
    return str(Path(output.html).parent)


def config_text():
    """The validated config (defaults filled) as YAML, recorded in the study's attrs. The
    dask section is left out: where the jobs ran changes no number, so pointing the study
    at a cluster must not rerun the aggregation either."""
    study = {k: v for k, v in config.items() if k != "dask"}
    return yaml.safe_dump(json.loads(json.dumps(study)), sort_keys=True)
