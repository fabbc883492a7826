"""Plan a part's step rule before running it: the steps that hold its step check under a
fraction of the seed SE at every n, and the rule (steps, steps_power, steps_at_n,
steps_min) that gives them.

    python benchmarks/plan_steps.py --config config.yaml workflow/studies/paper.yaml \\
        workflow/studies/paper/d2_sym_beta_2.yaml --probe-n 1000 10000 --tag d2_sym_beta_2

For the part's one cell (its config's first density, beta and d) and every n of its config:
1. the SE of a 10-seed mean of tv_law, from the spread of tv_kde (p̂_t0's TV to p0, which
   the law follows; seconds per seed) over the config's seeds, its Monte Carlo variance
   (--n-mc points per seed) taken out;
2. at each --probe-n, for --estimator, the law's tv_law at S, 2S, 4S steps (S = the
   config's own steps at that n unless --probe-steps) and the check's model C S^-p
   (metrics.step_error.check_model); between probes C and p are interpolated in log n,
   outside them the nearest probe's are used;
3. the fewest steps with C S^-p <= --fraction x SE (required_steps) and the rule that covers
   them (step_rule_covering), with its counts and the predicted check / SE at every n.

The SE comes from tv_kde, not from tv_law: over the 70 (cell, n, estimator) of the
published parts (regularized, empirical; docs/results/*/jobs.csv) the seed spread of
tv_law is 0.90-1.06 times that of tv_kde (median 0.995). The check's model holds only in
its asymptotic range: probe near the steps the rule will give (the default, the config's
own), not far below them. Writes <out>/plan_steps[_tag].json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
from provenance import commit, machine

from scorerate.config.file import load_configs, study_job_spec
from scorerate.densities import density
from scorerate.job.graph import _build_estimator
from scorerate.job.metric_table import draw_train, law_cells, law_of, tv_law
from scorerate.metrics.samples import tv_kde
from scorerate.metrics.step_error import check_model, required_steps, step_rule_covering
from scorerate.sampler import steps_for

ROOT = Path(__file__).resolve().parents[1]


def cell_of(cfg: dict) -> tuple[str, float, int]:
    """The part's one cell: its first density, that density's first beta, the first d."""
    dens = cfg["densities"][0]
    return str(dens["name"]), float(dens["beta"][0]), int(cfg["d"][0])


def seed_se(cfg: dict, n: int, n_mc: int) -> dict:
    """SE of the seeds' mean of tv_kde, with the Monte Carlo variance taken out."""
    name, beta, d = cell_of(cfg)
    p0 = density(name, beta=beta, d=d)
    vals, mc = [], []
    for seed in cfg["seeds"]:
        spec = study_job_spec(cfg, density=name, beta=beta, d=d, n=n, seed=int(seed))
        v, se = tv_kde(draw_train(spec), spec.t0, p0, n_mc=n_mc, key=(*spec.key, "plan"))
        vals.append(v)
        mc.append(se)
    vals = np.asarray(vals)
    var = max(float(vals.var(ddof=1)) - float(np.mean(np.square(mc))), 0.0)
    return {"n": n, "seeds": len(vals), "tv_kde": float(vals.mean()),
            "sd_raw": float(vals.std(ddof=1)), "mc_se": float(np.mean(mc)),
            "se": math.sqrt(var / len(vals))}


def plan_warnings(probes: list[dict], ns: list[int], planned: list[int]) -> list[str]:
    """Where the plan is an extrapolation: a probe whose law is not yet in the model's range
    (it moves more from 2S to 4S than from S to 2S), or a rule below the steps probed."""
    out = []
    for pr in probes:
        v, s = pr["tv_law"], pr["steps"]
        if abs(v[1] - v[2]) > abs(v[0] - v[1]) or (v[0] - v[1]) * (v[1] - v[2]) < 0:
            out.append(f"n = {pr['n']}: the law is not asymptotic in the steps at {s[0]}-{s[2]} "
                       "(not monotone, or it moves more from 2S to 4S than from S to 2S); "
                       "C S^-p is not a model")
        planned_here = planned[ns.index(pr["n"])] if pr["n"] in ns else None
        if planned_here is not None and planned_here < s[0]:
            out.append(f"n = {pr['n']}: the rule gives {planned_here} steps, below the probed "
                       f"{s[0]}: an extrapolation; keep at least the probed steps")
    return out


def probe(cfg: dict, n: int, estimator: str, steps: int | None) -> dict:
    """tv_law of seed 0's job at S, 2S, 4S steps and the check's (C, p)."""
    name, beta, d = cell_of(cfg)
    spec = study_job_spec(cfg, density=name, beta=beta, d=d, n=n, seed=0,
                          estimators=(estimator,))
    p0 = density(name, beta=beta, d=d)
    est = _build_estimator(spec, estimator)
    s = int(steps or spec.n_steps)
    out = {"n": n, "estimator": estimator, "steps": [s, 2 * s, 4 * s], "tv_law": [],
           "cpu_s": []}
    for k in out["steps"]:
        t = time.process_time()
        out["tv_law"].append(tv_law(law_cells(law_of(est, spec, k), p0, spec), p0, spec))
        out["cpu_s"].append(time.process_time() - t)
        print(json.dumps({"n": n, "steps": k, "tv_law": out["tv_law"][-1],
                          "cpu_s": out["cpu_s"][-1]}), flush=True)
    out["C"], out["p"] = check_model(out["steps"], out["tv_law"])
    return out


