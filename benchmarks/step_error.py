"""How well a job's step-error estimates track the error they estimate, on the exact law.

The estimates: tv_law_steps, l2_law_steps (three laws) and the step check (law at 2S).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/step_error.py --n 1000 10000 --tag heun_small
    python benchmarks/step_error.py --collect benchmarks/results/step_error_*.json --tag all

For sym_beta (beta --beta, d --d), the job of seed --seed at each n of the study --config
(config.study_job_spec: its training set, t0, T, integrator and law_resolution, unless
--integrator or --resolution override them), each estimator: tv_law
and l2_law (the law's distance to p0, as the job stores them) at S = 2^k steps for S in
[--s-min, --s-max], and at --ref-steps steps. The error at S is |v(S) - v(ref)|, itself
off by the reference's own error (for an order-p scheme about (S / ref)^p of it). Every
rule of metrics.step_error is evaluated at each S from v(S), v(S/2), v(S/4) and compared
with it: ratio = estimate / error (below 1: the estimate hides error from the gate).
Column check_2s: the step-check seeds' measurement 2 |v(S) - v(2S)|
(metrics.step_error.step_error_check), where 2S was measured short of the reference.

Writes <out>/step_error[_tag].json (raw values) and .md (ratios per rule).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

from provenance import commit, machine

from scorerate.config.file import load_configs, study_job_spec
from scorerate.densities import density
from scorerate.job.graph import _build_estimator
from scorerate.job.metric_table import l2_law, law_cells, law_of, tv_law
from scorerate.metrics.step_error import step_error, step_error_check


def _aitken(cap: float):
    """|d1| / (r - 1), r = d2 / d1 the observed ratio of successive changes (2^p for an
    order-p sequence) clipped to [2, cap]; the first-order rule where d1, d2 differ in sign."""
    def rule(v_s: float, v_half: float, v_quarter: float) -> float:
        d1, d2 = v_s - v_half, v_half - v_quarter
        if d1 == 0 or d1 * d2 < 0:
            return step_error(v_s, v_half, v_quarter)
        r = min(max(d2 / d1, 2.0), cap)
        return abs(d1) / (r - 1.0)
    return rule


#: candidate rules (v_S, v_S/2, v_S/4) -> estimate of |v_S - v_inf|; "job" is the one
#: tv_law_steps / l2_law_steps use (metrics.step_error)
RULES = {
    "job": step_error,
    "last_change": lambda a, b, c: abs(a - b),
    "order2": lambda a, b, c: max(abs(a - b) / 3.0, abs(b - c) / 12.0),
    "aitken_p1.5": _aitken(2.0 ** 1.5),
    "aitken_p2": _aitken(4.0),
}


ROOT = Path(__file__).resolve().parents[1]
#: the study whose jobs are measured unless --config says otherwise: the paper study's
#: shared settings over the Snakefile's config.yaml, as the workflow merges them
PAPER = [ROOT / "config.yaml", ROOT / "workflow" / "studies" / "paper.yaml"]


def measure(n: int, est_name: str, args) -> dict:
    overrides = {k: v for k, v in (("law_resolution", args.resolution),
                                   ("integrator", args.integrator)) if v is not None}
    spec = study_job_spec(load_configs(*args.config), density="sym_beta", beta=args.beta,
                          d=args.d, n=n, seed=args.seed, estimators=(est_name,), **overrides)
    p0 = density("sym_beta", beta=args.beta, d=args.d)
    est = _build_estimator(spec, est_name)
    steps = args.steps or [2 ** k for k in range(int(math.log2(args.s_min)),
                                                 int(math.log2(args.s_max)) + 1)]
    out = {"n": n, "d": args.d, "estimator": est_name, "integrator": spec.integrator,
           "law_resolution": spec.law_resolution, "study_steps": spec.n_steps, "steps": [],
           "tv_law": [], "l2_law": [], "cpu_s": []}
    for s in [*steps, args.ref_steps]:
        t = time.process_time()
        cells = law_cells(law_of(est, spec, s), p0, spec)
        out["steps"].append(s)
        out["tv_law"].append(tv_law(cells, p0, spec))
        out["l2_law"].append(l2_law(cells, p0, spec))
        out["cpu_s"].append(time.process_time() - t)
        print(json.dumps({k: (v[-1] if isinstance(v, list) else v) for k, v in out.items()}),
              flush=True)
    return out


def ratios(row: dict) -> list[dict]:
    """Per metric and S (with S/2, S/4 measured): each rule's estimate over the error."""
    steps, ref = row["steps"][:-1], row["steps"][-1]
    res = []
    for metric in ("tv_law", "l2_law"):
        v = dict(zip(row["steps"], row[metric], strict=True))
        for s in steps:
            if s == ref:
                continue
            err = abs(v[s] - v[ref])
            item = {"n": row["n"], "estimator": row["estimator"], "metric": metric,
                    "steps": s, "error": err}
            for name in RULES:  # the three-law rules need S/2 and S/4 (NaN without them)
                if s // 2 in v and s // 4 in v:
                    est = RULES[name](v[s], v[s // 2], v[s // 4])
                    item[name] = est / err if err > 0 else math.inf
                else:
                    item[name] = math.nan
            # the step-check seeds' measurement, where a law at 2S (short of the reference)
            # was computed
            double = 2 * s in v and 2 * s != ref
            item["check_2s"] = (step_error_check(v[s], v[2 * s]) / err if double and err > 0
                                else math.nan)
            res.append(item)
    return res


def write(rows: list[dict], meta: dict, out: Path, tag: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = "step_error" + (f"_{tag}" if tag else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1,
                                                 default=str))  # --config: paths
    names = [*RULES, "check_2s"]
    lines = ["| n | estimator | metric | S | error | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    for r in (x for row in rows for x in ratios(row)):
        lines.append(f"| {r['n']:g} | {r['estimator']} | {r['metric']} | {r['steps']} | "
                     f"{r['error']:.2e} | " + " | ".join(f"{r[k]:.2f}" for k in names) + " |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000])
    ap.add_argument("--estimators", nargs="+", default=["truncated", "regularized", "empirical"])
    ap.add_argument("--config", nargs="+", type=Path, default=PAPER,
                    help="the study config files, merged in order as Snakemake merges "
                         "config.yaml and --configfile (default: config.yaml, paper.yaml); "
                         "the jobs' settings come from there")
    ap.add_argument("--integrator", default=None, help="override the study's integrator")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--d", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=float, default=None,
                    help="override the study's law_resolution")
    ap.add_argument("--s-min", type=int, default=8)
    ap.add_argument("--s-max", type=int, default=512)
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="these step counts instead of the powers of 2 in [--s-min, --s-max] "
                         "(e.g. a study's own counts, to read its step check against a reference)")
    ap.add_argument("--ref-steps", type=int, default=2048)
    ap.add_argument("--collect", nargs="+", default=None)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    if args.collect:
        rows = [r for f in args.collect for r in json.loads(Path(f).read_text())["rows"]]
        write(rows, {"collected": args.collect}, Path(args.out), args.tag)
        return
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "commit": commit(),
            "machine": machine(), "args": vars(args)}
    rows = [measure(n, e, args) for n in args.n for e in args.estimators]
    write(rows, meta, Path(args.out), args.tag)


if __name__ == "__main__":
    main()
