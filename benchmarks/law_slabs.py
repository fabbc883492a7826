"""Exact-law cost with the grid score as it is against one of its parts switched off, in
one run (d = 1).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/law_slabs.py --n 100000 --steps 183 [--against no_blocks]

For sym_beta (beta 1, d = 1), one training set, the theory's t0 and T, each estimator and
integrator: CPU seconds of `law.output_law` (median over --repeats, after one warm-up law
that compiles the numba kernels), with the grid score as it is and with one part off
(--against):
- "no_slabs": the far-slab bound off (every coordinate goes through the per-axis
  matrices, as before engine/grid.py set aside slabs beyond the data's reach);
- "no_blocks": no row blocks (a call whose matrices pass MAX_MATRIX_BYTES sends every cell
  to the exact O(n) fallback, as before GridScorer._sums_by_rows).
Also the largest difference between the two laws' cell masses (both parts change only
what the engine's tolerance allows, so the laws should agree to rounding).

Writes <out>/law_slabs[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from provenance import commit, write_results

from scorerate import density
from scorerate.engine import grid
from scorerate.engine.grid import GridScorer
from scorerate.estimators import build
from scorerate.metrics import law

_SLABS = GridScorer._sums_on_slabs  # None from it: no slab set aside
_ROWS, _CHUNK = grid._rows_within, grid.CHUNK_BYTES  # 0 rows: no block fits


def _switch_off(part: str | None) -> None:
    """Restore the engine, then switch `part` off (None: the engine as it is)."""
    GridScorer._sums_on_slabs = _SLABS
    grid._rows_within, grid.CHUNK_BYTES = _ROWS, _CHUNK
    if part == "no_slabs":
        GridScorer._sums_on_slabs = lambda *a, **k: None
    elif part == "no_blocks":
        grid._rows_within, grid.CHUNK_BYTES = (lambda *a: 0), grid.MAX_MATRIX_BYTES


def _law(est_name: str, X: np.ndarray, n: int, steps: int, integrator: str,
         part: str | None, resolution: float):
    _switch_off(part)
    try:
        est = build(est_name, X, {})
        t = time.process_time()
        L = law.output_law(est, d=1, t0=n ** (-2.0 / 3.0), T=100.0, steps=steps,
                           integrator=integrator, resolution=resolution)
        return time.process_time() - t, L
    finally:
        _switch_off(None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--steps", type=int, default=183)
    ap.add_argument("--estimators", nargs="+", default=["truncated", "regularized", "empirical"])
    ap.add_argument("--integrators", nargs="+", default=["heun", "euler_maruyama"])
    ap.add_argument("--resolution", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--against", choices=["no_slabs", "no_blocks"], default="no_slabs")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    started = commit()  # the code this process runs (HEAD may move while it does)
    p0 = density("sym_beta", beta=1.0, d=1)
    _law("truncated", p0.sample(1000, seed=0), 1000, 4, "heun", None, 2.0)  # compile
    rows = []
    for n in args.n:
        X = p0.sample(n, seed=1)
        for est in args.estimators:
            for integ in args.integrators:
                row = {"n": n, "estimator": est, "integrator": integ, "steps": args.steps}
                laws = {}
                for part in (None, args.against):
                    times = []
                    for _ in range(args.repeats):
                        sec, laws[part] = _law(est, X, n, args.steps, integ, part,
                                               args.resolution)
                        times.append(sec)
                    row["cpu_s_" + (part or "as_is")] = statistics.median(times)
                a, b = laws[None], laws[args.against]
                same = a.edges[0].shape == b.edges[0].shape and np.array_equal(a.edges[0],
                                                                               b.edges[0])
                row["same_cells"] = bool(same)
                row["max_mass_diff"] = float(np.max(np.abs(a.mass - b.mass))) if same else None
                row["speedup"] = row["cpu_s_" + args.against] / row["cpu_s_as_is"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = [f"| n | estimator | integrator | steps | CPU s | CPU s {args.against} | speed-up "
             "| max mass diff |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "cells differ" if r["max_mass_diff"] is None else f"{r['max_mass_diff']:.1e}"
        lines.append(f"| {r['n']:g} | {r['estimator']} | {r['integrator']} | {r['steps']} | "
                     f"{r['cpu_s_as_is']:.1f} | {r['cpu_s_' + args.against]:.1f} | "
                     f"{r['speedup']:.2f} | {diff} |")
    write_results(args.out, "law_slabs", args.tag, rows, lines, started, vars(args))


if __name__ == "__main__":
    main()
