"""Convergence rates: log-log slopes of the mean error with small-sample CIs, beside the theory.

For each (density, beta, d, estimator, metric) the slope b of log(mean over seeds) against
log n is fitted by least squares, b = sum_i c_i log ybar_i. Its interval (`slope_with_ci`):

- unpaired (jobs at different n are independent): delta method,
  Var(log ybar_i) ~ s_i^2 / (S_i ybar_i^2), Var(b) = sum_i c_i^2 Var(log ybar_i), and a t
  quantile whose degrees of freedom are the geometric mean of the Welch-Satterthwaite df and
  the conservative min_i S_i - 1. Welch alone assumes normal seeds; with the skewed,
  heavy-tailed errors of a study (coefficient of variation up to 60%) it covered 92.3-93.8%
  at 5-10 seeds, the conservative df 94-99%; the geometric mean covers 93.0-95.9% when the
  spread varies with n and up to 97.5% when it is constant (tests/test_rates.py; the old
  percentile bootstrap covered 73-91% in the audit).
- paired (the score MSE over t within one job): per seed z_s = sum_i c_i y_is / ybar_i,
  Var(b) = var_s(z) / S, t quantile with S - 1 df (the same delta method with the
  covariance between the rows kept).

Verdicts (`verdicts`, words and meanings in VERDICTS) compare the interval with the theory's
exponent (an upper bound for TV / L2, two-sided up to polylog for the score MSE) and with the
slope of a finite-n prediction over the same n (scorerate.study.prediction), or say why not.
At each t the score MSE's zero-region part (score_mse_zero: where a truncated estimate is
0) gets its own row, judged like the whole and against its prediction from p_t and the
threshold alone (scorerate.study.zero_region).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..config.spec import BY_NAME as PARAMS
from ..store.variables import RATE_METRICS as N_METRICS
from ..store.variables import exponent as theory_exponent
from ..store.variables import variable
from ..theory import T_REGIMES, score_mse_t_exponent, t_regime_mask
from .coverage import cells

__all__ = [
    "COLUMNS",
    "MIN_POINTS",
    "MIN_SEEDS",
    "N_METRICS",
    "PER_T_METRICS",
    "VERDICTS",
    "asked_resolution",
    "bootstrap_means",
    "mean_band",
    "numerical_budget",
    "numerical_ratio",
    "per_n_seed",
    "polylog_slope",
    "fit_slope",
    "rate_table",
    "slope_ci_arrays",
    "slope_with_ci",
    "verdict",
    "verdict_counts",
    "verdicts",
]

#: metrics fitted in n (the study's variable names); those without an estimator dim
#: describe the ideal output p̂_t0 and get estimator "ideal_kde" in the table
KDE_ESTIMATOR = "ideal_kde"
#: fewest x values (n or t) and seeds for a verdict
MIN_POINTS = 3
MIN_SEEDS = 5
#: a fit in n gets a verdict only where, at every n of the fit, the metric's numerical
#: error (numerical_budget: the largest of its `numerical_check` variable where an n has
#: it, else the seed mean of its `numerical` variable) is at most this fraction of the
#: standard error of its seed mean: the error the slope's interval is built on
NUMERICAL_FRACTION = 0.5
#: a fit of the score MSE in n at fixed t gets no verdict where, at some n, the estimate
#: is 0 on more than this p_t-mass (score_zero_mass): it would test the truncation alone
ZERO_MASS_MAX = 0.5
#: metrics fitted in n at each t of the grid (the rate table's column t), not once per cell
PER_T_METRICS = ("score_mse", "score_mse_zero")
#: every verdict word, with its one-line meaning (the report's glossary)
VERDICTS = {
    "consistent": "the 95% interval of the slope contains the theory's exponent",
    "faster than the bound": "the interval lies entirely below the exponent: faster than the "
                             "bound (allowed for TV / L2, whose bound is an upper bound)",
    "slower than the bound": "the interval lies entirely above the exponent: slower than the "
                             "theorem allows, unless the finite-n prediction explains it",
    "matches": "the finite-n prediction's slope over the same n lies inside the interval",
    "does not match": "the finite-n prediction's slope lies outside the interval",
    "no prediction": "no finite-n prediction was given for this metric and cell",
    "no verdict": "not judged; the reason column says why (no theorem, too few seeds or "
                  "values of n, values within twice their floor, a numerical error not "
                  "well below the statistical error)",
}
THEORY_VERDICTS = ("consistent", "faster than the bound", "slower than the bound",
                   "no verdict")
PREDICTION_VERDICTS = ("matches", "does not match", "no prediction", "no verdict")
COLUMNS = ["density", "beta", "d", "estimator", "metric", "axis", "t", "n", "regime",
           "num_points", "num_seeds", "slope", "ci_low", "ci_high", "se", "df", "theory",
           "theory_polylog", "numerical_ratio", "verdict_theory", "prediction_slope",
           "verdict_prediction", "reason", "verdict"]


def fit_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of log y on log x along the last axis; NaN where < 2 usable points.

    y may be (..., k) for k x values; non-finite or non-positive y are left out per row.
    """
    x = np.log(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), np.nan)
    ok = np.isfinite(ly) & np.isfinite(x)
    cnt = ok.sum(-1)
    xw = np.where(ok, x, 0.0)
    yw = np.where(ok, ly, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = xw.sum(-1) / cnt
        my = yw.sum(-1) / cnt
        dx = np.where(ok, x - mx[..., None], 0.0)
        dy = np.where(ok, ly - my[..., None], 0.0)
        sxx = (dx * dx).sum(-1)
        slope = (dx * dy).sum(-1) / sxx
    return np.where((cnt >= 2) & (sxx > 0), slope, np.nan)


def bootstrap_means(values: np.ndarray, *, n_boot: int, rng: np.random.Generator,
                    paired: bool = False) -> np.ndarray:
    """Bootstrap replicates of the mean over seeds: values (k, S) -> (n_boot, k).

    NaN seeds are left out. Unpaired (default): seeds are resampled independently for each
    of the k rows (independent jobs). Paired: one resample of seed indices shared by all rows
    (the rows are one job's curve, e.g. the score MSE over t). Rows with no data stay NaN.
    """
    values = np.asarray(values, dtype=float)
    k, s = values.shape
    out = np.full((n_boot, k), np.nan)
    if paired:
        good = np.isfinite(values).any(0)
        v = values[:, good]
        if v.shape[1] == 0:
            return out
        idx = rng.integers(0, v.shape[1], size=(n_boot, v.shape[1]))
        return _nanmean(v[:, idx]).T
    for i in range(k):
        v = values[i][np.isfinite(values[i])]
        if v.size:
            out[:, i] = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(-1)
    return out


def mean_band(values: np.ndarray, *, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """(mean, low, high) over seeds per row of values (k, S): the interval the verdicts
    rest on, per row: the delta method on log(mean), var(log mean) ~ s^2 / (S mean^2),
    with a t quantile on S - 1 degrees of freedom; NaN where fewer than 2 seeds or the
    mean is not positive."""
    v = np.asarray(values, dtype=float)
    fin = np.isfinite(v)
    cnt = fin.sum(-1)
    mean = _nanmean(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(fin, v - mean[..., None], 0.0)
        rel = (dev * dev).sum(-1) / (cnt - 1.0) / (cnt * mean * mean)
        half = stats.t.ppf(0.5 + level / 2.0, cnt - 1.0) * np.sqrt(rel)
    ok = (cnt >= 2) & (mean > 0) & np.isfinite(half)
    lo = np.where(ok, mean * np.exp(-np.where(ok, half, 0.0)), np.nan)
    hi = np.where(ok, mean * np.exp(np.where(ok, half, 0.0)), np.nan)
    return mean, lo, hi


def slope_ci_arrays(x: Sequence[float], values: np.ndarray, *, level: float = 0.95,
                    paired: bool = False) -> dict:
    """Vectorised `slope_with_ci`: values (..., k, S) -> arrays over the leading dims.

    Returns slope, ci_low, ci_high, se, df, num_points (x with a positive mean and >= 2
    seeds), num_seeds (fewest seeds at a used x). NaN seeds are left out (unpaired) or the
    seed is dropped (paired: a seed must be complete over the used x). Cost O(k S).
    """
    x = np.log(np.asarray(x, dtype=float))
    v = np.asarray(values, dtype=float)
    fin = np.isfinite(v)
    cnt = fin.sum(-1)
    mean = _nanmean(v)
    usable = np.isfinite(mean) & (mean > 0) & (cnt >= 2) & np.isfinite(x)
    if paired:
        seed_ok = np.all(fin | ~usable[..., None], axis=-2, keepdims=True)
        v = np.where(seed_ok, v, np.nan)
        fin = np.isfinite(v)
        cnt = fin.sum(-1)
        mean = _nanmean(v)
        usable = usable & (cnt >= 2)
    k = usable.sum(-1)
    xu = np.where(usable, x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = xu.sum(-1, keepdims=True) / k[..., None]
        dx = np.where(usable, x - mx, 0.0)
        c = dx / (dx * dx).sum(-1, keepdims=True)
        ly = np.where(usable, np.log(np.where(usable, mean, 1.0)), 0.0)
        slope = (c * ly).sum(-1)
        dev = np.where(fin, v - mean[..., None], 0.0)
        if paired:
            z = (c[..., None] * np.where(fin, v, 0.0) / np.where(usable, mean, 1.0)[..., None]
                 ).sum(-2)
            ns = np.min(np.where(usable, cnt, np.iinfo(np.int64).max), axis=-1)
            zs = np.where(np.any(fin, -2), z, np.nan)
            with warnings.catch_warnings():  # one seed: NaN, hence no verdict (said so)
                warnings.simplefilter("ignore", RuntimeWarning)
                se = np.sqrt(np.nanvar(zs, axis=-1, ddof=1) / ns)
            df = ns - 1.0
        else:
            rel = (dev * dev).sum(-1) / (cnt - 1.0) / (cnt * mean * mean)
            vi = np.where(usable, c * c * rel, 0.0)
            se2 = vi.sum(-1)
            welch = se2 * se2 / np.where(usable, vi * vi / (cnt - 1.0), 0.0).sum(-1)
            cons = np.min(np.where(usable, cnt, np.iinfo(np.int64).max), axis=-1) - 1.0
            df = np.sqrt(welch * cons)
            se = np.sqrt(se2)
            ns = cons + 1.0
        half = stats.t.ppf(0.5 + level / 2.0, df) * se
    ok = (k >= 2) & np.isfinite(half)
    nan = np.full(np.shape(slope), np.nan)
    good = k >= 2
    return {"slope": np.where(good, slope, nan), "ci_low": np.where(ok, slope - half, nan),
            "ci_high": np.where(ok, slope + half, nan), "se": np.where(ok, se, nan),
            "df": np.where(ok, df, nan), "num_points": k,
            "num_seeds": np.where(k > 0, ns, 0).astype(int)}


def slope_with_ci(x: Sequence[float], values: np.ndarray, *, level: float = 0.95,
                  paired: bool = False) -> dict:
    """Slope of log(mean over seeds) vs log x with a small-sample delta-method t interval.

    Parameters
    ----------
    x : (k,) positive abscissae (n or t).
    values : (k, S) errors, NaN where a job is missing.
    level : two-sided confidence level.
    paired : the rows are one job's curve (score MSE over t), seeds paired across rows.

    Returns a dict: slope, ci_low, ci_high, se, df, num_points (x values with a positive
    mean over >= 2 seeds), num_seeds (fewest seeds at a used x). See the module docstring
    for the method and its measured coverage. Cost O(k S).
    """
    r = slope_ci_arrays(x, values, level=level, paired=paired)
    out = {k: float(v) for k, v in r.items() if k not in ("num_points", "num_seeds")}
    out["num_points"] = int(r["num_points"])
    out["num_seeds"] = int(r["num_seeds"])
    return out


def verdicts(fit: Mapping, theory: float, *, prediction_slope: float = math.nan,
             at_floor: bool = False, numerical: str = "", theory_hi: float = math.nan,
             min_points: int = MIN_POINTS,
             min_seeds: int = MIN_SEEDS) -> tuple[str, str, str]:
    """(verdict_theory, verdict_prediction, reason) for one fitted slope (words: VERDICTS).

    No verdict, with the reason, where the metric has no theorem (theory NaN), with fewer
    than min_seeds seeds or min_points values of x, where a value is within twice its
    floor, or where `numerical` says why the numerical error is too large. Otherwise the
    theory's exponent against the interval (consistent / faster than the bound / slower
    than the bound) and the prediction's slope (matches / does not match, or no
    prediction). With theory_hi (a bound up to a polylog factor: the slope of the bound
    with that factor over the fit's x), consistent means the interval meets [theory,
    theory_hi], slower that it lies above theory_hi.
    """
    lo, hi = fit["ci_low"], fit["ci_high"]
    reason = ""
    if not math.isfinite(theory):
        reason = "no theorem for this metric"
    elif fit["num_seeds"] < min_seeds:
        reason = f"fewer than {min_seeds} seeds ({fit['num_seeds']})"
    elif fit["num_points"] < min_points:
        reason = f"fewer than {min_points} values of the abscissa ({fit['num_points']})"
    elif at_floor:
        reason = "a value is within twice its floor"
    elif numerical:
        reason = numerical
    elif not (math.isfinite(lo) and math.isfinite(hi)):
        reason = "no interval (too little spread data)"
    if reason:
        return "no verdict", "no verdict", reason
    top = theory_hi if math.isfinite(theory_hi) else theory
    if lo <= top and hi >= theory:
        vt = "consistent"
    else:
        vt = "faster than the bound" if hi < theory else "slower than the bound"
    if not math.isfinite(prediction_slope):
        vp = "no prediction"
    else:
        vp = "matches" if lo <= prediction_slope <= hi else "does not match"
    return vt, vp, ""


def verdict(fit: Mapping, theory: float, **kw) -> str:
    """The theory verdict alone (verdicts(...)[0])."""
    return verdicts(fit, theory, **kw)[0]


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Rows per (verdict_theory, verdict_prediction), every word listed (zeros kept)."""
    idx = pd.MultiIndex.from_product([THEORY_VERDICTS, PREDICTION_VERDICTS],
                                     names=["verdict_theory", "verdict_prediction"])
    c = table.groupby(["verdict_theory", "verdict_prediction"]).size()
    return c.reindex(idx, fill_value=0).rename("rows").reset_index()


def _nanmean(v: np.ndarray) -> np.ndarray:
    cnt = np.isfinite(v).sum(-1)
    tot = np.where(np.isfinite(v), v, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _from_study(study: xr.Dataset, field: str) -> dict:
    """{(density, beta, d, metric): values over n} of each metric's `field` variable
    ("prediction" or "floor", see scorerate.store.variables), means over the other dims."""
    out = {}
    for metric in N_METRICS:
        src = getattr(variable(metric), field)
        if src is None or src not in study:
            continue
        for dens, beta, d in cells(study):
            v = study[src].sel(density=dens, beta=beta, d=d)
            v = v.mean([k for k in v.dims if k != "n"]) if v.ndim > 1 else v
            out[(dens, beta, d, metric)] = v.values.astype(float)
    return out


def _lookup(table: Mapping | None, cell: dict, est: str, metric: str):
    """table[(density, beta, d, estimator, metric)] or table[(density, beta, d, metric)]."""
    if not table:
        return None
    base = (cell["density"], cell["beta"], cell["d"])
    for key in ((*base, est, metric), (*base, metric)):
        if key in table:
            return table[key]
    return None


def numerical_budget(vals: np.ndarray, num: np.ndarray,
                     check: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per n: (the numerical error, the standard error of the seed mean of the metric)
    (vals, num, check: (n, seed)). The numerical error is the largest measured one (check)
    where an n has any, else the seed mean of the estimate (num): the measurement is taken
    on a few seeds only, so their largest stands for all. NaN where unknown."""
    cnt = np.isfinite(vals).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _nanmean(vals)
        var = _nanmean((vals - mean[:, None]) ** 2) * cnt / np.maximum(cnt - 1, 1)
        se = np.where(cnt >= 2, np.sqrt(var / np.maximum(cnt, 1)), np.nan)
        error = _nanmean(num)
    if check is not None:
        measured = np.isfinite(check).any(-1)
        error = np.where(measured, np.nanmax(np.where(measured[:, None], check, -np.inf),
                                             axis=-1), error)
    return error, se


def numerical_ratio(vals: np.ndarray, num: np.ndarray,
                    check: np.ndarray | None = None) -> np.ndarray:
    """Per n: the numerical error over the standard error of the seed mean of the metric
    (numerical_budget); NaN where either is unknown or the seeds do not spread."""
    error, se = numerical_budget(vals, num, check)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(se > 0, error / se, np.nan)


def _numerical_check(metric: str, ratio: np.ndarray | None, x: np.ndarray,
                     measured: np.ndarray | None = None) -> tuple[float, str]:
    """(largest ratio over the n with data, the no-verdict reason or ""); measured: per n,
    whether the error there is the step-check measurement."""
    if ratio is None or not np.isfinite(ratio).any():
        return math.nan, ""
    worst = float(np.nanmax(ratio))
    bad = np.isfinite(ratio) & (ratio > NUMERICAL_FRACTION)
    if not bad.any():
        return worst, ""
    v = variable(metric)
    src = v.numerical
    if measured is not None and measured[bad].any():
        src = v.numerical_check if measured[bad].all() else f"{v.numerical_check}, {src}"
    return worst, (f"numerical error ({src}) above {NUMERICAL_FRACTION:g} x the standard "
                   f"error of the seed mean at n = {', '.join(f'{v:g}' for v in x[bad])} "
                   f"(up to {worst:.2g} x)")


def per_n_seed(ds: xr.Dataset, name: str, est) -> np.ndarray:
    """The (n, seed) values of a study variable for one estimator."""
    v = ds[name].sel(estimator=est) if "estimator" in ds[name].dims else ds[name]
    return v.transpose("n", "seed").values


def asked_resolution(study: xr.Dataset) -> float:
    """The law_resolution the study's jobs were asked for (its config, else the default)."""
    config = json.loads(study.attrs.get("config") or "{}")
    return float(config.get("law_resolution", PARAMS["law_resolution"].default))


def _grid_check(used: np.ndarray | None, asked: float, x: np.ndarray) -> str:
    """The no-verdict reason where, at some n, a job's law ran at a coarser grid than asked
    (law_resolution_used (n, seed) below asked: its lattice hit law.MAX_LATTICE, so the
    law's grid error is not controlled; 1-D, n = 1e5, 1024 steps read tv_law 3e-3 high)."""
    if used is None:
        return ""
    with np.errstate(invalid="ignore"):
        low = np.nanmin(np.where(np.isfinite(used), used, np.inf), axis=-1)
    bad = np.isfinite(low) & (low < asked * (1.0 - 1e-9))
    if not bad.any():
        return ""
    return (f"the exact law's grid hit its cap (law_resolution_used down to "
            f"{float(low[bad].min()):.2g}, asked {asked:g}) at n = "
            f"{', '.join(f'{v:g}' for v in x[bad])}: its grid error is not controlled")


def polylog_slope(ns: np.ndarray, d: int) -> float:
    """Log-log slope over ns of (log n)^(d/2) / n: the score MSE's bound at fixed t with the
    polylog factor the theorem allows (the zero region of a truncated estimate scales so:
    sqrt(log n)/n in d = 1, log n/n in d = 2); NaN with fewer than 2 n."""
    ns = np.asarray(ns, dtype=float)
    if ns.size < 2:
        return math.nan
    return float(fit_slope(ns, np.log(ns) ** (d / 2.0) / ns))


def _by_n_seed_t(ds: xr.Dataset, name: str | None, est) -> np.ndarray | None:
    """Variable `name` of estimator `est` as (n, seed, t) (a prediction without a seed dim
    gets a seed axis of 1); None where the study lacks it (or no name is given)."""
    if name is None or name not in ds:
        return None
    v = ds[name].sel(estimator=est)
    if "seed" not in v.dims:
        v = v.expand_dims("seed")
    return v.transpose("n", "seed", "t").values.astype(float)


def _zero_check(mass: np.ndarray | None, ns: np.ndarray) -> str:
    """The no-verdict reason where the estimate is 0 on most of p_t's mass at some n."""
    if mass is None:
        return ""
    bad = np.isfinite(mass) & (mass > ZERO_MASS_MAX)
    if not bad.any():
        return ""
    return (f"the estimate is 0 on most of p_t's mass (score_zero_mass up to "
            f"{float(np.nanmax(mass)):.2g}) at n = {', '.join(f'{v:g}' for v in ns[bad])}: "
            "the fit would test the truncation, not the estimate")


def _judge(fit: dict, theory: float, x: np.ndarray, mean: np.ndarray, pred, floor,
           min_seeds: int, numerical: tuple[float, str] = (math.nan, ""),
           theory_hi: float = math.nan) -> dict:
    """The verdict columns of one row: prediction slope over the fit's x, floor and
    numerical-error checks."""
    used = np.isfinite(mean) & (mean > 0)
    pslope = math.nan
    if pred is not None:
        p = np.asarray(pred, dtype=float)
        pslope = float(fit_slope(x[used], p[used])) if used.sum() >= 2 else math.nan
    at_floor = False
    if floor is not None:
        f = np.broadcast_to(np.asarray(floor, dtype=float), mean.shape)
        at_floor = bool(np.any(used & np.isfinite(f) & (mean <= 2.0 * f)))
    vt, vp, reason = verdicts(fit, theory, prediction_slope=pslope, at_floor=at_floor,
                              numerical=numerical[1], theory_hi=theory_hi,
                              min_seeds=min_seeds)
    return {"prediction_slope": pslope, "verdict_theory": vt, "verdict_prediction": vp,
            "reason": reason, "verdict": vt, "numerical_ratio": numerical[0],
            "theory_polylog": theory_hi}


def _row(cell: dict, metric: str, axis: str, fit: dict, theory: float, judged: dict,
         **extra) -> dict:
    return {**cell, "metric": metric, "axis": axis, "t": math.nan, "n": math.nan, "regime": "",
            **extra, **fit, "theory": theory, **judged}


def rate_table(study: xr.Dataset, predictions: Mapping | None = None,
               floors: Mapping | None = None, *, level: float = 0.95,
               min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """One row per fitted slope, columns COLUMNS.

    axis "n": metric in N_METRICS, or "score_mse" and (for an estimate that is 0 somewhere)
    "score_mse_zero" at each t of the grid (column t).
    axis "t": "score_mse" against t at each n (column n), regime "t<1" or "t>1".
    predictions, floors: mappings keyed (density, beta, d, estimator, metric) or
    (density, beta, d, metric) to values over the study's n (floors may be a scalar);
    by default read from the study, where each metric's `prediction` and `floor` variable
    (scorerate.store.variables) is. Only fits in n use them. `verdict` repeats verdict_theory.
    Cells (density, beta, d) without any data are skipped: a ragged study's cells with no
    job give no row, and a cell that lacks some n is fitted over the n it has (num_points
    counts them; no fit in t at an n without data).
    """
    rows: list[dict] = []
    ns = study["n"].values.astype(float)
    ts = study["t"].values.astype(float)
    predictions = _from_study(study, "prediction") if predictions is None else predictions
    floors = _from_study(study, "floor") if floors is None else floors
    for dens, beta, d in cells(study):
        cell_ds = study.sel(density=dens, beta=beta, d=d)
        cell = {"density": dens, "beta": beta, "d": d}
        rows += _cell_rows(cell_ds, cell, ns, ts, predictions, floors, level=level,
                           min_seeds=min_seeds)
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell_rows(ds: xr.Dataset, cell: dict, ns: np.ndarray, ts: np.ndarray, predictions,
               floors, *, level: float, min_seeds: int) -> list[dict]:
    beta, d = cell["beta"], cell["d"]
    rows = []
    for metric in N_METRICS:
        if metric not in ds:
            continue
        var = ds[metric]
        th = theory_exponent(metric, beta, d)
        ests = var["estimator"].values if "estimator" in var.dims else [KDE_ESTIMATOR]
        for est in ests:
            vals = per_n_seed(ds, metric, est)
            if not np.isfinite(vals).any():
                continue
            if variable(metric).fit_rms:  # slope of sqrt(mean X^2): half that of mean X^2
                fit = slope_with_ci(ns, vals ** 2, level=level)
                fit.update({k: fit[k] / 2.0 for k in ("slope", "ci_low", "ci_high", "se")
                            if k in fit})
            else:
                fit = slope_with_ci(ns, vals, level=level)
            num, chk = variable(metric).numerical, variable(metric).numerical_check
            ratio, grid, measured = None, "", None
            if num is not None and num in ds:
                nv = per_n_seed(ds, num, est)
                cv = per_n_seed(ds, chk, est) if chk is not None and chk in ds else None
                ratio = numerical_ratio(vals, nv, cv)
                measured = None if cv is None else np.isfinite(cv).any(-1)
                if "law_resolution_used" in ds and "estimator" in ds[num].dims:
                    grid = _grid_check(per_n_seed(ds, "law_resolution_used", est),
                                       asked_resolution(ds), ns)
            worst, why = _numerical_check(metric, ratio, ns, measured)
            judged = _judge(fit, th, ns, _nanmean(vals),
                            _lookup(predictions, cell, str(est), metric),
                            _lookup(floors, cell, str(est), metric), min_seeds,
                            (worst, "; ".join(r for r in (why, grid) if r)))
            rows.append(_row({**cell, "estimator": str(est)}, metric, "n", fit, th, judged))
    if "score_mse" not in ds:
        return rows
    mse = ds["score_mse"]
    for est in mse["estimator"].values:
        m = _by_n_seed_t(ds, "score_mse", est)
        if not np.isfinite(m).any():
            continue
        c = {**cell, "estimator": str(est)}
        zmass = _by_n_seed_t(ds, "score_zero_mass", est)
        # the whole MSE, then its zero-region part where the estimate has one (truncated),
        # each against its declared prediction where the study holds one
        per_t = {metric: (_by_n_seed_t(ds, metric, est),
                          _by_n_seed_t(ds, variable(metric).prediction, est))
                 for metric in PER_T_METRICS}
        for j, t in enumerate(ts):
            zero = _zero_check(None if zmass is None else _nanmean(zmass[:, :, j]), ns)
            for metric, (values, pred) in per_t.items():
                vals = None if values is None else values[:, :, j]
                if vals is None or not (np.isfinite(vals) & (vals > 0)).any():
                    continue
                fit = slope_with_ci(ns, vals, level=level)
                used = np.isfinite(_nanmean(vals))
                th_hi = polylog_slope(ns[used], d)
                th = theory_exponent(metric, beta, d)
                judged = _judge(fit, th, ns, _nanmean(vals),
                                None if pred is None else _nanmean(pred[:, :, j]), None,
                                min_seeds, (math.nan, zero), theory_hi=th_hi)
                rows.append(_row(c, metric, "n", fit, th, judged, t=float(t)))
        for i, n in enumerate(ns):
            for regime, label in T_REGIMES.items():
                sel = t_regime_mask(ts, regime)
                vals = m[i][:, sel].T  # (t, seed): one job's curve over t, seeds paired
                if not sel.any() or not np.isfinite(vals).any():
                    continue
                fit = slope_with_ci(ts[sel], vals, level=level, paired=True)
                th = score_mse_t_exponent(d, regime)
                judged = _judge(fit, th, ts[sel], _nanmean(vals), None, None, min_seeds)
                rows.append(_row(c, "score_mse", "t", fit, th, judged, n=float(n),
                                 regime=label))
    return rows
