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
    "aggregate": ("aggregate", "combine per-job stores into one study store"),
    "report": ("report", "fit convergence rates and write the HTML/PNG/CSV/Markdown report"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="scorerate", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"scorerate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in sys.argv[1:] if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or chosen == name:
            importlib.import_module(f"scorerate.commands.{module}").configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns its exit status."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"scorerate.commands.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("scorerate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
