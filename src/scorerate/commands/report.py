"""`scorerate report --study study.zarr --out report/`: rates, figures, HTML.

The git commit of the current directory (and whether its tree was dirty) is looked up
here, not in the library, and handed to the report as provenance.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["configure", "git_provenance", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--study", required=True,
                        help="study store written by `scorerate aggregate`")
    parser.add_argument("--runs-base", "--runs-dir", dest="runs_base", default=None,
                        help="base directory of the run-store paths the study records, when "
                        "they are relative (default: the current directory)")
    parser.add_argument("--out", required=True, help="report directory (index.html, rates.csv, "
                        "summary.md, figures/)")
    parser.add_argument("--config", default=None, help="study config (YAML/JSON): the "
                        "plug-in densities it names may be imported for the sample figures "
                        "(names read from the study never are)")


def git_provenance(cwd: str | Path = ".") -> dict[str, str]:
    """{'git commit': sha or 'unknown', 'git tree': 'clean'/'dirty'/'unknown'} of `cwd`."""
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout if res.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if head is None:
        return {"git commit": "unknown", "git tree": "unknown"}
    status = git("status", "--porcelain")
    tree = "unknown" if status is None else ("dirty" if status.strip() else "clean")
    return {"git commit": head.strip(), "git tree": tree}


def run(args: argparse.Namespace) -> int:
    """Check the inputs, then write the report."""
    if not Path(args.study).is_dir():
        print(f"scorerate report: study store {args.study} does not exist", file=sys.stderr)
        return 2
    from ..config.file import load_config
    from ..report.build import make_report
    from ..store.targets import check_source, check_target

    try:  # --study: a study store of ours; --out: a new directory or a report of ours,
        # never the cwd or one holding inputs
        check_source(args.study, "study")
        check_target(args.out, "report", inputs=[args.study, *filter(None, [args.config])])
        config = load_config(args.config) if args.config else {}
        trusted = [str(e.get("name")) for e in config.get("densities") or []
                   if isinstance(e, dict)]
    except (OSError, ValueError) as exc:
        print(f"scorerate report: {exc}", file=sys.stderr)
        return 2
    from ..store.runstore import StoreError

    try:
        index = make_report(args.study, args.out, runs_base=args.runs_base,
                            provenance=git_provenance(), trusted=trusted)
    except StoreError as exc:  # the study does not open: raised before anything is written
        print(f"scorerate report: {exc}", file=sys.stderr)
        return 2
    print(f"scorerate report: wrote {index}")
    return 0
