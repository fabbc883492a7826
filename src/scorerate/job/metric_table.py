"""The metrics one job computes: one declaration and one function per variable.

`JOB_METRICS` is the table the job graph (`scorerate.job.graph`) loops over; no metric name
appears in the job itself. Each entry names the variable it fills (declared, with dims and
units, in `scorerate.store.variables`), what it reads, the function that computes it (named as
the variable) and `applies(spec)`, which returns the reason it does not apply to a job
(benchopt's `skip`): the variable is then NaN and its `not_computed` attribute carries the
reason into the run store, the study and the report.

What a metric reads (built once per estimator or once per job by the job graph):

- "samples": the sampler's m outputs (m, d) for one estimator;
- "chains": the chains at the recorded steps (R + 1, m, d) (see `stop_steps`);
- "law": the exact law of the discretised sampler for one estimator (`scorerate.metrics.law`);
- "law_cells": that law with p0's masses and the KDE p̂_t0's masses on its
  cells, computed once for every metric that compares the law with them;
- "law_half": the same law with half the steps (`spec.n_steps // 2`), for the numerical
  error of a first-order scheme;
- "law_half_cells", "law_quarter_cells": the law at S/2 and at S/4 steps with p0's masses
  on its cells (the discretisation error of tv_law and l2_law, metrics.step_error);
- "law_double_cells": the law at 2S steps with p0's masses on its cells (the measured step
  error, metrics.step_error.step_error_check; only where spec.step_check is set);
- "score_t": {t: ScoreErrorAt (MSE, standard error, zero-region part and mass)} for one
  estimator on the union of the study's t grid and the integration grid;
- "train": the job's training set (per job);
- "p0": nothing beyond p0 itself (per job).

A metric may read several inputs (a tuple); its function then gets them as a tuple.

Adding a metric: declare its `Variable` in `scorerate.store.variables`, write its function
here, and add one `JobMetric` row. A store written before the variable existed is refused
by `store.open_run` (missing variable) and recomputed by the workflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import seeding
from ..config.spec import JobSpec
from ..store.variables import STOP_FACTORS, variable

__all__ = ["INPUTS", "JOB_METRICS", "LAW_3D", "JobMetric", "LawCells", "NotComputed",
           "PinnedGrid", "PinnedScore", "ScoreErrorAt", "compute_metric", "draw_train",
           "law_cells", "law_of", "law_p0_cells", "metric", "nan_value", "pin",
           "score_mse_at", "stop_steps"]

#: what a metric may read -> computed once per estimator (True) or once per job (False)
INPUTS: dict[str, bool] = {"samples": True, "chains": True, "law": True, "law_cells": True,
                           "law_half": True, "law_half_cells": True,
                           "law_quarter_cells": True, "law_double_cells": True,
                           "score_t": True,
                           "train": False, "p0": False}


@dataclass(frozen=True)
class NotComputed:
    """A value that was not computed, with the reason (becomes NaN in the store)."""

    reason: str


@dataclass(frozen=True)
class JobMetric:
    """One variable a job fills: what it reads, how it is computed, when it applies."""

    name: str
    reads: str | tuple[str, ...]
    compute: Callable[[object, object, JobSpec], object]
    applies: Callable[[JobSpec], str | None] = lambda spec: None

    def __post_init__(self) -> None:
        for r in self.inputs:
            if r not in INPUTS:
                raise ValueError(f"{self.name}: reads {r!r}; choose from {list(INPUTS)}")
        if len({INPUTS[r] for r in self.inputs}) != 1:
            raise ValueError(f"{self.name}: reads per-estimator and per-job inputs at once")
        variable(self.name)  # declared in scorerate.store.variables

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs it reads, as a tuple."""
        return (self.reads,) if isinstance(self.reads, str) else tuple(self.reads)

    @property
    def per_estimator(self) -> bool:
        """One value per estimator (else one per job)."""
        return INPUTS[self.inputs[0]]


# ---------------------------------------------------------------- helpers shared by metrics

def pin(fn, *args, **kwargs):
    """Call fn with numba's (thread-local) thread count at 1: Dask threads are the parallelism."""
    import numba

    numba.set_num_threads(1)
    return fn(*args, **kwargs)


