"""The report's figures: each a function of data (study cell, rate rows, run store) -> Figure.

No file or HTML handling here (that is scorerate.report.build). Every axis is labelled from
scorerate.store.variables, and text is at least 8 pt so a figure reads at 100% zoom.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from ..store.variables import variable  # noqa: E402
from ..study.rates import (  # noqa: E402
    KDE_ESTIMATOR,
    N_METRICS,
    NUMERICAL_FRACTION,
    mean_band,
    numerical_budget,
    per_n_seed,
)
from ..theory import T_REGIMES, score_mse_t_exponent, t_regime_mask  # noqa: E402

__all__ = ["KIND_STYLE", "MAX_COLS", "STYLE", "error_vs_n", "overview", "samples_vs_density",
           "score_mse_vs_t", "series_style"]

#: matplotlib settings of every figure: nothing below 8 pt
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 11}
#: verdict kind (see report.verdict_view) -> (marker, colour, legend text)
KIND_STYLE = {
    "agrees": ("o", "tab:green", "consistent with the exponent"),
    "faster": ("^", "tab:blue", "faster than the bound"),
    "explained": ("v", "tab:olive", "slower than the bound, as the finite-n prediction"),
    "slower": ("v", "tab:red", "slower than the bound"),
    "not judged": ("o", "0.6", "not judged (see reason)"),
}


#: line styles taken in turn once the ten default colours are used up
_DASHES = ("-", "--", "-.", ":")
#: most panels in one row of a per-estimator figure (variants make many estimators)
MAX_COLS = 4


def series_style(i: int) -> tuple[str, str]:
    """(colour, line style) of the i-th estimator of a panel: ten colours, then the same
    colours dashed, so a study of many variants keeps every line distinguishable."""
    return f"C{i % 10}", _DASHES[(i // 10) % len(_DASHES)]


def _panels(k: int, width: float, height: float) -> tuple[plt.Figure, list]:
    """A figure of k panels, at most MAX_COLS per row; the axes in order, spares hidden."""
    ncol = max(1, min(MAX_COLS, k))
    nrow = max(1, math.ceil(k / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[k:]:
        ax.set_visible(False)
    return fig, flat[:k]


def _ylabel(metric: str) -> str:
    v = variable(metric)
    return f"{v.label} [{v.scaling}]" if v.scaling else v.label


def _fit_label(est: str, row: pd.Series | None) -> str:
    """Legend text of one estimator: the fitted slope and CI, or why there is none."""
    if row is None:
        return f"{est}: not fitted"
    s, lo, hi = row["slope"], row["ci_low"], row["ci_high"]
    reason = str(row.get("reason", "") or "")
    if not math.isfinite(s):
        return f"{est}: no slope ({reason or 'fewer than 2 n with a positive mean error'})"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{est}: slope {s:.2f}, no interval ({reason or 'too little data'})"
    return f"{est}: slope {s:.2f} [{lo:.2f}, {hi:.2f}]"


def _panel_n(ax, ns: np.ndarray, series: Mapping[str, np.ndarray], rows: pd.DataFrame,
             metric: str, prediction: np.ndarray | None = None,
             floor: np.ndarray | None = None) -> None:
    """Error vs n: seeds as dots, mean line, 95% band, theory line; the finite-n prediction
    (its values over n, parameter-free) and the metric's floor where given."""
    theory = math.nan
    anchor = None
    seen = np.zeros(len(ns), dtype=bool)  # n with data: a ragged study's cell may lack some
    for i, (est, vals) in enumerate(series.items()):
        colour, dash = series_style(i)
        sel = rows[rows["estimator"] == est]
        row = sel.iloc[0] if len(sel) else None
        mean, lo, hi = mean_band(vals)
        pos = np.where(vals > 0, vals, np.nan)
        seed_x = np.repeat(ns[:, None], vals.shape[1], 1)
        ax.plot(seed_x.ravel(), pos.ravel(), ".", color=colour, ms=4, alpha=0.5)
        ok = np.isfinite(mean) & (mean > 0)
        ax.plot(ns[ok], mean[ok], dash, color=colour, lw=1.5, label=_fit_label(est, row))
        band = ok & np.isfinite(lo) & (lo > 0)
        ax.fill_between(ns[band], lo[band], hi[band], color=colour, alpha=0.2, lw=0)
        if not ok.any():
            continue
        seen |= ok
        here = (np.exp(np.mean(np.log(ns[ok]))), np.exp(np.mean(np.log(mean[ok]))))
        anchor = anchor or here
        if row is not None:
            theory = row["theory"]
    for values, style, text in ((prediction, "--", "finite-n prediction"),
                                (floor, "-.", "Monte Carlo floor")):
        if values is None:
            continue
        ok = np.isfinite(values) & (values > 0)
        if ok.any():
            ax.plot(ns[ok], values[ok], style, lw=1.2, color="0.2", label=text)
    if anchor is not None and math.isfinite(theory):
        xs = np.array([ns[seen].min(), ns[seen].max()], dtype=float)
        ax.plot(xs, anchor[1] * (xs / anchor[0]) ** theory, "k:", lw=1.5,
                label=f"theory n^{theory:.2f}")
    hidden = sum(int((np.isfinite(v) & (v <= 0)).sum()) for v in series.values())
    title = ax.get_title()
    if hidden:  # e.g. MMD² estimates below 0: say so rather than drop them silently
        title = f"{title} ({hidden} values ≤ 0 not drawn)"
    _loglog(ax, "n (training points)", _ylabel(metric), title)


