"""The report: every output written, self-contained HTML, tables filled and consistent."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from scorerate.cli import main
from scorerate.report.build import make_report
from scorerate.study.aggregate import aggregate, write_study
from scorerate.study.rates import COLUMNS, VERDICTS, rate_table

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import write_run  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NS = (100, 300, 1000)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic study in d = 1, 2 (errors n^-0.5), one cell (d=2, n=1000, seed=2)
    missing, aggregated and written like the workflow does."""
    root = tmp_path_factory.mktemp("study")
    runs = [write_run(root / "runs", d=d, n=n, seed=s) for d in (1, 2) for n in NS
            for s in SEEDS if (d, n, s) != (2, 1000, 2)]
    config = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1, 2], "n": list(NS),
              "seeds": list(SEEDS)}
    path = write_study(aggregate(runs, config=config), root / "study.zarr")
    out = root / "report"
    index = make_report(path, out)
    return {"root": root, "path": path, "out": out, "index": index}


def test_every_output_is_written(study):
    out = study["out"]
    assert study["index"] == out / "index.html"
    names = sorted(p.name for p in (out / "figures").iterdir())
    for d in (1, 2):
        slug = f"sym_beta_beta1_d{d}"
        for kind in ("rates_n", "score_t", "samples"):
            assert f"{kind}_{slug}.png" in names
    assert "verdicts.png" in names
    for p in (out / "figures").iterdir():
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000  # a real, drawn figure
    for name in ("rates.csv", "jobs.csv", "summary.md", "index.html"):
        assert (out / name).stat().st_size > 0


def test_jobs_csv_has_one_row_per_job_and_estimator_and_reads_back_bit_for_bit(study):
    """The missing job has no row; every number reads back exactly (17 digits)."""
    jobs = pd.read_csv(study["out"] / "jobs.csv")
    ds = xr.open_zarr(study["path"])
    n_est = ds.sizes["estimator"]
    assert len(jobs) == (2 * len(NS) * len(SEEDS) - 1) * n_est
    assert list(jobs.columns[:6]) == ["density", "beta", "d", "n", "seed", "estimator"]
    assert {"tv_law", "l2_law", "tv_kde", "l2_kde", "tv_sampler", "tv_steps"} <= set(jobs)
    assert not ((jobs["d"] == 2) & (jobs["n"] == 1000) & (jobs["seed"] == 2)).any()
    for _, row in jobs.sample(10, random_state=0).iterrows():
        cell = ds.sel(density=row["density"], beta=row["beta"], d=row["d"], n=row["n"],
                      seed=row["seed"])
        for name in ("tv_law", "l2_law", "tv_sampler"):
            want = float(cell[name].sel(estimator=row["estimator"]))
            assert row[name] == want or (np.isnan(want) and np.isnan(row[name]))
        assert row["tv_kde"] == float(cell["tv_kde"])
        assert row["n_steps"] == int(cell["n_steps"]) == 20


