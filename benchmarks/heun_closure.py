"""The Gaussian closure of the Heun law against the strata law in d = 1 (issue 17).

The closure (metrics/heun_closure.py) is the Heun law's only route in d = 2, 3; in d = 1 both
exist, so their distance measures what the closure changes. Printed per (n, estimator, steps):
the binned TV (bins sqrt(t0) / 4) between the two laws, and each law's change from S / 2 to S
steps (its own step error, to compare with). JSON to --out.

    python benchmarks/heun_closure.py --n 1000 100000 --steps 32 64 128 256 512
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from scorerate import density, theory
from scorerate.estimators import build
from scorerate.metrics import law


def binned(L: law.GridLaw, b: np.ndarray) -> np.ndarray:
    """The law's masses on the bins b (its cdf is linear within cells)."""
    return np.diff(np.interp(b, L.edges[0], np.concatenate([[0.0], np.cumsum(L.mass)])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--steps", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--estimators", nargs="+", default=["truncated", "regularized"])
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--out", default="benchmarks/results/heun_closure.json")
    a = ap.parse_args()
    p0 = density("sym_beta", beta=a.beta, d=1)
    rows = []
    for n in a.n:
        X = p0.sample(n, seed=1)
        t0, T = theory.t0_early_stop(n, a.beta, 1), theory.T_horizon(n, a.beta, 1)
        b = np.arange(-3.0, 3.0, math.sqrt(t0) / 4)
        for name in a.estimators:
            est = build(name, X)
            prev = None
            for S in a.steps:
                kw = dict(d=1, t0=t0, T=T, steps=S, integrator="heun", resolution=3.0)
                ms = binned(law.output_law(est, **kw), b)
                mg = binned(law.output_law(est, heun_law="gaussian", **kw), b)
                row = {"n": n, "estimator": name, "steps": S,
                       "tv_closure_strata": 0.5 * float(np.abs(ms - mg).sum())}
                if prev is not None:
                    row["tv_strata_half"] = 0.5 * float(np.abs(ms - prev[0]).sum())
                    row["tv_closure_half"] = 0.5 * float(np.abs(mg - prev[1]).sum())
                prev = (ms, mg)
                rows.append(row)
                print(json.dumps(row), flush=True)
    with open(a.out, "w") as f:
        json.dump({"beta": a.beta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