def _panel_budget(ax, cell: xr.Dataset, metric: str) -> None:
    """A law metric's numerical budget vs n, per estimator: the numerical error the verdict
    is gated on (rates.numerical_budget: measured on the step-check seeds where an n has
    them, else the three-law estimate) beside NUMERICAL_FRACTION x the standard error of
    the seed mean; a fit gets a verdict only where the first lies below the second at
    every n."""
    decl = variable(metric)
    ns = cell["n"].values.astype(float)
    for i, est in enumerate(str(e) for e in cell[metric]["estimator"].values):
        colour, _ = series_style(i)
        check = (per_n_seed(cell, decl.numerical_check, est)
                 if decl.numerical_check in cell else None)
        error, se = numerical_budget(per_n_seed(cell, metric, est),
                                     per_n_seed(cell, decl.numerical, est), check)
        ok = np.isfinite(error) & (error > 0)
        measured = (np.isfinite(check).any(-1) if check is not None
                    else np.zeros(len(ns), dtype=bool))
        ax.plot(ns[ok], error[ok], "-", color=colour, lw=1.5, label=f"{est}: step error")
        filled = ok & measured
        ax.plot(ns[filled], error[filled], "o", color=colour, ms=5)
        ax.plot(ns[ok & ~measured], error[ok & ~measured], "o", color=colour, ms=5,
                mfc="none")
        fine = np.isfinite(se) & (se > 0)
        ax.plot(ns[fine], NUMERICAL_FRACTION * se[fine], "--", color=colour, lw=1.2,
                label=f"{est}: {NUMERICAL_FRACTION:g} x SE of the mean")
    _loglog(ax, "n (training points)", "error", ax.get_title())