def model_at(probes: list[dict], n: int) -> tuple[float, float]:
    """(C, p) at n: log-linear in log n between probes, the nearest probe's outside them."""
    pts = sorted((math.log(p["n"]), math.log(p["C"]), p["p"]) for p in probes)
    x = math.log(n)
    if x <= pts[0][0]:
        return math.exp(pts[0][1]), pts[0][2]
    if x >= pts[-1][0]:
        return math.exp(pts[-1][1]), pts[-1][2]
    for (x0, c0, p0), (x1, c1, p1) in zip(pts, pts[1:], strict=False):
        if x0 <= x <= x1:
            w = (x - x0) / (x1 - x0)
            return math.exp(c0 + w * (c1 - c0)), p0 + w * (p1 - p0)
    raise AssertionError("unreachable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", type=Path, required=True,
                    help="the part's config files, merged in order as Snakemake merges "
                         "config.yaml and --configfile")
    ap.add_argument("--probe-n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--probe-steps", type=int, nargs="+", default=None,
                    help="S at each --probe-n (default: the config's steps at that n)")
    ap.add_argument("--estimator", default="regularized")
    ap.add_argument("--fraction", type=float, default=1.0 / 3.0,
                    help="the check's target, a fraction of the SE (the gate is 0.5)")
    ap.add_argument("--n-mc", type=int, default=40_000)
    ap.add_argument("--at-n", type=int, default=10_000)
    ap.add_argument("--knee", type=int, default=1000)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    if args.probe_steps and len(args.probe_steps) != len(args.probe_n):
        ap.error("--probe-steps needs one S per --probe-n")
    cfg = load_configs(*args.config)
    ns = [int(n) for n in cfg["n"]]
    ses = []
    for n in ns:
        ses.append(seed_se(cfg, n, args.n_mc))
        print(json.dumps(ses[-1]), flush=True)
    probes = [probe(cfg, n, args.estimator, s)
              for n, s in zip(args.probe_n, args.probe_steps or [None] * len(args.probe_n),
                              strict=True)]
    need = []
    for row in ses:
        c, p = model_at(probes, row["n"])
        need.append(required_steps(c, p, row["se"], args.fraction))
    rule = step_rule_covering(ns, need, at_n=args.at_n, knee=args.knee)
    current = [steps_for(n, cfg["steps"], cfg.get("steps_power") or 0.0,
                         cfg.get("steps_at_n") or 1000, cfg.get("steps_min") or 1) for n in ns]
    planned = [steps_for(n, rule.steps, rule.steps_power, rule.steps_at_n, rule.steps_min)
               for n in ns]
    lines = [f"Rule: steps {rule.steps}, steps_power {rule.steps_power:g}, steps_at_n "
             f"{rule.steps_at_n}, steps_min {rule.steps_min} (check <= {args.fraction:.2f} SE)",
             "", "| n | SE (tv_kde, seeds) | C | p | required | rule | check / SE (rule) | "
             "config's steps | check / SE (config) |", "|---|---|---|---|---|---|---|---|---|"]
    for row, r, s_plan, s_now in zip(ses, need, planned, current, strict=True):
        c, p = model_at(probes, row["n"])
        lines.append(f"| {row['n']:g} | {row['se']:.2e} | {c:.3g} | {p:.2f} | {r} | {s_plan} | "
                     f"{c * s_plan ** -p / row['se']:.2f} | {s_now} | "
                     f"{c * s_now ** -p / row['se']:.2f} |")
    warnings = plan_warnings(probes, ns, planned)
    lines += [f"WARNING: {w}" for w in warnings]
    lines += ["", "| probe n | S, 2S, 4S | tv_law | C | p | CPU s |", "|---|---|---|---|---|---|"]
    for pr in probes:
        lines.append(f"| {pr['n']:g} | {', '.join(map(str, pr['steps']))} | "
                     f"{', '.join(f'{v:.6f}' for v in pr['tv_law'])} | {pr['C']:.3g} | "
                     f"{pr['p']:.2f} | {', '.join(f'{v:.0f}' for v in pr['cpu_s'])} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "plan_steps" + (f"_{args.tag}" if args.tag else "")
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "commit": commit(),
            "machine": machine(), "args": vars(args)}
    (out / f"{stem}.json").write_text(json.dumps(
        {"meta": meta, "se": ses, "probes": probes, "required": need,
         "rule": dataclasses.asdict(rule),
         "planned": planned, "warnings": warnings}, indent=1, default=str))
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
