"""`scorerate run-job`: run one (density, beta, d, n, seed) job and write its Zarr store.

Everything that can be wrong with the input (parameters, output path, scheduler
address) is checked before any cluster starts; such errors print one line on stderr
and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["Phases", "check_output", "configure", "run"]

PROG = "scorerate run-job"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add run-job's options: one per job parameter (scorerate.spec.PARAMS), then I/O and
    execution. Options left out take JobSpec's defaults."""
    from ..spec import add_options

    add_options(parser.add_argument_group("job (scorerate.spec.PARAMS)"))
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, type=Path, help="output store, e.g. run.zarr")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing store (only once the new one is complete)")
    run_ = parser.add_argument_group("execution")
    run_.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler "
                      "(default: $DASK_SCHEDULER_ADDRESS, else an embedded LocalCluster)")
    run_.add_argument("--threads", type=int, help="threads of the embedded cluster "
                      "(default: the cores this process may use)")
    run_.add_argument("--worker-timeout", type=float, default=60.0, metavar="SECONDS",
                      help="fail (exit 2) when the scheduler has had no worker for this long "
                           "(default 60)")
    run_.add_argument("--quiet", action="store_true", help="no progress or summary output")
    run_.add_argument("--timings", action="store_true", help="print one line per phase "
                      "(imports, validate, cluster_start, work, cluster_stop, write) on stderr")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def check_output(out: Path, overwrite: bool) -> None:
    """Raise ValueError unless a store can be written at `out` (and may be, given overwrite)."""
    from ..store import StoreError, open_run

    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            try:
                open_run(out, verify=False).close()
            except StoreError as exc:
                raise ValueError(f"{out} exists and is not a complete run store ({exc}); "
                                 f"remove it or pass --overwrite") from None
            raise ValueError(f"{out} is already a complete run store; pass --overwrite "
                             f"to replace it")
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory; refusing to replace it")
    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create {out}: {ancestor} is not a directory")
    try:  # a real probe: os.access says yes to root on read-only mounts
        fd, probe = tempfile.mkstemp(prefix=".scorerate-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"output directory {ancestor} is not writable: {exc}") from None


class Phases:
    """Wall seconds of consecutive phases; with `on`, one stderr line per phase (else free).

    Line format: ``scorerate timing: PHASE SECONDS s at EPOCH`` (EPOCH: time.time() at the
    phase's end), so a caller that knows when it launched the process can also tell the
    interpreter start and the CLI's own imports apart (benchmarks/load.py does).
    """

    def __init__(self, on: bool) -> None:
        self.on = on
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        """End the current phase, naming it `phase`."""
        if self.on:
            now = time.perf_counter()
            print(f"scorerate timing: {phase} {now - self.last:.4f} s at {time.time():.4f}",
                  file=sys.stderr, flush=True)
            self.last = now


def run(args: argparse.Namespace) -> int:
    """Validate everything, then run the job on the chosen Dask client and write its store."""
    phases = Phases(getattr(args, "timings", False))
    from .. import cluster
    from ..job import run_job
    from ..spec import options_from_args, spec_from_options
    from ..store import write_run

    phases.mark("imports")
    try:
        spec = spec_from_options(**options_from_args(args))
        check_output(args.out, args.overwrite)
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        if not args.worker_timeout > 0:
            raise ValueError(f"--worker-timeout must be > 0, got {args.worker_timeout}")
        address = cluster.resolve_address(args.scheduler)
        if address is not None:
            cluster.check_scheduler(address)
    except (ValueError, ConnectionError) as exc:
        return _fail(str(exc))
    phases.mark("validate")

    started = time.perf_counter()
    try:
        with cluster.dask_client(address, threads=args.threads, quiet=True) as client:
            phases.mark("cluster_start")
            ds = run_job(spec, client, progress=None if not args.quiet else False,
                         worker_timeout=args.worker_timeout)
            phases.mark("work")
    except ConnectionError as exc:
        return _fail(str(exc))
    phases.mark("cluster_stop")
    write_run(ds, args.out, overwrite=args.overwrite)
    phases.mark("write")
    if not args.quiet:
        print(f"{PROG}: wrote {args.out} ({len(spec.estimators)} estimators, m={spec.m}, "
              f"{time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0
