"""The rate report: rates.csv, jobs.csv, summary.md, figures/*.png and a self-contained
index.html.

Orchestration only: the rate table comes from scorerate.study.rates, the figures from
scorerate.report.figures, the page from the jinja2 template templates/report.html.j2 (every PNG
embedded as base64, so the page opens from disk). The sample figures read the run store
whose path the study records in its `store` variable; the library knows no workflow layout.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..store.variables import VARIABLES
from ..study import rates as rates_mod
from ..study.coverage import cells, has_run
from ..study.rates import PER_T_METRICS, rate_table
from . import figures
from .jobs_table import write_job_table

__all__ = ["MIN_SEEDS_WARN", "VERDICT_COLOURS", "make_report", "run_store", "verdict_view"]

#: fewer seeds than this and the page warns that its intervals are unreliable
MIN_SEEDS_WARN = 5
#: verdict kind -> row colour of the tables
VERDICT_COLOURS = {"agrees": "#cdeccd", "faster": "#cfe0f5", "explained": "#ece9c4",
                   "slower": "#f6c6c6", "not judged": "#eeeeee"}
#: verdict against the bound (rates.VERDICTS) -> kind, for colours and overview markers
_KIND = {"consistent": "agrees", "faster than the bound": "faster",
         "slower than the bound": "slower"}
#: (the second holds score_mse_zero's rows too: the metric column tells them apart)
_SECTIONS = ("Rates in n", "Score MSE in n at each fixed t", "Score MSE in t at each n")


def verdict_view(rates: pd.DataFrame) -> pd.DataFrame:
    """The rate table with the columns the report shows: verdict_theory emptied where no
    verdict is given (the reason column says why) and kind (agrees / faster / slower /
    not judged) for colours and the overview markers."""
    v = rates.copy()
    v["verdict_theory"] = v["verdict_theory"].fillna("").astype(str)
    v["verdict_prediction"] = v["verdict_prediction"].fillna("").astype(str)
    v["reason"] = v["reason"].fillna("").astype(str)
    judged = v["verdict_theory"].isin(list(_KIND))
    v.loc[~judged, "verdict_theory"] = ""
    v.loc[v["verdict_prediction"].isin(["no prediction", "no verdict"]), "verdict_prediction"] = ""
    v["kind"] = v["verdict_theory"].map(_KIND).fillna("not judged")
    # slower than the bound, but as slow as the parameter-free finite-n prediction: the
    # kernel's finite-n behaviour, not a contradiction of the theorem
    v.loc[(v["kind"] == "slower") & (v["verdict_prediction"] == "matches"), "kind"] = "explained"
    return v


def run_store(study: xr.Dataset, cell: tuple, base: str | os.PathLike | None = None
              ) -> str | None:
    """The run store of `cell` with the largest n and smallest seed that exists on disk.

    Paths come only from the study's `store` variable; relative ones are taken relative
    to `base` (default: the current directory). None when no store of the cell is found.
    """
    dens, beta, d = cell
    stores = study["store"].sel(density=dens, beta=beta, d=d).transpose("n", "seed").values
    for i in range(stores.shape[0] - 1, -1, -1):
        for p in stores[i]:
            p = str(p)
            if not p:
                continue
            path = Path(p) if Path(p).is_absolute() or base is None else Path(base) / p
            if path.is_dir():
                return str(path)
    return None


def _png(fig, path: Path, *, tight: bool = True) -> str:
    """Save `fig` as PNG at `path`; returns the base64 text for the page. tight=False keeps
    the figure's own frame, so positions computed on it hold in the image."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight" if tight else None)
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return "" if not np.isfinite(v) else f"{v:.3g}"
    return "" if v is None else str(v)


