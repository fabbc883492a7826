"""The cost model against a finished study's measured job times (issue 17).

    python benchmarks/cost_model_check.py paper/d1_sym_beta_0.5 --tag d1_sym_beta_0.5

Reads a study directory's aggregated store (results/study.zarr: each job's `wall_time_s`,
the job's own time inside its process) and resolved config (results/study_config.yaml),
and gives per (density, beta, d, n, step check) the median measured time per job beside
`scorerate.config.sizing`'s estimate of that job, the call the workflow makes for its
batches, memory and runtime (`study_job_estimate` with the job's density and beta).
Nothing runs: it only reads. A ratio below 0.5 is a job that a scheduler's request
(2 x the estimate) would not cover.

Writes <out>/cost_model_check[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import xarray as xr
from provenance import commit, write_results

from scorerate.config.file import load_configs, step_check_seeds
from scorerate.config.sizing import study_job_estimate


def measured(study: Path) -> tuple[dict, dict[tuple, list[float]]]:
    """(the study's config, {(density, beta, d, n, check): [each job's wall_time_s]})."""
    results = study / "results"
    for path in (results / "study.zarr", results / "study_config.yaml"):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the study to its end (aggregation) first")
    cfg = load_configs(results / "study_config.yaml")
    checks = step_check_seeds(cfg)
    wall = xr.open_zarr(results / "study.zarr")["wall_time_s"].load()
    times: dict[tuple, list[float]] = {}
    for job in wall.stack(job=wall.dims).dropna("job"):
        key = (str(job.density.item()), float(job.beta), int(job.d), int(job.n),
               int(job.seed) in checks)
        times.setdefault(key, []).append(float(job))
    return cfg, times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a study's --directory (holds results/)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    started = commit()
    cfg, times = measured(args.study)
    rows = []
    lines = ["| density | beta | d | n | check | jobs | median wall / job (s) | estimate (s) "
             "| estimate / wall |", "|---" * 9 + "|"]
    for (density, beta, d, n, check), walls in sorted(times.items()):
        est = study_job_estimate(cfg, n, d, check, density=density, beta=beta).wall_s
        wall = statistics.median(walls)
        rows.append({"density": density, "beta": beta, "d": d, "n": n, "check": check,
                     "jobs": len(walls), "wall_s": walls, "median_wall_s": wall,
                     "estimate_s": est, "ratio": est / wall})
        lines.append(f"| {density} | {beta:g} | {d} | {n} | {'yes' if check else 'no'} | "
                     f"{len(walls)} | {wall:.1f} | {est:.1f} | {est / wall:.2f} |")
    write_results(args.out, "cost_model_check", args.tag, rows, lines, started,
                  {"study": str(args.study)})


if __name__ == "__main__":
    main()
