"""`scorerate run-job`: run one (density, beta, d, n, seed) job and write its Zarr store.

Everything that can be wrong with the input (parameters, a job too big for the memory
or a week, the output path and its free space, another run-job on the same output, the
scheduler address) is checked before any cluster starts, and what the workers of an
existing cluster must import before any work; such errors, a write that fails at the end
(a full disk) and a job that outlives its time limit print one line on stderr and exit
with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["Phases", "configure", "run"]

PROG = "scorerate run-job"


def add_execution_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "execution" group shared by run-job and run-jobs: where the Dask work runs
    and the budget each job is sized against."""
    run_ = parser.add_argument_group("execution")
    run_.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler "
                      "(default: $DASK_SCHEDULER_ADDRESS, else an embedded LocalCluster)")
    run_.add_argument("--threads", type=int, help="threads of the embedded cluster "
                      "(default: the cores this process may use)")
    run_.add_argument("--worker-timeout", type=float, default=60.0, metavar="SECONDS",
                      help="fail (exit 2) when the scheduler has had no worker for this long "
                           "(default 60)")
    run_.add_argument("--time-limit", type=float, metavar="SECONDS",
                      help="end a job that runs longer than this (one line, exit 2), e.g. a "
                           "plug-in whose score() never returns; default: 10 x its estimated "
                           "time (scorerate.config.sizing), at least 600 s; 0: no limit")
    run_.add_argument("--mem-mb", type=float, metavar="MB", help="memory budget of a job "
                      "(Snakemake passes resources.mem_mb); default: the memory available")
    run_.add_argument("--force-size", action="store_true", help="run even if a job's "
                      "estimated memory or time (scorerate.config.sizing) exceeds the budget")
    return run_


def configure(parser: argparse.ArgumentParser) -> None:
    """Add run-job's options: one per job parameter (scorerate.config.spec.PARAMS), then I/O and
    execution. Options left out take JobSpec's defaults."""
    from ..config.spec import add_options

    add_options(parser.add_argument_group("job (scorerate.config.spec.PARAMS)"))
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, type=Path, help="output store, e.g. run.zarr")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing run store (only once the new one is complete; "
                          "never any other directory)")
    run_ = add_execution_options(parser)
    run_.add_argument("--quiet", action="store_true", help="no progress or summary output")
    run_.add_argument("--timings", action="store_true", help="print one line per phase "
                      "(imports, validate, cluster_start, work, cluster_stop, write) on stderr")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


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


def check_execution(args: argparse.Namespace) -> str | None:
    """Check --threads and --worker-timeout, and the scheduler (ValueError or
    ConnectionError with the reason); return the scheduler address, None for embedded."""
    from ..config.shell import check_address
    from ..job import cluster

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not args.worker_timeout > 0:
        raise ValueError(f"--worker-timeout must be > 0, got {args.worker_timeout}")
    limit = getattr(args, "time_limit", None)
    if limit is not None and not 0 <= limit < float("inf"):
        raise ValueError(f"--time-limit must be a number of seconds >= 0, got {limit}")
    address = cluster.resolve_address(args.scheduler)
    if address is not None:
        cluster.check_scheduler(check_address(address))
    return address


def check_workers(client, address: str | None, specs) -> None:
    """On an existing cluster (`address`), before any work: every worker must import the
    densities and estimators of `specs` (worker_imports; ValueError, one line). An
    embedded cluster runs in this process, which has already resolved them."""
    if address is None:
        return
    from ..job.worker_imports import check_worker_imports

    check_worker_imports(client, [s.density for s in specs],
                         [e for s in specs for e in s.estimators])


def job_deadline(args: argparse.Namespace, size, out: Path, address: str | None, *,
                 prog: str = PROG, cleanup: tuple = ()):
    """The wall-time limit of one job (scorerate.job.deadline.Deadline): --time-limit, else
    sizing.time_limit of its estimate `size`; its one line names the output and the limit."""
    from ..config.sizing import MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR, time_limit
    from ..job.deadline import Deadline

    given = args.time_limit
    limit = time_limit(size) if given is None else given
    why = ("--time-limit" if given is not None else
           f"{TIME_LIMIT_FACTOR:g} x its estimated ~{size.wall_s:.0f} s, at least "
           f"{MIN_TIME_LIMIT_S:g} s; set --time-limit")
    remote = "; its tasks may still run on the workers" if address is not None else ""
    return Deadline(limit, f"{prog}: error: {out}: no result within the time limit of "
                           f"{limit:g} s ({why}), so the job was ended (a task that never "
                           f"returns?); nothing was written there{remote}", cleanup)


def run(args: argparse.Namespace) -> int:
    """Validate everything, then run the job on the chosen Dask client and write its store
    (through the front door run-jobs shares: scorerate.commands.front_door)."""
    phases = Phases(getattr(args, "timings", False))
    from ..config.spec import options_from_args, spec_from_options
    from .front_door import admit, hold

    phases.mark("imports")
    try:
        spec = spec_from_options(**options_from_args(args))
        size = admit(spec, args.out, overwrite=args.overwrite, mem_mb=args.mem_mb,
                     force=args.force_size)
        address = check_execution(args)
    except (ValueError, ConnectionError) as exc:
        return _fail(str(exc))
    phases.mark("validate")
    try:  # two run-jobs on one --out: the second stops here, before any work
        with hold([(args.out, size.store_bytes)], args.overwrite,
                  say=lambda line: sys.stderr.write(f"{PROG}: {line}\n")) as release, \
                job_deadline(args, size, args.out, address, cleanup=(release,)):
            return _run_locked(args, spec, address, phases)
    except ValueError as exc:
        return _fail(str(exc))


def _run_locked(args, spec, address, phases: Phases) -> int:
    """Compute the job and write its store (the output's lock is held)."""
    from ..job import cluster
    from ..job.graph import run_job
    from ..job.worker_imports import WorkerImportError
    from .front_door import write

    started = time.perf_counter()
    try:
        with cluster.dask_client(address, threads=args.threads, quiet=True) as client:
            phases.mark("cluster_start")
            check_workers(client, address, [spec])
            ds = run_job(spec, client, progress=None if not args.quiet else False,
                         worker_timeout=args.worker_timeout)
            phases.mark("work")
    except (ConnectionError, WorkerImportError) as exc:
        return _fail(str(exc))
    phases.mark("cluster_stop")
    failed = write(ds, args.out, args.overwrite)
    if failed is not None:
        return _fail(failed)
    phases.mark("write")
    if not args.quiet:
        print(f"{PROG}: wrote {args.out} ({len(spec.estimators)} estimators, m={spec.m}, "
              f"{time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0