def _table_columns(v: pd.DataFrame) -> list[str]:
    cols = ["density", "beta", "d", "estimator", "metric", "num_points", "num_seeds", "slope",
            "ci_low", "ci_high", "theory"]
    if v["theory_polylog"].notna().any():
        cols += ["theory_polylog"]
    if v["numerical_ratio"].notna().any():
        cols += ["numerical_ratio"]
    cols += ["verdict_theory"]
    if (v["verdict_prediction"] != "").any() or v["prediction_slope"].notna().any():
        cols += ["prediction_slope", "verdict_prediction"]
    return cols + ["reason"]


def _sections(v: pd.DataFrame) -> dict[str, pd.DataFrame]:
    show = _table_columns(v)
    per_t = v["metric"].isin(PER_T_METRICS)
    in_n = v[(v["axis"] == "n") & ~per_t]
    mse_n = v[(v["axis"] == "n") & per_t]
    mse_t = v[v["axis"] == "t"]
    return dict(zip(_SECTIONS, (in_n[show + ["kind"]],
                                mse_n[show[:5] + ["t"] + show[5:] + ["kind"]],
                                mse_t[show[:5] + ["n", "regime"] + show[5:] + ["kind"]]),
                    strict=True))


def _html_rows(df: pd.DataFrame) -> list[dict]:
    """Rows of a table for the template: cells (text, tooltip) and the row colour."""
    out = []
    for _, r in df.iterrows():
        reason = r.get("reason", "")
        cells_ = [(_fmt(r[c]), reason if _fmt(r[c]) == "" and reason else "")
                  for c in df.columns if c != "kind"]
        out.append({"colour": VERDICT_COLOURS.get(r["kind"], "#ffffff"), "cells": cells_})
    return out


def _md_table(df: pd.DataFrame) -> str:
    df = df.drop(columns="kind")
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row.values) + " |" for _, row in df.iterrows()]
    return "\n".join(lines)


def _verdict_label(v: pd.DataFrame) -> pd.Series:
    """One label per row for the counts: its kind (report.verdict_view), in words."""
    return v["kind"].map(lambda k: figures.KIND_STYLE[k][2])


