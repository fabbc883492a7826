"""The exact law's grid error against a study's statistical error, by refinement (issue 17).

    python benchmarks/law_grid_error.py --jobs docs/results/d1_sym_beta_1/jobs.csv \\
        --n 1000 100000 --resolutions 2 4 --tag d1_sym_beta_1

For one job of a published study per n (its seed, its density, beta, d, its step count and
the rest of its settings from the config.yaml published beside the jobs.csv), each
estimator's output law is recomputed at the study's law_resolution and at finer ones. Per
(n, estimator): tv_law and l2_law at each resolution, their change from the study's
resolution to the finest, and that change over the standard error of the seed mean of the
same number at that n (from the study's jobs.csv). The law at the study's resolution is
also compared with the published row: it must carry the same bits. The grid error is the
change under refinement (a first-order grid error halves when the resolution doubles, so
the change bounds it within about 2x).

Writes <out>/law_grid_error[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import commit, machine

from scorerate import density
from scorerate.config.file import load_configs, study_job_spec
from scorerate.job.graph import _build_estimator
from scorerate.job.metric_table import law_of
from scorerate.metrics import law as law_mod


def study_config(jobs_csv: Path) -> dict:
    """The resolved config of the study whose jobs.csv this is (the config.yaml published
    beside it: the study's own settings, never a copy)."""
    path = jobs_csv.parent / "config.yaml"
    if not path.exists():
        raise SystemExit(f"{path} is missing: the study's resolved config must sit beside "
                         "its jobs.csv (results/study_config.yaml)")
    return load_configs(path)


def one_law(row: pd.Series, estimator: str, resolution: float, study: dict) -> dict:
    """tv_law, l2_law, cells and CPU seconds of one job's law at `resolution`."""
    spec = study_job_spec(study, density=str(row.density), beta=float(row.beta),
                          d=int(row.d), n=int(row.n), seed=int(row.seed),
                          law_resolution=float(resolution))
    if spec.n_steps != int(row.n_steps):
        raise SystemExit(f"n = {row.n}: the study's config gives {spec.n_steps} steps, the "
                         f"study ran {int(row.n_steps)}")
    p0 = density(spec.density, beta=spec.beta, d=spec.d)
    cpu = time.process_time()
    law = law_of(_build_estimator(spec, estimator), spec)
    cpu = time.process_time() - cpu
    return {"tv_law": law_mod.tv_law(law, p0), "l2_law": law_mod.l2_law(law, p0),
            "cells": int(law.mass.size), "cpu_s": cpu}


def _bits_equal(a: float, b: float) -> bool:
    return np.array([a]).view(np.int64)[0] == np.array([b]).view(np.int64)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", required=True, type=Path, help="a study's jobs.csv")
    ap.add_argument("--n", type=int, nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--estimators", nargs="+", default=["truncated", "regularized", "empirical"])
    ap.add_argument("--resolutions", type=float, nargs="+", default=[2.0, 4.0],
                    help="the study's law_resolution first, then finer ones")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    started = commit()
    jobs = pd.read_csv(args.jobs)
    study = study_config(args.jobs)
    rows = []
    for n in args.n:
        for est in args.estimators:
            mine = jobs[(jobs.n == n) & (jobs.estimator == est)]
            job = mine[mine.seed == args.seed].iloc[0]
            row = {"n": n, "estimator": est, "seed": args.seed, "steps": int(job.n_steps)}
            for r in args.resolutions:
                row[f"res{r:g}"] = one_law(job, est, r, study)
            # (not named `study`: that is the run-job options every later law needs)
            coarse = row[f"res{args.resolutions[0]:g}"]
            finest = row[f"res{args.resolutions[-1]:g}"]
            row["same_bits_as_published"] = all(
                _bits_equal(coarse[k], float(job[k])) for k in ("tv_law", "l2_law"))
            for k in ("tv_law", "l2_law"):
                se = float(mine[k].std(ddof=1) / np.sqrt(mine[k].notna().sum()))
                row[f"{k}_change"] = finest[k] - coarse[k]
                row[f"{k}_se"] = se
                row[f"{k}_change_over_se"] = abs(finest[k] - coarse[k]) / se
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "commit": started,
            "machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "law_grid_error" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lo, hi = f"{args.resolutions[0]:g}", f"{args.resolutions[-1]:g}"
    lines = [f"| n | estimator | steps | tv_law at {lo} | change at {hi} | / SE | "
             f"l2_law at {lo} | change at {hi} | / SE | cells {lo} / {hi} | CPU s {lo} / {hi} "
             "| published bits |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']:g} | {r['estimator']} | {r['steps']} | {r['res' + lo]['tv_law']:.4g} | "
              f"{r['tv_law_change']:.1e} | {r['tv_law_change_over_se']:.2g} | "
              f"{r['res' + lo]['l2_law']:.4g} | {r['l2_law_change']:.1e} | "
              f"{r['l2_law_change_over_se']:.2g} | {r['res' + lo]['cells']} / "
              f"{r['res' + hi]['cells']} | {r['res' + lo]['cpu_s']:.0f} / "
              f"{r['res' + hi]['cpu_s']:.0f} | "
              f"{'same' if r['same_bits_as_published'] else 'DIFFER'} |" for r in rows]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
