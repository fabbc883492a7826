"""The cost model against a finished part's measured job times (issue 17).

    python benchmarks/cost_model_check.py paper/d1_sym_beta_0.5 --tag d1_sym_beta_0.5

Reads a study directory's per-batch benchmark files (results/benchmarks/batches/**.tsv,
Snakemake's `benchmark:` of each batch: wall s and CPU s of the whole batch process) and
its resolved config (results/study_config.yaml), and gives per (density, beta, d, n,
step check) the measured wall and CPU per job beside `scorerate.config.sizing`'s estimate
of that job, as the workflow computes it. Nothing runs: it only reads. A ratio below 1 is
a job a scheduler's request (2 x the estimate) may not cover if it is below 0.5.

Writes <out>/cost_model_check[_tag].json and .md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from provenance import commit, write_results

from scorerate.config.file import load_configs
from scorerate.config.sizing import study_job_estimate

BATCH = re.compile(r"(?P<density>[^/]+)/beta=(?P<beta>[^/]+)/d=(?P<d>\d+)/n=(?P<n>\d+)/"
                   r"seeds=(?P<first>\d+)(?:-(?P<last>\d+))?(?P<check>-check)?\.tsv$")


def batch_rows(study: Path) -> list[dict]:
    """One row per batch file: its cell, jobs, whether it checks the steps, wall and CPU."""
    root = study / "results" / "benchmarks" / "batches"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        m = BATCH.search(path.relative_to(root).as_posix())
        if m is None:
            continue
        text = path.read_text().splitlines()
        values = dict(zip(text[0].split("\t"), text[-1].split("\t"), strict=True))
        first = int(m["first"])
        jobs = int(m["last"]) - first + 1 if m["last"] else 1
        rows.append({"density": m["density"], "beta": float(m["beta"]), "d": int(m["d"]),
                     "n": int(m["n"]), "check": bool(m["check"]), "jobs": jobs,
                     "wall_s": float(values["s"]), "cpu_s": float(values["cpu_time"])})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a study's --directory (holds results/)")
    ap.add_argument("--configfile", nargs="+", type=Path, default=None,
                    help="the study's config files (default: its results/study_config.yaml, "
                         "written when the study aggregates)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    paths = args.configfile or [args.study / "results" / "study_config.yaml"]
    for path in paths:
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the study to its end, or name its "
                             "config files with --configfile")
    cfg = load_configs(*paths)
    started = commit()
    cells: dict[tuple, dict] = {}
    for r in batch_rows(args.study):
        key = (r["density"], r["beta"], r["d"], r["n"], r["check"])
        c = cells.setdefault(key, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0})
        for k in ("jobs", "wall_s", "cpu_s"):
            c[k] += r[k]
    rows = []
    lines = ["| density | beta | d | n | check | jobs | wall / job (s) | CPU / job (s) "
             "| estimate (s) | estimate / wall |", "|---" * 10 + "|"]
    for (density, beta, d, n, check), c in sorted(cells.items()):
        est = study_job_estimate(cfg, n, d, check, density=density, beta=beta).wall_s
        wall, cpu = c["wall_s"] / c["jobs"], c["cpu_s"] / c["jobs"]
        rows.append({"density": density, "beta": beta, "d": d, "n": n, "check": check,
                     "jobs": c["jobs"], "wall_per_job_s": wall, "cpu_per_job_s": cpu,
                     "estimate_s": est, "ratio": est / wall})
        lines.append(f"| {density} | {beta:g} | {d} | {n} | {'yes' if check else 'no'} | "
                     f"{c['jobs']} | {wall:.1f} | {cpu:.1f} | {est:.1f} | {est / wall:.2f} |")
    if not rows:
        raise SystemExit(f"no batch benchmark files under {args.study}/results/benchmarks/batches")
    write_results(args.out, "cost_model_check", args.tag, rows, lines, started,
                  {"study": str(args.study)})


if __name__ == "__main__":
    main()
