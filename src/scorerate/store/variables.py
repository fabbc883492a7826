"""Every variable a run store holds, declared once: dims, meaning, units, label and theory.

`VARIABLES` is the single table that the store schema (`store.SCHEMA`), the descriptions
written on the stores, the aggregation (the metrics it collects), the rate fits (which
metrics are fitted in n, against which exponent) and the report (labels) all read.
Adding a metric means adding one `Variable` here plus the code that computes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .. import theory
from ..config.file import POINT_DIMS

__all__ = ["COORDINATES", "ESCAPE_MARGIN", "METRICS", "RATE_METRICS", "RUN_COORDS", "STOP_FACTORS",
           "STUDY_VARIABLES", "VARIABLES", "Variable", "coordinate_attrs", "exponent",
           "variable"]


@dataclass(frozen=True)
class Variable:
    """One variable of a run store.

    role: "data" (training points, samples: stay in the run stores), "metric" (an error,
    collected into the study), "error" (the standard error of another variable),
    "diagnostic" (collected, never fitted). exponent(beta, d): the theory's exponent in n,
    None where no theorem bounds it. fit_n: its log-log slope in n is fitted. floor: the
    variable holding the value it cannot go below by construction (its Monte Carlo floor).
    prediction: the study variable (STUDY_VARIABLES) holding its finite-n prediction.
    numerical: the variable bounding its numerical error (the sampler's own error: by the
    triangle inequality |TV(law, p0) - TV(p̂_t0, p0)| <= TV(law, p̂_t0)); a fit in n whose
    numerical error is not well below its statistical error gets no verdict (rates).
    numerical_check: the variable measuring that error more sharply on a few seeds (a law
    at twice the steps); where an n has it, it replaces `numerical` there.
    fit_rms: the slope is that of the root mean square over seeds (half the slope of the
    mean of squares), as its prediction is sqrt(E X^2): the mean of X lies below it by a
    Jensen gap that shrinks with n and would tilt the slope.
    units: a UDUNITS string, "1" for the dimensionless quantities all of these are (the data
    have no physical unit); scaling: how the value scales with the data's length unit
    ("length^-2": it has the dimension of 1 / x^2), shown in figure labels.
    """

    name: str
    dims: tuple[str, ...]
    long_name: str
    description: str
    units: str | None = "1"
    label: str = ""
    role: str = "metric"
    exponent: Callable[[float, int], float] | None = None
    fit_n: bool = False
    floor: str | None = None
    prediction: str | None = None
    fit_rms: bool = False
    numerical: str | None = None
    numerical_check: str | None = None
    scaling: str = ""

    @property
    def attrs(self) -> dict[str, str]:
        """CF attributes for the stores: long_name, units (a UDUNITS string; none on what is
        no physical quantity), description, and `scaling`, how the value scales with the
        data's length unit (the data are dimensionless, so the CF units are '1')."""
        out = {"long_name": self.long_name, "description": self.description}
        if self.units is not None:
            out["units"] = self.units
        if self.scaling:
            out["scaling"] = self.scaling
        return out


_EST = ("estimator",)
#: an output is an escape when it lies farther than this fraction of the support box's
#: width outside the box (p0.support_box holds all but ~1e-12 of p0's mass)
ESCAPE_MARGIN = 0.1
#: the stopping times, as multiples of t0, at which memorisation_stop looks at the chains
STOP_FACTORS: tuple[float, ...] = tuple(10.0 ** k for k in range(9))

