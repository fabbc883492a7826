"""Integrator benchmark: the cost of reaching a discretisation error, on the exact law (d = 1).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/integrators.py --n 1000 --tag n1e3
    python benchmarks/integrators.py --collect benchmarks/results/integrators_n1e*.json \\
        --tag all                                   # one table from several runs

For sym_beta (beta 1, d = 1), one training set (`p0.sample(n, seed=--seed)`), the theory's
t0 and T, and each estimator, the exact output law (`law.output_law`, resolution
--resolution) of each scheme over a range of steps S:

- em, ancestral: Euler-Maruyama and the ancestral (exponential-integrator) step on the
  geometric time grid; em_edm: Euler-Maruyama on the EDM schedule (rho 7);
- heun: the stochastic Heun step (two score calls per step; its law by a stratified
  push-forward of the step noise, law._heun_law_1d); heun_edm: on the EDM schedule;
- flow: Heun's probability flow (deterministic; not the theorem's sampler), for reference;
- em_rich: Richardson extrapolation 2 law_S - law_{S/2} of the em laws (a signed measure:
  its negative mass is reported).

Discretisation error: TV to the S -> infinity limit of the chain. For `empirical` that limit
is p̂_t0 itself (DESIGN.md section 1), whose exact cell masses are used; for `truncated` it
is not p̂_t0, and the reference is the heun law at --ref-steps steps (its own error is
estimated from the heun sequence, ref_err = TV(ref, heun at ref/2) / 3 for a second-order
scheme). Every law is compared on the reference law's cells, its masses there read off its
cumulative distribution by monotone cubic (PCHIP) interpolation: the union-of-edges remap
(law_distance.tv_between) assumes each law uniform within its cells and has a floor of
~1e-3 between two laws of the same accuracy on different grids (measured at n = 1e3).

Target: --target x TV(p̂_t0, p0) (p̂_t0's own error, binned on the reference cells). The
steps to reach it are interpolated log-log between the two measured S around it.
Cost: score evaluations per sample (steps x calls per step, the particle sampler's cost),
the law's CPU seconds (the study's cost), and the particle sampler's CPU seconds per 1e3
samples estimated as evaluations x the CPU time of one est.score call on 1e3 points.

Writes <out>/integrators[_tag].json and .md (default benchmarks/results/).
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
from provenance import commit, machine
from scipy.interpolate import PchipInterpolator

from scorerate import density, theory
from scorerate.estimators import build
from scorerate.metrics import law
from scorerate.metrics.law_distance import kde_cell_probs

#: scheme -> (integrator, schedule, score calls per step)
SCHEMES: dict[str, tuple[str, str, int]] = {
    "em": ("euler_maruyama", "geometric", 1),
    "ancestral": ("ancestral", "geometric", 1),
    "em_edm": ("euler_maruyama", "edm", 1),
    "heun": ("heun", "geometric", 2),
    "heun_edm": ("heun", "edm", 2),
    "flow": ("probability_flow", "geometric", 2),
}
FIRST_ORDER_STEPS = [32, 64, 128, 256, 512, 1024, 2048]
SECOND_ORDER_STEPS = [16, 32, 64, 128, 256]


def cdf_masses(L: law.GridLaw, edges: np.ndarray) -> np.ndarray:
    """The 1-D law's masses on the cells `edges`, from its cdf at its own edges
    interpolated by a monotone cubic (PCHIP): second order, non-negative."""
    e = L.edges[0]
    F = np.concatenate([[0.0], np.cumsum(L.mass)])
    G = PchipInterpolator(e, F, extrapolate=False)(edges)
    G = np.where(edges <= e[0], 0.0, np.where(edges >= e[-1], 1.0, G))
    return np.diff(G)


def run_law(est, scheme: str, S: int, t0: float, T: float,
            resolution: float) -> tuple[law.GridLaw, float]:
    """The scheme's exact law with S steps and its CPU seconds."""
    integrator, schedule, _ = SCHEMES[scheme]
    score = est.score if integrator == "probability_flow" else est
    c = time.process_time()
    L = law.output_law(score, d=1, t0=t0, T=T, steps=S, integrator=integrator,
                       schedule=schedule, resolution=resolution)
    return L, time.process_time() - c


def steps_to(target: float, rows: list[dict], key: str = "err") -> float | None:
    """S at which err falls to target, log-log interpolated between measured S (None:
    not reached; the smallest S if already below)."""
    pts = sorted((r["steps"], r[key]) for r in rows if r[key] is not None)
    for (s0, e0), (s1, e1) in zip(pts, pts[1:], strict=False):
        if e0 > target >= e1:
            a = math.log(e1 / e0) / math.log(s1 / s0)
            return s0 * (target / e0) ** (1.0 / a)
    if pts and pts[0][1] <= target:
        return float(pts[0][0])
    return None


