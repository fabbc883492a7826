"""Convergence rates: log-log slopes of the mean error with bootstrap CIs, beside the theory.

For each (density, beta, d, estimator, metric) the slope of log(mean over seeds) against
log n is fitted by least squares; its confidence interval comes from resampling the seeds
with replacement (independently at each n, since every job draws its own data), with a
fixed identity-keyed stream from scorerate.seeding. The score MSE is fitted in n at each
fixed t of the shared grid, and in t (for t < 1 and t > 1) at each n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from . import seeding
from .aggregate import cells
from .theory import score_mse_t_exponent
from .variables import RATE_METRICS as N_METRICS
from .variables import exponent as theory_exponent

__all__ = [
    "COLUMNS",
    "MIN_POINTS",
    "N_METRICS",
    "VERDICTS",
    "bootstrap_means",
    "fit_slope",
    "rate_table",
    "slope_with_ci",
    "verdict",
]

#: metrics fitted in n (the study's variable names); those without an estimator dim
#: describe the ideal output p̂_t0 and get estimator "ideal_kde" in the table
KDE_ESTIMATOR = "ideal_kde"
#: fewest x values (n or t) and seeds for a verdict
MIN_POINTS = 3
MIN_SEEDS = 2
VERDICTS = ("inside CI", "outside CI", "not enough data", "no theory")
COLUMNS = ["density", "beta", "d", "estimator", "metric", "axis", "t", "n", "regime",
           "num_points", "num_seeds", "slope", "ci_low", "ci_high", "theory", "verdict"]


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


def slope_with_ci(x: Sequence[float], values: np.ndarray, *, key: Sequence[object],
                  n_boot: int = 1000, level: float = 0.95, paired: bool = False) -> dict:
    """Slope of log(mean over seeds) vs log x with a bootstrap percentile CI.

    Parameters
    ----------
    x : (k,) positive abscissae (n or t).
    values : (k, S) errors, NaN where a job is missing.
    key : identity of the fit; the bootstrap stream is seeding.rng("rates", *key).
    n_boot, level : bootstrap replicates and two-sided confidence level.

    Returns a dict with slope, ci_low, ci_high, num_points (x values with data),
    num_seeds (fewest seeds at any used x). Cost O(n_boot k S).
    """
    values = np.asarray(values, dtype=float)
    x = np.asarray(x, dtype=float)
    mean = _nanmean(values)
    usable = np.isfinite(mean) & (mean > 0)
    seeds_per_x = np.isfinite(values).sum(1)
    num_seeds = int(seeds_per_x[usable].min()) if usable.any() else 0
    slope = float(fit_slope(x, mean))
    lo = hi = math.nan
    if usable.sum() >= 2:
        boots = bootstrap_means(values, n_boot=n_boot, rng=seeding.rng("rates", *key),
                                paired=paired)
        bs = fit_slope(x, boots)
        bs = bs[np.isfinite(bs)]
        if bs.size:
            a = (1.0 - level) / 2.0
            lo, hi = (float(q) for q in np.quantile(bs, [a, 1.0 - a]))
    return {"slope": slope, "ci_low": lo, "ci_high": hi, "num_points": int(usable.sum()),
            "num_seeds": num_seeds}


def verdict(fit: dict, theory: float, *, min_points: int = MIN_POINTS,
            min_seeds: int = MIN_SEEDS) -> str:
    """'inside CI' / 'outside CI' if the theory is / is not in the CI, else why not judged."""
    if not math.isfinite(theory):
        return "no theory"
    if (fit["num_points"] < min_points or fit["num_seeds"] < min_seeds
            or not (math.isfinite(fit["ci_low"]) and math.isfinite(fit["ci_high"]))):
        return "not enough data"
    return "inside CI" if fit["ci_low"] <= theory <= fit["ci_high"] else "outside CI"


def _nanmean(v: np.ndarray) -> np.ndarray:
    cnt = np.isfinite(v).sum(-1)
    tot = np.where(np.isfinite(v), v, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _row(cell: dict, metric: str, axis: str, fit: dict, theory: float, **extra) -> dict:
    row = {**cell, "metric": metric, "axis": axis, "t": math.nan, "n": math.nan, "regime": "",
           **extra, **fit, "theory": theory}
    row["verdict"] = verdict(fit, theory)
    return row


def rate_table(study: xr.Dataset, *, n_boot: int = 1000, level: float = 0.95) -> pd.DataFrame:
    """One row per fitted slope, columns COLUMNS.

    axis "n": metric in N_METRICS, or "score_mse" at each t of the grid (column t).
    axis "t": "score_mse" against t at each n (column n), regime "t<1" or "t>1".
    Cells (density, beta, d) without any data are skipped.
    """
    rows: list[dict] = []
    ns = study["n"].values.astype(float)
    ts = study["t"].values.astype(float)
    for dens, beta, d in cells(study):
        cell_ds = study.sel(density=dens, beta=beta, d=d)
        cell = {"density": dens, "beta": beta, "d": d}
        rows += _cell_rows(cell_ds, cell, ns, ts, n_boot=n_boot, level=level)
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell_rows(ds: xr.Dataset, cell: dict, ns: np.ndarray, ts: np.ndarray, *, n_boot: int,
               level: float) -> list[dict]:
    beta, d = cell["beta"], cell["d"]
    ident = (cell["density"], beta, d)
    rows = []
    for metric in N_METRICS:
        if metric not in ds:
            continue
        var = ds[metric]
        th = theory_exponent(metric, beta, d)
        ests = var["estimator"].values if "estimator" in var.dims else [KDE_ESTIMATOR]
        for est in ests:
            v = var.sel(estimator=est) if "estimator" in var.dims else var
            vals = v.transpose("n", "seed").values
            if not np.isfinite(vals).any():
                continue
            fit = slope_with_ci(ns, vals, key=(*ident, str(est), metric, "n"), n_boot=n_boot,
                                level=level)
            rows.append(_row({**cell, "estimator": str(est)}, metric, "n", fit, th))
    if "score_mse" not in ds:
        return rows
    mse = ds["score_mse"]
    th_n = theory_exponent("score_mse", beta, d)
    for est in mse["estimator"].values:
        m = mse.sel(estimator=est).transpose("n", "seed", "t").values
        if not np.isfinite(m).any():
            continue
        c = {**cell, "estimator": str(est)}
        for j, t in enumerate(ts):
            vals = m[:, :, j]
            if np.isfinite(vals).any():
                fit = slope_with_ci(ns, vals, key=(*ident, str(est), "score_mse", "n", float(t)),
                                    n_boot=n_boot, level=level)
                rows.append(_row(c, "score_mse", "n", fit, th_n, t=float(t)))
        for i, n in enumerate(ns):
            for regime, sel, label in (("small", ts < 1, "t<1"), ("large", ts > 1, "t>1")):
                vals = m[i][:, sel].T  # (t, seed): one job's curve over t, seeds paired
                if not sel.any() or not np.isfinite(vals).any():
                    continue
                fit = slope_with_ci(ts[sel], vals, key=(*ident, str(est), "score_mse", "t",
                                                        float(n), regime),
                                    n_boot=n_boot, level=level, paired=True)
                rows.append(_row(c, "score_mse", "t", fit, score_mse_t_exponent(d, regime),
                                 n=float(n), regime=label))
    return rows