#: Every variable of a run store, in the order the report lists them.
VARIABLES: tuple[Variable, ...] = (
    Variable("train", ("train", "dim"), "training points", "the n training points X_i ~ p0",
             role="data"),
    Variable("samples", ("estimator", "sample", "dim"), "generated samples",
             "reverse-SDE output at t0, m particles per estimator", role="data"),
    Variable("score_mse", ("estimator", "t"), "score mean squared error",
             "E_{x~p_t}|s_hat_t(x) - s_t(x)|^2 at each t of the grid, by importance "
             "sampling from a defensive mixture of p_t and wider p0 * N(0, lambda t I) "
             "(scorerate.metrics.score_error), so the truncation region is not missed",
             scaling="length^-2", label="score MSE", exponent=theory.score_mse_n_exponent),
    Variable("score_mse_se", ("estimator", "t"), "standard error of score_mse",
             "the importance-sampling estimator's own standard error of score_mse",
             scaling="length^-2", role="error"),
    Variable("score_mse_zero", ("estimator", "t"), "score MSE where the estimate is 0",
             "the part of score_mse from where s_hat_t is exactly 0 (truncated: p_hat_t < "
             "rho_n(t); 0 for estimators that never return 0): E_{p_t} |s_t|^2 "
             "1{s_hat_t = 0}, from the same draws; judged in n at each t like score_mse, "
             "and against its finite-n prediction", scaling="length^-2",
             label="score MSE where ŝ = 0", role="diagnostic",
             exponent=theory.score_mse_n_exponent, prediction="score_mse_zero_pred"),
    Variable("score_zero_mass", ("estimator", "t"), "p_t-mass where the estimate is 0",
             "P_{x~p_t}(s_hat_t(x) = 0): near 1, the estimate is 0 on the whole support and "
             "a fit of score_mse in n tests the truncation, not the estimate",
             role="diagnostic"),
    Variable("score_mse_int", _EST, "integrated score error",
             "int_{t0}^{T} score MSE dt",
             label="∫ score MSE dt over [t0, T]", exponent=theory.integrated_score_exponent,
             fit_n=True),
    Variable("tv_law", _EST, "TV of the output law",
             "TV(p0, exact law of the discretised sampler's output), the law propagated on "
             "an adaptive grid (scorerate.metrics.law; d <= 3, in 2-D n <= law_n_max_2d if "
             "set; NaN elsewhere): no Monte Carlo floor",
             label="TV(p0, output law)", exponent=theory.tv_exponent, fit_n=True,
             prediction="tv_pred", numerical="tv_law_steps",
             numerical_check="tv_law_steps_check"),
    Variable("l2_law", _EST, "L2 distance of the output law",
             "L2(p0, exact law of the discretised sampler's output) on the law's cells "
             "(d <= 3, in 2-D n <= law_n_max_2d if set; NaN elsewhere)", scaling="length^(-d/2)",
             label="L2(p0, output law)",
             exponent=theory.l2_exponent, fit_n=True, prediction="l2_pred", fit_rms=True,
             numerical="l2_law_steps", numerical_check="l2_law_steps_check"),
    Variable("tv_sampler", _EST, "the sampler's own error (TV)",
             "TV(exact law of the discretised sampler's output, p_hat_{t0}) on the law's "
             "cells: the sampler's distance to the law it converges to as its steps become "
             "exact, i.e. its numerical error apart from the score's (d <= 3)",
             label="TV(output law, p̂_t0)", role="diagnostic"),
    Variable("l2_sampler", _EST, "the sampler's own error (L2)",
             "L2(exact law of the sampler's output, p_hat_{t0}) on the law's cells (d <= 3)",
             scaling="length^(-d/2)", label="L2(output law, p̂_t0)", role="diagnostic"),
    Variable("law_exact_share", _EST, "share of the law's scores summed exactly",
             "share of the exact law's cell-scores that the grid score (engine/grid.py) "
             "could not vouch for and the engine's exact ball sums computed (cost O(n) each); "
             "NaN for a law without grid score", role="diagnostic"),
    Variable("law_resolution_used", _EST, "the exact law's resolution as used",
             "smallest resolution of the exact law's grid over its steps (cells per "
             "min(step noise sd, sqrt t), scorerate.metrics.law.GridLaw.resolution): the "
             "job's law_resolution unless a lattice hit law.MAX_LATTICE (many steps, mass "
             "left far out), where the law's grid error is no longer controlled",
             role="diagnostic"),
    Variable("tv_steps", _EST, "discretisation error estimate (TV)",
             "TV(output law at steps, output law at steps // 2): for a first-order "
             "integrator an estimate of tv_sampler from the laws alone (1.2-1.5 times "
             "tv_sampler for sym_beta, d = 1, n = 200, 64-256 steps: it carries the two "
             "grids' difference too)", label="TV(law_S, law_S/2)", role="diagnostic"),
    Variable("tv_law_steps", _EST, "discretisation error of tv_law",
             "estimate of |tv_law - its limit as the steps become exact| from tv_law at "
             "steps, steps // 2 and steps // 4: the larger of |change from S/2 to S| and "
             "|change from S/4 to S/2| / 2 (exact for a first-order scheme; near a turning "
             "point of tv_law in S the last change alone misses the error), for every "
             "integrator "
             "(scorerate.metrics.step_error). The numerical error a fit of tv_law is "
             "judged against; unlike tv_sampler it leaves out the continuous-time law's own "
             "distance from p_hat_{t0}, which for truncated is not numerical",
             label="tv_law's step error", role="diagnostic"),
    Variable("l2_law_steps", _EST, "discretisation error of l2_law",
             "the same estimate for l2_law", scaling="length^(-d/2)",
             label="l2_law's step error", role="diagnostic"),
    Variable("tv_law_steps_check", _EST, "measured discretisation error of tv_law",
             "2 |tv_law - tv_law of the law at twice the steps| "
             "(scorerate.metrics.step_error.step_error_check): exact for a first-order "
             "scheme, at most twice the error where tv_law converges monotonically in the "
             "steps; computed on the study's step-check seeds (step_check_seeds), NaN on the "
             "others. Where a (cell, n) has it, a fit of tv_law is judged against it instead "
             "of tv_law_steps", label="tv_law's step error, measured", role="diagnostic"),
    Variable("l2_law_steps_check", _EST, "measured discretisation error of l2_law",
             "the same measurement for l2_law", scaling="length^(-d/2)",
             label="l2_law's step error, measured", role="diagnostic"),
    Variable("tv", _EST, "TV of the samples (binned)",
             "TV(p0, empirical law of the m samples) on fixed cells of p0's support plus "
             "tail cells (NaN for d > 3); floor: tv_floor",
             label="TV(p0, samples), binned", exponent=theory.tv_exponent, fit_n=True,
             floor="tv_floor"),
    Variable("tv_floor", (), "Monte Carlo floor of tv",
             "the same binned TV for m fresh draws of p0 (mean of 8): tv cannot show a rate "
             "below about this", role="diagnostic"),
    Variable("memorisation", _EST, "nearest-training-point distance ratio",
             "median distance of the outputs to their nearest training point over the same "
             "median for m fresh draws of p0 (1: new points; towards 0: copies)",
             role="diagnostic"),
    Variable("memorisation_stop", ("estimator", "stop"),
             "memorisation against the stopping time",
             "memorisation of the same chains stopped at t0 * stop (the grid time nearest to "
             "it; NaN beyond T): how copying grows as the early-stopping time shrinks",
             role="diagnostic"),
    Variable("escapes", _EST, "fraction of escaped outputs",
             f"fraction of outputs farther than {ESCAPE_MARGIN:.0%} of its width outside "
             "p0's support box (which holds all but 1e-12 of p0)", role="diagnostic"),
    Variable("w1", _EST, "1-Wasserstein distance", "W1(p0, samples); sliced for d > 1",
             scaling="length", label="W1(p0, output)", fit_n=True),
    Variable("mmd2", _EST, "squared maximum mean discrepancy",
             "unbiased estimate of MMD^2 (Gaussian kernel) between the samples and p0; "
             "can be slightly negative when the two laws are close",
             label="MMD²(p0, output)", fit_n=True),
    Variable("tv_kde", (), "TV of the ideal output", "TV(p0, Gaussian KDE p_hat_{t0}) "
             "(Monte Carlo)", label="TV(p0, p̂_t0)", exponent=theory.tv_exponent, fit_n=True,
             prediction="tv_pred"),
    Variable("l2_kde", (), "L2 distance of the ideal output",
             "L2 distance between p0 and p_hat_{t0}", scaling="length^(-d/2)",
             label="L2(p0, p̂_t0)", exponent=theory.l2_exponent, fit_n=True,
             prediction="l2_pred", fit_rms=True),
)
#: Variables the aggregation adds to the study: the finite-n predictions for the ideal
#: output p̂_t0 of each (density, beta, d, n) at the jobs' t0 (scorerate.study.prediction).
STUDY_VARIABLES: tuple[Variable, ...] = (
    Variable("tv_pred", POINT_DIMS, "predicted E TV(p0, p̂_t0)",
             "finite-n prediction of E TV(p0, p̂_t0): pointwise normal approximation of the "
             "KDE, integrated by quadrature (d <= 2) or importance sampling",
             label="predicted TV", role="prediction"),
    Variable("tv_bias_pred", POINT_DIMS, "TV(p0, p_t0)",
             "the bias part of tv_pred: TV between p0 and its smoothing p_t0 = E p̂_t0",
             role="prediction"),
    Variable("l2_pred", POINT_DIMS, "predicted sqrt(E L2(p0, p̂_t0)^2)",
             "sqrt(||p_t0 - p0||^2 + ((4 pi t0)^(-d/2) - ||p_t0||^2) / n), exact from 1-D "
             "integrals", scaling="length^(-d/2)", label="predicted L2", role="prediction"),
    Variable("l2_bias_share", POINT_DIMS, "bias share of the L2 prediction",
             "||p_t0 - p0||^2 / E||p̂_t0 - p0||^2: near 1 the kernel's bias dominates, near 0 "
             "the variance", role="prediction"),
    Variable("score_mse_zero_pred", (*POINT_DIMS, "estimator", "t"),
             "predicted score MSE where the estimate is 0",
             "finite-n prediction of score_mse_zero from p_t and the estimator's threshold "
             "alone: E_{p_t} |s_t|^2 1{p_t <= rho_n(t)} (scorerate.study.zero_region); NaN "
             "for estimators that never set their score to 0", scaling="length^-2",
             label="predicted score MSE where ŝ = 0", role="prediction"),
)
_BY_NAME = {v.name: v for v in (*VARIABLES, *STUDY_VARIABLES)}

