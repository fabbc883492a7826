"""The rate report: rates.csv, summary.md, PNG figures and a self-contained index.html.

Reads the study store (metrics) and, for the sample figures, a few run stores (one per
(density, beta, d) with d in 1, 2: the largest n, the smallest seed). Every PNG is also
embedded in index.html as base64, so the page opens from disk with nothing beside it.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from .rates import KDE_ESTIMATOR, N_METRICS, bootstrap_means, rate_table  # noqa: E402
from .seeding import rng  # noqa: E402
from .theory import score_mse_t_exponent  # noqa: E402
from .variables import VARIABLES  # noqa: E402

__all__ = ["VERDICT_COLOURS", "find_run_store", "make_report"]

VERDICT_COLOURS = {"consistent": "#cdeccd", "faster than the bound": "#cde0f6",
                   "slower than the bound": "#f6c6c6", "no verdict": "#e4e4e4"}
METRIC_LABELS = {v.name: v.label for v in VARIABLES if v.label}


def _cells(study: xr.Dataset) -> list[tuple[str, float, int]]:
    """(density, beta, d) cells holding any data, in coordinate order."""
    have = study["tv_kde"].notnull().any(("n", "seed")) | study["score_mse"].notnull().any(
        ("n", "seed", "estimator", "t"))
    return [(str(a), float(b), int(c)) for a in study["density"].values
            for b in study["beta"].values for c in study["d"].values
            if bool(have.sel(density=a, beta=b, d=c))]


def _slug(dens: str, beta: float, d: int) -> str:
    return f"{dens}_beta{beta:g}_d{d}"


def _series(var: xr.DataArray) -> np.ndarray:
    return var.transpose("n", "seed").values


def _band(values: np.ndarray, key: tuple, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """Mean over seeds per n and its bootstrap percentile band."""
    boots = bootstrap_means(values, n_boot=400, rng=rng("report-band", *key))
    with np.errstate(all="ignore"):
        mean = np.nanmean(np.where(np.isfinite(values), values, np.nan), axis=1) \
            if np.isfinite(values).any() else np.full(values.shape[0], np.nan)
    a = (1 - level) / 2
    ok = np.isfinite(boots).any(0)
    lo = np.full(values.shape[0], np.nan)
    hi = lo.copy()
    if ok.any():
        lo[ok] = np.nanquantile(boots[:, ok], a, axis=0)
        hi[ok] = np.nanquantile(boots[:, ok], 1 - a, axis=0)
    return mean, lo, hi


def _panel_n(ax, ns, series: dict[str, np.ndarray], rates: pd.DataFrame, title: str,
             key: tuple) -> None:
    """Error vs n on log-log axes: mean, CI band, fitted line per estimator, theory line."""
    theory = math.nan
    anchor = None
    for i, (est, vals) in enumerate(series.items()):
        mean, lo, hi = _band(vals, (*key, est))
        ok = np.isfinite(mean) & (mean > 0)
        if not ok.any():
            continue
        colour = f"C{i}"
        row = rates[rates["estimator"] == est]
        label = est
        if len(row):
            r = row.iloc[0]
            theory = r["theory"]
            label = f"{est}: {r['slope']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        ax.plot(ns[ok], mean[ok], "o-", color=colour, label=label, ms=4)
        band = ok & np.isfinite(lo) & (lo > 0)
        ax.fill_between(ns[band], lo[band], hi[band], color=colour, alpha=0.2, lw=0)
        if anchor is None:
            anchor = (np.exp(np.mean(np.log(ns[ok]))), np.exp(np.mean(np.log(mean[ok]))))
    if anchor is not None and math.isfinite(theory):
        xs = np.array([ns.min(), ns.max()], dtype=float)
        ax.plot(xs, anchor[1] * (xs / anchor[0]) ** theory, "k:", lw=1.5,
                label=f"theory n^{theory:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)


def fig_rates_n(study: xr.Dataset, rates: pd.DataFrame, cell: tuple) -> plt.Figure:
    """One panel per metric (and the score MSE at the middle t) of error vs n for one cell."""
    dens, beta, d = cell
    c = study.sel(density=dens, beta=beta, d=d)
    r = rates[(rates["density"] == dens) & (rates["beta"] == beta) & (rates["d"] == d)
              & (rates["axis"] == "n")]
    ns = study["n"].values.astype(float)
    ts = study["t"].values.astype(float)
    t_mid = float(ts[len(ts) // 2]) if len(ts) else math.nan
    panels = [m for m in N_METRICS if m in c and bool(c[m].notnull().any())]
    if len(ts):
        panels.append("score_mse")
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.2 * nrow), squeeze=False)
    for ax, metric in zip(axes.flat, panels, strict=False):
        if metric == "score_mse":
            var = c["score_mse"].sel(t=t_mid)
            rr = r[(r["metric"] == metric) & np.isclose(r["t"], t_mid)]
            title = f"{METRIC_LABELS[metric]} at t = {t_mid:.3g}"
        else:
            var = c[metric]
            rr = r[r["metric"] == metric]
            title = METRIC_LABELS[metric]
        if "estimator" in var.dims:
            series = {str(e): _series(var.sel(estimator=e)) for e in var["estimator"].values}
        else:
            series = {KDE_ESTIMATOR: _series(var)}
        _panel_n(ax, ns, series, rr, title, (dens, beta, d, metric))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{dens}, beta = {beta:g}, d = {d}: error vs n (mean over seeds, 95% "
                 "bootstrap band; dotted: theory slope)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_score_t(study: xr.Dataset, cell: tuple) -> plt.Figure:
    """Score MSE vs t, one line per n, one panel per estimator, with the theory slopes."""
    dens, beta, d = cell
    mse = study["score_mse"].sel(density=dens, beta=beta, d=d)
    ts = study["t"].values.astype(float)
    ests = [str(e) for e in mse["estimator"].values]
    fig, axes = plt.subplots(1, len(ests), figsize=(4 * len(ests), 3.4), squeeze=False)
    cmap = plt.get_cmap("viridis")
    ns = study["n"].values
    for ax, est in zip(axes.flat, ests, strict=True):
        m = mse.sel(estimator=est).mean("seed", skipna=True).transpose("n", "t").values
        for i, n in enumerate(ns):
            ok = np.isfinite(m[i]) & (m[i] > 0)
            if ok.any():
                ax.plot(ts[ok], m[i][ok], "o-", ms=3, color=cmap(i / max(1, len(ns) - 1)),
                        label=f"n = {int(n)}")
        finite = m[np.isfinite(m) & (m > 0)]
        if finite.size:
            y1 = float(np.exp(np.mean(np.log(finite))))
            for sel, slope, style in ((ts <= 1, score_mse_t_exponent(d, "small"), "k:"),
                                      (ts >= 1, score_mse_t_exponent(d, "large"), "k--")):
                if sel.sum() >= 2:
                    xs = ts[sel][[0, -1]]
                    ax.plot(xs, y1 * xs ** slope, style, lw=1,
                            label=f"t^{slope:g} ({'t<1' if slope != -1 else 't>1'})")
        ax.axvline(1.0, color="0.7", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("score MSE")
        ax.set_title(est, fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"{dens}, beta = {beta:g}, d = {d}: score MSE vs t (mean over seeds)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def find_run_store(study: xr.Dataset, cell: tuple, runs_dir: str | os.PathLike) -> str | None:
    """Path of the run store with the largest n and smallest seed of `cell`, if any exists.

    Uses the path the aggregation recorded; falls back to the layout under `runs_dir`.
    """
    dens, beta, d = cell
    stores = study["store"].sel(density=dens, beta=beta, d=d).transpose("n", "seed").values
    ns = study["n"].values
    seeds = study["seed"].values
    for i in range(len(ns) - 1, -1, -1):
        for j in range(len(seeds)):
            p = str(stores[i, j])
            if p and Path(p).is_dir():
                return p
            alt = (Path(runs_dir) / dens / f"beta={beta!r}" / f"d={d}" / f"n={int(ns[i])}"
                   / f"seed={int(seeds[j])}.zarr")
            if p and alt.is_dir():
                return str(alt)
    return None


def fig_samples(run_path: str, density_factory: Callable | None) -> plt.Figure:
    """Generated samples per estimator against the true density (1D: histogram + pdf;
    2D: scatter over pdf contours)."""
    run = xr.open_zarr(run_path)
    dens, beta, d, n = run.attrs["density"], float(run.attrs["beta"]), int(run.attrs["d"]), \
        int(run.attrs["n"])
    samples = run["samples"].load()
    ests = [str(e) for e in samples["estimator"].values]
    p0 = None
    if density_factory is not None:
        try:
            p0 = density_factory(dens, beta=beta, d=d)
        except Exception:  # the figure still shows the samples; the title says why
            p0 = None
    fig, axes = plt.subplots(1, len(ests), figsize=(3.6 * len(ests), 3.4), squeeze=False)
    for ax, est in zip(axes.flat, ests, strict=True):
        x = samples.sel(estimator=est).values
        x = x[np.isfinite(x).all(1)]
        lo, hi = np.quantile(x, [0.005, 0.995], axis=0) if len(x) else (-3, 3)
        pad = 0.15 * (np.asarray(hi) - np.asarray(lo)) + 1e-3
        lo, hi = np.asarray(lo) - pad, np.asarray(hi) + pad
        if d == 1:
            ax.hist(x[:, 0], bins=40, range=(lo[0], hi[0]), density=True, color="C0",
                    alpha=0.5, label="samples")
            if p0 is not None:
                g = np.linspace(lo[0], hi[0], 400)[:, None]
                ax.plot(g[:, 0], p0.pdf(g), "k-", lw=1.2, label="true p0")
            ax.set_xlabel("x")
        else:
            if p0 is not None:
                gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120))
                pdf = p0.pdf(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
                ax.contour(gx, gy, pdf, levels=8, cmap="Greys", linewidths=0.8)
            ax.scatter(x[:, 0], x[:, 1], s=2, color="C0", alpha=0.5, label="samples")
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_xlabel("x1")
            ax.set_ylabel("x2")
        ax.set_title(est, fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
    note = "" if p0 is not None else " (true density unavailable)"
    fig.suptitle(f"{dens}, beta = {beta:g}, d = {d}, n = {n}, seed = {run.attrs['seed']}: "
                 f"generated samples vs p0{note}", fontsize=10)
    fig.tight_layout()
    run.close()
    return fig


def fig_verdicts(rates: pd.DataFrame) -> plt.Figure:
    """Measured slope (with CI) against the theory for every judged rate in n, by verdict."""
    r = rates[(rates["axis"] == "n") & rates["theory"].notna()
              & ~((rates["metric"] == "score_mse") & rates["t"].notna())].reset_index(drop=True)
    per_t = rates[(rates["axis"] == "n") & (rates["metric"] == "score_mse")]
    if len(per_t):
        # one representative t per (cell, estimator): the middle of the grid
        ts = np.sort(per_t["t"].unique())
        r = pd.concat([r, per_t[np.isclose(per_t["t"], ts[len(ts) // 2])]], ignore_index=True)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * len(r) + 1)))
    y = np.arange(len(r))
    for i, row in r.iterrows():
        colour = {"consistent": "tab:green", "faster than the bound": "tab:blue",
                  "slower than the bound": "tab:red"}.get(row["verdict"], "0.6")
        err = [[row["slope"] - row["ci_low"]], [row["ci_high"] - row["slope"]]] \
            if np.isfinite(row["ci_low"]) else None
        ax.errorbar(row["slope"], i, xerr=err, fmt="o", color=colour, ms=4, capsize=2)
        ax.plot(row["theory"], i, "k|", ms=10)
    labels = [f"{a} b={b:g} d={c} {e} {m}" for a, b, c, e, m in
              zip(r["density"], r["beta"], r["d"], r["estimator"], r["metric"], strict=True)]
    ax.set_yticks(y, labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("slope in n (dot: measured with 95% CI; bar: theory)")
    ax.set_title("Agreement with theory: green inside CI, red outside, grey not judged",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _png(fig: plt.Figure, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # no clipped labels
    plt.close(fig)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return "" if not np.isfinite(v) else f"{v:.3g}"
    return str(v)


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        bg = VERDICT_COLOURS.get(row.get("verdict", ""), "#ffffff")
        cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.values)
        body.append(f'<tr style="background:{bg}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row.values) + " |" for _, row in df.iterrows()]
    return "\n".join(lines)


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #bbb;padding:2px 6px}th{background:#eee}"
        "img{max-width:100%;border:1px solid #ddd;margin:6px 0}")


def _sections(rates: pd.DataFrame) -> dict[str, pd.DataFrame]:
    show = ["density", "beta", "d", "estimator", "metric", "num_points", "num_seeds", "slope",
            "ci_low", "ci_high", "theory", "verdict"]
    in_n = rates[(rates["axis"] == "n") & (rates["metric"] != "score_mse")]
    mse_n = rates[(rates["axis"] == "n") & (rates["metric"] == "score_mse")]
    mse_t = rates[rates["axis"] == "t"]
    return {
        "Rates in n": in_n[show],
        "Score MSE in n at each fixed t": mse_n[show[:5] + ["t"] + show[5:]],
        "Score MSE in t at each n": mse_t[show[:5] + ["n", "regime"] + show[5:]],
    }


def make_report(study_path: str | os.PathLike, runs_dir: str | os.PathLike,
                out: str | os.PathLike, *, n_boot: int = 1000,
                density_factory: Callable | None = None) -> Path:
    """Write rates.csv, summary.md, figures/*.png and index.html under `out`.

    density_factory(name, beta=, d=) gives the true density for the sample figures
    (default scorerate.density). Returns the path of index.html.
    """
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    study = xr.open_zarr(study_path).load()
    rates = rate_table(study, n_boot=n_boot)
    rates.to_csv(out / "rates.csv", index=False)
    if density_factory is None:
        try:
            from . import density as density_factory
        except ImportError:
            density_factory = None

    figs: list[tuple[str, str, bytes]] = []  # (section, caption, png)
    figs.append(("Overview", "Measured slopes in n against the theory",
                 _png(fig_verdicts(rates), figdir / "verdicts.png")))
    for cell in _cells(study):
        slug = _slug(*cell)
        figs.append(("Error vs n", f"{slug}: error vs n",
                     _png(fig_rates_n(study, rates, cell), figdir / f"rates_n_{slug}.png")))
        if study.sizes["t"]:
            figs.append(("Score MSE vs t", f"{slug}: score MSE vs t",
                         _png(fig_score_t(study, cell), figdir / f"score_t_{slug}.png")))
        if cell[2] in (1, 2):
            path = find_run_store(study, cell, runs_dir)
            if path is not None:
                figs.append(("Samples", f"{slug}: samples vs true density",
                             _png(fig_samples(path, density_factory),
                                  figdir / f"samples_{slug}.png")))

    counts = rates["verdict"].value_counts().reindex(list(VERDICT_COLOURS), fill_value=0)
    sections = _sections(rates)
    md = ["# scorerate study report", "",
          f"Study: `{study_path}` ({study.attrs.get('n_runs', '?')} runs). Slopes are "
          "least-squares fits of log(mean error over seeds) against log n, with 95% bootstrap "
          "CIs over seeds; the verdict says whether the theoretical exponent lies in the CI.",
          "", "| verdict | rows |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in counts.items()]
    for title, df in sections.items():
        md += ["", f"## {title}", "", _md_table(df) if len(df) else "(no rows)"]
    (out / "summary.md").write_text("\n".join(md) + "\n")

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>scorerate report"
             f"</title><style>{_CSS}</style></head><body>",
             "<h1>scorerate: convergence rates against theory</h1>",
             f"<p>Study <code>{html.escape(str(study_path))}</code>, "
             f"{study.attrs.get('n_runs', '?')} runs. Rows are coloured by verdict: "
             + ", ".join(f"<span style='background:{c};padding:0 4px'>{k}</span> ({counts[k]})"
                         for k, c in VERDICT_COLOURS.items()) + ".</p>"]
    for title, df in sections.items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_html_table(df) if len(df) else "<p>(no rows)</p>")
    current = None
    for section, caption, png in figs:
        if section != current:
            parts.append(f"<h2>{html.escape(section)}</h2>")
            current = section
        b64 = base64.b64encode(png).decode()
        parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,"
                     f"{b64}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text("\n".join(parts))
    tmp.replace(index)
    return index
