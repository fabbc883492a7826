"""One (density, beta, d, n, seed) job: its validated parameters and its run on a Dask client.

`JobSpec` holds every parameter, checked eagerly and resolved to numbers (t0, T from the
theory when not given); `run_job(spec, client)` draws the training set, samples m
particles per estimator with the reverse SDE, computes the metrics and returns the
run-store Dataset (schema in scorerate.store). Every random draw comes from a stream
named by (study_seed, job key, purpose, ...), so the numbers do not depend on the
number of workers, threads or the chunk size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from . import seeding, theory

__all__ = ["DENSITIES", "ESTIMATORS", "HASH_EXCLUDED", "INTEGRATORS", "JobSpec", "run_job"]

#: the contract's names; the registries in densities / estimators / sampler are the truth
DENSITIES = ("sym_beta", "gauss_mix", "laplace", "sym_beta_mix")
ESTIMATORS = ("truncated", "regularized", "empirical", "highorder")
INTEGRATORS = ("euler_maruyama", "ancestral", "probability_flow")
#: fields that do not change any number of the job (so not part of params_hash)
HASH_EXCLUDED = frozenset({"chunk"})


def _int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _pos(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float | np.number)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _density(name: str, beta: float, d: int):
    """The ground-truth density; ValueError naming the valid names or the beta range."""
    from .densities import density

    return density(name, beta=beta, d=d)


@dataclass(frozen=True)
class JobSpec:
    """Every parameter of one job, validated on construction (ValueError with the reason).

    t0 and T default to the theory's n^(-2/(2b+d)) and n^(2b/(2b+d)); the score-MSE grid
    is geometric over [t0, T] with `n_t` points unless `t_grid` = (tmin, tmax, num) gives
    an absolute grid (one grid for a whole study, so MSE compares across n at fixed t).
    """

    density: str
    beta: float
    d: int
    n: int
    seed: int = 0
    study_seed: int = 0
    estimators: tuple[str, ...] = ESTIMATORS
    m: int = 1000
    steps: int = 64
    integrator: str = "euler_maruyama"
    c_rho: float = 1.0
    eps: float | None = None
    t0: float | None = None
    T: float | None = None
    chunk: int = 250
    t_grid: tuple[float, float, int] | None = None
    n_t: int = 12
    n_mc: int = 1000
    n_ref: int = 2000
    n_int: int = 12
    n_mc_kde: int = 20000
    backend: str = "auto"
    rtol: float = 1e-6
    highorder_order: int | None = None
    highorder_C: float | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.density, str) or not self.density:
            raise ValueError(f"density must be a name, one of {list(DENSITIES)}")
        d = _int("d", self.d, 1)
        s(self, "d", d)
        if (isinstance(self.beta, bool) or not isinstance(self.beta, int | float | np.number)
                or not math.isfinite(self.beta) or self.beta <= 0):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta!r}")
        s(self, "beta", float(self.beta))
        _density(self.density, self.beta, d)  # unknown name / unsupported beta -> ValueError
        n = _int("n", self.n, 2)
        s(self, "n", n)
        s(self, "seed", _int("seed", self.seed, 0))
        s(self, "study_seed", _int("study_seed", self.study_seed, 0))
        ests = (self.estimators,) if isinstance(self.estimators, str) else tuple(self.estimators)
        valid = _valid_estimators()
        bad = [e for e in ests if e not in valid]
        if not ests or bad:
            raise ValueError(f"unknown estimator(s) {bad or '(none given)'}; "
                             f"choose from {list(valid)}")
        if len(set(ests)) != len(ests):
            raise ValueError(f"estimators listed twice: {list(ests)}")
        s(self, "estimators", ests)
        for name in ("m", "steps", "chunk", "n_t"):
            s(self, name, _int(name, getattr(self, name), 1))
        for name in ("n_mc", "n_ref", "n_mc_kde"):
            s(self, name, _int(name, getattr(self, name), 2))
        s(self, "n_int", _int("n_int", self.n_int, 2))
        valid_int = _valid_integrators()
        if self.integrator not in valid_int:
            raise ValueError(f"unknown integrator {self.integrator!r}; choose one of "
                             f"{list(valid_int)}")
        s(self, "c_rho", _pos("c_rho", self.c_rho))
        s(self, "eps", _pos("eps", self.eps, allow_none=True))
        t0 = theory.t0_early_stop(n, self.beta, d) if self.t0 is None else _pos("t0", self.t0)
        T = theory.T_horizon(n, self.beta, d) if self.T is None else _pos("T", self.T)
        if not t0 < T:
            raise ValueError(f"need t0 < T, got t0={t0!r} >= T={T!r}")
        s(self, "t0", float(t0))
        s(self, "T", float(T))
        if self.t_grid is not None:
            try:
                tmin, tmax, num = self.t_grid
            except (TypeError, ValueError):
                raise ValueError(f"t_grid must be (tmin, tmax, num), got {self.t_grid!r}") from None
            tmin, tmax = _pos("t_grid tmin", tmin), _pos("t_grid tmax", tmax)
            num = _int("t_grid num", num, 1)
            if not (tmin < tmax or (tmin == tmax and num == 1)):
                raise ValueError(f"t_grid needs tmin < tmax, got {tmin!r}, {tmax!r}")
            s(self, "t_grid", (tmin, tmax, num))
        from .engine import BACKENDS

        if self.backend != "auto" and self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose 'auto' or one of "
                             f"{sorted(BACKENDS)}")
        if not (isinstance(self.rtol, float | int) and 0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol!r}")
        s(self, "rtol", float(self.rtol))
        if self.highorder_order is not None:
            s(self, "highorder_order", _int("highorder_order", self.highorder_order, 1))
        s(self, "highorder_C", _pos("highorder_C", self.highorder_C, allow_none=True))

    @property
    def job_key(self) -> str:
        """seeding.job_key of this job."""
        return seeding.job_key(self.density, self.beta, self.d, self.n, self.seed)

    @property
    def key(self) -> tuple:
        """Root of every random stream of this job: (study_seed, job_key)."""
        return (self.study_seed, self.job_key)

    @property
    def ts(self) -> np.ndarray:
        """The score-MSE time grid (geometric, increasing)."""
        if self.t_grid is not None:
            tmin, tmax, num = self.t_grid
            return np.geomspace(tmin, tmax, num)
        return np.geomspace(self.t0, self.T, self.n_t)

    @property
    def ts_int(self) -> np.ndarray:
        """Nodes of the integrated score error: n_int geometric points over [t0, T]."""
        return np.geomspace(self.t0, self.T, self.n_int)

    def params(self) -> dict:
        """All parameters as plain JSON-able values (resolved t0, T; tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name.startswith("_"):
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @property
    def params_hash(self) -> str:
        """sha256 of the canonical JSON of every parameter that affects the numbers."""
        p = {k: v for k, v in self.params().items() if k not in HASH_EXCLUDED}
        text = json.dumps(p, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


def _valid_estimators() -> tuple[str, ...]:
    try:
        from . import estimators
    except ImportError:  # module not there yet: fall back to the contract's names
        return ESTIMATORS
    for attr in ("KINDS", "ESTIMATORS"):
        names = getattr(estimators, attr, None)
        if names:
            return tuple(names)
    return ESTIMATORS


def _valid_integrators() -> tuple[str, ...]:
    try:
        from .sampler import INTEGRATORS as names
    except ImportError:
        return INTEGRATORS
    return tuple(names)


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
    p0 = _density(spec.density, spec.beta, spec.d)
    return np.ascontiguousarray(p0.sample(spec.n, rng=seeding.rng(*spec.key, "train")),
                                dtype=np.float64).reshape(spec.n, spec.d)


def _build_estimator(spec: JobSpec, kind: str):
    """The `kind` estimator on the job's training set, redrawn here from the job's key.

    Its only inputs are small and picklable, so when the worker holding it is lost the
    scheduler rebuilds it from the graph (a scattered training set would be gone for good).
    """
    from .estimators import KernelScore

    train = _draw_train(spec)

    # plan_m: the engine's backend choice may not depend on the chunk size (bit-identity)
    kw: dict = {"kind": kind, "c_rho": spec.c_rho, "backend": spec.backend, "rtol": spec.rtol,
                "plan_m": spec.m}
    if kind == "regularized":
        kw["eps"] = spec.eps
    if kind == "highorder":
        kw.update(order=spec.highorder_order, C=spec.highorder_C,
                  noise_seed=_noise_seed(spec))
    return KernelScore(train, **kw)


def _noise_seed(spec: JobSpec) -> int:
    """Integer seed of the highorder estimator's noised samples, from this job's stream."""
    return int(seeding.seed_sequence(*spec.key, "highorder").generate_state(1)[0])


def _score_mse_at(est, p0, t: float, n_mc: int, key: tuple) -> tuple[float, float]:
    from . import metrics

    mse, se = _pin(metrics.score_mse, est, p0, np.array([t]), n_mc=n_mc, key=key)
    return float(np.asarray(mse).ravel()[0]), float(np.asarray(se).ravel()[0])


def _sample_metric(name: str, samples: np.ndarray, p0, key: tuple, n_ref: int) -> float:
    """One of tv_binned, w1, mmd on the output samples (reference draws keyed by `key`)."""
    from . import metrics

    if name == "tv":
        return float(_pin(metrics.tv_binned, samples, p0))
    fn = {"w1": metrics.w1, "mmd": metrics.mmd}[name]
    return float(_pin(fn, samples, p0, key=(*key, name), n_ref=n_ref))


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
    import dask
    import xarray as xr

    from . import __version__, sampler

    started = time.perf_counter()
    show = False if progress is False else ("tty" if sys.stderr.isatty() else "log")
    p0 = _density(spec.density, spec.beta, spec.d)
    train = _draw_train(spec)
    ts, ts_int = spec.ts, spec.ts_int
    delayed = dask.delayed

    def mse_at(est, t: float):
        # keyed by the value of t alone: the same t gives the same draws in any grid, and
        # a t shared by the two grids is one task (pure=True, identical arguments)
        return delayed(_score_mse_at, pure=True)(est, p0, float(t), spec.n_mc,
                                                 (*spec.key, "score_mse", float(t)))

    # task names carry the job's parameter hash: on a scheduler shared by concurrent jobs,
    # Dask would otherwise hand one job another job's estimator of the same name
    job_id = spec.params_hash[:20]
    samples_l, mse_l, int_l, smp_l = [], [], [], []
    for kind in spec.estimators:
        est = delayed(_build_estimator, pure=True)(spec, kind,
                                                   dask_key_name=f"estimator-{kind}-{job_id}")
        score = delayed(_PinnedScore, pure=True)(est, dask_key_name=f"score-{kind}-{job_id}")
        samples = sampler.sample(score, m=spec.m, d=spec.d, t0=spec.t0, T=spec.T,
                                 steps=spec.steps, integrator=spec.integrator,
                                 key=(*spec.key, "sample", kind), chunk=spec.chunk)
        # the estimator is in the key: sampler.sample names its Dask tasks from the key,
        # not from the score, so a shared key would make the estimators share one output
        samples_d = delayed(np.asarray, pure=True)(samples)
        samples_l.append(samples_d)
        mse_l.append([mse_at(est, t) for t in ts])
        int_l.append(delayed(_integrate, pure=True)(ts_int, [mse_at(est, t) for t in ts_int]))
        smp_l.append([delayed(_sample_metric, pure=True)(name, samples_d, p0,
                                                         (*spec.key, "sample_metrics"),
                                                         spec.n_ref)
                      for name in ("tv", "w1", "mmd")])
    kde = delayed(_kde_metrics, pure=True)(spec, p0, spec.t0, spec.n_mc_kde, spec.key)
    k, K = len(spec.estimators), len(ts)
    flat = [*samples_l, *(x for row in mse_l for x in row), *int_l,
            *(x for row in smp_l for x in row), kde]
    futures = client.compute(flat)
    _wait(client, futures, show, worker_timeout=worker_timeout, interval=progress_interval)
    res = client.gather(futures)
    del futures
    samples_np = np.stack(res[:k])
    mse = np.array(res[k:k + k * K], dtype=np.float64).reshape(k, K, 2)
    integ = np.array(res[k + k * K:2 * k + k * K], dtype=np.float64)
    smp = np.array(res[2 * k + k * K:5 * k + k * K], dtype=np.float64).reshape(k, 3)
    tv_kde, l2_kde = res[-1]

    est_dim, t_dim = ("estimator",), ("estimator", "t")
    ds = xr.Dataset(
        {
            "train": (("train", "dim"), train),
            "samples": (("estimator", "sample", "dim"), samples_np),
            "score_mse": (t_dim, mse[..., 0]),
            "score_mse_se": (t_dim, mse[..., 1]),
            "score_mse_int": (est_dim, integ),
            "tv": (est_dim, smp[:, 0]),
            "w1": (est_dim, smp[:, 1]),
            "mmd": (est_dim, smp[:, 2]),
            "tv_kde": ((), float(tv_kde)),
            "l2_kde": ((), float(l2_kde)),
        },
        coords={"estimator": list(spec.estimators), "t": ts, "dim": np.arange(spec.d)},
    )
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
    ds.attrs = attrs
    _describe(ds)
    return ds


def _describe(ds) -> None:
    """Units and meanings on the variables, for whoever opens the store later."""
    doc = {
        "train": "training points X_i ~ p0",
        "samples": "reverse-SDE output at t0, per estimator",
        "score_mse": "E_{x~p_t}|s_hat_t(x) - s_t(x)|^2 (Monte Carlo)",
        "score_mse_se": "standard error of score_mse",
        "score_mse_int": "int_{t0}^{T} score MSE dt",
        "tv": "TV(p0, law of samples) on exact bins (NaN for d > 3)",
        "w1": "1-Wasserstein(p0, samples); sliced for d > 1",
        "mmd": "unbiased MMD estimate (Gaussian kernel) between samples and p0",
        "tv_kde": "TV(p0, Gaussian KDE p_hat_{t0}) (Monte Carlo)",
        "l2_kde": "L2 distance between p0 and p_hat_{t0}",
    }
    for name, text in doc.items():
        ds[name].attrs["description"] = text


def spec_from_options(**options) -> JobSpec:
    """JobSpec from keyword options, dropping those left at None so defaults apply."""
    fields = {f.name for f in dataclasses.fields(JobSpec)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"unknown job option(s) {unknown}")
    keep = {k: v for k, v in options.items()
            if v is not None or k in ("t0", "T", "eps", "t_grid")}
    return JobSpec(**keep)

