"""One job's Dask graph: the training set, the sampler per estimator and the metrics.

`run_job(spec, client)` draws the training set, samples m particles per estimator with the
reverse SDE, computes the metrics (each task keyed by the variable it fills, as declared in
scorerate.store.variables) and returns the run-store Dataset built by `store.run_dataset`. Every
random draw comes from a stream named by (study_seed, job key, purpose, ...), so the
numbers do not depend on the number of workers, threads or the chunk size.
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import UTC, datetime

import numpy as np

from .. import seeding
from ..config.spec import JobSpec, spec_from_options
from .metric_table import (
    JOB_METRICS,
    NotComputed,
    PinnedScore,
    compute_metric,
    draw_train,
    law_cells,
    law_of,
    law_p0_cells,
    nan_value,
    score_mse_at,
    stop_steps,
)
from .watch import wait_for

__all__ = ["JobSpec", "library_versions", "run_job", "spec_from_options"]


def _density(spec: JobSpec):
    from ..densities import density

    return density(spec.density, beta=spec.beta, d=spec.d)


# ---------------------------------------------------------------- tasks on the cluster

def _build_estimator(spec: JobSpec, name: str):
    """The estimator `name` on the job's training set, redrawn here from the job's key.

    Its only inputs are small and picklable, so when the worker holding it is lost the
    scheduler rebuilds it from the graph (a scattered training set would be gone for good).
    Each estimator receives only the options it declares (scorerate.estimators.build); a
    variant's inline options override the job's (highorder[order=4] ignores
    highorder_order). Every highorder variant of a job shares its noise seed, so variants
    differ by their options alone.
    """
    from ..estimators import build

    # every job parameter by its name (each estimator takes the ones it declares), plus
    # plan_m: the engine's backend choice may not depend on the chunk size (bit-identity)
    params = {**spec.params(), "plan_m": spec.m, "noise_seed": _noise_seed(spec)}
    return build(name, draw_train(spec), params)


def _noise_seed(spec: JobSpec) -> int:
    """Integer seed of the highorder estimator's noised samples, from this job's stream."""
    return int(seeding.seed_sequence(*spec.key, "highorder").generate_state(1)[0])


def _last(chains: np.ndarray) -> np.ndarray:
    """The final states of the sampler's output (it is (R + 1, m, d) with records)."""
    return chains[-1] if chains.ndim == 3 else chains


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
    estimator integrate the reverse SDE (`spec.n_steps` score calls of `chunk` queries each),
    one task per (estimator, t) estimates the score MSE with `n_mc` draws, and one per
    estimator each computes the integrated score error and the sample metrics (TV, W1,
    MMD). Memory on the client:
    O(len(estimators) m d) for the samples plus the training set.

    Parameters
    ----------
    spec : the validated job.
    client : distributed.Client (see scorerate.job.cluster.dask_client).
    progress : report progress on stderr (False: never); a count rewritten in place on a
        terminal, else log lines (see `watch.wait_for`).
    worker_timeout : seconds the job waits for a worker to join when the cluster has none
        left, before cluster.NoWorkersError.
    progress_interval : least seconds between two progress log lines.
    """
    from ..store import runstore as store
    from ..version import __version__

    started = time.perf_counter()
    show = False if progress is False else ("tty" if sys.stderr.isatty() else "log")
    train = draw_train(spec)
    graph = _graph(spec)
    values = {k: v for k, v in graph.items() if isinstance(v, NotComputed)}
    tasks = {k: v for k, v in graph.items() if k not in values}
    futures = client.compute(list(tasks.values()))
    wait_for(client, futures, show, worker_timeout=worker_timeout,
             interval=progress_interval)
    values.update(zip(tasks, client.gather(futures), strict=True))
    del futures

    results: dict[str, object] = {"train": train}
    not_computed = _reasons(spec, values)
    for name, est_values in _by_variable(spec, values).items():
        results[name] = est_values
    attrs = spec.params()
    attrs.update(
        job_key=spec.job_key,
        t_grid=list(spec.t_grid) if spec.t_grid is not None else [spec.t0, spec.T, spec.n_t],
        t_grid_kind="absolute" if spec.t_grid is not None else "geometric [t0, T]",
        scorerate_version=__version__,
        params_hash=spec.params_hash,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=library_versions(),
        n_steps=spec.n_steps,
        wall_time_s=time.perf_counter() - started,
    )
    ds = store.run_dataset(results, estimators=spec.estimators, ts=spec.ts, d=spec.d,
                           attrs=attrs)
    for name, reason in not_computed.items():
        ds[name].attrs["not_computed"] = reason
    return ds


def _reasons(spec: JobSpec, values: dict) -> dict[str, str]:
    """variable -> why it is NaN: a reason shared by all estimators once, else prefixed
    with the estimators it concerns."""
    by: dict[str, dict[str, list[str]]] = {}
    for (name, est), value in values.items():
        if isinstance(value, NotComputed):
            by.setdefault(name, {}).setdefault(value.reason, []).append(est or "")
    out = {}
    for name, reasons in by.items():
        parts = [r if set(ests) >= set(spec.estimators) or ests == [""] else
                 f"{', '.join(ests)}: {r}" for r, ests in reasons.items()]
        out[name] = "; ".join(parts)
    return out


def _by_variable(spec: JobSpec, values: dict) -> dict[str, np.ndarray]:
    """Task results keyed (variable, estimator) -> one array per variable (estimators
    stacked first); a NotComputed value becomes NaN of the variable's shape."""
    def value(name: str, est: str | None) -> np.ndarray:
        v = values[name, est]
        return nan_value(name, spec) if isinstance(v, NotComputed) else np.asarray(v)

    out = {"samples": np.stack([value("samples", e) for e in spec.estimators])}
    for m in JOB_METRICS:
        out[m.name] = (np.stack([value(m.name, e) for e in spec.estimators])
                       if m.per_estimator else value(m.name, None))
    return out