#: The coordinates of the study store (and the per-job scalars it adds), described like
#: the coordinates a run store holds (its other dims, sample and train, have none)
RUN_COORDS = ("estimator", "t", "dim", "stop")

#: the variables: name -> (long_name, units, description). Units are UDUNITS strings on
#: quantities ("1": dimensionless; "s"), None on names, counts, indices, flags and paths
#: (CF needs none there, and xarray's plot labels then show no "[1]").
COORDINATES: dict[str, tuple[str, str | None, str]] = {
    "density": ("test density", None, "name of the true density p0 (scorerate.densities)"),
    "beta": ("Sobolev smoothness", None, "smoothness beta of p0 (the theory's class)"),
    "d": ("dimension", None, "dimension of the data"),
    "n": ("training points", None, "number n of training points drawn from p0"),
    "seed": ("seed", None, "replicate index; every random draw of a job is keyed by it"),
    "estimator": ("score estimator", None, "kernel score estimator (scorerate.estimators)"),
    "t": ("diffusion time", "1", "forward time t of the score MSE grid (X_t = X_0 + "
          "sqrt(t) Z; dimension length^2)"),
    "dim": ("coordinate index", None, "index of a coordinate of the data (0 .. d - 1)"),
    "stop": ("stopping time / t0", "1", "multiple of t0 at which the chains are looked at "
             "(memorisation_stop)"),
    "t0": ("early-stopping time", "1", "early-stopping time t0 of each job (dimension "
           "length^2)"),
    "T": ("forward horizon", "1", "forward horizon T of each job (dimension length^2)"),
    "wall_time_s": ("wall time", "s", "wall-clock seconds of each job"),
    "n_steps": ("sampler steps", "1", "steps of each job's sampler and exact law (a study's "
                "step rule may make them grow with n)"),
    "store": ("run store", None, "path of the run store of each cell ('' where missing)"),
    "has_run": ("job has a run", None, "True where the job's run was aggregated: the one "
                "record of which (density, beta, d, n, seed) have data"),
}


def coordinate_attrs(name: str) -> dict[str, str]:
    """CF attributes of a coordinate or per-job scalar of COORDINATES (long_name, units
    where it has one, description)."""
    long_name, units, description = COORDINATES[name]
    out = {"long_name": long_name, "description": description}
    if units is not None:
        out["units"] = units
    return out


#: the variables the study collects (everything but the bulky data)
METRICS: tuple[Variable, ...] = tuple(v for v in VARIABLES if v.role != "data")
#: the metrics whose slope in n the report fits (score_mse is fitted per t besides)
RATE_METRICS: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.fit_n)


def variable(name: str) -> Variable:
    """The declaration of `name`; ValueError naming the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown metric or variable {name!r}; "
                         f"known: {sorted(_BY_NAME)}") from None


def exponent(name: str, beta: float, d: int) -> float:
    """The theory's exponent in n for variable `name`, NaN where no theorem claims one."""
    fn = variable(name).exponent
    return math.nan if fn is None else float(fn(beta, d))
