"""`scorerate aggregate --out study.zarr RUN.zarr...`: combine run stores into one study store."""

from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("runs", nargs="+", metavar="RUN.zarr", help="per-job run stores")
    parser.add_argument("--out", required=True,
                        help="study store to write (e.g. results/study.zarr); an existing "
                        "path must be a study store, which is replaced once the new one is "
                        "complete")
    parser.add_argument("--corrupt-dir", default=None, metavar="DIR",
                        help="move a run store that fails its verification (checksum, schema) "
                             "here, with a .why.txt, before exiting 2, as check-stores does; a "
                             "workflow then recomputes it")
    parser.add_argument("--config", default=None,
                        help="study config (YAML/JSON) to record in attrs; its grid also sets "
                             "the cells that must exist (absent ones are NaN)")


def run(args: argparse.Namespace) -> int:
    """Validate every store, combine them and write the study atomically."""
    from ..config.file import load_config
    from ..store.runstore import quarantine_bad_stores
    from ..store.targets import check_dir, check_target
    from ..study.aggregate import BadRunStore, StoreError, aggregate, write_study

    try:  # --out: a new path or a study store of ours, never an input or the cwd
        check_target(args.out, "study", inputs=[*args.runs, *filter(None, [args.config])])
        if args.corrupt_dir is not None:
            check_dir(args.corrupt_dir, "--corrupt-dir", inputs=args.runs)
        config = load_config(args.config) if args.config else None
        ds = aggregate(args.runs, config=config)
        write_study(ds, args.out)
    except BadRunStore as exc:
        moved = (quarantine_bad_stores({exc.path: {}}, args.corrupt_dir)
                 if args.corrupt_dir is not None else [])
        print(f"scorerate aggregate: {moved[0] if moved else exc}", file=sys.stderr)
        return 2
    except (StoreError, ValueError, OSError) as exc:
        print(f"scorerate aggregate: {exc}", file=sys.stderr)
        return 2
    print(f"scorerate aggregate: {ds.attrs['n_runs']} runs -> {args.out} "
          f"({_missing_text(ds, config)})")
    return 0


def _missing_text(ds, config) -> str:
    """How many of the config's jobs have no run, apart from the grid cells that are no
    job at all (a ragged grid's holes, where densities entries set their own d / n)."""
    import numpy as np

    from ..config.file import JOB_DIMS, beta_label, jobs

    n_cells = int(ds.attrs["n_cells"])
    if config is None:
        return f"{n_cells - int(ds.attrs['n_runs'])} of {n_cells} grid cells without a run"
    coords = [ds[k].values for k in JOB_DIMS]
    present = {(str(coords[0][i]), beta_label(coords[1][j]), int(coords[2][k]),
                int(coords[3][m]), int(coords[4][s]))
               for i, j, k, m, s in np.argwhere(ds["store"].transpose(*JOB_DIMS).values != "")}
    asked = {tuple(j.values()) for j in jobs(config)}
    holes = n_cells - len(asked | present)
    return (f"{len(asked - present)} of the config's {len(asked)} jobs missing"
            + (f"; {holes} grid cells are no job" if holes else ""))
