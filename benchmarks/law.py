"""Exact-law benchmark: seconds per step of law.output_law, engine score vs grid score.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/law.py
    python benchmarks/law.py --quick                 # n 1e3, 1e4; d 1, 2; 1 repeat
    python benchmarks/law.py --full-steps 256 --full-steps-3d 32   # + whole laws at max n
    python benchmarks/law.py --full-only --n 100000 --full-steps 256 --full-steps-3d 256 \
        --full-estimators truncated regularized empirical   # whole laws only

For each d and n (sym_beta, beta = 1, estimator `truncated`, t0 and T of the smallest n so
every n runs on the same time grid: with the largest n's t0, T the truncated chain at
n = 1e3 in 3-D spreads over ~1e10 cells), the law with `--steps` Euler-Maruyama steps:

- new path: output_law(est, ...) (the grid score); seconds per step = wall / steps, median
  over `--repeats` runs, each on a fresh estimator (its binning is timed too);
- old path: output_law(est.score, ...) (the engine, backend auto with plan_m = m as in a
  job). Where it would exceed `--budget` seconds it is not run: at every step of the new
  run the engine's score is timed on a random subset of that step's cells (at most
  --subset) and the full old step is estimated as law overhead + per-cell time x cells
  (column `old extrapolated`);
- error: at every 4th step, the grid score against the exact `dense` estimator on a
  random subset of cells (tail cells included: they are most of the cells): max of
  |ŝ - ŝ_dense| / max(|ŝ_dense|, 1/sqrt t), cells within 1e-5 of the truncation level
  excluded (either side is within tolerance there), and of p̂ where p̂ >= rho_n.

Writes <out>/law[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from provenance import machine

from scorerate import density, theory
from scorerate.estimators import build
from scorerate.job.metric_table import LAW_3D
from scorerate.metrics import law


class Probe:
    """Wraps an estimator for output_law's grid path; times calls, samples the old path."""

    def __init__(self, est, dense, subset: int, check_every: int, rng, old: bool) -> None:
        self.est, self.dense, self.subset = est, dense, subset
        self.check_every, self.rng, self.old = check_every, rng, old
        self.calls = 0
        self.grid_s = 0.0
        self.old_est_s = 0.0
        self.err_s = 0.0
        self.err_p = 0.0
        self.cells = []

    def grid_score(self, axes, t, need=None):
        t1 = time.perf_counter()
        s, methods = self.est.grid_score(axes, t, need=need)
        self.grid_s += time.perf_counter() - t1
        idx = np.flatnonzero(need.ravel()) if need is not None else np.arange(s.shape[0])
        self.cells.append(int(idx.size))
        pick = self.rng.choice(idx, min(self.subset, idx.size), replace=False)
        x = np.stack([g.ravel()[pick] for g in np.meshgrid(*axes, indexing="ij")], axis=1)
        if self.old:
            t1 = time.perf_counter()
            self.est.score(x, t)
            self.old_est_s += (time.perf_counter() - t1) * idx.size / pick.size
        if self.calls % self.check_every == 0:
            lp, mu = self.dense.engine.sums(x, t)
            ref = self.dense.score(x, t)
            cut = theory.log_rho_n(self.dense.n, t, self.dense.d)
            clear = np.abs(lp - cut) > 1e-5
            scale = np.maximum(np.linalg.norm(ref, axis=1), 1.0 / math.sqrt(t))
            e = np.linalg.norm(s[pick] - ref, axis=1) / scale
            self.err_s = max(self.err_s, float(np.max(e[clear], initial=0.0)))
            res = self.est._grid.sums(axes, t, exact=self.est.engine.sums,
                                      need=np.isin(np.arange(s.shape[0]), pick).reshape(need.shape))
            lpg = res.logp.ravel()[pick]
            above = lp >= cut
            if above.any():
                self.err_p = max(self.err_p, float(np.max(np.abs(np.expm1(lpg - lp))[above])))
        self.calls += 1
        return s, methods


