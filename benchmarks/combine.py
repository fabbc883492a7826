"""The study's outer join: `aggregate.combine_runs` against xarray's own `combine_by_coords`.

Issue 15 asked whether the hand-written join in combine_runs could be xarray's
`combine_by_coords` (join="outer"). This times both on the same synthetic runs (the
workflow tests' power-law runs, 2 estimators, 9 t) at 100, 300 and 1000 runs, checks that
they give the same numbers, and writes JSON and a Markdown table:

    python benchmarks/combine.py                 # 100, 300, 1000 runs, 3 repeats
    python benchmarks/combine.py --runs 100 --repeats 1

Only the join is timed (no predictions, no store reading or writing).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "workflow"))
from synthetic import make_run  # noqa: E402

from scorerate.config.file import JOB_DIMS  # noqa: E402
from scorerate.study.aggregate import METRICS, combine_runs  # noqa: E402


def _runs(count: int) -> list[xr.Dataset]:
    """`count` synthetic jobs over 2 densities x 2 d x n x seeds (a dense grid)."""
    ns = [100, 300, 1000, 3000, 10000]
    per = len(ns) * 2 * 2
    seeds = -(-count // per)
    out = [make_run(dens, 1.0, d, n, s) for dens in ("sym_beta", "laplace") for d in (1, 2)
           for n in ns for s in range(seeds)]
    return out[:count]


def _by_xarray(runs: list[xr.Dataset]) -> xr.Dataset:
    """The same join by xarray: each run's metrics get the job dims, then one outer combine."""
    pieces = []
    for ds in runs:
        key = {k: [ds.attrs[k]] for k in JOB_DIMS}
        pieces.append(ds[list(METRICS)].drop_vars("dim", errors="ignore").expand_dims(key))
    return xr.combine_by_coords(pieces, join="outer", combine_attrs="drop",
                                data_vars="all", coords="different", compat="no_conflicts")


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    rows = []
    for count in args.runs:
        runs = _runs(count)
        t_ours, ours = _time(lambda r=runs: combine_runs(r, predictions=False), args.repeats)
        t_xr, theirs = _time(lambda r=runs: _by_xarray(r), args.repeats)
        same = all(np.array_equal(
            ours[m].values,
            theirs[m].reindex({k: ours[k].values for k in ours[m].dims})
            .transpose(*ours[m].dims).values, equal_nan=True)
            for m in ("tv", "score_mse", "tv_kde"))
        rows.append({"runs": count, "combine_runs_s": t_ours, "combine_by_coords_s": t_xr,
                     "ratio": t_xr / t_ours, "same_numbers": bool(same)})
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "python": sys.version,
            "xarray": xr.__version__, "numpy": np.__version__, "repeats": args.repeats}
    (out / "combine.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    table = ["| runs | combine_runs s | xr.combine_by_coords s | ratio | same numbers |",
             "|---|---|---|---|---|"]
    table += [f"| {r['runs']} | {r['combine_runs_s']:.3g} | {r['combine_by_coords_s']:.3g} | "
              f"{r['ratio']:.1f} | {r['same_numbers']} |" for r in rows]
    (out / "combine.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