def draw_train(spec: JobSpec) -> np.ndarray:
    """The job's (n, d) training set: a pure function of its key, so any worker can redraw it."""
    from ..densities import density

    p0 = density(spec.density, beta=spec.beta, d=spec.d)
    return np.ascontiguousarray(p0.sample(spec.n, rng=seeding.rng(*spec.key, "train")),
                                dtype=np.float64).reshape(spec.n, spec.d)


def stop_steps(spec: JobSpec) -> tuple[tuple[int, ...], list[int | None]]:
    """Step counts at which the chains pass t0 * f for f in STOP_FACTORS (f > 1) on the
    sampler's geometric grid, and for each factor the index of its record (None: beyond T;
    -1: the final output)."""
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
        j = int(round(spec.n_steps * (1.0 - math.log(f) / span)))
        if j < 1 or j >= spec.n_steps:
            at.append(None if j < 1 else -1)
            continue
        if j not in record:
            record.append(j)
        at.append(j)
    record.sort()
    return tuple(record), [a if a in (None, -1) else record.index(a) for a in at]


#: the 3-D law's grid follows the law's scale sqrt(t) / law_resolution, with cells up to two
#: step-noise sds wide (every step's mean and variance stay exact, metrics/law.py), coarse
#: cells growing 1.5x per cell and holding ~1e-5 of a marginal each: at n = 1e5 and 256
#: steps ~3e6 cells and ~4 min on one core (1e5, 64 steps: tv_law 0.09461 against 0.09450
#: with one cell per noise sd, growth 1.15 and 1e-6, 2.1x the time; benchmarks/README.md)
LAW_3D = {"noise_resolution": 0.5, "growth": 1.5, "tail_mass": 1e-5, "max_cells": 8_000_000}


class PinnedGrid:
    """An estimator's grid score for the law (scorerate.metrics.law takes the grid path for an
    object with grid_score that is not callable), numba pinned to one thread."""

    def __init__(self, est) -> None:
        self.est = est

    def grid_score(self, axes, t, need=None):
        return pin(self.est.grid_score, axes, t, need)


class PinnedScore:
    """Picklable score(x, t) that pins numba to one thread per Dask thread before each call."""

    def __init__(self, est) -> None:
        self.est = est

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        return pin(self.est.score, x, t)


def law_of(est, spec: JobSpec, steps: int | None = None):
    """The exact output law of the sampler driven by the estimator `est` (scorerate.metrics.law)
    with `steps` (default the job's): on the grid score where the estimator has one (cost
    independent of n) and the integrator steps by Gaussian transitions, else through
    score(x, t). NotComputed when its grid outgrows the cell budget (a diverging sampler,
    e.g. highorder at small n)."""
    from ..metrics import law

    if hasattr(est, "grid_score") and spec.integrator != "probability_flow":
        score = PinnedGrid(est)
    else:  # an estimator's score(x, t), or a score callable itself
        score = PinnedScore(est) if hasattr(est, "score") else est
    try:
        return law.output_law(score, d=spec.d, t0=spec.t0, T=spec.T,
                              steps=spec.n_steps if steps is None else steps,
                              integrator=spec.integrator, resolution=spec.law_resolution,
                              **(LAW_3D if spec.d == 3 else {}))
    except law.GridTooLarge as exc:
        return NotComputed(f"the law's grid outgrew its cell budget ({exc})")


@dataclass(frozen=True)
class LawCells:
    """A grid law with the reference masses it is compared with, on its cells (flat)."""

    law: object
    p0_mass: np.ndarray
    kde_mass: np.ndarray | None


def law_cells(grid, p0, spec: JobSpec):
    """LawCells of the job's law: p0's exact masses and the KDE p̂_t0's
    (law_distance.kde_cell_probs, from the redrawn training set); a NotComputed law
    passes through."""
    if isinstance(grid, NotComputed):
        return grid
    from ..metrics.law import cell_masses
    from ..metrics.law_distance import kde_cell_probs

    kde = kde_cell_probs(grid, draw_train(spec), spec.t0).ravel()
    return LawCells(grid, cell_masses(grid, p0), kde)