def run_case(d: int, n: int, args, t0: float, T: float) -> dict:
    p0 = density("sym_beta", beta=1.0, d=d)
    X = p0.sample(n, seed=1)
    kw = dict(d=d, t0=t0, T=T, steps=args.steps, resolution=args.resolution,
              noise_resolution=args.noise_resolution.get(d), max_cells=args.max_cells,
              **_grid_3d(d))
    params = {"backend": "auto", "plan_m": args.m}
    dense = build("truncated", X, {"backend": "dense"})
    # one probed run: old-path sampling and error checks (its wall time is not used)
    p = Probe(build("truncated", X, params), dense, args.subset, 4,
              np.random.default_rng(0), old=True)
    L = law.output_law(_Only(p), **kw)
    # the new path alone, on fresh estimators (their binning included)
    pure = []
    for _ in range(args.repeats):
        est = build("truncated", X, params)
        t1 = time.perf_counter()
        law.output_law(est, **kw)
        pure.append(time.perf_counter() - t1)
    new_step = float(np.median(pure)) / args.steps
    overhead = max(new_step - p.grid_s / args.steps, 0.0)
    old_pred = overhead + p.old_est_s / args.steps
    old_run = None
    if old_pred * args.steps <= args.budget:
        est = build("truncated", X, params)
        ts = []
        for _ in range(args.repeats):
            t1 = time.perf_counter()
            law.output_law(est.score, **kw)
            ts.append(time.perf_counter() - t1)
        old_run = float(np.median(ts)) / args.steps
    return {"d": d, "n": n, "steps": args.steps, "t0": t0, "T": T,
            "cells_max": int(max(L.cells)), "cells_mean": float(np.mean(L.cells)),
            "new_s_per_step": new_step, "new_runs_s": pure,
            "grid_score_share": p.grid_s / max(float(np.median(pure)), 1e-12),
            "old_s_per_step": old_run if old_run is not None else old_pred,
            "old_extrapolated": old_run is None, "old_estimate_s_per_step": old_pred,
            "methods": L.methods, "err_score": p.err_s, "err_p": p.err_p,
            "tv_law": law.tv_law(L, p0), "l2_law": law.l2_law(L, p0)}


def _grid_3d(d: int) -> dict:
    """The job's 3-D coarse-cell settings (growth, tail_mass; job/metric_table.LAW_3D)."""
    return {k: LAW_3D[k] for k in ("growth", "tail_mass")} if d == 3 else {}


class _Only:
    """Hides the Probe's other attributes: output_law sees grid_score only."""

    def __init__(self, probe: Probe) -> None:
        self.grid_score = probe.grid_score


