"""Compare a rerun's jobs.csv with a published one, bit for bit (docs/results.md's claim).

    python benchmarks/compare_jobs.py docs/results/d1_sym_beta_1/jobs.csv \
        RERUN/results/report/jobs.csv

Rows are matched on (density, beta, d, n, seed, estimator); every job of the rerun must be
a published job, and every number of it must carry the same 64 bits (NaN matches NaN).
The CSVs hold 17 significant digits, which round-trip a float64 exactly, so equal bits
here are equal bits in the stores. Prints one line per differing column and exits 1 on any
difference (or if no row is shared).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEY = ["density", "beta", "d", "n", "seed", "estimator"]


def _bits(values: pd.Series) -> np.ndarray:
    """The float64 bit patterns of a column, every NaN mapped to one pattern."""
    x = values.to_numpy(dtype=float).copy()
    x[np.isnan(x)] = np.nan
    return x.view(np.int64)


def compare(published: pd.DataFrame, rerun: pd.DataFrame) -> tuple[int, list[str]]:
    """(rows compared, one message per differing column or missing job)."""
    for name, frame in (("published", published), ("rerun", rerun)):
        if frame.duplicated(KEY).any():
            first = frame.loc[frame.duplicated(KEY), KEY].iloc[0].tolist()
            raise ValueError(f"the {name} CSV repeats a job: {first}")
    joined = rerun.merge(published, on=KEY, how="left", suffixes=("", "_pub"), indicator=True)
    problems = [f"job not in the published CSV: {row}" for row in
                joined.loc[joined["_merge"] == "left_only", KEY].to_dict("records")]
    joined = joined[joined["_merge"] == "both"]
    for column in [c for c in rerun.columns if c not in KEY]:
        if f"{column}_pub" not in joined:
            problems.append(f"{column}: not a published column")
            continue
        differ = _bits(joined[column]) != _bits(joined[f"{column}_pub"])
        if differ.any():
            ours, theirs = (joined[c].to_numpy(float) for c in (column, f"{column}_pub"))
            gap = np.nanmax(np.abs(ours - theirs))
            problems.append(f"{column}: {int(differ.sum())} of {len(joined)} jobs differ "
                            f"(largest difference {gap:.3g})")
    return len(joined), problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("published", type=Path)
    ap.add_argument("rerun", type=Path)
    args = ap.parse_args(argv)
    rows, problems = compare(pd.read_csv(args.published), pd.read_csv(args.rerun))
    for line in problems:
        print(line)
    if rows == 0:
        print("no job of the rerun is in the published CSV")
        return 1
    print(f"{rows} rerun job rows compared: " + ("bit-identical" if not problems else "DIFFER"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
