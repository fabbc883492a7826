"""The per-n numerical-budget table of a study's jobs.csv, through the gate's own helper.

    python benchmarks/budget_table.py benchmarks/results/pilot_floor_sym_beta1_d1_jobs.csv
    python benchmarks/budget_table.py JOBS_CSV --estimator regularized

Per n: the step count, the seed mean of tv_law and the standard error of that mean, the
three-law rule's seed mean (tv_law_steps), the larger step-check measurement
(tv_law_steps_check), and the gate's ratios rule / SE and check / SE, with l2_law's
check / SE last. Both ratios come from rates.numerical_budget, the function the verdicts
are gated on, so this table and the report cannot disagree.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from scorerate.study.rates import numerical_budget


def per_n_seed(jobs: pd.DataFrame, column: str) -> np.ndarray:
    """(n, seed) array of one jobs.csv column (NaN where a job has no value)."""
    return jobs.pivot(index="n", columns="seed", values=column).to_numpy(dtype=float)


def budget_rows(jobs: pd.DataFrame) -> list[str]:
    """Markdown rows of the table for one estimator's jobs."""
    law, l2 = per_n_seed(jobs, "tv_law"), per_n_seed(jobs, "l2_law")
    rule, se = numerical_budget(law, per_n_seed(jobs, "tv_law_steps"))
    check, _ = numerical_budget(law, per_n_seed(jobs, "tv_law_steps"),
                                per_n_seed(jobs, "tv_law_steps_check"))
    l2_check, l2_se = numerical_budget(l2, per_n_seed(jobs, "l2_law_steps"),
                                       per_n_seed(jobs, "l2_law_steps_check"))
    steps = jobs.groupby("n").n_steps.first()
    mean = np.nanmean(law, axis=1)
    return [f"| {n:.0e} | {int(steps[n])} | {mean[i]:.3g} | {se[i]:.1e} | {rule[i]:.1e} | "
            f"{check[i]:.1e} | {rule[i] / se[i]:.2f} | {check[i] / se[i]:.2f} | "
            f"{l2_check[i] / l2_se[i]:.2f} |"
            for i, n in enumerate(steps.index)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs_csv")
    parser.add_argument("--estimator", default="truncated")
    args = parser.parse_args()
    jobs = pd.read_csv(args.jobs_csv)
    jobs = jobs[jobs.estimator == args.estimator]
    print("| n | steps | tv_law | SE | tv_law_steps | tv_law_steps_check | rule / SE | "
          "check / SE | l2 check / SE |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(budget_rows(jobs)))


if __name__ == "__main__":
    main()