def full_law(d: int, n: int, steps: int, args, name: str = "truncated") -> dict:
    """One estimator's law at the theory's t0, T for n with `steps` steps (grid path)."""
    p0 = density("sym_beta", beta=1.0, d=d)
    est = build(name, p0.sample(n, seed=1), {"backend": "auto", "plan_m": args.m})
    t0, T = theory.t0_early_stop(n, 1.0, d), theory.T_horizon(n, 1.0, d)
    t1 = time.perf_counter()
    try:
        L = law.output_law(est, d=d, t0=t0, T=T, steps=steps, resolution=args.resolution,
                           noise_resolution=args.noise_resolution.get(d), **_grid_3d(d),
                           max_cells=args.max_cells)
    except law.GridTooLarge as exc:
        return {"d": d, "n": n, "steps": steps, "estimator": name, "error": str(exc),
                "seconds": time.perf_counter() - t1}
    return {"d": d, "n": n, "steps": steps, "estimator": name,
            "seconds": time.perf_counter() - t1,
            "cells_max": int(max(L.cells)), "methods": L.methods,
            "tv_law": law.tv_law(L, p0), "l2_law": law.l2_law(L, p0)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--d", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resolution", type=float, default=3.0)
    ap.add_argument("--noise-resolution-3d", type=float,
                    default=LAW_3D["noise_resolution"])
    ap.add_argument("--max-cells", type=int, default=6_000_000)
    ap.add_argument("--m", type=int, default=1000, help="plan_m of the engine (a job's m)")
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--budget", type=float, default=120.0)
    ap.add_argument("--full-steps", type=int, default=0, help="2-D law with this many steps")
    ap.add_argument("--full-steps-3d", type=int, default=0, help="3-D law with this many steps")
    ap.add_argument("--full-estimators", nargs="+", default=["truncated"],
                    choices=["truncated", "regularized", "empirical"],
                    help="estimators of the whole laws (--full-steps, --full-steps-3d)")
    ap.add_argument("--full-only", action="store_true",
                    help="only the whole laws at the largest n (no per-step table)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.d, args.repeats = [1000, 10_000], [1, 2], 1
    args.noise_resolution = {3: args.noise_resolution_3d}
    started = time.perf_counter()
    rows = []
    for d in [] if args.full_only else args.d:
        nmin = min(args.n)
        t0, T = theory.t0_early_stop(nmin, 1.0, d), theory.T_horizon(nmin, 1.0, d)
        for n in args.n:
            row = run_case(d, n, args, t0, T)
            rows.append(row)
            print(json.dumps(row), flush=True)
    full = []
    for d, steps in ((2, args.full_steps), (3, args.full_steps_3d)):
        if steps and d in args.d:
            for name in args.full_estimators:
                full.append(full_law(d, max(args.n), steps, args, name))
                print(json.dumps(full[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "law" + (f"_{args.tag}" if args.tag else "")
    res = {"date": datetime.datetime.now(datetime.UTC).isoformat(),
           "argv": sys.argv, "machine": machine(), "rows": rows, "full": full,
           "seconds": time.perf_counter() - started}
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{name}.md").write_text(table(rows, full))
    print(table(rows, full))


def table(rows: list[dict], full: list[dict]) -> str:
    lines = ["| d | n | cells (max) | old s/step | new s/step | old / new | new / new(n min) "
             "| grid share | fallback cells | max err ŝ | max err p̂ |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        base.setdefault(r["d"], r["new_s_per_step"])
        m = r["methods"]
        tot = max(1, m.get("grid", 0) + m.get("bound", 0) + m.get("exact", 0))
        old = f"{r['old_s_per_step']:.3g}" + (" (extrap.)" if r["old_extrapolated"] else "")
        lines.append(f"| {r['d']} | {r['n']:.0e} | {r['cells_max']} | {old} | "
                     f"{r['new_s_per_step']:.3g} | "
                     f"{r['old_s_per_step'] / r['new_s_per_step']:.1f} | "
                     f"{r['new_s_per_step'] / base[r['d']]:.2f} | {r['grid_score_share']:.2f} | "
                     f"{m.get('exact', 0) / tot:.1e} | {r['err_score']:.1e} | {r['err_p']:.1e} |")
    if full:
        lines += ["", "| d | n | steps | estimator | seconds | cells (max) | fallback cells "
                  "| tv_law |", "|---|---|---|---|---|---|---|---|"]
        for f in full:
            if "error" in f:
                lines.append(f"| {f['d']} | {f['n']:.0e} | {f['steps']} | {f['estimator']} | "
                             f"refused after {f['seconds']:.0f} s: {f['error']} | | | |")
                continue
            m = f["methods"]
            tot = max(1, m.get("grid", 0) + m.get("bound", 0) + m.get("exact", 0))
            lines.append(f"| {f['d']} | {f['n']:.0e} | {f['steps']} | {f['estimator']} | "
                         f"{f['seconds']:.0f} | "
                         f"{f['cells_max']} | {m.get('exact', 0) / tot:.1e} | {f['tv_law']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
