"""Exact-law cost of the source tree as it is against an earlier commit's, in one run (d = 1).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/law_versions.py --ref f0912da --n 10000 100000
    python benchmarks/law_versions.py --ref 90d746e --density laplace --n 10000 100000 \\
        --estimators regularized --steps 128 --power 0 --tag band_laplace

The earlier commit is checked out into a temporary git worktree; each law runs in a fresh
subprocess with that tree's (or this one's) src/ first on the path, the two versions
alternating, so both see the same machine load. For --density (default sym_beta) with
--beta (default 1), d = 1, one training set, t0 = n^(-2 / (2 beta + 1)) and T = 1 / t0, a
Heun law at the job's step count for that n
(--steps at n = 1e3 grown as (n / 1e3)^--power, at least --steps): CPU seconds (median
over --repeats, each subprocess after one warm-up law that compiles the numba kernels),
the TV between the two versions' laws on the union of their cells (uniform within a cell:
where the cells differ this includes the grid's own error), whether the two laws are the
same bits (cells and masses), each law's tv_law and l2_law to p0 and its cell count.

Writes <out>/law_versions[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from provenance import commit, machine

from scorerate.metrics.law import GridLaw
from scorerate.metrics.law_distance import tv_between
from scorerate.sampler import steps_for

_ONE_LAW = r"""
import json, sys, time
import numpy as np
from scorerate import density
from scorerate.estimators import build
from scorerate.metrics import law
n, est_name, steps, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
name, beta = sys.argv[5], float(sys.argv[6])
p0 = density(name, beta=beta, d=1)
law.output_law(build("truncated", p0.sample(1000, seed=0), {}), d=1, t0=0.01, T=10.0,
               steps=4, integrator="heun", resolution=2.0)  # compile
est = build(est_name, p0.sample(n, seed=1), {})
t = time.process_time()
t0 = n ** (-2.0 / (2.0 * beta + 1.0))
L = law.output_law(est, d=1, t0=t0, T=1.0 / t0, steps=steps,
                   integrator="heun", resolution=2.0)
cpu = time.process_time() - t
np.savez(out, edges=L.edges[0], mass=L.mass)
print(json.dumps({"cpu_s": cpu, "tv_law": law.tv_law(L, p0), "l2_law": law.l2_law(L, p0),
                  "cells": int(L.mass.size)}))
"""


def _grid_law(path: Path) -> GridLaw:
    """The 1-D law a subprocess saved (its cells and masses)."""
    saved = np.load(path)
    return GridLaw(edges=(saved["edges"],), mass=saved["mass"], t=math.nan)


def _run(src: Path, n: int, est: str, steps: int, out: Path, name: str, beta: float) -> dict:
    """CPU seconds, tv_law, l2_law and cells of one law computed by the tree `src`."""
    env = dict(os.environ, PYTHONPATH=str(src))
    res = subprocess.run([sys.executable, "-c", _ONE_LAW, str(n), est, str(steps), str(out),
                          name, repr(beta)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="the earlier commit")
    ap.add_argument("--density", default="sym_beta")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--power", type=float, default=0.33)
    ap.add_argument("--estimators", nargs="+", default=["truncated", "regularized", "empirical"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    started = commit()  # the code this process runs (HEAD may move while it does)
    repo = Path(__file__).resolve().parent.parent
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.ref], cwd=repo,
                       check=True, capture_output=True)
        try:
            srcs = {"now": repo / "src", "ref": tree / "src"}
            for n in args.n:
                steps = steps_for(n, args.steps, args.power, 1000, args.steps)
                for est in args.estimators:
                    got: dict[str, list[dict]] = {"now": [], "ref": []}
                    for r in range(args.repeats):
                        for which in (("now", "ref") if r % 2 == 0 else ("ref", "now")):
                            got[which].append(_run(srcs[which], n, est, steps,
                                                   Path(tmp) / f"{which}.npz",
                                                   args.density, args.beta))
                    laws = {w: _grid_law(Path(tmp) / f"{w}.npz") for w in srcs}
                    same = (np.array_equal(laws["now"].edges[0], laws["ref"].edges[0])
                            and np.array_equal(laws["now"].mass, laws["ref"].mass))
                    row = {"n": n, "estimator": est, "steps": steps,
                           "tv_between": tv_between(laws["now"], laws["ref"]),
                           "same_bits": bool(same)}
                    for w in srcs:
                        row[f"cpu_s_{w}"] = statistics.median(g["cpu_s"] for g in got[w])
                        for key in ("tv_law", "l2_law", "cells"):
                            row[f"{key}_{w}"] = got[w][-1][key]
                    row["speedup"] = row["cpu_s_ref"] / row["cpu_s_now"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                           capture_output=True)
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "commit": started,
            "ref": args.ref, "machine": machine(), "args": vars(args)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "law_versions" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"| n | estimator | Heun steps | CPU s now | CPU s at {args.ref} | speed-up "
             "| TV between the laws | same bits | tv_law now - then | cells now / then |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']:g} | {r['estimator']} | {r['steps']} | {r['cpu_s_now']:.1f} | "
              f"{r['cpu_s_ref']:.1f} | {r['speedup']:.2f} | {r['tv_between']:.1e} | "
              f"{'yes' if r['same_bits'] else 'no'} | "
              f"{r['tv_law_now'] - r['tv_law_ref']:.1e} | {r['cells_now']} / "
              f"{r['cells_ref']} |" for r in rows]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
