"""`scorerate aggregate --out study.zarr RUN.zarr...`: combine run stores into one study store."""

from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("runs", nargs="+", metavar="RUN.zarr", help="per-job run stores")
    parser.add_argument("--out", required=True,
                        help="study store to write (e.g. results/study.zarr)")
    parser.add_argument("--config", default=None,
                        help="study config (YAML/JSON) to record in attrs; its grid also sets "
                             "the cells that must exist (absent ones are NaN)")


def run(args: argparse.Namespace) -> int:
    """Validate every store, combine them and write the study atomically."""
    from ..aggregate import StoreError, aggregate, write_study
    from ..study import load_study as load_config

    try:
        config = load_config(args.config) if args.config else None
        ds = aggregate(args.runs, config=config)
    except (StoreError, ValueError, OSError) as exc:
        print(f"scorerate aggregate: {exc}", file=sys.stderr)
        return 2
    write_study(ds, args.out)
    n_missing = int(ds["tv_kde"].isnull().sum())
    print(f"scorerate aggregate: {ds.attrs['n_runs']} runs -> {args.out} "
          f"({n_missing} of {ds.attrs['n_cells']} cells missing)")
    return 0
