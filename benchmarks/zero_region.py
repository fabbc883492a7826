"""How close the zero-region prediction (scorerate.study.zero_region) comes to the measured
zero-region part of a truncated estimate's score MSE (score_mse_zero), and their slopes in n.

    python benchmarks/zero_region.py --density sym_beta --beta 1 --n 300 1000 10000 100000

For each n and seed the job's own training set (scorerate.job.metric_table.draw_train of
the study's JobSpec) and a `truncated` estimate on it; at each t of --ts (default: the
paper study's grid) score_mse_zero by the study's importance sampler with --n-mc draws
(far more than a study job's 250), its seed mean and standard error, and the prediction
Z_n(t) from p_t and rho_n alone. The ratio measured / predicted shows what the prediction
leaves out (p̂_t's fluctuation about p_t at the region's edge); the slopes in n of both
(least squares in log-log over --n) are what a verdict compares.

Writes <out>/zero_region[_tag].json (every value) and .md (the table).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
from provenance import commit, machine

from scorerate.config.file import load_configs, study_job_spec
from scorerate.densities import density
from scorerate.estimators import build, log_zero_threshold
from scorerate.job.metric_table import draw_train
from scorerate.metrics.score_error import score_mse
from scorerate.study.rates import fit_slope
from scorerate.study.zero_region import zero_region_mse

ROOT = Path(__file__).resolve().parents[1]
#: the paper study's shared settings over the Snakefile's config.yaml, as the workflow
#: merges them: its jobs (training sets, t grid) are the ones measured
PAPER = load_configs(ROOT / "config.yaml", ROOT / "workflow" / "studies" / "paper.yaml")


def paper_job(density: str, beta: float, d: int, n: int, seed: int):
    """The paper study's job at that point, `truncated` alone (config.study_job_spec)."""
    return study_job_spec(PAPER, density=density, beta=beta, d=d, n=n, seed=seed,
                          estimators=("truncated",))


def paper_ts() -> list[float]:
    """The paper study's score-MSE t grid (its jobs' own, not a copy of it)."""
    return [float(t) for t in paper_job("sym_beta", 1.0, 1, 2, 0).ts]


def measure(args) -> list[dict]:
    p0 = density(args.density, beta=args.beta, d=args.d)
    params = {"c_rho": args.c_rho}
    rows = []
    for n in args.n:
        pred = zero_region_mse(
            p0, args.ts, lambda t, n=n: log_zero_threshold("truncated", n, t, args.d, params),
            key=("benchmark", args.density, args.beta, args.d))
        per_seed = []
        cpu = time.process_time()
        for seed in args.seeds:
            spec = paper_job(args.density, args.beta, args.d, n, seed)
            est = build("truncated", draw_train(spec), params)
            _m, _s, zero, _mass = score_mse(est, p0, args.ts, n_mc=args.n_mc,
                                            key=("benchmark-zero", n, seed), parts=True)
            per_seed.append(zero)
        z = np.array(per_seed)
        mean, se = z.mean(0), z.std(0, ddof=1) / math.sqrt(z.shape[0])
        for k, t in enumerate(args.ts):
            rows.append({"n": n, "t": t, "measured": float(mean[k]), "measured_se": float(se[k]),
                         "predicted": float(pred["mse"][k]),
                         "predicted_mass": float(pred["mass"][k]),
                         "ratio": float(mean[k] / pred["mse"][k]) if pred["mse"][k] > 0
                         else math.nan})
        print(json.dumps({"n": n, "cpu_s": round(time.process_time() - cpu, 1),
                          "ratio": [round(r["ratio"], 3) for r in rows[-len(args.ts):]]}),
              flush=True)
    return rows


def slopes(rows: list[dict], ts) -> list[dict]:
    out = []
    for t in ts:
        sel = [r for r in rows if r["t"] == t and r["measured"] > 0 and r["predicted"] > 0]
        if len(sel) < 2:
            continue
        ns = np.array([r["n"] for r in sel], dtype=float)
        out.append({"t": t,
                    "slope_measured": float(fit_slope(ns, np.array([r["measured"] for r in sel]))),
                    "slope_predicted": float(fit_slope(ns, np.array([r["predicted"]
                                                                     for r in sel])))})
    return out


def write(rows: list[dict], meta: dict, out: Path, tag: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = "zero_region" + (f"_{tag}" if tag else "")
    sl = slopes(rows, meta["args"]["ts"])
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows, "slopes": sl},
                                                 indent=1))
    a = meta["args"]
    lines = [f"{a['density']}, beta {a['beta']:g}, d = {a['d']}, truncated (c_rho "
             f"{a['c_rho']:g}); seeds {a['seeds']}, n_mc {a['n_mc']}; commit {meta['commit']}",
             "", "| n | t | measured (seed mean ± se) | predicted | measured / predicted | "
             "predicted p_t-mass |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:g} | {r['t']:.3g} | {r['measured']:.3e} ± "
                     f"{r['measured_se']:.1e} | {r['predicted']:.3e} | {r['ratio']:.3f} | "
                     f"{r['predicted_mass']:.2e} |")
    lines += ["", "| t | slope in n, measured | slope in n, predicted |", "|---|---|---|"]
    lines += [f"| {s['t']:.3g} | {s['slope_measured']:.3f} | {s['slope_predicted']:.3f} |"
              for s in sl]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--density", default="sym_beta")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--d", type=int, default=1)
    ap.add_argument("--n", type=int, nargs="+", default=[300, 1000, 10000, 100000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--ts", type=float, nargs="+", default=None,
                    help="default: the paper study's t grid (workflow/studies/paper.yaml)")
    ap.add_argument("--n-mc", type=int, default=4000)
    ap.add_argument("--c-rho", type=float, default=1.0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    if args.ts is None:
        args.ts = paper_ts()
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "commit": commit(),
            "machine": machine(), "args": vars(args)}
    write(measure(args), meta, Path(args.out), args.tag)


if __name__ == "__main__":
    main()
