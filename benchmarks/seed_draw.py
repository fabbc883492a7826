"""Is a published n's p̂_t0 error an unlucky draw of its seeds, or a wrong prediction?

    python benchmarks/seed_draw.py docs/results/d2_sym_beta_2 --n 100 --seeds 400

For one n of a published part (its config.yaml and jobs.csv), recomputes `l2_kde` (closed
form per training set, no Monte Carlo) over the study's own keyed seeds 0..K-1 (the first
ones must give the published values bit for bit), and compares with the exact
finite-n prediction E||p̂_t0 - p0||^2 (`study.prediction.expected_l2_sq`):
- the K seeds' mean of L2^2 against the prediction (is the prediction right?);
- the published seeds' mean L2 in units of the true SE (sd over K seeds / sqrt(#published)),
  and their own sample sd against the true one (is the published draw unusual?);
- the fraction of resampled #published-seed means at least as far out.
Writes <out>/seed_draw_<part>_n<n>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import commit, machine

from scorerate.config.file import load_config, normalise_config, study_job_spec
from scorerate.densities import density
from scorerate.job.metric_table import draw_train
from scorerate.metrics.samples import l2_kde
from scorerate.study.prediction import expected_l2_sq


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", type=Path, help="docs/results/<part> (config.yaml, jobs.csv)")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seeds", type=int, default=400, help="study-keyed seeds 0..K-1")
    ap.add_argument("--resamples", type=int, default=20000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)

    cfg = normalise_config(load_config(args.part / "config.yaml"))
    rows = pd.read_csv(args.part / "jobs.csv")
    rows = rows[rows["n"] == args.n].drop_duplicates("seed").sort_values("seed")
    name, beta, d = rows["density"].iloc[0], float(rows["beta"].iloc[0]), int(rows["d"].iloc[0])
    p0 = density(name, beta=beta, d=d)
    t0 = None
    start = time.perf_counter()
    vals = []
    for seed in range(args.seeds):
        spec = study_job_spec(cfg, density=name, beta=beta, d=d, n=args.n, seed=seed)
        t0 = spec.t0
        vals.append(l2_kde(draw_train(spec), t0, p0))
    vals = np.asarray(vals)
    published = rows.set_index("seed")["l2_kde"]
    same = bool(all(vals[s] == published[s] for s in published.index if s < args.seeds))
    k = len(published)
    true_sd = float(vals.std(ddof=1))
    pub = published.to_numpy()
    rng = np.random.default_rng(0)
    means = rng.choice(vals, size=(args.resamples, k)).mean(axis=1)
    dev = abs(pub.mean() - vals.mean())
    pred = expected_l2_sq(p0, t0, args.n)
    res = {
        "part": args.part.name, "n": args.n, "t0": t0, "seeds": args.seeds,
        "published_seeds": k, "published_bits_reproduced": same,
        "pred_E_l2_sq": pred["total"], "pred_bias_share": pred["bias_share"],
        "seeds_mean_l2_sq": float(np.mean(vals ** 2)),
        "seeds_mean_l2_sq_se": float(np.std(vals ** 2, ddof=1) / np.sqrt(len(vals))),
        "seeds_mean_l2": float(vals.mean()), "seeds_sd_l2": true_sd,
        "published_mean_l2": float(pub.mean()), "published_sd_l2": float(pub.std(ddof=1)),
        "published_z_true_se": float((pub.mean() - vals.mean()) / (true_sd / np.sqrt(k))),
        "published_z_own_se": float((pub.mean() - vals.mean()) / (pub.std(ddof=1) / np.sqrt(k))),
        "resampled_fraction_as_far": float(np.mean(abs(means - vals.mean()) >= dev)),
        "seconds": time.perf_counter() - start, "commit": commit(), "machine": machine(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"seed_draw_{args.part.name}_n{args.n}.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
