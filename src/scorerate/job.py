"""One job's Dask graph: the training set, the sampler per estimator and the metrics.

`run_job(spec, client)` draws the training set, samples m particles per estimator with the
reverse SDE, computes the metrics (each task keyed by the variable it fills, as declared in
scorerate.variables) and returns the run-store Dataset built by `store.run_dataset`. Every
random draw comes from a stream named by (study_seed, job key, purpose, ...), so the
numbers do not depend on the number of workers, threads or the chunk size.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from datetime import UTC, datetime

import numpy as np

from . import seeding
from .spec import JobSpec, spec_from_options

__all__ = ["JobSpec", "library_versions", "run_job", "spec_from_options"]


def _density(spec: JobSpec):
    from .densities import density

    return density(spec.density, beta=spec.beta, d=spec.d)


# ---------------------------------------------------------------- tasks on the cluster

def _pin(fn, *args, **kwargs):
    """Call fn with numba's (thread-local) thread count at 1: Dask threads are the parallelism."""
    import numba

    numba.set_num_threads(1)
    return fn(*args, **kwargs)


class _PinnedScore:
    """Picklable score(x, t) that pins numba to one thread per Dask thread before each call."""

    def __init__(self, est) -> None:
        self.est = est

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        return _pin(self.est.score, x, t)


def _draw_train(spec: JobSpec) -> np.ndarray:
    """The job's (n, d) training set: a pure function of its key, so any worker can redraw it."""
    p0 = _density(spec)
    return np.ascontiguousarray(p0.sample(spec.n, rng=seeding.rng(*spec.key, "train")),
                                dtype=np.float64).reshape(spec.n, spec.d)


def _build_estimator(spec: JobSpec, name: str):
    """The estimator `name` on the job's training set, redrawn here from the job's key.

    Its only inputs are small and picklable, so when the worker holding it is lost the
    scheduler rebuilds it from the graph (a scattered training set would be gone for good).
    Each estimator receives only the options it declares (scorerate.estimators.build); a
    variant's inline options override the job's (highorder[order=4] ignores
    highorder_order). Every highorder variant of a job shares its noise seed, so variants
    differ by their options alone.
    """
    from .estimators import build

    # plan_m: the engine's backend choice may not depend on the chunk size (bit-identity)
    params = {"c_rho": spec.c_rho, "eps": spec.eps, "backend": spec.backend,
              "rtol": spec.rtol, "plan_m": spec.m, "order": spec.highorder_order,
              "C": spec.highorder_C, "noise_seed": _noise_seed(spec)}
    return build(name, _draw_train(spec), params)


def _noise_seed(spec: JobSpec) -> int:
    """Integer seed of the highorder estimator's noised samples, from this job's stream."""
    return int(seeding.seed_sequence(*spec.key, "highorder").generate_state(1)[0])


def _score_mse_at(est, p0, t: float, n_mc: int, key: tuple) -> tuple[float, float]:
    from . import metrics

    mse, se = _pin(metrics.score_mse, est, p0, np.array([t]), n_mc=n_mc, key=key)
    return float(np.asarray(mse).ravel()[0]), float(np.asarray(se).ravel()[0])


def _sample_metric(name: str, samples: np.ndarray, p0, spec: JobSpec) -> float:
    """One metric of the output samples; reference draws keyed by (job key, name)."""
    from . import metrics

    key = (*spec.key, "sample_metrics", name)
    if name == "tv":
        return float(_pin(metrics.tv_binned, samples, p0))
    if name == "escapes":
        return metrics.escape_fraction(samples, p0)
    if name == "memorisation":
        return _pin(metrics.nearest_distance_ratio, samples, _draw_train(spec), p0, key=key)
    fn = {"w1": metrics.w1, "mmd2": metrics.mmd}[name]
    return float(_pin(fn, samples, p0, key=key, n_ref=spec.n_ref))


