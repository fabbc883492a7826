"""What the grid score's lattice floor (job parameter grid_ratio_floor) costs and changes, d = 1.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/lattice_floor.py --density sym_beta --beta 0.5 --n 10000 \\
        --steps 128 --floors 0.02 1.0 --resolutions 2 4 --tag sym_beta_0.5

For one training set of --density (--beta, d = 1, seed 1), t0 = n^(-2 / (2 beta + 1)) and
T = 1 / t0, the Heun law of each estimator at --steps steps, once per floor (0.02, the
default, refines the lattice to certify far tails on it; 1.0 keeps the coarsest certified
lattice) and per law resolution, all in this one process, floors alternating: CPU seconds,
cells, the grid score's method counts, tv_law and l2_law to p0, and the TV between each law
and the first floor's law at the same resolution. The change of the finest resolution
against the coarsest (per floor) is the law's grid error it is to be compared with.

Writes <out>/lattice_floor[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from provenance import commit, write_results

from scorerate import density
from scorerate.estimators import build
from scorerate.metrics import law
from scorerate.metrics.law_distance import tv_between


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--density", default="sym_beta")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000])
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--floors", type=float, nargs="+", default=[0.02, 1.0])
    ap.add_argument("--resolutions", type=float, nargs="+", default=[2.0])
    ap.add_argument("--estimators", nargs="+", default=["truncated", "regularized", "empirical"])
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    started = commit()
    p0 = density(args.density, beta=args.beta, d=1)
    law.output_law(build("truncated", p0.sample(1000, seed=0), {}), d=1, t0=0.01, T=10.0,
                   steps=4, integrator="heun", resolution=2.0)  # compile the numba kernels
    rows = []
    for n in args.n:
        X = p0.sample(n, seed=1)
        t0 = n ** (-2.0 / (2.0 * args.beta + 1.0))
        for est_name in args.estimators:
            first: dict[float, law.GridLaw] = {}  # per resolution, the first floor's law
            for res in args.resolutions:
                for floor in args.floors:
                    est = build(est_name, X, {"grid_ratio_floor": floor})
                    c = time.process_time()
                    L = law.output_law(est, d=1, t0=t0, T=1.0 / t0, steps=args.steps,
                                       integrator="heun", resolution=res)
                    cpu = time.process_time() - c
                    first.setdefault(res, L)
                    row = {"n": n, "estimator": est_name, "steps": args.steps,
                           "resolution": res, "floor": floor, "cpu_s": cpu,
                           "cells": int(L.mass.size), "methods": dict(L.methods),
                           "tv_law": law.tv_law(L, p0), "l2_law": law.l2_law(L, p0),
                           "tv_to_first_floor": tv_between(first[res], L)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    # the grid error beside each coarsest-resolution law: tv_law at the finest resolution
    tv = {(r["n"], r["estimator"], r["floor"], r["resolution"]): r["tv_law"] for r in rows}
    lo, hi = min(args.resolutions), max(args.resolutions)
    for r in rows:
        if r["resolution"] == lo < hi:
            r["tv_law_refined"] = tv[r["n"], r["estimator"], r["floor"], hi]
    lines = ["| n | estimator | resolution | floor | CPU s | cells | exact cells | tv_law "
             "| TV to the 0.02 law | tv_law refined - tv_law |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        moved = (f"{r['tv_law_refined'] - r['tv_law']:.1e}" if "tv_law_refined" in r
                 else "")
        lines.append(f"| {r['n']:g} | {r['estimator']} | {r['resolution']:g} | "
                     f"{r['floor']:g} | {r['cpu_s']:.1f} | {r['cells']} | "
                     f"{r['methods'].get('exact', 0)} | {r['tv_law']:.6f} | "
                     f"{r['tv_to_first_floor']:.1e} | {moved} |")
    write_results(args.out, "lattice_floor", args.tag, rows, lines, started, vars(args))


if __name__ == "__main__":
    main()