def error_vs_n(cell: xr.Dataset, rows: pd.DataFrame, title: str) -> plt.Figure:
    """One log-log panel per metric of `cell` (a study sliced at one density, beta, d).

    rows: the rate-table rows (axis "n") of the cell; the score MSE is shown at the middle
    t of the grid. Bands: the per-n interval of the seed mean that the verdicts rest on
    (rates.mean_band).
    """
    ns = cell["n"].values.astype(float)
    ts = cell["t"].values.astype(float)
    t_mid = float(ts[len(ts) // 2]) if len(ts) else math.nan
    panels = [m for m in N_METRICS if m in cell and bool(cell[m].notnull().any())]
    if len(ts) and bool(cell["score_mse"].notnull().any()):
        panels.append("score_mse")
    budgets = [m for m in panels if variable(m).numerical in cell and "estimator" in cell[m].dims
               and bool(cell[variable(m).numerical].notnull().any())]
    panels += [("budget", m) for m in budgets]
    ncol = max(1, min(3, len(panels)))
    nrow = max(1, math.ceil(len(panels) / ncol))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.0 * nrow), squeeze=False)
        for ax, metric in zip(axes.flat, panels, strict=False):
            if isinstance(metric, tuple):
                ax.set_title(f"{variable(metric[1]).label}: numerical budget")
                _panel_budget(ax, cell, metric[1])
                continue
            if metric == "score_mse":
                var = cell["score_mse"].sel(t=t_mid)
                rr = rows[(rows["metric"] == metric) & np.isclose(rows["t"], t_mid)]
                ax.set_title(f"{variable(metric).label} at t = {t_mid:.3g}")
            else:
                var = cell[metric]
                rr = rows[rows["metric"] == metric]
                ax.set_title(variable(metric).label)
            if "estimator" in var.dims:
                series = {str(e): var.sel(estimator=e).transpose("n", "seed").values
                          for e in var["estimator"].values}
            else:
                series = {KDE_ESTIMATOR: var.transpose("n", "seed").values}
            decl = variable(metric)
            pred = (cell[decl.prediction].values.astype(float)
                    if decl.prediction in cell else None)
            floor = (cell[decl.floor].mean("seed", skipna=True).values.astype(float)
                     if decl.floor in cell else None)
            _panel_n(ax, ns, series, rr, metric, pred, floor)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        text = (f"{title}: error vs n (dots: seeds; line: mean; band: 95% interval of the "
                "mean, as the verdicts; dotted: theory slope; dashed: finite-n prediction)")
        if budgets:
            text += ("; numerical budget: the step error the verdict is gated on (filled: "
                     "measured on the step-check seeds; open: the three-law estimate) "
                     f"against {NUMERICAL_FRACTION:g} x the SE of the mean")
        text = textwrap.fill(text, int(5.2 * ncol * 11))
        fig.suptitle(text)
        # room for the title's lines (~0.2 in each) above the panels
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.2 * (text.count("\n") + 1) / (4.0 * nrow)))
    return fig


def _loglog(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Log-log axes with their labels, title and (when anything is labelled) a legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", framealpha=0.8)


def score_mse_vs_t(mse: xr.DataArray, d: int, title: str) -> plt.Figure:
    """Score MSE (mean over seeds) against t, one line per n, one panel per estimator,
    with the theory's t slopes -(d+2)/2 (t < 1) and -1 (t > 1)."""
    ts = mse["t"].values.astype(float)
    ns = mse["n"].values
    ests = [str(e) for e in mse["estimator"].values]
    ylabel = _ylabel("score_mse")
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(ests), 4.6, 3.8)
        cmap = plt.get_cmap("viridis")
        for ax, est in zip(axes, ests, strict=True):
            m = mse.sel(estimator=est).mean("seed", skipna=True).transpose("n", "t").values
            for i, n in enumerate(ns):
                ok = np.isfinite(m[i]) & (m[i] > 0)
                if ok.any():
                    ax.plot(ts[ok], m[i][ok], "o-", ms=3, color=cmap(i / max(1, len(ns) - 1)),
                            label=f"n = {int(n)}")
            finite = m[np.isfinite(m) & (m > 0)]
            if finite.size:
                y1 = float(np.exp(np.mean(np.log(finite))))
                for (regime, text), style in zip(T_REGIMES.items(), ("k:", "k--"), strict=True):
                    sel = t_regime_mask(ts, regime)
                    slope = score_mse_t_exponent(d, regime)
                    if sel.sum() >= 2:
                        xs = ts[sel][[0, -1]]
                        ax.plot(xs, y1 * xs ** slope, style, lw=1,
                                label=f"theory t^{slope:g} ({text})")
            ax.axvline(1.0, color="0.7", lw=0.8)
            _loglog(ax, "t (diffusion time)", ylabel, est)
        fig.suptitle(f"{title}: score MSE vs t (mean over seeds)")
        fig.tight_layout()
    return fig