def _stop_steps(spec: JobSpec) -> tuple[tuple[int, ...], list[int | None]]:
    """Step counts at which the chains pass t0 * f for f in STOP_FACTORS (f > 1) on the
    sampler's geometric grid, and for each factor the index of its record (None: beyond T;
    -1: the final output)."""
    from .variables import STOP_FACTORS

    span = math.log(spec.T / spec.t0)
    record: list[int] = []
    at: list[int | None] = []
    for f in STOP_FACTORS:
        if f == 1.0:
            at.append(-1)
            continue
        if math.log(f) > span:
            at.append(None)
            continue
        j = int(round(spec.steps * (1.0 - math.log(f) / span)))
        if j < 1 or j >= spec.steps:
            at.append(None if j < 1 else -1)
            continue
        if j not in record:
            record.append(j)
        at.append(j)
    record.sort()
    return tuple(record), [a if a in (None, -1) else record.index(a) for a in at]


def _last(chains: np.ndarray) -> np.ndarray:
    """The final states of the sampler's output (it is (R + 1, m, d) with records)."""
    return chains[-1] if chains.ndim == 3 else chains


def _memorisation_stop(chains: np.ndarray, at: list[int | None], p0, spec: JobSpec
                       ) -> np.ndarray:
    """metrics.nearest_distance_ratio of the chains at each stop (NaN where at is None)."""
    from . import metrics

    train = _draw_train(spec)
    key = (*spec.key, "sample_metrics", "memorisation")
    states = chains if chains.ndim == 3 else chains[None]
    return np.array([math.nan if a is None else
                     _pin(metrics.nearest_distance_ratio, states[a], train, p0, key=key)
                     for a in at])


def _law_metrics(score, p0, spec: JobSpec) -> tuple[float, float]:
    """(tv_law, l2_law): TV and L2 between p0 and the exact law of the discretised sampler
    (scorerate.law, d <= 2; probability flow in d = 1 only); NaN where it is not computed."""
    from . import law

    if spec.d > 2 or (spec.integrator == "probability_flow" and spec.d > 1):
        return math.nan, math.nan
    if spec.d == 2 and spec.law_n_max_2d is not None and spec.n > spec.law_n_max_2d:
        return math.nan, math.nan  # the study's cost cap (spec.PARAMS law_n_max_2d)
    try:
        grid = law.output_law(score, d=spec.d, t0=spec.t0, T=spec.T, steps=spec.steps,
                              integrator=spec.integrator, resolution=spec.law_resolution)
    except law.GridTooLarge:  # a diverging sampler (e.g. highorder at small n): not measured
        return math.nan, math.nan
    return float(law.tv_law(grid, p0)), float(law.l2_law(grid, p0))


def _kde_metrics(spec: JobSpec, p0, t0: float, n_mc: int, key: tuple) -> tuple[float, float]:
    from . import metrics

    train = _draw_train(spec)  # redrawn, not shipped: see _build_estimator
    tv, _se = _pin(metrics.tv_kde, train, t0, p0, n_mc=n_mc, key=(*key, "tv_kde"))
    l2 = _pin(metrics.l2_kde, train, t0, p0)
    return float(tv), float(l2)


def _integrate(ts: np.ndarray, pairs: list[tuple[float, float]]) -> float:
    """Trapezoid in log t of the per-t score MSE values (metrics.integrate_log_t)."""
    from . import metrics

    return float(metrics.integrate_log_t(ts, np.array([p[0] for p in pairs]))[0])


