"""`scorerate run-jobs`: run several jobs in one process on one Dask client, one store each.

A small job's own work (well under a second) is dwarfed by what every `scorerate run-job`
process pays before and after it: interpreter start, library imports, the first use of
the registries, the embedded cluster's start and the interpreter's exit (about 3 s on 2
cores, benchmarks/README.md "Per-job overhead"). This command pays them once for K
jobs. Each job is exactly what `scorerate run-job` with the same options computes (same
JobSpec, same `job.run_job`, same `store.write_run`: bit-identical numbers), and each store
is written atomically as soon as its job finishes (run by hand, an interrupted batch
keeps the stores it completed; under Snakemake a failed batch gets back the stores it had
before, which the workflow marks `update`, loses the new ones, and reruns as a whole).
Every job goes through run-job's front door (scorerate.commands.front_door): its size and
output are checked, and all the outputs locked, before any cluster starts (one line on
stderr, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config.file import JOB_DIMS
from .front_door import admit, hold, write
from .run_job import Phases, add_execution_options, check_execution, check_workers, job_deadline

__all__ = ["configure", "run"]

PROG = "scorerate run-jobs"

#: the job options each --job gives; every other job option is shared by the batch


def configure(parser: argparse.ArgumentParser) -> None:
    """Add run-jobs' options: the shared job options of run-job (all but the identity),
    the repeated --job, and run-job's execution options."""
    from ..config.spec import add_options

    shared = parser.add_argument_group("job options shared by every --job "
                                       "(scorerate.config.spec.PARAMS)")
    add_options(shared)
    for action in shared._group_actions:  # the identity comes with each --job instead
        if action.dest in JOB_DIMS:
            action.required = False
            action.help = argparse.SUPPRESS
    jobs = parser.add_argument_group("jobs")
    jobs.add_argument("--job", action="append", nargs=6, required=True, dest="jobs",
                      metavar=("DENSITY", "BETA", "D", "N", "SEED", "OUT"),
                      help="one job and its output store; repeat for each job")
    jobs.add_argument("--overwrite", action="store_true",
                      help="replace existing stores (each only once its new one is complete)")
    run_ = add_execution_options(parser)
    run_.add_argument("--quiet", action="store_true", help="no per-job summary lines")
    run_.add_argument("--timings", action="store_true",
                      help="one stderr line per phase (per job: work, write)")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _specs(args: argparse.Namespace) -> list[tuple[object, Path, object]]:
    """(JobSpec, output, size estimate) of every --job, admitted by the front door (size,
    output path); ValueError names the bad job."""
    from ..config.spec import options_from_args, spec_from_options

    shared = {k: v for k, v in options_from_args(args).items() if k not in JOB_DIMS}
    out, seen = [], set()
    for density, beta, d, n, seed, path in args.jobs:
        where = f"--job {density} {beta} {d} {n} {seed} {path}"
        try:
            ident = {"density": density, "beta": float(beta), "d": int(d), "n": int(n),
                     "seed": int(seed)}
        except ValueError:
            raise ValueError(f"{where}: BETA must be a number and D, N, SEED integers") from None
        try:
            spec = spec_from_options(**shared, **ident)
            size = admit(spec, Path(path), overwrite=args.overwrite, mem_mb=args.mem_mb,
                         force=args.force_size)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if Path(path).absolute() in seen:
            raise ValueError(f"{where}: output named twice")
        seen.add(Path(path).absolute())
        out.append((spec, Path(path), size))
    return out


def run(args: argparse.Namespace) -> int:
    """Validate every job, lock every output, then run them one after another on one
    Dask client."""
    phases = Phases(args.timings)

    phases.mark("imports")
    try:
        todo = _specs(args)
        address = check_execution(args)
    except (ValueError, ConnectionError) as exc:
        return _fail(str(exc))
    phases.mark("validate")
    try:  # another run-job or batch on one of the outputs: stop here, before any work
        with hold([(out, size.store_bytes) for _, out, size in todo], args.overwrite,
                  say=lambda line: sys.stderr.write(f"{PROG}: {line}\n")) as release:
            return _run_locked(args, todo, address, phases, release)
    except ValueError as exc:
        return _fail(str(exc))


def _run_locked(args, todo, address, phases: Phases, release) -> int:
    """Run the jobs and write their stores (every output's lock is held)."""
    from ..job import cluster
    from ..job.graph import run_job
    from ..job.worker_imports import WorkerImportError

    started = time.perf_counter()
    try:
        with cluster.dask_client(address, threads=args.threads, quiet=True) as client:
            phases.mark("cluster_start")
            check_workers(client, address, [spec for spec, _, _ in todo])
            for i, (spec, out, size) in enumerate(todo):
                job_started = time.perf_counter()
                with job_deadline(args, size, out, address, prog=PROG,
                                  cleanup=(release,)):
                    ds = run_job(spec, client, progress=False,
                                 worker_timeout=args.worker_timeout)
                    phases.mark("work")
                    failed = write(ds, out, args.overwrite)
                if failed is not None:
                    return _fail(failed)
                phases.mark("write")
                if not args.quiet:
                    print(f"{PROG}: [{i + 1}/{len(todo)}] wrote {out} "
                          f"({time.perf_counter() - job_started:.1f} s)", file=sys.stderr)
    except (ConnectionError, WorkerImportError) as exc:
        return _fail(str(exc))
    phases.mark("cluster_stop")
    if not args.quiet:
        print(f"{PROG}: {len(todo)} jobs in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    return 0