def memorisation_vs_stop(cell: xr.Dataset, title: str) -> plt.Figure:
    """memorisation_stop (mean over seeds) against the stopping time t0 * stop, one panel
    per estimator, one line per n: 1 means outputs as new as fresh draws, 0 copies."""
    memo = cell["memorisation_stop"]
    ests = [str(e) for e in memo["estimator"].values]
    ns = memo["n"].values
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(ests), 4.6, 3.8)
        cmap = plt.get_cmap("viridis")
        for ax, est in zip(axes, ests, strict=True):
            for i, n in enumerate(ns):
                y = memo.sel(estimator=est, n=n).mean("seed", skipna=True).values
                t0 = float(cell["t0"].sel(n=n).mean("seed", skipna=True))
                x = t0 * memo["stop"].values
                ok = np.isfinite(y) & (y > 0) & np.isfinite(x)
                if ok.any():
                    ax.plot(x[ok], y[ok], "o-", ms=3, color=cmap(i / max(1, len(ns) - 1)),
                            label=f"n = {int(n)}")
            ax.axhline(1.0, color="0.5", lw=0.8, ls="--", label="fresh draws of p0")
            _loglog(ax, "stopping time (forward t)", "nearest-training-point distance ratio",
                    est)
        fig.suptitle(f"{title}: memorisation against the early-stopping time")
        fig.tight_layout()
    return fig