def _wait(client, futures: list, show: bool | str, *, worker_timeout: float = 60.0,
          interval: float = 10.0, poll: float = 0.25) -> None:
    """Block until all futures finish, reporting progress on stderr; raise on a lost cluster.

    `show`: False (silent), "tty" (one `\\r`-rewritten count) or "log"/True (for a log file:
    the scheduler and dashboard at start, a line with done/total tasks and the elapsed time
    whenever at least 10% more tasks are done and `interval` seconds have passed, and a
    final line). A task's exception is re-raised here. Results lost with a worker are
    recomputed by the scheduler from the graph; if no worker at all is left for
    `worker_timeout` seconds, cluster.NoWorkersError names the scheduler. Cost: one
    scheduler round trip per second for the worker count.
    """
    import threading

    from .cluster import NoWorkersError, dashboard_link

    mode = "log" if show is True else show
    total, started = len(futures), time.monotonic()
    address = getattr(client.scheduler, "address", None) or "?"
    if mode == "log":
        link = dashboard_link(client)
        sys.stderr.write(f"scorerate run-job: {total} result tasks on the Dask scheduler at "
                         f"{address}" + (f"; dashboard {link}" if link else "") + "\n")
        sys.stderr.flush()
    shown_done, shown_at, checked_at, empty_since = 0, started, -math.inf, None
    finished = threading.Event()  # set by any future finishing; else look again after `poll`
    for fut in futures:
        fut.add_done_callback(lambda _fut: finished.set())
    while True:
        finished.wait(poll)
        finished.clear()
        done = 0
        for fut in futures:
            if fut.status in ("error", "cancelled"):
                fut.result()  # re-raises the task's exception here
            done += fut.status == "finished"
        now = time.monotonic()
        if mode == "tty":
            sys.stderr.write(f"\rscorerate run-job: {done}/{total} result tasks")
            sys.stderr.flush()
        elif (mode == "log" and done < total and done - shown_done >= total / 10
              and now - shown_at >= interval):
            sys.stderr.write(f"scorerate run-job: {done}/{total} result tasks, "
                             f"{now - started:.0f} s\n")
            sys.stderr.flush()
            shown_done, shown_at = done, now
        if done == total:
            break
        if now - checked_at >= 1.0:
            checked_at = now
            try:
                workers = len(client.nthreads())
            except OSError as exc:
                raise ConnectionError(f"lost the Dask scheduler at {address}: {exc}") from None
            if workers:
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= worker_timeout:
                raise NoWorkersError(
                    f"no Dask workers left on the scheduler at {address}: none joined within "
                    f"{worker_timeout:g} s (--worker-timeout); {done}/{total} tasks done")
    if mode == "tty":
        sys.stderr.write("\n")
    elif mode == "log":
        sys.stderr.write(f"scorerate run-job: {total}/{total} result tasks, "
                         f"{time.monotonic() - started:.0f} s\n")
    sys.stderr.flush()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers (for the store's attrs)."""
    import importlib

    out = {"python": platform.python_version()}
    for mod in ("numpy", "scipy", "numba", "dask", "distributed", "xarray", "zarr"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # a missing optional library is recorded, not fatal
            out[mod] = "unavailable"
    return out


def run_job(spec: JobSpec, client, *, progress: bool | None = None,
            worker_timeout: float = 60.0, progress_interval: float = 10.0):
    """Run one job on `client` (a distributed.Client) and return its run-store Dataset.

    Work: on the cluster, one task per estimator redraws the training set from the job's
    key and builds the estimator (nothing is scattered: a lost worker's results are
    recomputed from the graph, with the same numbers), `spec.m / spec.chunk` tasks per
    estimator integrate the reverse SDE (`spec.steps` score calls of `chunk` queries each),
    one task per (estimator, t) estimates the score MSE with `n_mc` draws, and one per
    estimator each computes the integrated score error and the sample metrics (TV, W1,
    MMD). Memory on the client:
    O(len(estimators) m d) for the samples plus the training set.

    Parameters
    ----------
    spec : the validated job.
    client : distributed.Client (see scorerate.cluster.dask_client).
    progress : report progress on stderr (False: never); a count rewritten in place on a
        terminal, else log lines (see `_wait`).
    worker_timeout : seconds the job waits for a worker to join when the cluster has none
        left, before cluster.NoWorkersError.
    progress_interval : least seconds between two progress log lines.
    """
    from . import __version__, store

    started = time.perf_counter()
    show = False if progress is False else ("tty" if sys.stderr.isatty() else "log")
    train = _draw_train(spec)
    tasks = _graph(spec)
    futures = client.compute(list(tasks.values()))
    _wait(client, futures, show, worker_timeout=worker_timeout, interval=progress_interval)
    values = dict(zip(tasks, client.gather(futures), strict=True))
    del futures

    per_est = {name: np.stack([np.asarray(values[name, e]) for e in spec.estimators])
               for name in {name for name, e in tasks if e is not None}}
    # (variable, None) tasks are per-job scalars
    mse = per_est.pop("score_mse")
    lawv = per_est.pop("law")
    per_est["tv_law"], per_est["l2_law"] = lawv[:, 0], lawv[:, 1]
    results = {"train": train, **per_est, "score_mse": mse[..., 0], "score_mse_se": mse[..., 1]}
    results["tv_kde"], results["l2_kde"] = values["kde", None]
    results["tv_floor"] = values["tv_floor", None]
    attrs = spec.params()
    attrs.update(
        job_key=spec.job_key,
        t_grid=list(spec.t_grid) if spec.t_grid is not None else [spec.t0, spec.T, spec.n_t],
        t_grid_kind="absolute" if spec.t_grid is not None else "geometric [t0, T]",
        scorerate_version=__version__,
        params_hash=spec.params_hash,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=library_versions(),
        wall_time_s=time.perf_counter() - started,
    )
    return store.run_dataset(results, estimators=spec.estimators, ts=spec.ts, d=spec.d,
                             attrs=attrs)


def _graph(spec: JobSpec) -> dict[tuple[str, str | None], object]:
    """The job's Dask tasks keyed by (variable, estimator); ("kde", None) gives (tv, l2)."""
    import dask

    from . import metrics, sampler

    p0 = _density(spec)
    delayed = dask.delayed

    def mse_at(est, t: float):
        # keyed by the value of t alone: the same t gives the same draws in any grid, and
        # a t shared by the two grids is one task (pure=True, identical arguments)
        return delayed(_score_mse_at, pure=True)(est, p0, float(t), spec.n_mc,
                                                 (*spec.key, "score_mse", float(t)))

    # task names carry the job's parameter hash: on a scheduler shared by concurrent jobs,
    # Dask would otherwise hand one job another job's estimator of the same name
    job_id = spec.params_hash[:20]
    tasks: dict[tuple[str, str | None], object] = {}
    for name in spec.estimators:
        est = delayed(_build_estimator, pure=True)(spec, name,
                                                   dask_key_name=f"estimator-{name}-{job_id}")
        score = delayed(_PinnedScore, pure=True)(est, dask_key_name=f"score-{name}-{job_id}")
        # the estimator is in the key: sampler.sample names its Dask tasks from the key,
        # not from the score, so a shared key would make the estimators share one output
        record, at = _stop_steps(spec)
        chains = sampler.sample(score, m=spec.m, d=spec.d, t0=spec.t0, T=spec.T,
                                steps=spec.steps, integrator=spec.integrator,
                                key=(*spec.key, "sample", name), chunk=spec.chunk,
                                record=record)
        chains_d = delayed(np.asarray, pure=True)(chains)
        samples_d = delayed(_last, pure=True)(chains_d)
        tasks["samples", name] = samples_d
        tasks["memorisation_stop", name] = delayed(_memorisation_stop, pure=True)(
            chains_d, at, p0, spec)
        tasks["law", name] = delayed(_law_metrics, pure=True)(score, p0, spec)
        tasks["score_mse", name] = delayed(np.array, pure=True)([mse_at(est, t)
                                                                 for t in spec.ts])
        tasks["score_mse_int", name] = delayed(_integrate, pure=True)(
            spec.ts_int, [mse_at(est, t) for t in spec.ts_int])
        for metric in ("tv", "w1", "mmd2", "memorisation", "escapes"):
            tasks[metric, name] = delayed(_sample_metric, pure=True)(metric, samples_d, p0, spec)
    tasks["tv_floor", None] = delayed(_pin, pure=True)(metrics.tv_binned_floor, p0, spec.m,
                                                       key=(*spec.key, "tv_floor"))
    tasks["kde", None] = delayed(_kde_metrics, pure=True)(spec, p0, spec.t0, spec.n_mc_kde,
                                                          spec.key)
    return tasks
