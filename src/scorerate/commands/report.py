"""`scorerate report --study study.zarr --runs-dir runs --out report/`: rates, figures, HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--study", required=True,
                        help="study store written by `scorerate aggregate`")
    parser.add_argument("--runs-dir", required=True,
                        help="directory of the run stores (for the sample figures)")
    parser.add_argument("--out", required=True, help="report directory (index.html, rates.csv, "
                        "summary.md, figures/)")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap replicates for the slope CIs (default 1000)")


def run(args: argparse.Namespace) -> int:
    """Check the inputs, then write the report."""
    if not Path(args.study).is_dir():
        print(f"scorerate report: study store {args.study} does not exist", file=sys.stderr)
        return 2
    if args.n_boot < 10:
        print(f"scorerate report: --n-boot must be >= 10, got {args.n_boot}", file=sys.stderr)
        return 2
    from ..report import make_report

    index = make_report(args.study, args.runs_dir, args.out, n_boot=args.n_boot)
    print(f"scorerate report: wrote {index}")
    return 0
