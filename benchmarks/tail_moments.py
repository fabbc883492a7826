"""A 1-D law's exact fallback by bins' Taylor moments against direct sums (issue 17).

    python benchmarks/tail_moments.py --jobs docs/results/d1_sym_beta_3/jobs.csv \\
        --n 30000 --estimators empirical --steps-factor 2 --tag d1_sym_beta_3

For one job of a published study per n (seed, density, beta, d and every setting from the
config.yaml beside its jobs.csv), each estimator's output law is computed at
`steps-factor` x the job's steps (2: a step-check job's check law) twice in one process:
with the cutoff backend's Taylor path (`engine/bin_moments.py`, now the default) and with
it switched off (every fallback query summed directly, as before). Per arm: CPU seconds,
the queries the grid score sent to its exact fallback and their CPU seconds, tv_law and
l2_law; between the arms, whether the two grids carry the same edges (the law places them
from the scores, so the last bits of a score can move an edge by as much) and the TV between
the laws on the union of their edges. `--arms moments` skips the direct arm (at n = 1e5 it
runs for over half an hour).

Writes <out>/tail_moments[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import commit, write_results

import scorerate.engine.cutoff as cutoff_mod
from scorerate import density
from scorerate.config.file import load_configs, study_job_spec
from scorerate.engine import GaussianEngine
from scorerate.job.graph import _build_estimator
from scorerate.job.metric_table import law_of
from scorerate.metrics import law as law_mod
from scorerate.metrics.law_distance import tv_between

ARMS = ("moments", "direct")


class FallbackMeter:
    """Counts the queries and CPU seconds of GaussianEngine.tail_sums (the grid score's
    exact fallback) while installed."""

    def __init__(self) -> None:
        self.queries, self.cpu_s = 0, 0.0
        self._orig = GaussianEngine.tail_sums

    def __enter__(self) -> FallbackMeter:
        orig = self._orig

        def counted(engine, queries, t):
            start = time.process_time()
            out = orig(engine, queries, t)
            self.cpu_s += time.process_time() - start
            self.queries += len(queries)
            return out

        GaussianEngine.tail_sums = counted
        return self

    def __exit__(self, *exc) -> None:
        GaussianEngine.tail_sums = self._orig


def one_law(spec, estimator: str, steps: int, arm: str):
    """(law, row) of one estimator's law at `steps`, the Taylor path on or off."""
    orig = cutoff_mod.worth_it
    if arm == "direct":
        cutoff_mod.worth_it = lambda kept, *a, **k: np.zeros(np.shape(kept), dtype=bool)
    try:
        est = _build_estimator(spec, estimator)
        with FallbackMeter() as meter:
            cpu = time.process_time()
            law = law_of(est, spec, steps)
            cpu = time.process_time() - cpu
    finally:
        cutoff_mod.worth_it = orig
    p0 = density(spec.density, beta=spec.beta, d=spec.d)
    return law, {"cpu_s": cpu, "fallback_queries": meter.queries,
                 "fallback_cpu_s": meter.cpu_s, "cells": int(law.mass.size),
                 "tv_law": law_mod.tv_law(law, p0), "l2_law": law_mod.l2_law(law, p0)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", required=True, type=Path, help="a published jobs.csv")
    ap.add_argument("--n", type=int, nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--estimators", nargs="+", default=["empirical"])
    ap.add_argument("--steps-factor", type=int, default=2)
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    started = commit()
    jobs = pd.read_csv(args.jobs)
    study = load_configs(args.jobs.parent / "config.yaml")
    rows = []
    for n in args.n:
        job = jobs[(jobs.n == n) & (jobs.seed == args.seed)].iloc[0]
        spec = study_job_spec(study, density=str(job.density), beta=float(job.beta),
                              d=int(job.d), n=n, seed=args.seed)
        steps = args.steps_factor * spec.n_steps
        for est in args.estimators:
            row = {"n": n, "seed": args.seed, "estimator": est, "steps": steps}
            laws = {}
            for arm in args.arms:
                laws[arm], row[arm] = one_law(spec, est, steps, arm)
                print(arm, row, flush=True)
            if len(laws) == 2:
                a, b = laws["moments"], laws["direct"]
                row["same_grid"] = bool(a.mass.shape == b.mass.shape and all(
                    np.array_equal(x, y) for x, y in zip(a.edges, b.edges, strict=True)))
                row["tv_between"] = tv_between(a, b)  # on the union of their edges
                row["speed_up"] = row["direct"]["cpu_s"] / row["moments"]["cpu_s"]
            rows.append(row)
    head = "| n | estimator | steps | " + " | ".join(
        f"{a}: CPU s, fallback queries (CPU s), tv_law" for a in args.arms)
    lines = [head + " | speed-up | same edges | TV between laws |",
             "|---" * (3 + len(args.arms) + 3) + "|"]
    for r in rows:
        cells = " | ".join(f"{r[a]['cpu_s']:.1f}, {r[a]['fallback_queries']} "
                           f"({r[a]['fallback_cpu_s']:.1f}), {r[a]['tv_law']:.9g}"
                           for a in args.arms)
        extra = (f"{r['speed_up']:.1f} | {'yes' if r['same_grid'] else 'NO'} | "
                 f"{r['tv_between']:.1e}" if "speed_up" in r else "— | — | —")
        lines.append(f"| {r['n']:g} | {r['estimator']} | {r['steps']} | {cells} | {extra} |")
    write_results(args.out, "tail_moments", args.tag, rows, lines, started,
                  {k: str(v) for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