def test_html_is_self_contained_and_embeds_every_png(study):
    text = study["index"].read_text()
    srcs = re.findall(r"""src=['"]([^'"]+)['"]""", text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # the only links to files beside it are the three tables the page offers as downloads
    hrefs = re.findall(r"""href=['"]([^'"]+)['"]""", text)
    assert sorted(h for h in hrefs if not h.startswith("#")) == ["jobs.csv", "rates.csv",
                                                                   "summary.md"]
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    on_disk = {p.read_bytes() for p in (study["out"] / "figures").iterdir()}
    assert embedded == on_disk


def test_tables_are_filled_and_match_the_rates(study):
    rates = pd.read_csv(study["out"] / "rates.csv")
    assert list(rates.columns) == COLUMNS
    assert set(rates["verdict"]) <= set(VERDICTS)
    # the CSV is the rate table of the study (same keyed bootstrap, so same numbers)
    direct = rate_table(xr.open_zarr(study["path"]).load())
    np.testing.assert_allclose(rates["slope"], direct["slope"], rtol=1e-12)
    np.testing.assert_allclose(rates["ci_low"], direct["ci_low"], rtol=1e-12)
    # synthetic metrics fall as n^-0.5: every fitted slope in n is near it
    tv = rates[(rates.metric == "tv") & (rates.axis == "n")]
    assert len(tv) == 4 and np.all(np.abs(tv.slope + 0.5) < 0.1)
    summary = (study["out"] / "summary.md").read_text()
    html_text = study["index"].read_text()
    assert "(no rows)" not in summary and "(no rows)" not in html_text
    for title in ("Rates in n", "Score MSE in n at each fixed t", "Score MSE in t at each n"):
        assert f"## {title}" in summary and f"<summary><h2>{title}</h2>" in html_text
    # one markdown row per rate row, plus the verdict counts that add up to them
    body = [ln for ln in summary.splitlines() if ln.startswith("| sym_beta")]
    assert len(body) == len(rates)
    from scorerate.report.figures import KIND_STYLE

    words = "|".join(re.escape(style[2]) for style in KIND_STYLE.values())
    counts = dict(re.findall(rf"^\| ({words}) \| (\d+) \|$", summary, flags=re.M))
    assert sum(map(int, counts.values())) == len(rates)
    # every row of the HTML tables is coloured by its verdict
    assert html_text.count("<tr style=") == len(rates)


def test_cli(study, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--study", str(study["path"]), "--out", str(out)]) == 0
    assert (out / "index.html").is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", "--study", str(tmp_path / "none.zarr"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _text(html_text: str) -> str:
    """The page without its embedded images."""
    return re.sub(r"base64,[A-Za-z0-9+/=]+", "", html_text)


def test_answer_first_warning_provenance_and_no_bare_nan(study):
    page = _text(study["index"].read_text())
    # the question and the overview come before any table; full tables are collapsible
    assert page.index("minimax") < page.index('id="overview-figure"') < page.index("<table")
    assert page.count("<details>") == 3 + 1  # three rate tables, the config
    # 3 seeds < 5: the banner says the verdicts rest on few seeds
    assert 'class="warning"' in page and re.search(r"has 3\s+seeds per cell", page)
    # provenance from the study's attrs: versions of the runs, the config, summed wall time
    assert "version: numpy</th><td>synthetic" in page
    assert "&#34;seeds&#34;: [" in page or '"seeds": [' in page
    n_runs = len(NS) * len(SEEDS) * 2 - 1
    assert f"{0.1 * n_runs:.1f} s over {n_runs} jobs" in page
    assert "cores (os.cpu_count)" in page and "git commit" not in page  # library adds none
    # no number shows as nan; every empty cell of a row without a verdict has a tooltip
    # (the glossary may say where a metric is NaN: that is its reason)
    assert not re.search(r"\bnan\b", page[:page.index('id="glossary"')], flags=re.I)
    rates = pd.read_csv(study["out"] / "rates.csv")
    unjudged = int((~rates["verdict"].isin(["inside CI", "outside CI"])).sum())
    assert unjudged > 0 and page.count(' title="') >= unjudged  # w1/mmd2 have no theory
    # the glossary lists every verdict word of rates.VERDICTS
    for word in VERDICTS:
        assert f"<dt>{word}</dt>" in page


def test_verdict_view_gives_each_row_a_kind_and_keeps_the_reason():
    from scorerate.report.build import verdict_view

    base = {"density": "p", "beta": 1.0, "d": 1, "estimator": "e", "metric": "tv", "axis": "n",
            "t": np.nan, "n": np.nan, "regime": "", "num_points": 5, "num_seeds": 5,
            "theory": -1 / 3}
    table = pd.DataFrame([
        {**base, "slope": -0.30, "verdict_theory": "consistent", "verdict_prediction": "matches",
         "prediction_slope": -0.3, "reason": ""},
        {**base, "slope": -0.60, "verdict_theory": "faster than the bound",
         "verdict_prediction": "does not match", "prediction_slope": -0.3, "reason": ""},
        {**base, "slope": -0.10, "verdict_theory": "slower than the bound",
         "verdict_prediction": "no prediction", "prediction_slope": np.nan, "reason": ""},
        {**base, "slope": -0.5, "verdict_theory": "no verdict", "verdict_prediction": "",
         "prediction_slope": np.nan, "reason": "too few seeds"},
        {**base, "slope": np.nan, "verdict_theory": "no verdict", "verdict_prediction": "",
         "prediction_slope": np.nan, "reason": "no theorem"},
    ])
    w = verdict_view(table)
    assert list(w["kind"]) == ["agrees", "faster", "slower", "not judged", "not judged"]
    assert list(w["verdict_theory"][3:]) == ["", ""]
    assert list(w["reason"][3:]) == ["too few seeds", "no theorem"]  # the table's own reason
    assert list(w["verdict_prediction"][:3]) == ["matches", "does not match", ""]


def test_run_store_comes_only_from_the_study(study, tmp_path):
    from scorerate.report.build import run_store

    ds = xr.open_zarr(study["path"]).load()
    got = run_store(ds, ("sym_beta", 1.0, 2))
    assert got is not None and "n=1000/seed=0.zarr" in got  # largest n, smallest seed
    # relative paths are taken relative to the base; a wrong base finds nothing
    root = study["root"]
    ds["store"] = ds["store"].copy(data=np.vectorize(
        lambda p: str(Path(p).relative_to(root)) if p else "")(ds["store"].values))
    assert run_store(ds, ("sym_beta", 1.0, 2), root) == got
    assert run_store(ds, ("sym_beta", 1.0, 2), tmp_path) is None


def test_figures_have_labelled_axes_and_readable_text(study):
    import matplotlib.pyplot as plt

    from scorerate.report import figures

    ds = xr.open_zarr(study["path"]).load()
    rates = rate_table(ds)
    cell = ds.sel(density="sym_beta", beta=1.0, d=1)
    figs = [figures.error_vs_n(cell, rates[(rates.d == 1) & (rates.axis == "n")], "c"),
            figures.score_mse_vs_t(cell["score_mse"], 1, "c")]
    for fig in figs:
        fig.canvas.draw()
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            assert ax.get_xlabel() and ax.get_ylabel()
            texts = [ax.xaxis.label, ax.yaxis.label, ax.title, *ax.get_xticklabels()]
            if ax.get_legend():
                texts += ax.get_legend().get_texts()
            assert min(t.get_fontsize() for t in texts) >= 8
            assert not any("nan" in t.get_text() for t in texts)
        plt.close(fig)


def test_the_budget_panel_draws_the_gated_step_error_beside_half_the_se(study):
    """Per law metric and estimator: the step error the verdict is gated on (here the
    largest over the seeds of tv_law_steps_check, which every synthetic job carries) and
    0.5 x the standard error of tv_law's seed mean, computed here from the study."""
    import matplotlib.pyplot as plt

    from scorerate.report import figures

    ds = xr.open_zarr(study["path"]).load()
    rates = rate_table(ds)
    cell = ds.sel(density="sym_beta", beta=1.0, d=1)
    fig = figures.error_vs_n(cell, rates[(rates.d == 1) & (rates.axis == "n")], "c")
    (ax,) = [a for a in fig.axes if a.get_title() == "TV(p0, output law): numerical budget"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for est in cell["estimator"].values:
        vals = cell["tv_law"].sel(estimator=est).transpose("n", "seed").values
        check = cell["tv_law_steps_check"].sel(estimator=est).transpose("n", "seed").values
        se = vals.std(axis=1, ddof=1) / np.sqrt(vals.shape[1])
        assert np.allclose(lines[f"{est}: step error"].get_ydata(), check.max(axis=1))
        assert np.allclose(lines[f"{est}: 0.5 x SE of the mean"].get_ydata(), 0.5 * se)
    plt.close(fig)


def test_the_overview_figure_and_the_cell_table_count_the_same_slopes(study):
    """One hover target per point of the overview, each naming its slope; the cell table
    under it counts exactly those slopes."""
    text = study["index"].read_text()
    n = int(re.search(r"Every fitted slope in n \((\d+) slopes", text).group(1))
    points = re.findall(r'<span class="point" style="left:([\d.]+)%;top:([\d.]+)%" '
                        r'title="([^"]+)"', text)
    assert len(points) == n > 0
    for left, top, title in points:
        assert 0 < float(left) < 100 and 0 < float(top) < 100
        assert re.match(r"sym_beta beta 1 d [12]: \w+", title) and "slope" in title
    table = text[text.index('<table id="cells">'):]
    table = table[:table.index("</table>")]
    counts = 0
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        cells_ = re.findall(r"<td>(.*?)</td>", row)
        counts += sum(int(c) for c in cells_[5:])
    assert counts == n


def test_a_density_named_by_the_study_is_imported_only_if_the_config_names_it(tmp_path):
    """The sample figure builds the true density from the study's name: a name the user's
    config does not list (a study anyone may have written) is not imported."""
    import os
    import subprocess

    from scorerate.store.runstore import open_run
    from scorerate.study.aggregate import combine_runs

    (tmp_path / "evil.py").write_text(
        "import pathlib\npathlib.Path('IMPORTED').write_text('x')\n"
        "def Dens(beta, d):\n    raise ValueError('no')\n")
    runs = [write_run(tmp_path / "runs", density="evil:Dens", n=n) for n in NS]
    ds = combine_runs([open_run(p) for p in runs], paths=[str(p) for p in runs],
                      predictions=False)
    write_study(ds, tmp_path / "study.zarr")
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parents[1] / 'src'}:{tmp_path}"}

    def report(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scorerate", "report", "--study",
                               "study.zarr", "--out", "rep", *extra], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    proc = report()
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rep" / "index.html").is_file()
    assert not (tmp_path / "IMPORTED").exists()
    (tmp_path / "cfg.yaml").write_text("densities: [{name: 'evil:Dens', beta: [1.0]}]\n")
    proc = report("--config", "cfg.yaml")  # the user names it: now it is theirs to run
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "IMPORTED").exists()


def test_the_overview_numbers_its_outliers_and_names_them_in_a_key():
    """Slopes above the diagonal by more than their interval carry a number, points that
    nearly coincide share one label ("1,2,3", not three names printed over each other),
    and the key under the axes names each number's cell, metric and estimator."""
    from scorerate.report import figures

    def row(metric, est, slope):
        return {"density": "sym_beta", "beta": 1.0, "d": 1, "metric": metric,
                "estimator": est, "theory": -1 / 3, "slope": slope,
                "ci_low": slope - 0.01, "ci_high": slope + 0.01}

    rows = pd.DataFrame([row("l2_law", "empirical", -0.300), row("l2_law", "regularized", -0.301),
                         row("l2_kde", "ideal_kde", -0.299), row("tv_law", "truncated", -0.1),
                         row("tv_kde", "ideal_kde", -0.333)])
    kinds = pd.Series(["explained", "explained", "slower", "slower", "agrees"])
    fig, xy = figures.overview(rows, kinds)
    labels = sorted(t.get_text() for t in fig.axes[0].texts)
    # the farthest above the diagonal (in interval half-widths) is numbered first
    assert labels == ["1", "2,3,4"]
    key = fig.texts[0].get_text().splitlines()
    assert key[0] == "1: sym_beta beta 1 d 1: tv_law, truncated"
    assert len(key) == 4 and all(": sym_beta beta 1 d 1: l2_" in k for k in key[1:])
    assert np.isfinite(xy).all()  # every point still has its hover target
