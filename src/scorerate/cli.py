"""Command line: `scorerate <command> ...`; each command lives in scorerate.commands.

Commands are imported only when chosen, so `scorerate --help` is instant and one
command's heavy imports never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

#: command name -> (module under scorerate.commands, one-line help)
COMMANDS = {
    "run-job": ("run_job", "run one (density, beta, d, n, seed) job and write its Zarr store"),
    "check-stores": ("check_stores", "verify run stores; move damaged ones aside to recompute"),
    "run-jobs": ("run_jobs", "run several jobs in one process on one Dask client, one store "
                 "each (saves the per-process start-up of small jobs)"),
    "aggregate": ("aggregate", "combine per-job stores into one study store"),
    "report": ("report", "fit convergence rates and write the HTML/PNG/CSV/Markdown report"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr with exit status 2, like every
    other refusal of the commands (argparse's own prints the whole usage first); the
    subcommands' parsers are of this class too."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the command named in `argv` gets its options loaded."""
    from .version import __version__

    parser = OneLineParser(
        prog="scorerate",
        description="Rate studies of kernel-score diffusion models: run one job, aggregate "
                    "a study, write its report. The Snakefile drives these for whole studies.",
        epilog="`scorerate COMMAND --help` lists a command's options.")
    parser.add_argument("--version", action="version", version=f"scorerate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or chosen == name:
            importlib.import_module(f"scorerate.commands.{module}").configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns its exit status."""
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(f"scorerate.commands.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("scorerate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