def law_p0_cells(grid, p0, spec: JobSpec):
    """A law (at S/2, S/4 or 2S steps) with p0's exact masses on its cells (no KDE masses: only
    its distances to p0 are read); a NotComputed law passes through."""
    if isinstance(grid, NotComputed):
        return grid
    from ..metrics.law import cell_masses

    return LawCells(grid, cell_masses(grid, p0), None)


class ScoreErrorAt(NamedTuple):
    """The score error at one t (score_error.score_mse with parts=True)."""

    mse: float
    se: float
    zero_part: float
    zero_mass: float


def score_mse_at(est, p0, t: float, spec: JobSpec) -> ScoreErrorAt:
    """The score MSE at one t, its standard error, the part where ŝ_t = 0 and that
    region's p_t-mass; its draws are keyed by the value of t alone, so the same t gives
    the same draws in any grid."""
    from ..metrics.score_error import score_mse as mse_of

    out = pin(mse_of, est, p0, np.array([t]), n_mc=spec.n_mc,
              key=(*spec.key, "score_mse", float(t)), parts=True)
    return ScoreErrorAt(*(float(np.asarray(v).ravel()[0]) for v in out))


def _sample_key(spec: JobSpec, name: str) -> tuple:
    return (*spec.key, "sample_metrics", name)


# ---------------------------------------------------------------- when a metric applies

def _law_applies(spec: JobSpec) -> str | None:
    if spec.d > 3:
        return "the exact output law is computed in d <= 3"
    if spec.integrator == "probability_flow" and spec.d > 1:
        return "the probability_flow law is computed in d = 1 only"
    if spec.d == 2 and spec.law_n_max_2d is not None and spec.n > spec.law_n_max_2d:
        return f"n > law_n_max_2d = {spec.law_n_max_2d} (the study's cost cap)"
    return None


def _binned_tv_applies(spec: JobSpec) -> str | None:
    return "the binned TV's Monte Carlo floor swamps any signal in d > 3" if spec.d > 3 else None


# ---------------------------------------------------------------- metrics, named as variables

def tv(samples, p0, spec: JobSpec) -> float:
    from ..metrics.samples import tv_binned

    return float(pin(tv_binned, samples, p0))


def tv_floor(_, p0, spec: JobSpec) -> float:
    from ..metrics.samples import tv_binned_floor

    return float(pin(tv_binned_floor, p0, spec.m, key=(*spec.key, "tv_floor")))


def escapes(samples, p0, spec: JobSpec) -> float:
    from ..metrics.samples import escape_fraction

    return escape_fraction(samples, p0)


def memorisation(samples, p0, spec: JobSpec) -> float:
    from ..metrics.samples import nearest_distance_ratio

    return pin(nearest_distance_ratio, samples, draw_train(spec), p0,
               key=_sample_key(spec, "memorisation"))


def memorisation_stop(chains, p0, spec: JobSpec) -> np.ndarray:
    """memorisation of the chains at each stop (NaN where the stop lies beyond T)."""
    from ..metrics.samples import nearest_distance_ratio

    _, at = stop_steps(spec)
    train = draw_train(spec)
    states = chains if chains.ndim == 3 else chains[None]
    return np.array([math.nan if a is None else
                     pin(nearest_distance_ratio, states[a], train, p0,
                         key=_sample_key(spec, "memorisation"))
                     for a in at])


def w1(samples, p0, spec: JobSpec) -> float:
    from ..metrics.samples import w1 as w1_distance

    return float(pin(w1_distance, samples, p0, key=_sample_key(spec, "w1"), n_ref=spec.n_ref))


def mmd2(samples, p0, spec: JobSpec) -> float:
    from ..metrics.samples import mmd

    return float(pin(mmd, samples, p0, key=_sample_key(spec, "mmd2"), n_ref=spec.n_ref))


def tv_law(cells: LawCells, p0, spec: JobSpec) -> float:
    from ..metrics.law import tv_masses

    return tv_masses(cells.law, cells.p0_mass)