def _graph(spec: JobSpec) -> dict[tuple[str, str | None], object]:
    """The job's Dask tasks keyed by (variable, estimator), estimator None for per-job ones.

    The inputs a metric reads (metric_table.INPUTS) are built once per estimator or per
    job, and only when an applicable metric reads them; each metric of
    metric_table.JOB_METRICS is one task on its input, or NotComputed with the reason
    where it does not apply.
    """
    import dask

    from .. import sampler
    from ..densities import density

    p0 = density(spec.density, beta=spec.beta, d=spec.d)
    delayed = dask.delayed
    reasons = {m.name: m.applies(spec) for m in JOB_METRICS}
    wanted = {r for m in JOB_METRICS if reasons[m.name] is None for r in m.inputs}

    def metric_tasks(inputs: dict[str, object], est: str | None) -> None:
        for m in JOB_METRICS:
            if m.per_estimator != (est is not None):
                continue
            if reasons[m.name] is not None:
                tasks[m.name, est] = NotComputed(reasons[m.name])
                continue
            value = (inputs[m.reads] if isinstance(m.reads, str) else
                     tuple(inputs[r] for r in m.reads))
            tasks[m.name, est] = delayed(compute_metric, pure=True)(m.name, value, p0, spec)

    # task names carry the job's parameter hash: on a scheduler shared by concurrent jobs,
    # Dask would otherwise hand one job another job's estimator of the same name
    job_id = spec.params_hash[:20]
    tasks: dict[tuple[str, str | None], object] = {}
    record, _ = stop_steps(spec)
    for name in spec.estimators:
        est = delayed(_build_estimator, pure=True)(spec, name,
                                                   dask_key_name=f"estimator-{name}-{job_id}")
        score = delayed(PinnedScore, pure=True)(est, dask_key_name=f"score-{name}-{job_id}")
        # the estimator is in the key: sampler.sample names its Dask tasks from the key,
        # not from the score, so a shared key would make the estimators share one output
        chains = sampler.sample(score, m=spec.m, d=spec.d, t0=spec.t0, T=spec.T,
                                steps=spec.n_steps, integrator=spec.integrator,
                                key=(*spec.key, "sample", name), chunk=spec.chunk,
                                record=record)
        chains_d = delayed(np.asarray, pure=True)(chains)
        samples_d = delayed(_last, pure=True)(chains_d)
        tasks["samples", name] = samples_d
        inputs: dict[str, object] = {"samples": samples_d, "chains": chains_d}
        if wanted & {"law", "law_cells"}:
            inputs["law"] = delayed(law_of, pure=True)(est, spec)
        if "law_cells" in wanted:
            inputs["law_cells"] = delayed(law_cells, pure=True)(inputs["law"], p0, spec)
        if wanted & {"law_half", "law_half_cells"}:
            inputs["law_half"] = delayed(law_of, pure=True)(est, spec, spec.n_steps // 2)
        if "law_half_cells" in wanted:
            inputs["law_half_cells"] = delayed(law_p0_cells, pure=True)(inputs["law_half"],
                                                                        p0, spec)
        if "law_quarter_cells" in wanted:
            quarter = delayed(law_of, pure=True)(est, spec, spec.n_steps // 4)
            inputs["law_quarter_cells"] = delayed(law_p0_cells, pure=True)(quarter, p0, spec)
        if "law_double_cells" in wanted:
            double = delayed(law_of, pure=True)(est, spec, 2 * spec.n_steps)
            inputs["law_double_cells"] = delayed(law_p0_cells, pure=True)(double, p0, spec)
        if "score_t" in wanted:
            ts = np.unique(np.concatenate([spec.ts, spec.ts_int]))
            # one task per t, whichever grid it is on (pure=True, identical arguments)
            inputs["score_t"] = {float(t): delayed(score_mse_at, pure=True)(est, p0, float(t),
                                                                           spec)
                                 for t in ts}
        metric_tasks(inputs, name)
    job_inputs: dict[str, object] = {"p0": None}
    if "train" in wanted:
        job_inputs["train"] = delayed(draw_train, pure=True)(spec)
    metric_tasks(job_inputs, None)
    return tasks
