"""What a job will cost before it runs: peak memory, wall time and store size, and a guard.

The constants come from the measured cost model in benchmarks/README.md ("Job cost
model", 2 shared AMD EPYC cores): wall ≈ a + b_d m n steps for all four estimators, with
b_1 = 6.6e-9, b_2 = 7.5e-9, b_3 = 2.0e-8 s; peak memory ~500 MB of imported stack plus
~100 bytes per training coordinate (+100 MB per 1e6 n at d = 1), plus the particles and
the Monte Carlo draws, plus highorder's 256 MB budget of k-d trees. The estimates are
deliberately rough (factor ~2); their purpose is to refuse, in one line and before any
work, a job that cannot fit (n = 1e9, m = 1e10, steps = 1e12), not to plan a cluster.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_WALL_S", "MIN_TIME_LIMIT_S", "TIME_LIMIT_FACTOR", "Estimate",
           "available_memory_mb", "check_config_size", "check_fits", "estimate", "estimate_params",
           "law_cells_1d",
           "estimate_spec", "resource_request", "store_bytes", "study_job_estimate", "time_limit"]

#: the least memory a job asks a scheduler for (MB): the imported stack is 400-520 MB and
#: the embedded Dask cluster adds its own process
MIN_REQUEST_MB = 1500
#: a job estimated to run longer than this is refused (unless forced): a week
MAX_WALL_S = 7 * 24 * 3600.0
#: a job's default wall-time limit: this many times its estimated time, and at least
#: MIN_TIME_LIMIT_S (the estimate is good to a factor ~2, and a loaded machine is slower)
TIME_LIMIT_FACTOR = 10.0
MIN_TIME_LIMIT_S = 600.0
_BASE_MB = 500.0  # numpy, numba, dask, xarray, zarr imported (measured ~400-520 MB)
_B_PER_MNS = {1: 6.6e-9, 2: 7.5e-9, 3: 2.0e-8}  # s per m n step, all four estimators
_S_PER_EVAL = 3.0e-9  # one Gaussian kernel evaluation (dense: ~3.6e8 evals/s)
_HIGHORDER_MB = 256.0  # highorder keeps the noised k-d trees of recent t within this
#: the exact output law on the grid score, s per step and estimator (benchmarks/README.md,
#: "The exact law"): d = 2 at 256 steps and d = 3 at 64 and 256 steps, n = 1e5; about flat
#: in n), and the 3-D law's peak memory (2.1 GB measured at n = 1e5, 256 steps)
_LAW_S_PER_STEP = {1: 0.015, 2: 0.07, 3: 1.3}
#: the stochastic Heun law, s per step and estimator, single-threaded. d = 1 (its step is
#: not a Gaussian transition, so it pushes (strata + 1) x cells points through the score):
#: 0.14-0.15 for each Gaussian estimator at n = 1e5, 183 steps (benchmarks/law_slabs.py;
#: 0.45 for truncated and regularized before the grid score set far slabs aside), against
#: ~0.015 for Euler-Maruyama's law. d = 2 (the Gaussian closure, 2 d + 1 grid-score calls
#: and 2^d noise-level deposits per step): 0.19-0.27 at n = 1e5, 128 steps, resolution 2
#: (0.11-0.18 at n = 1e4). d = 3: not measured; priced as 3 x Euler-Maruyama's law
_HEUN_LAW_S_PER_STEP = {1: 0.15, 2: 0.27, 3: 3.0 * _LAW_S_PER_STEP[3]}
#: the exact laws every job computes, in fractions of its steps (S; S/2 and S/4 for the
#: step error: job/metric_table.py's law, law_half_cells, law_quarter_cells)
_JOB_LAW_STEPS = (1.0, 0.5, 0.25)
#: the law at twice the steps of a step-check job, in laws at the job's steps: a step's
#: cells grow like 1 / its noise sd ~ sqrt(steps), so ~2^1.5 (Heun, d = 1: 2.1-3.9)
_CHECK_LAW_COST = 2.8
#: the 1-D Heun law of a job whose density and smoothness are known, s per cell a step
#: visits (law_cells_1d) and estimator: its cost follows the cells, which grow like the
#: data's span / sqrt(t0) near t0 and like steps^1.5, not the steps alone. Calibrated on
#: the paper parts' per-batch times (2 cores, one job each): sym_beta beta 0.5 at n = 1e5
#: (t0 = 1e-5) costs 557 us per cell at 366 steps, 569 us with its check law at 732; beta
#: 2.5 costs 40-170 us per cell at n = 1e2 .. 3e4. The largest figure is used, since the
#: model's use is to ask a scheduler for enough time: beta 2.5's n = 1e5 check job (2524
#: steps, costlier than its cells say) is then priced at 1.16x its measured time
#: (benchmarks/README.md, "A 1-D law's price follows its cells")
_HEUN_1D_S_PER_CELL = 5.5e-4
#: half-width, in sds of sqrt(t), of where the law holds mass while it spreads like N(0, t)
_LAW_SPREAD_SDS = 6.0
_LAW_3D_MB = 2500.0
#: 3-D laws of the untruncated Gaussian estimators (regularized, empirical): cells per step
#: the grid cannot vouch for, each summed by cutoff's tree walk over the points of its
#: ball, a share of n. Measured at n = 1e5, 256 steps (benchmarks/README.md, "Every
#: Gaussian estimator at n = 1e5"): 2.7e4 cells per step at ~53 us (regularized), 4.0e4 at
#: ~33 us (empirical), ~1.4 s per step either way, under load
_LAW_3D_EXACT_CELLS = 3e4
_LAW_3D_TAIL_SHARE = 0.15


@dataclass(frozen=True)
class Estimate:
    """Rough peak memory (MB), wall time (s) and run-store size (bytes) of one job."""

    mem_mb: float
    wall_s: float
    store_bytes: float

    def text(self) -> str:
        """'~1.2 GB memory, ~3 h, store ~5 MB' for messages."""
        return (f"~{_fmt_bytes(self.mem_mb * 1e6)} memory, ~{_fmt_time(self.wall_s)}, "
                f"store ~{_fmt_bytes(self.store_bytes)}")


def store_bytes(*, n: int, m: int, d: int, estimators: int, n_t: int = 12) -> float:
    """Uncompressed size of a run store: (estimators m d + n d) float64 plus small metrics."""
    return 8.0 * (estimators * m * d + n * d + 3 * estimators * n_t) + 100e3


#: Dask's own cost per task of the job's graph (client, scheduler and worker state; a
#: rough upper figure): one task per (estimator, t) of the score MSE, per particle chunk, ...
_TASK_BYTES = 20e3
_S_PER_TASK = 1e-3
_S_PER_CALL = 5e-5  # the Python overhead of one score call on one chunk (one step)
_LAW_CELLS_CAP = 100.0  # the law's grid is capped (max_cells): finer resolution costs <= this


def law_cells_1d(*, t0: float, T: float, steps: int, span: float,
                 resolution: float) -> float:
    """Cells a 1-D law visits, summed over its steps on the geometric grid from T to t0:
    per step, the data's span plus the law's spread (+-_LAW_SPREAD_SDS sqrt(t)) over the
    fine spacing min(sqrt(step), sqrt(t)) / resolution (metrics/law.py's grid). O(steps)."""
    import numpy as np

    tau = np.geomspace(float(T), float(t0), int(steps) + 1)
    fine = np.minimum(np.sqrt(tau[:-1] - tau[1:]), np.sqrt(tau[1:])) / float(resolution)
    return float(np.sum((float(span) + 2.0 * _LAW_SPREAD_SDS * np.sqrt(tau[1:])) / fine))


def estimate(*, n: int, d: int, m: int | None = None, steps: int | None = None,
             estimators: int | None = None, n_t: int | None = None, n_mc: int | None = None,
             n_int: int | None = None, n_ref: int | None = None, n_mc_kde: int | None = None,
             highorder: int | None = None, orders: tuple[int | None, ...] | None = None,
             chunk: int | None = None, law_resolution: float | None = None,
             untruncated: int | None = None, integrator: str | None = None,
             step_check: bool = False, t0: float | None = None, T: float | None = None,
             span: float | None = None) -> Estimate:
    """Estimate one job's peak memory, wall time and store size (cost O(1), floats only).

    Memory: base + 100 B per training coordinate + 40 B per particle coordinate (the
    samples in a few copies) + 64 B per Monte Carlo coordinate + 16 B per (particle of a
    chunk, step, coordinate) (a chunk's pre-drawn noise, twice) + the graph's tasks
    (estimators (chunks + n_t + n_int + metrics), each ~20 kB of Dask state). Time: the
    benchmarked b_d m n steps (scaled by estimators / 4, b_d for d > 3 grown like d, a
    highorder of order l by (l + 1) / (ceil(log n) + 1), its default's cost) plus the score
    MSE (estimators (n_t + n_int) n_mc n kernel evaluations), the KDE TV (n_mc_kde n), the
    exact law (per step and estimator, about flat in n, growing like law_resolution^d up to
    its cell cap; in 3-D, plus the ball sums (a share of n each) of the uncertified cells
    of each of the `untruncated` estimators: regularized, empirical), ~1 ms per task and
    ~50 us per score call of a chunk. integrator "heun" doubles the sampler's score calls
    and prices its law at _HEUN_LAW_S_PER_STEP. step_check adds the law at
    twice the steps (_CHECK_LAW_COST laws at the job's steps). Given t0, T and the data's
    span (the density's), a 1-D Heun law is priced by the cells it visits instead
    (law_cells_1d, _HEUN_1D_S_PER_CELL; the check law at its own steps): its cost follows
    span / sqrt(t0), several times the per-step figure for a small t0 or a wide support.
    highorder: how many of the estimators are highorder (variants included), each with its
    own k-d tree budget; orders: their kernel orders (None: the default ceil(log n)), which
    sets highorder's count when given. An argument left None takes the job's default
    (spec.PARAMS).
    """
    from .spec import BY_NAME

    def default(name: str, value):
        return BY_NAME[name].default if value is None else value

    default_estimators = BY_NAME["estimators"].default
    m, steps, n_t, n_mc = (default(k, v) for k, v in
                           (("m", m), ("steps", steps), ("n_t", n_t), ("n_mc", n_mc)))
    n_int, n_ref, n_mc_kde = (default(k, v) for k, v in
                              (("n_int", n_int), ("n_ref", n_ref), ("n_mc_kde", n_mc_kde)))
    chunk, law_resolution = default("chunk", chunk), default("law_resolution", law_resolution)
    calls = 2.0 if default("integrator", integrator) == "heun" else 1.0
    if estimators is None:
        estimators = len(default_estimators)
    if untruncated is None:
        untruncated = _tail_fallback_count(default_estimators)
    if orders is None:
        orders = (None,) * (_highorder_count(default_estimators) if highorder is None
                            else int(highorder))
    n, m, d, steps = float(n), float(m), float(d), float(steps)
    chunks = math.ceil(m / float(chunk))
    tasks = float(estimators) * (chunks + float(n_t) + float(n_int) + 12.0) + 4.0
    mem = (_BASE_MB * 1e6 + 100.0 * n * d + 40.0 * estimators * m * d
           + 64.0 * (float(n_mc) + float(n_ref) + float(n_mc_kde) + m) * d
           + 16.0 * min(float(chunk), m) * steps * d + _TASK_BYTES * tasks) / 1e6
    mem += _HIGHORDER_MB * len(orders)
    b = _B_PER_MNS.get(int(d), _B_PER_MNS[3] * max(1.0, d / 3.0))
    default_order = math.ceil(math.log(n))
    weight = (max(estimators - len(orders), 0)
              + sum(max(1.0, (default_order if o is None else float(o)) + 1.0)
                    / (default_order + 1.0) for o in orders))
    wall = (10.0 + calls * b * m * n * steps * max(weight, 1.0) / 4.0
            + _S_PER_EVAL * n * (estimators * (float(n_t) + float(n_int)) * float(n_mc)
                                 + float(n_mc_kde))
            + _S_PER_EVAL * estimators * m * float(n_ref)
            + _S_PER_TASK * tasks + _S_PER_CALL * calls * estimators * chunks * steps)
    # the exact law at `steps`, steps / 2 and steps / 4 (the step-error estimates), d <= 3,
    # and with step_check at 2 steps (a law's cost per step grows with its steps)
    laws = sum(_JOB_LAW_STEPS) + (_CHECK_LAW_COST if step_check else 0.0)
    finer = min((float(law_resolution) / BY_NAME["law_resolution"].default) ** d,
                _LAW_CELLS_CAP)
    per_step = (_HEUN_LAW_S_PER_STEP if calls > 1.0 else _LAW_S_PER_STEP).get(int(d), 0.0)
    if calls > 1.0 and int(d) == 1 and None not in (t0, T, span):
        def cells(s: float) -> float:
            return law_cells_1d(t0=t0, T=T, steps=max(int(s), 1), span=span,
                                resolution=float(law_resolution))
        visited = (sum(cells(steps * f) for f in _JOB_LAW_STEPS)
                   + (cells(2 * steps) if step_check else 0.0))
        wall += estimators * _HEUN_1D_S_PER_CELL * visited
    else:
        wall += laws * estimators * steps * per_step * max(finer, 1.0)
    if int(d) == 3:
        mem += _LAW_3D_MB
        wall += (laws * float(untruncated) * steps * _LAW_3D_EXACT_CELLS * _LAW_3D_TAIL_SHARE
                 * n * _S_PER_EVAL)
    return Estimate(mem, wall, store_bytes(n=int(n), m=int(m), d=int(d),
                                           estimators=estimators, n_t=int(n_t)))


def estimate_params(params: Mapping) -> Estimate:
    """`estimate` of a job given by its parameters (spec.JobSpec.params() or a study
    config's values with the defaults filled): the one place that reads them, so a job and
    the workflow's request for it agree. Needs n and d; the rest default (spec.PARAMS)."""
    from ..estimators import base_name, parse_variant
    from .spec import BY_NAME, n_steps_of

    def get(name: str):
        v = params.get(name)
        return BY_NAME[name].default if v is None else v

    n, ests, tg = int(params["n"]), tuple(get("estimators")), params.get("t_grid")
    if isinstance(tg, Mapping):
        tg = (tg.get("tmin"), tg.get("tmax"), tg.get("num"))
    orders = tuple(parse_variant(e)[1].get("order", params.get("highorder_order"))
                   for e in ests if base_name(e) == "highorder")
    steps = n_steps_of(params)
    t0, T, span = _law_span(params)
    return estimate(n=n, d=int(params["d"]), m=int(get("m")), steps=steps,
                    estimators=len(ests), n_t=int(tg[2]) if tg is not None else int(get("n_t")),
                    n_mc=int(get("n_mc")), n_int=int(get("n_int")), n_ref=int(get("n_ref")),
                    n_mc_kde=int(get("n_mc_kde")), orders=orders, chunk=int(get("chunk")),
                    law_resolution=float(get("law_resolution")),
                    untruncated=_tail_fallback_count(ests), integrator=str(get("integrator")),
                    step_check=bool(get("step_check")), t0=t0, T=T, span=span)


def _law_span(params: Mapping) -> tuple[float | None, float | None, float | None]:
    """(t0, T, span of the density) of a 1-D job whose density and beta the parameters name
    (t0, T as the job resolves them), else (None, None, None): only a 1-D law uses them."""
    from .. import theory

    name, beta = params.get("density"), params.get("beta")
    if name is None or beta is None or int(params["d"]) != 1:
        return None, None, None
    n, beta, d = int(params["n"]), float(beta), int(params["d"])
    t0, T = theory.stop_times(n, beta, d, params.get("t0"), params.get("T"))
    return t0, T, _span(str(name), beta, d)


@functools.lru_cache(maxsize=256)
def _span(name: str, beta: float, d: int) -> float | None:
    """Width of the density's support box on its first axis (all but ~1e-12 of the mass):
    where a law's cells must resolve sqrt(t0); None if the density has no support_box."""
    from ..densities import density

    box = getattr(density(name, beta, d), "support_box", None)
    if box is None:
        return None
    lo, hi = box()
    return float(hi[0] - lo[0])


def estimate_spec(spec) -> Estimate:
    """`estimate` for a scorerate.config.spec.JobSpec."""
    return estimate_params(spec.params())


def _tail_fallback_count(estimators) -> int:
    """How many of the estimators leave their 3-D law's tail cells to the engine's sums
    (the factory's `law_tail_fallback`: regularized and empirical, which truncate nothing)."""
    from ..estimators import base_name, resolve

    return sum(bool(getattr(resolve(base_name(e)), "law_tail_fallback", False))
               for e in estimators)


def _highorder_count(estimators) -> int:
    """How many of the estimators are highorder or a variant of it."""
    from ..estimators import base_name

    return sum(base_name(e) == "highorder" for e in estimators)


def available_memory_mb() -> float | None:
    """Memory this process may use (MB): MemAvailable of /proc/meminfo, capped by a cgroup
    v2 limit; os.sysconf where /proc is absent; None if nothing tells."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) / 1024.0
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (ValueError, OSError, AttributeError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            avail = min(avail, int(limit) / 2**20)
    except (OSError, ValueError):
        pass
    return avail


def check_fits(est: Estimate, *, mem_mb: float | None = None, what: str = "job",
               force: bool = False) -> None:
    """ValueError (one line, with the estimate) unless `est` fits the memory budget
    (`mem_mb`, else the memory available here) and MAX_WALL_S; `force` skips the check."""
    if force:
        return
    budget = mem_mb if mem_mb is not None else available_memory_mb()
    source = "--mem-mb" if mem_mb is not None else "available memory"
    hint = "; pass --force-size to run it anyway"
    if budget is not None and est.mem_mb > budget:
        raise ValueError(f"{what} needs {est.text()}: more than the {source} "
                         f"({_fmt_bytes(budget * 1e6)}){hint}")
    if not math.isfinite(est.wall_s) or est.wall_s > MAX_WALL_S:
        raise ValueError(f"{what} needs {est.text()}: longer than the "
                         f"{_fmt_time(MAX_WALL_S)} limit{hint}")


def study_job_estimate(cfg: Mapping, n: int, d: int, step_check: bool = False, *,
                       density: str | None = None, beta: float | None = None) -> Estimate:
    """The estimate of a study's job at (n, d) (of `density` and `beta` when given: a 1-D
    law's cost depends on them), on a step-check seed if step_check: the config's values
    where it sets them, else the job's defaults (spec.PARAMS), as the job itself would
    resolve them."""
    return estimate_params({**cfg, "n": n, "d": d, "step_check": int(step_check),
                            "density": density, "beta": beta})


#: a batch (dask.jobs_per_client) takes seeds of one (density, beta, d, n) while their
#: estimated total stays within this: the start-up a batch saves (~5-10 s a process) is noise
#: beside a longer job, and ten long jobs in one batch were one core's last 25 minutes
BATCH_TARGET_S = 120.0


def seeds_per_batch(est: Estimate, jobs_per_client: int) -> int:
    """Jobs of estimate `est` per batch: at most jobs_per_client, and only as many as fit
    in BATCH_TARGET_S (at least 1), so the slow cells of a study run as separate processes
    that spread over the cores instead of queueing in one."""
    return max(1, min(int(jobs_per_client), int(BATCH_TARGET_S // max(est.wall_s, 1e-9))))


def resource_request(est: Estimate, attempt: int = 1) -> tuple[int, int]:
    """(mem_mb, runtime minutes) to ask a scheduler for a job of estimate `est`: twice the
    estimate (it is good to a factor ~2), at least MIN_REQUEST_MB (what a job's imports
    and embedded Dask cluster take, with room) and 10 min, times the attempt (a retry after
    an out-of-memory or time-limit kill asks for more)."""
    mem = max(MIN_REQUEST_MB, math.ceil(2.0 * est.mem_mb))
    minutes = max(10, math.ceil(2.0 * est.wall_s / 60.0))
    return mem * int(attempt), minutes * int(attempt)


def time_limit(est: Estimate, factor: float = TIME_LIMIT_FACTOR) -> float:
    """Default wall-time limit (s) of a job of estimate `est`: `factor` times its estimated
    time, at least MIN_TIME_LIMIT_S; what ends a job that hangs (scorerate.job.deadline)."""
    return max(MIN_TIME_LIMIT_S, factor * est.wall_s)


def check_config_size(cfg: Mapping, jobs: list[dict], *, mem_mb: float | None = None) -> None:
    """Check every job of a study grid against a budget (default: this machine's memory).

    Only the largest (n, d) pairs matter, so the cost is O(grid) float arithmetic.
    Skipped when $SCORERATE_FORCE_SIZE is set (jobs meant for bigger nodes than this one).
    """
    if os.environ.get("SCORERATE_FORCE_SIZE"):
        return
    from .spec import BY_NAME, n_steps_of

    m = cfg.get("m") or BY_NAME["m"].default
    for n, d in sorted({(int(j["n"]), int(j["d"])) for j in jobs}, reverse=True):
        est = study_job_estimate(cfg, n, d)
        steps = n_steps_of({**cfg, "n": n})
        try:
            check_fits(est, mem_mb=mem_mb, what=f"a job with n={n}, d={d}, m={m}, "
                                                  f"steps={steps}")
        except ValueError as exc:
            raise ValueError(f"config: {str(exc).replace('--force-size', 'SCORERATE_FORCE_SIZE=1')}"
                             ) from None


def _fmt_bytes(b: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    for unit, scale in (("years", 365 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s:.0f} s"
