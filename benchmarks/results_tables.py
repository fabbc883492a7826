"""docs/results.md's tables, printed from the published parts' own CSVs (nothing hand-made).

    python benchmarks/results_tables.py docs/results/d1_sym_beta_1 docs/results/d1_sym_beta_2

Each argument is a part's directory holding the pipeline's rates.csv and jobs.csv. Prints,
in Markdown: (1) the slopes in n of the output law (tv_law, l2_law, per estimator) and of
the ideal output p̂_{t0} (tv_kde, l2_kde), with interval, exponent, finite-n prediction,
both verdicts, the largest numerical ratio over the fit's n and the no-verdict reason;
(2) per cell and n, the numerical budget: steps, the seed mean of tv_law and its standard
error (SE), the measured step error (the larger check seed) over that SE for TV and L2 of
each estimator (the gate wants <= 0.5), and the sampler's mean distance to p̂_{t0}
(tv_sampler) beside p̂_{t0}'s own TV to p0 (tv_kde); (3) per cell and n, the output
law's mean TV and L2 to p0 over p̂_{t0}'s; (4) where the rates have them, `truncated`'s
score MSE and its zero-region part in n at each t, beside the polylog bound and the zero
part's prediction. The budget ratios come from
rates.numerical_budget, the verdicts' own function.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from scorerate.study.rates import numerical_budget

ESTIMATORS = ["truncated", "regularized", "empirical"]
CELL = ["density", "beta", "d"]


def _g(x: float) -> str:
    return f"{x:.3g}" if np.isfinite(x) else "—"


def slope_rows(rates: pd.DataFrame) -> list[str]:
    """One Markdown row per law or p̂_{t0} slope in n."""
    keep = rates[(rates.axis == "n") & rates.metric.isin(["tv_law", "l2_law", "tv_kde",
                                                           "l2_kde"])]
    order = {m: i for i, m in enumerate(["tv_law", "l2_law", "tv_kde", "l2_kde"])}
    keep = keep.assign(_m=keep.metric.map(order),
                       _e=keep.estimator.map(lambda e: (ESTIMATORS + ["ideal_kde"]).index(e)))
    rows = []
    for _, r in keep.sort_values(CELL + ["_m", "_e"]).iterrows():
        est = "p̂_t0" if r.estimator == "ideal_kde" else r.estimator
        reason = r.reason if isinstance(r.reason, str) else ""
        rows.append(f"| {r.density} | {r.beta:g} | {r.d} | {r.metric} | {est} | "
                    f"{r.slope:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.theory:.3f} | "
                    f"{_g(r.prediction_slope)} | {r.verdict_theory} | {r.verdict_prediction} | "
                    f"{_g(r.numerical_ratio)} | {reason} |")
    return rows


def score_rows(rates: pd.DataFrame) -> list[str]:
    """Per cell and t: truncated's score MSE and its zero-region part, slope in n with
    interval, the polylog bound's slope, the zero part's predicted slope and the verdicts."""
    keep = rates[(rates.axis == "n") & (rates.estimator == "truncated")
                 & rates.metric.isin(["score_mse", "score_mse_zero"])]
    rows = []
    for _, r in keep.sort_values(CELL + ["t", "metric"]).iterrows():
        reason = r.reason if isinstance(r.reason, str) else ""
        vp = r.verdict_prediction if isinstance(r.verdict_prediction, str) else ""
        rows.append(f"| {r.density} | {r.beta:g} | {r.d} | {r.t:g} | {r.metric} | "
                    f"{r.slope:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.theory_polylog:.3f} | "
                    f"{_g(r.prediction_slope)} | {r.verdict_theory} | {vp} | {reason} |")
    return rows


def _per_n_seed(jobs: pd.DataFrame, column: str) -> np.ndarray:
    return jobs.pivot(index="n", columns="seed", values=column).to_numpy(dtype=float)


def budget_rows(jobs: pd.DataFrame) -> list[str]:
    """Per n of one cell: steps, truncated's tv_law and SE, each estimator's check / SE
    for TV and L2, and the sampler's distance to p̂_t0 beside p̂_t0's TV to p0."""
    ratios = {}
    for est in ESTIMATORS:
        e = jobs[jobs.estimator == est]
        for metric in ("tv_law", "l2_law"):
            err, se = numerical_budget(_per_n_seed(e, metric), _per_n_seed(e, f"{metric}_steps"),
                                       _per_n_seed(e, f"{metric}_steps_check"))
            ratios[est, metric] = err / se
    tr = jobs[jobs.estimator == "truncated"]
    law = _per_n_seed(tr, "tv_law")
    _, se = numerical_budget(law, _per_n_seed(tr, "tv_law_steps"))
    steps = tr.groupby("n").n_steps.first()
    kde = tr.groupby("n").tv_kde.mean()
    sampler = jobs.groupby(["n", "estimator"]).tv_sampler.mean().unstack()
    rows = []
    for i, n in enumerate(steps.index):
        tv = " / ".join(f"{ratios[e, 'tv_law'][i]:.2f}" for e in ESTIMATORS)
        l2 = " / ".join(f"{ratios[e, 'l2_law'][i]:.2f}" for e in ESTIMATORS)
        samp = " / ".join(f"{sampler.loc[n, e]:.1e}" for e in ESTIMATORS)
        label = f"{n:.0e}".replace("e+0", "e")
        rows.append(f"| {label} | {int(steps[n])} | {np.nanmean(law[i]):.4f} | {se[i]:.1e} | "
                    f"{tv} | {l2} | {kde[n]:.4f} | {samp} |")
    return rows


def ratio_rows(jobs: pd.DataFrame) -> list[str]:
    """Per n of one cell: the output law's seed-mean TV and L2 over p̂_t0's, per estimator
    (1 where the sampler adds nothing to p̂_t0's error to p0)."""
    mean = jobs.groupby(["n", "estimator"])[["tv_law", "l2_law", "tv_kde", "l2_kde"]].mean()
    rows = []
    for n in sorted(jobs.n.unique()):
        tv = " / ".join(f"{mean.loc[(n, e), 'tv_law'] / mean.loc[(n, e), 'tv_kde']:.3f}"
                        for e in ESTIMATORS)
        l2 = " / ".join(f"{mean.loc[(n, e), 'l2_law'] / mean.loc[(n, e), 'l2_kde']:.3f}"
                        for e in ESTIMATORS)
        label = f"{n:.0e}".replace("e+0", "e")
        rows.append(f"| {label} | {tv} | {l2} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path)
    args = ap.parse_args()
    rates = pd.concat([pd.read_csv(p / "rates.csv") for p in args.parts])
    print("| density | β | d | metric | estimator | slope [95% CI] | exponent | prediction "
          "| verdict | prediction verdict | numerical / SE | reason |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(slope_rows(rates)))
    zero = score_rows(rates)
    if zero:
        print("\n`truncated`'s score MSE and its zero-region part in n at each t")
        print("\n| density | β | d | t | metric | slope [95% CI] | polylog bound | prediction "
              "| verdict | prediction verdict | reason |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(zero))
    for part in args.parts:
        jobs = pd.read_csv(part / "jobs.csv")
        for cell, cj in jobs.groupby(CELL):
            print(f"\n{cell[0]}, beta {cell[1]:g}, d = {cell[2]} ({part.name}): check / SE "
                  "as truncated / regularized / empirical")
            print("\n| n | steps | tv_law (truncated) | SE | TV check / SE | L2 check / SE "
                  "| tv_kde | tv_sampler |")
            print("|---|---|---|---|---|---|---|---|")
            print("\n".join(budget_rows(cj)))
            print(f"\n{cell[0]}, beta {cell[1]:g}, d = {cell[2]}: output law over p̂_t0, "
                  "as truncated / regularized / empirical")
            print("\n| n | tv_law / tv_kde | l2_law / l2_kde |")
            print("|---|---|---|")
            print("\n".join(ratio_rows(cj)))


if __name__ == "__main__":
    main()