def l2_law(cells: LawCells, p0, spec: JobSpec) -> float:
    from ..metrics.law import l2_masses

    return l2_masses(cells.law, cells.p0_mass)


def tv_sampler(cells: LawCells, p0, spec: JobSpec) -> float:
    from ..metrics.law import tv_masses

    return tv_masses(cells.law, cells.kde_mass)


def l2_sampler(cells: LawCells, p0, spec: JobSpec) -> float:
    from ..metrics.law import l2_masses

    return l2_masses(cells.law, cells.kde_mass)


def law_exact_share(cells: LawCells, p0, spec: JobSpec) -> float:
    """Share of the law's cell-scores the grid score could not vouch for, computed by the
    engine's exact (ball) sums instead (engine/grid.py); NaN for a law without grid score."""
    m = getattr(cells.law, "methods", None) or {}
    total = sum(m.get(k, 0) for k in ("grid", "bound", "exact"))
    return m.get("exact", 0) / total if total else math.nan


def law_resolution_used(cells: LawCells, p0, spec: JobSpec) -> float:
    """The law's smallest resolution over its steps (law.GridLaw.resolution): the job's
    law_resolution unless a lattice hit law.MAX_LATTICE, where the grid's error is no
    longer controlled (benchmarks/README.md, integrators: 1-D, n = 1e5, 1024 steps)."""
    return float(cells.law.resolution)


def tv_steps(laws, p0, spec: JobSpec) -> float:
    from ..metrics.law_distance import tv_between

    return tv_between(*laws)


def _step_error(cells, distance, rule: Callable[..., float] | None = None) -> float:
    """A rule of metrics.step_error (default: the three-law `step_error`) applied to the
    distance to p0 of each law in cells."""
    from ..metrics.step_error import step_error

    return (rule or step_error)(*(distance(c.law, c.p0_mass) for c in cells))


def tv_law_steps(cells, p0, spec: JobSpec) -> float:
    """The steps' share of tv_law, estimated from tv_law at S, S/2 and S/4 steps
    (metrics.step_error). Unlike tv_sampler it leaves out the continuous-time law's own
    distance from p̂_t0, which for `truncated` is not a numerical error."""
    from ..metrics.law import tv_masses

    return _step_error(cells, tv_masses)


def l2_law_steps(cells, p0, spec: JobSpec) -> float:
    """The steps' share of l2_law, as tv_law_steps."""
    from ..metrics.law import l2_masses

    return _step_error(cells, l2_masses)


def tv_law_steps_check(cells, p0, spec: JobSpec) -> float:
    """The steps' share of tv_law measured from the law at twice the steps:
    2 |tv_law(S) - tv_law(2S)| (metrics.step_error.step_error_check)."""
    from ..metrics.law import tv_masses
    from ..metrics.step_error import step_error_check

    return _step_error(cells, tv_masses, step_error_check)


def l2_law_steps_check(cells, p0, spec: JobSpec) -> float:
    """The steps' share of l2_law, as tv_law_steps_check."""
    from ..metrics.law import l2_masses
    from ..metrics.step_error import step_error_check

    return _step_error(cells, l2_masses, step_error_check)


def _check_applies(spec: JobSpec) -> str | None:
    return _law_applies(spec) or (None if spec.step_check else
                                  "computed on the study's step-check seeds only")


def _steps_applies(spec: JobSpec) -> str | None:
    return _law_applies(spec) or ("needs at least 2 steps" if spec.n_steps < 2 else None)


def _three_laws_apply(spec: JobSpec) -> str | None:
    return _law_applies(spec) or ("needs at least 4 steps" if spec.n_steps < 4 else None)


def score_mse(score_t, p0, spec: JobSpec) -> np.ndarray:
    return np.array([score_t[float(t)].mse for t in spec.ts], dtype=np.float64)


def score_mse_se(score_t, p0, spec: JobSpec) -> np.ndarray:
    return np.array([score_t[float(t)].se for t in spec.ts], dtype=np.float64)


def score_mse_zero(score_t, p0, spec: JobSpec) -> np.ndarray:
    return np.array([score_t[float(t)].zero_part for t in spec.ts], dtype=np.float64)


