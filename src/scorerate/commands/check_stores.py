"""`scorerate check-stores RUN.zarr... --corrupt-dir DIR`: verify run stores, move bad ones aside.

Each store must open with its checksum, which covers its data and the attributes that
identify its job (an edited n is caught here; which job a path must hold is the
workflow's to check, at load). A bad store is moved into --corrupt-dir (kept, with a
.why.txt), so a rerun of Snakemake recomputes it; the command then exits with status 2.
Only run stores of this project are moved (scorerate.store.targets): any other directory named
here is left where it is, reported, and counts as bad.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["configure", "run"]

PROG = "scorerate check-stores"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("runs", nargs="+", metavar="RUN.zarr", help="run stores to verify")
    parser.add_argument("--corrupt-dir", required=True, type=Path,
                        help="where bad stores are moved (e.g. results/corrupt)")
    parser.add_argument("--cache", type=Path, help="JSON file remembering stores found good "
                        "(by a hash of their files' content), so unchanged stores are not "
                        "re-verified")
    parser.add_argument("--ok", type=Path, help="file written when every store is good "
                        "(the workflow's marker)")


def run(args: argparse.Namespace) -> int:
    """Verify every store; move the bad ones aside; exit 2 if any was bad."""
    from ..store.runstore import quarantine_bad_stores
    from ..store.targets import check_dir, check_file

    try:  # where bad stores go and the two files written: checked before any store moves
        check_dir(args.corrupt_dir, "--corrupt-dir", inputs=args.runs)
        for flag, path in (("--cache", args.cache), ("--ok", args.ok)):
            if path is not None:
                check_file(path, flag)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    missing = [r for r in args.runs if not Path(r).is_dir()]
    moved = quarantine_bad_stores({r: {} for r in args.runs},
                                  args.corrupt_dir, cache=args.cache)
    for line in moved:
        print(f"{PROG}: {line}", file=sys.stderr)
    for r in missing:
        print(f"{PROG}: missing run store {r}", file=sys.stderr)
    if moved or missing:
        print(f"{PROG}: error: {len(moved) + len(missing)} of {len(args.runs)} run stores "
              f"bad or missing; run snakemake again to recompute them", file=sys.stderr)
        return 2
    if args.ok is not None:
        args.ok.parent.mkdir(parents=True, exist_ok=True)
        args.ok.write_text(f"{len(args.runs)} run stores verified\n")
    return 0