def interp_cpu(S: float, rows: list[dict]) -> float:
    """CPU seconds of the law at S steps, linear in S between the measured ones."""
    pts = sorted((r["steps"], r["cpu_s"]) for r in rows)
    return float(np.interp(S, [p[0] for p in pts], [p[1] for p in pts]))


def slope(rows: list[dict], key: str = "err") -> float:
    """Least-squares slope of log err against log steps over the rows above 3 x floor."""
    pts = [(r["steps"], r[key]) for r in rows if r[key] and r[key] > 0]
    if len(pts) < 2:
        return math.nan
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def run_case(n: int, name: str, args) -> dict:
    """Every scheme's error and cost for one n and estimator."""
    p0 = density("sym_beta", beta=1.0, d=1)
    X = p0.sample(n, seed=args.seed).reshape(n, 1)
    t0, T = theory.t0_early_stop(n, 1.0, 1), theory.T_horizon(n, 1.0, 1)
    est = build(name, X, {"backend": "auto", "plan_m": 1000})
    # cost of one particle-sampler score call on 1e3 points (median of 5, t = sqrt(t0 T))
    q = np.random.default_rng(0).standard_normal((1000, 1))
    calls = []
    for _ in range(5):
        c = time.process_time()
        est.score(q, math.sqrt(t0 * T))
        calls.append(time.process_time() - c)
    call_s = float(np.median(calls))
    ref, ref_cpu = run_law(est, "heun", args.ref_steps, t0, T, args.resolution)
    half, _ = run_law(est, "heun", args.ref_steps // 2, t0, T, args.resolution)
    edges = ref.edges[0]
    kde = kde_cell_probs(ref, X, t0).ravel()
    p0m = law.cell_masses(ref, p0)
    tv_kde = 0.5 * float(np.abs(kde - p0m).sum())
    ref_err = 0.5 * float(np.abs(cdf_masses(half, edges) - ref.mass).sum()) / 3.0
    truth = kde if name == "empirical" else ref.mass
    out = {"n": n, "estimator": name, "t0": t0, "T": T, "seed": args.seed,
           "tv_kde": tv_kde, "target": args.target * tv_kde, "ref_steps": args.ref_steps,
           "ref_cpu_s": ref_cpu, "ref_err": ref_err,
           "ref_tv_to_kde": 0.5 * float(np.abs(ref.mass - kde).sum()),
           "score_call_s_per_1e3": call_s, "schemes": {}}
    laws: dict[int, np.ndarray] = {}
    for scheme in args.schemes:
        if scheme == "em_rich":
            continue
        rows = []
        steps = FIRST_ORDER_STEPS if SCHEMES[scheme][2] == 1 else SECOND_ORDER_STEPS
        for S in [s for s in steps if s <= args.max_steps]:
            try:
                L, cpu = run_law(est, scheme, S, t0, T, args.resolution)
            except (ValueError, law.GridTooLarge) as exc:
                rows.append({"steps": S, "err": None, "error": str(exc)})
                continue
            m = cdf_masses(L, edges)
            if scheme == "em":
                laws[S] = m
            row = {"steps": S, "err": 0.5 * float(np.abs(m - truth).sum()), "cpu_s": cpu,
                   "cells_max": int(max(L.cells)), "lost": L.lost}
            if name == "empirical":  # on the law's own cells: checks the remap
                row["err_own"] = law.tv_masses(L, kde_cell_probs(L, X, t0).ravel())
            rows.append(row)
            print(json.dumps({"n": n, "estimator": name, "scheme": scheme, **row}), flush=True)
        out["schemes"][scheme] = rows
    if "em_rich" in args.schemes and "em" in out["schemes"]:
        rows = []
        cpu = {r["steps"]: r["cpu_s"] for r in out["schemes"]["em"] if r["err"] is not None}
        for S in sorted(laws):
            if S // 2 not in laws:
                continue
            R = 2.0 * laws[S] - laws[S // 2]
            rows.append({"steps": S, "err": 0.5 * float(np.abs(R - truth).sum()),
                         "cpu_s": cpu[S] + cpu[S // 2],
                         "negative_mass": float(-R[R < 0].sum()),
                         "total_mass": float(R.sum())})
            print(json.dumps({"n": n, "estimator": name, "scheme": "em_rich", **rows[-1]}),
                  flush=True)
        out["schemes"]["em_rich"] = rows
    for scheme, rows in out["schemes"].items():
        ok = [r for r in rows if r.get("err") is not None]
        per_step = 1.5 if scheme == "em_rich" else SCHEMES[scheme][2]
        S = steps_to(out["target"], ok)
        out.setdefault("reach", {})[scheme] = {
            "steps": S, "evals": None if S is None else per_step * S,
            "law_cpu_s": None if S is None else interp_cpu(S, ok),
            "particle_cpu_s_per_1e3": None if S is None else per_step * S * call_s,
            "slope": slope([r for r in ok if r["err"] > 3 * max(ref_err, 1e-12)]),
            "c": None if not ok else ok[0]["err"] * ok[0]["steps"]}
    return out


def _fmt(v, spec: str = ".3g") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table(cases: list[dict]) -> str:
    """Markdown: steps, score evaluations and CPU seconds to reach the target, per scheme;
    then the error at each measured S."""
    lines = ["| n | estimator | TV(p̂_t0, p0) | target | scheme | slope | steps to target | "
             "score evals / sample | law CPU s | particle CPU s / 1e3 samples |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        for scheme, r in c["reach"].items():
            lines.append(f"| {c['n']:.0e} | {c['estimator']} | {c['tv_kde']:.4f} | "
                         f"{c['target']:.2e} | {scheme} | {_fmt(r['slope'], '.2f')} | "
                         f"{_fmt(r['steps'], '.0f')} | {_fmt(r['evals'], '.0f')} | "
                         f"{_fmt(r['law_cpu_s'], '.1f')} | "
                         f"{_fmt(r['particle_cpu_s_per_1e3'], '.2f')} |")
    lines += ["", "Discretisation error TV(law_S, limit) by steps S (reference: see header; "
              "em_rich: negative mass in brackets)", "",
              "| n | estimator | ref err | scheme | " + " | ".join(
                  f"S={s}" for s in sorted(set(FIRST_ORDER_STEPS + SECOND_ORDER_STEPS))) + " |",
              "|---|---|---|---|" + "---|" * len(set(FIRST_ORDER_STEPS + SECOND_ORDER_STEPS))]
    all_steps = sorted(set(FIRST_ORDER_STEPS + SECOND_ORDER_STEPS))
    for c in cases:
        for scheme, rows in c["schemes"].items():
            by = {r["steps"]: r for r in rows}
            cells = []
            for s in all_steps:
                r = by.get(s)
                if r is None or r.get("err") is None:
                    cells.append("—" if r is None else "fails")
                    continue
                txt = f"{r['err']:.2e}"
                if "negative_mass" in r:
                    txt += f" ({r['negative_mass']:.1e})"
                cells.append(txt)
            lines.append(f"| {c['n']:.0e} | {c['estimator']} | {c['ref_err']:.1e} | {scheme} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000])
    ap.add_argument("--estimators", nargs="+", default=["empirical", "truncated"])
    ap.add_argument("--schemes", nargs="+", default=[*SCHEMES, "em_rich"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--resolution", type=float, default=3.0, help="the job's law_resolution")
    ap.add_argument("--ref-steps", type=int, default=512)
    ap.add_argument("--max-steps", type=int, default=2048)
    ap.add_argument("--target", type=float, default=0.1,
                    help="target error as a fraction of TV(p̂_t0, p0)")
    ap.add_argument("--collect", nargs="+", default=None,
                    help="JSON files of earlier runs: write their cases as one table")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "integrators" + (f"_{args.tag}" if args.tag else "")
    if args.collect:
        runs = [json.loads(Path(f).read_text()) for f in args.collect]
        cases = sorted((c for r in runs for c in r["cases"]
                        if c["estimator"] in args.estimators),
                       key=lambda c: (c["estimator"], c["n"]))
        (out / f"{name}.md").write_text(
            table(cases) + "\nRuns: " + "; ".join(
                f"`{' '.join(r['argv'])}` ({r['seconds']:.0f} s, commit {r['commit']})"
                for r in runs) + "\n")
        print(table(cases))
        return
    started = time.perf_counter()
    cpu0 = time.process_time()
    cases = [run_case(n, est, args) for n in args.n for est in args.estimators]
    res = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "argv": sys.argv,
           "commit": commit(), "machine": machine(), "cases": cases,
           "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu0}
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{name}.md").write_text(table(cases))
    print(table(cases))


if __name__ == "__main__":
    main()