def score_zero_mass(score_t, p0, spec: JobSpec) -> np.ndarray:
    return np.array([score_t[float(t)].zero_mass for t in spec.ts], dtype=np.float64)


def score_mse_int(score_t, p0, spec: JobSpec) -> float:
    """Trapezoid in log t of the score MSE over the integration grid [t0, T]."""
    from ..metrics.score_error import integrate_log_t

    ts = spec.ts_int
    values = np.array([score_t[float(t)].mse for t in ts])
    return float(integrate_log_t(ts, values)[0])


def tv_kde(train, p0, spec: JobSpec) -> float:
    from ..metrics.samples import tv_kde as tv_of_kde

    value, _se = pin(tv_of_kde, train, spec.t0, p0, n_mc=spec.n_mc_kde,
                     key=(*spec.key, "tv_kde"))
    return float(value)


def l2_kde(train, p0, spec: JobSpec) -> float:
    from ..metrics.samples import l2_kde as l2_of_kde

    return float(pin(l2_of_kde, train, spec.t0, p0))


_THREE_LAWS = ("law_cells", "law_half_cells", "law_quarter_cells")

#: Every metric a job computes, in the order of scorerate.store.variables.
JOB_METRICS: tuple[JobMetric, ...] = (
    JobMetric("score_mse", "score_t", score_mse),
    JobMetric("score_mse_se", "score_t", score_mse_se),
    JobMetric("score_mse_zero", "score_t", score_mse_zero),
    JobMetric("score_zero_mass", "score_t", score_zero_mass),
    JobMetric("score_mse_int", "score_t", score_mse_int),
    JobMetric("tv_law", "law_cells", tv_law, _law_applies),
    JobMetric("l2_law", "law_cells", l2_law, _law_applies),
    JobMetric("tv_sampler", "law_cells", tv_sampler, _law_applies),
    JobMetric("l2_sampler", "law_cells", l2_sampler, _law_applies),
    JobMetric("law_exact_share", "law_cells", law_exact_share, _law_applies),
    JobMetric("law_resolution_used", "law_cells", law_resolution_used, _law_applies),
    JobMetric("tv_steps", ("law", "law_half"), tv_steps, _steps_applies),
    JobMetric("tv_law_steps", _THREE_LAWS, tv_law_steps, _three_laws_apply),
    JobMetric("l2_law_steps", _THREE_LAWS, l2_law_steps, _three_laws_apply),
    JobMetric("tv_law_steps_check", ("law_cells", "law_double_cells"), tv_law_steps_check,
              _check_applies),
    JobMetric("l2_law_steps_check", ("law_cells", "law_double_cells"), l2_law_steps_check,
              _check_applies),
    JobMetric("tv", "samples", tv, _binned_tv_applies),
    JobMetric("tv_floor", "p0", tv_floor, _binned_tv_applies),
    JobMetric("memorisation", "samples", memorisation),
    JobMetric("memorisation_stop", "chains", memorisation_stop),
    JobMetric("escapes", "samples", escapes),
    JobMetric("w1", "samples", w1),
    JobMetric("mmd2", "samples", mmd2),
    JobMetric("tv_kde", "train", tv_kde),
    JobMetric("l2_kde", "train", l2_kde),
)
_BY_NAME = {m.name: m for m in JOB_METRICS}


def metric(name: str) -> JobMetric:
    """The declaration of the job metric `name`."""
    return _BY_NAME[name]


def compute_metric(name: str, value, p0, spec: JobSpec):
    """metric(name).compute on its input (a tuple of inputs for a metric that reads
    several), passing a NotComputed input through (a Dask task)."""
    m = metric(name)
    values = (value,) if isinstance(m.reads, str) else tuple(value)
    for v in values:
        if isinstance(v, NotComputed):
            return v
    return m.compute(value, p0, spec)


def nan_value(name: str, spec: JobSpec) -> np.ndarray:
    """NaN shaped like one estimator's (or the job's) value of variable `name`."""
    sizes = {"t": len(spec.ts), "stop": len(STOP_FACTORS)}
    dims = [d for d in variable(name).dims if d != "estimator"]
    return np.full(tuple(sizes[d] for d in dims), np.nan)