def _overview_rows(v: pd.DataFrame) -> pd.DataFrame:
    """The rows of the overview figure and of the cell table under it (the same slopes):
    every fitted slope in n with an exponent, the score MSE (not its zero-region part) at
    the middle t."""
    r = v[(v["axis"] == "n") & np.isfinite(v["theory"]) & ~v["metric"].isin(PER_T_METRICS)]
    per_t = v[(v["axis"] == "n") & (v["metric"] == "score_mse")]
    if len(per_t):
        ts = np.sort(per_t["t"].unique())
        r = pd.concat([r, per_t[np.isclose(per_t["t"], ts[len(ts) // 2])]])
    r = r[np.isfinite(r["slope"].to_numpy(float))]
    return r.reset_index(drop=True)


def _hover_points(rows: pd.DataFrame, xy: np.ndarray, words: pd.Series) -> list[dict]:
    """One hover target per drawn point of the overview: position in % of the image and
    the text naming it (cell, metric, estimator, slope and interval, verdict, reason)."""
    out = []
    for (_, r), (fx, fy), word in zip(rows.iterrows(), xy, words, strict=True):
        if not (np.isfinite(fx) and np.isfinite(fy)):
            continue
        text = (f"{figures.point_label(r)}: slope {r['slope']:.3g} "
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}], theory {r['theory']:.3g}; "
                f"{word}" + (f" ({r['reason']})" if r.get("reason") else ""))
        out.append({"left": f"{100 * fx:.2f}", "top": f"{100 * fy:.2f}", "text": text})
    return out


def _cell_table(study: xr.Dataset, v: pd.DataFrame, cell_list: list[tuple]) -> dict:
    """The short table of cells: (density, beta, d), n and seeds with data, verdict counts."""
    kinds = list(figures.KIND_STYLE)
    rows = []
    runs = has_run(study)
    for dens, beta, d in cell_list:
        sel = v[(v["density"] == dens) & (v["beta"] == beta) & (v["d"] == d)]
        have = runs.sel(density=dens, beta=beta, d=d)
        ns = study["n"].values[have.any("seed").values]
        seeds = int(have.sum("seed").max())
        counts = sel["kind"].value_counts()
        rows.append([dens, f"{beta:g}", str(d),
                     f"{int(ns.min())}–{int(ns.max())} ({len(ns)})" if len(ns) else "",
                     str(seeds), *[str(int(counts.get(k, 0))) for k in kinds]])
    head = ["density", "beta", "d", "n (values)", "seeds"] + [
        figures.KIND_STYLE[k][2] for k in kinds]
    return {"head": head, "rows": rows}


def _provenance(study: xr.Dataset, extra: Mapping[str, str] | None) -> dict:
    """Config, versions, wall time from the study; date and cores here; `extra` (the
    command's git commit) on top."""
    def parse(text):
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            return text

    config = parse(study.attrs.get("config", ""))
    versions = parse(study.attrs.get("versions", ""))
    wall = study["wall_time_s"].values if "wall_time_s" in study else np.array([])
    wall = wall[np.isfinite(wall)]
    items = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "study wall time (sum over jobs)": f"{wall.sum():.1f} s over {wall.size} jobs"
        if wall.size else "unknown",
        "scorerate": str(study.attrs.get("scorerate_version", "unknown")),
    }
    items.update(extra or {})
    if isinstance(versions, Mapping):
        items.update({f"version: {k}": str(x) for k, x in versions.items()})
    elif versions:
        items["versions"] = json.dumps(versions)
    else:
        items["versions"] = "unknown (the run stores recorded none)"
    cfg_text = json.dumps(config, indent=2, sort_keys=True) if config else "(not recorded)"
    return {"items": items, "config": cfg_text}


def _grid_text(study: xr.Dataset) -> str:
    est = ", ".join(str(e) for e in study["estimator"].values)
    return (f"{study.attrs.get('n_runs', '?')} runs; n = "
            f"{', '.join(str(int(n)) for n in study['n'].values)}; "
            f"{study.sizes['seed']} seeds; estimators {est}")


def make_report(study_path: str | os.PathLike, out: str | os.PathLike, *,
                runs_base: str | os.PathLike | None = None,
                provenance: Mapping[str, str] | None = None,
                density_factory: Callable | None = None,
                trusted: Collection[str] = ()) -> Path:
    """Write rates.csv, jobs.csv (report/jobs_table.py), summary.md, figures/*.png and
    index.html under `out`.

    runs_base: base directory of relative run-store paths (default: current directory).
    provenance: extra provenance items (e.g. the git commit) shown on the page.
    density_factory(name, beta=, d=) gives the true density for the sample figures
    (default scorerate.density, for registered names and those in `trusted`, e.g. a study
    config's densities: a name read from the study never picks a module to import).
    Returns the path of index.html. Cost: the rate table
    (O(n S) per fit) plus a few figures per cell.
    """
    from ..study.aggregate import open_study

    study = open_study(study_path)  # first: a study that does not open writes nothing
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    rates = rate_table(study)
    rates.to_csv(out / "rates.csv", index=False)
    write_job_table(study, out / "jobs.csv")
    v = verdict_view(rates)
    if density_factory is None:
        density_factory = _named_density_factory(trusted)

    cell_list = cells(study)
    ov = _overview_rows(v)
    ov_fig, ov_xy = figures.overview(ov, ov["kind"])
    overview = _png(ov_fig, figdir / "verdicts.png", tight=False)
    groups: dict[tuple, list[dict]] = {}
    for cell in cell_list:
        figs = _cell_figures(study, v, cell, figdir, runs_base, density_factory)
        groups.setdefault(cell[:2], []).append({"d": cell[2], "figures": figs})

    sections = _sections(v)
    counts = _verdict_counts(v)
    (out / "summary.md").write_text(_summary_markdown(study_path, study, sections, counts))
    page = _html_page(study_path, study, v, sections, counts, overview=overview,
                      hover=_hover_points(ov, ov_xy, _verdict_label(ov)),
                      cell_table=_cell_table(study, ov, cell_list), groups=groups,
                      n_overview=len(ov), provenance=_provenance(study, provenance))
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page)
    tmp.replace(index)
    return index


def _cell_figures(study: xr.Dataset, v: pd.DataFrame, cell: tuple, figdir: Path,
                  runs_base: str | os.PathLike | None,
                  density_factory: Callable | None) -> list[tuple[str, str]]:
    """One cell's figures as (caption, PNG path): error vs n, score MSE vs t,
    memorisation vs stopping time and the samples (d <= 2), each where it has data."""
    dens, beta, d = cell
    slug = f"{dens}_beta{beta:g}_d{d}"
    title = f"{dens}, beta = {beta:g}, d = {d}"
    c = study.sel(density=dens, beta=beta, d=d)
    rows = v[(v["density"] == dens) & (v["beta"] == beta) & (v["d"] == d) & (v["axis"] == "n")]
    figs = [(f"{title}: error vs n",
             _png(figures.error_vs_n(c, rows, title), figdir / f"rates_n_{slug}.png"))]
    if study.sizes["t"] and bool(c["score_mse"].notnull().any()):
        figs.append((f"{title}: score MSE vs t", _png(
            figures.score_mse_vs_t(c["score_mse"], d, title), figdir / f"score_t_{slug}.png")))
    if "memorisation_stop" in c and int(c["memorisation_stop"].notnull().any(
            ("n", "seed", "estimator")).sum()) >= 3:
        figs.append((f"{title}: memorisation vs stopping time", _png(
            figures.memorisation_vs_stop(c, title), figdir / f"memorisation_{slug}.png")))
    if d in (1, 2) and (path := run_store(study, cell, runs_base)) is not None:
        p0 = None
        with xr.open_zarr(path) as run:
            if density_factory is not None:
                try:
                    p0 = density_factory(dens, beta=beta, d=d)
                except Exception:  # the figure says the true density is unavailable
                    p0 = None
            figs.append((f"{title}: generated samples vs true density", _png(
                figures.samples_vs_density(run, p0), figdir / f"samples_{slug}.png")))
    return figs


def _verdict_counts(v: pd.DataFrame) -> pd.Series:
    """Rows per verdict word, then per finite-n prediction verdict."""
    words = _verdict_label(v)
    count_words = [figures.KIND_STYLE[k][2] for k in figures.KIND_STYLE]
    counts = words.value_counts().reindex(count_words, fill_value=0)
    pred = v["verdict_prediction"][v["verdict_prediction"] != ""].value_counts()
    for word in ("matches", "does not match"):
        counts[f"finite-n prediction: {word}"] = int(pred.get(word, 0))
    return counts


def _summary_markdown(study_path: str | os.PathLike, study: xr.Dataset,
                      sections: Mapping[str, pd.DataFrame], counts: pd.Series) -> str:
    """summary.md: the verdict counts, one table per section and the metrics not computed."""
    md = ["# scorerate study report", "",
          f"Study: `{study_path}` ({_grid_text(study)}). Slopes are least-squares fits of "
          "log(mean error over seeds) against log n, with 95% intervals from the per-n seed "
          "means (delta method, t quantile; coverage tested at 5-10 seeds); the verdicts "
          "compare them with the theory's exponent and with the finite-n prediction.", "",
          "| verdict | rows |", "|---|---|"]
    md += [f"| {k} | {n} |" for k, n in counts.items()]
    for title, df in sections.items():
        md += ["", f"## {title}", "", _md_table(df) if len(df) else "(no rows)"]
    skipped = [(name, study[name].attrs["not_computed"]) for name in study.data_vars
               if study[name].attrs.get("not_computed")]
    if skipped:
        md += ["", "## Not computed (NaN by design)", ""]
        md += [f"- `{name}`: {why}" for name, why in skipped]
    return "\n".join(md) + "\n"


def _html_page(study_path: str | os.PathLike, study: xr.Dataset, v: pd.DataFrame,
               sections: Mapping[str, pd.DataFrame], counts: pd.Series, **parts) -> str:
    """index.html from the jinja2 template: `parts` are the overview, hover targets, cell
    table, figure groups, overview size and provenance made by make_report."""
    import jinja2

    n_seeds = int(study.sizes["seed"])
    columns = [(c, _COLUMN_MEANING.get(c, "")) for c in
               _table_columns(v) + ["t", "n", "regime"]]
    metrics = [(x.name, x.long_name, x.scaling, x.description,
                study[x.name].attrs.get("not_computed", "") if x.name in study else "")
               for x in VARIABLES if x.role == "metric"]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(
        resources.files("scorerate.report").joinpath("templates/report.html.j2").read_text())
    return template.render(
        study_path=str(study_path), grid=_grid_text(study),
        warn_seeds=n_seeds < MIN_SEEDS_WARN, n_seeds=n_seeds, min_seeds=MIN_SEEDS_WARN,
        sections={k: {"head": [c for c in df.columns if c != "kind"], "rows": _html_rows(df)}
                  for k, df in sections.items()},
        counts=counts.to_dict(), glossary=list(rates_mod.VERDICTS.items()), columns=columns,
        metrics=metrics,
        kinds=[(figures.KIND_STYLE[k][2], VERDICT_COLOURS[k]) for k in figures.KIND_STYLE],
        **parts)


def _named_density_factory(trusted: Collection[str]) -> Callable:
    """scorerate.density for registered names and `trusted` ones; ValueError for any other
    name (the sample figure then says the true density is unavailable)."""
    from ..densities import DENSITIES, density

    def factory(name: str, beta: float, d: int):
        if name not in DENSITIES and name not in trusted:
            raise ValueError(f"density {name!r} is neither registered nor named by the "
                             f"study config; not imported")
        return density(name, beta=beta, d=d)

    return factory


_COLUMN_MEANING = {
    "density": "true density p0", "beta": "its Sobolev smoothness", "d": "dimension",
    "estimator": f"score estimator ({rates_mod.KDE_ESTIMATOR}: the ideal output, the "
    "Gaussian KDE at t0, which no estimator drives)",
    "metric": "the error fitted (see the metrics below)",
    "num_points": "values of n (or t) with data in the fit",
    "num_seeds": "fewest seeds at any of those values",
    "slope": "least-squares slope of log(mean error over seeds) against log n (or log t)",
    "ci_low": "lower end of the slope's 95% interval (delta method on the per-n seed "
              "means, t quantile)",
    "ci_high": "upper end of the slope's 95% interval",
    "theory": "the theory's exponent (empty: no theorem)",
    "theory_polylog": "upper end of the theory's slope with the polylog factor the theorem "
                      "allows ((log n)^(d/2) for the score MSE at fixed t, over the fit's "
                      "n); consistent means the interval meets [theory, theory_polylog]",
    "numerical_ratio": "largest ratio, over the fit's n, of the numerical error (the "
                       "step error measured on a law at twice the steps, largest over the "
                       "step-check seeds: tv_law_steps_check, l2_law_steps_check; where an n "
                       "has none, the seed mean of the three-law estimate tv_law_steps, "
                       "l2_law_steps) to the standard error of the seed mean; above "
                       f"{rates_mod.NUMERICAL_FRACTION:g} at any n: no verdict",
    "verdict_theory": "slope against the theory's exponent (see the verdicts)",
    "prediction_slope": "slope of the finite-n prediction over the same n",
    "verdict_prediction": "slope against the finite-n prediction",
    "reason": "why a row has no verdict or an empty number",
    "t": "the fixed t of a score-MSE fit in n", "n": "the fixed n of a score-MSE fit in t",
    "regime": "t < 1 (slope -(d+2)/2) or t > 1 (slope -1)",
}