def samples_vs_density(run: xr.Dataset, p0: Callable | None) -> plt.Figure:
    """Generated samples per estimator against the true density p0 (an object with .pdf):
    1D histogram and pdf; 2D scatter over pdf contours. p0 None: samples only."""
    a = run.attrs
    d = int(a["d"])
    samples = run["samples"].load()
    ests = [str(e) for e in samples["estimator"].values]
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(ests), 4.2, 3.8)
        for ax, est in zip(axes, ests, strict=True):
            x = samples.sel(estimator=est).values
            x = x[np.isfinite(x).all(1)]
            lo, hi = np.quantile(x, [0.005, 0.995], axis=0) if len(x) else ([-3] * d, [3] * d)
            pad = 0.15 * (np.asarray(hi) - np.asarray(lo)) + 1e-3
            lo, hi = np.asarray(lo) - pad, np.asarray(hi) + pad
            if d == 1:
                ax.hist(x[:, 0], bins=40, range=(lo[0], hi[0]), density=True, color="C0",
                        alpha=0.5, label="samples")
                if p0 is not None:
                    g = np.linspace(lo[0], hi[0], 400)[:, None]
                    ax.plot(g[:, 0], p0.pdf(g), "k-", lw=1.2, label="true density p0")
                ax.set_xlabel("x")
                ax.set_ylabel("density")
            else:
                if p0 is not None:
                    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 120),
                                         np.linspace(lo[1], hi[1], 120))
                    pdf = p0.pdf(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
                    ax.contour(gx, gy, pdf, levels=8, cmap="Greys", linewidths=0.8)
                ax.scatter(x[:, 0], x[:, 1], s=3, color="C0", alpha=0.5, label="samples")
                ax.set_xlim(lo[0], hi[0])
                ax.set_ylim(lo[1], hi[1])
                ax.set_xlabel("x1")
                ax.set_ylabel("x2")
            ax.set_title(est)
            ax.legend(loc="upper right", framealpha=0.8)
        note = "" if p0 is not None else " (true density unavailable)"
        extra = " (contours: p0)" if d == 2 and p0 is not None else ""
        fig.suptitle(f"{a['density']}, beta = {float(a['beta']):g}, d = {d}, n = {a['n']}, "
                     f"seed = {a['seed']}: generated samples vs p0{extra}{note}")
        fig.tight_layout()
    return fig


def point_label(row: pd.Series) -> str:
    """Short text naming one slope: cell, metric, estimator."""
    est = f", {row['estimator']}" if row.get("estimator") not in (None, "") else ""
    return (f"{row['density']} beta {row['beta']:g} d {int(row['d'])}: {row['metric']}{est}")


def _near_groups(x: np.ndarray, y: np.ndarray, *, dx: float, dy: float) -> list[list[int]]:
    """Indices of points grouped where they nearly coincide (within dx in x and dy in y,
    chained): one label each, so numbers do not print over each other."""
    groups: list[list[int]] = []
    for i in range(len(x)):
        for g in groups:
            if any(abs(x[i] - x[j]) <= dx and abs(y[i] - y[j]) <= dy for j in g):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def overview(rows: pd.DataFrame, kinds: pd.Series, *,
             labelled: int = 8) -> tuple[plt.Figure, np.ndarray]:
    """Every slope in n of `rows` (with its 95% CI) against the theory's exponent, marked
    by verdict kind; the diagonal is slope = exponent, points below it decay faster. The
    `labelled` slopes judged slower than the bound that lie farthest above the diagonal (in
    units of their interval's half width) carry a number, named in a key under the axes
    (points that nearly coincide share one label, "1,2"). Returns the figure and each row's
    point as fractions (x from the left, y from the top) of the saved image (no tight
    bounding box), NaN where not drawn: where a page puts hover targets."""
    th = rows["theory"].to_numpy(float)
    slope = rows["slope"].to_numpy(float)
    drawn = np.isfinite(slope) & np.isfinite(th)
    half = 0.5 * (rows["ci_high"] - rows["ci_low"]).to_numpy(float)
    slower = drawn & np.isin(kinds.to_numpy(), ["slower", "explained"])
    excess = np.where(slower, (slope - th) / np.where(half > 0, half, np.inf), -np.inf)
    named = [int(i) for i in np.argsort(-excess)[:labelled] if excess[i] > 1.0]
    key = [f"{k + 1}: {point_label(rows.iloc[i])}" for k, i in enumerate(named)]
    key_h = 0.14 * len(key) + (0.1 if key else 0.0)  # inches of key text under the axes
    height = 5.2 + key_h
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, height))
        # spread the points of one exponent a little so their intervals stay apart
        offset = np.zeros(len(rows))
        for v in np.unique(th[np.isfinite(th)]):
            idx = np.flatnonzero(th == v)
            offset[idx] = (np.arange(len(idx)) - (len(idx) - 1) / 2) * 0.012
        for kind, (marker, colour, text) in KIND_STYLE.items():
            sel = (kinds.to_numpy() == kind) & drawn
            if not sel.any():
                continue
            r = rows[sel]
            lo = (r["slope"] - r["ci_low"]).to_numpy(float)
            hi = (r["ci_high"] - r["slope"]).to_numpy(float)
            err = np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)])
            ax.errorbar(th[sel] + offset[sel], r["slope"], yerr=err, fmt=marker, color=colour,
                        ms=5, capsize=2, lw=0.8, mfc=colour if kind != "not judged" else "none",
                        label=f"{text} ({int(sel.sum())})")
        y_span = float(np.ptp(slope[drawn])) if drawn.any() else 0.0
        for group in _near_groups(th[named] + offset[named], slope[named], dx=0.03,
                                  dy=max(0.03 * y_span, 1e-12)):
            first = named[group[0]]
            ax.annotate(",".join(str(k + 1) for k in group), (th[first] + offset[first],
                                                             slope[first]),
                        xytext=(4, 3), textcoords="offset points", fontsize=7, color="0.2")
        finite = np.concatenate([th[np.isfinite(th)], slope])
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lim = np.array([finite.min() - 0.1, finite.max() + 0.1])
            ax.plot(lim, lim, "k-", lw=0.8, label="slope = theory exponent")
        ax.set_xlabel("theory exponent in n")
        ax.set_ylabel("measured slope in n (95% CI)")
        ax.set_title("Measured slope vs minimax exponent, one point per (cell, estimator, "
                     "metric)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", framealpha=0.8)
        ax.grid(alpha=0.3)
        if key:
            fig.text(0.01, 0.01, "\n".join(key), fontsize=6.5, va="bottom", color="0.2")
        fig.tight_layout(rect=(0.0, key_h / height, 1.0, 1.0))
        fig.canvas.draw()
        xy = np.full((len(rows), 2), np.nan)
        if drawn.any():
            disp = ax.transData.transform(np.column_stack([th + offset, slope])[drawn])
            w, h = fig.bbox.width, fig.bbox.height
            xy[drawn] = np.column_stack([disp[:, 0] / w, 1.0 - disp[:, 1] / h])
    return fig, xy
