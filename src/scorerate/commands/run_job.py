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

__all__ = ["configure", "run"]

PROG = "scorerate run-job"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add run-job's options to `parser` (defaults left at None fall back to JobSpec's)."""
    from ..job import JobSpec

    dflt = {f: JobSpec.__dataclass_fields__[f].default for f in JobSpec.__dataclass_fields__}
    job = parser.add_argument_group("job")
    job.add_argument("--density", required=True, help="ground truth p0, e.g. sym_beta, "
                     "gauss_mix, laplace, sym_beta_mix")
    job.add_argument("--beta", type=float, required=True, help="smoothness of p0")
    job.add_argument("--d", type=int, required=True, help="dimension (>= 1)")
    job.add_argument("--n", type=int, required=True, help="training points (>= 2)")
    job.add_argument("--seed", type=int, default=0, help="replicate seed (default 0)")
    job.add_argument("--study-seed", type=int, default=0,
                     help="seed of the whole study, mixed into every stream (default 0)")
    job.add_argument("--out", required=True, type=Path, help="output store, e.g. run.zarr")
    job.add_argument("--overwrite", action="store_true",
                     help="replace an existing store (only once the new one is complete)")
    est = parser.add_argument_group("estimators and sampler")
    est.add_argument("--estimators", nargs="+", default=None, metavar="NAME",
                     help=f"estimators (space or comma separated; default "
                          f"{' '.join(dflt['estimators'])})")
    est.add_argument("--m", type=int, help=f"output samples per estimator (default {dflt['m']})")
    est.add_argument("--steps", type=int, help=f"reverse-SDE steps (default {dflt['steps']})")
    est.add_argument("--integrator", help=f"euler_maruyama, ancestral or probability_flow "
                     f"(default {dflt['integrator']})")
    est.add_argument("--c-rho", type=float, help="truncation constant c_rho (default 1)")
    est.add_argument("--eps", type=float, help="floor of the regularized estimator "
                     "(default n^-2)")
    est.add_argument("--t0", type=float, help="early-stopping time (default n^(-2/(2b+d)))")
    est.add_argument("--T", type=float, help="horizon (default n^(2b/(2b+d)))")
    est.add_argument("--chunk", type=int, help=f"particles per Dask chunk; does not change "
                     f"the numbers (default {dflt['chunk']})")
    est.add_argument("--backend", help="Gaussian engine backend (default auto)")
    est.add_argument("--rtol", type=float, help="Gaussian engine accuracy (default 1e-6)")
    est.add_argument("--highorder-order", type=int, help="kernel order l (default ceil(log n))")
    est.add_argument("--highorder-C", type=float, help="bandwidth constant C (default d e)")
    met = parser.add_argument_group("metrics")
    met.add_argument("--t-grid", nargs=3, metavar=("TMIN", "TMAX", "NUM"),
                     help="absolute geometric t grid for the score MSE (default: "
                          f"{dflt['n_t']} points over [t0, T])")
    met.add_argument("--n-t", type=int, help=f"points of the default t grid ({dflt['n_t']})")
    met.add_argument("--n-mc", type=int, help=f"Monte Carlo draws per score-MSE value "
                     f"(default {dflt['n_mc']})")
    met.add_argument("--n-ref", type=int, help=f"reference draws from p0 for W1 and MMD "
                     f"(default {dflt['n_ref']})")
    met.add_argument("--n-int", type=int, help=f"t nodes of the integrated score error "
                     f"(default {dflt['n_int']})")
    run_ = parser.add_argument_group("execution")
    run_.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler "
                      "(default: $DASK_SCHEDULER_ADDRESS, else an embedded LocalCluster)")
    run_.add_argument("--threads", type=int, help="threads of the embedded cluster "
                      "(default: the cores this process may use)")
    run_.add_argument("--worker-timeout", type=float, default=60.0, metavar="SECONDS",
                      help="fail (exit 2) when the scheduler has had no worker for this long "
                           "(default 60)")
    run_.add_argument("--quiet", action="store_true", help="no progress or summary output")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _estimators(values: list[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(v for item in values for v in item.split(",") if v)


def _t_grid(values: list[str] | None) -> tuple[float, float, int] | None:
    if values is None:
        return None
    try:
        return float(values[0]), float(values[1]), int(values[2])
    except ValueError:
        raise ValueError(f"--t-grid needs TMIN TMAX NUM (numbers, NUM an integer), "
                         f"got {' '.join(values)}") from None


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


def run(args: argparse.Namespace) -> int:
    """Validate everything, then run the job on the chosen Dask client and write its store."""
    from .. import cluster
    from ..job import run_job, spec_from_options
    from ..store import write_run

    try:
        spec = spec_from_options(
            density=args.density, beta=args.beta, d=args.d, n=args.n, seed=args.seed,
            study_seed=args.study_seed, estimators=_estimators(args.estimators), m=args.m,
            steps=args.steps, integrator=args.integrator, c_rho=args.c_rho, eps=args.eps,
            t0=args.t0, T=args.T, chunk=args.chunk, t_grid=_t_grid(args.t_grid),
            n_t=args.n_t, n_mc=args.n_mc, n_ref=args.n_ref, n_int=args.n_int,
            backend=args.backend, rtol=args.rtol, highorder_order=args.highorder_order,
            highorder_C=args.highorder_C)
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

    started = time.perf_counter()
    try:
        with cluster.dask_client(address, threads=args.threads, quiet=True) as client:
            ds = run_job(spec, client, progress=None if not args.quiet else False,
                         worker_timeout=args.worker_timeout)
    except ConnectionError as exc:
        return _fail(str(exc))
    write_run(ds, args.out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"{PROG}: wrote {args.out} ({len(spec.estimators)} estimators, m={spec.m}, "
              f"{time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0
