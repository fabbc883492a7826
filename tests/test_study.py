"""A ragged study grid: densities entries with their own d and n, and everything that reads it.

The grid (jobs, expected_grid), the config checks (overlap, registry per entry), the schema,
and a synthetic aggregate -> rates -> report round trip in which one (density, beta, d) and
one n of another cell have no job: no row, no panel, no prediction and no `nan` for them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from scorerate.cli import main
from scorerate.config import file as config_file
from scorerate.report.build import make_report
from scorerate.report.figures import error_vs_n
from scorerate.study.aggregate import aggregate, write_study
from scorerate.study.coverage import cells
from scorerate.study.rates import rate_table

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import write_run  # noqa: E402

SCHEMA = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml")
                        .read_text())

#: sym_beta beta 1 in d = 1, 2 at every n; beta 2 in d = 1 only, and only to n = 300
RAGGED = {
    "densities": [{"name": "sym_beta", "beta": [1.0], "d": [1, 2]},
                  {"name": "sym_beta", "beta": [2.0], "d": [1], "n": [100, 300]}],
    "d": [1, 2],
    "n": [100, 300, 1000],
    "seeds": [0, 1],
}
#: the jobs of RAGGED as (density, beta, d, n, seed)
RAGGED_JOBS = [("sym_beta", 1.0, d, n, s) for d in (1, 2) for n in (100, 300, 1000)
               for s in (0, 1)] + [("sym_beta", 2.0, 1, n, s) for n in (100, 300) for s in (0, 1)]


def _cfg(**changes) -> dict:
    import copy

    out = copy.deepcopy(RAGGED)
    out.update(changes)
    return out


# ---------------------------------------------------------------- the grid


def test_jobs_of_a_ragged_config_are_the_union_of_the_entries_products():
    got = config_file.jobs(RAGGED)
    assert [(j["density"], float(j["beta"]), j["d"], j["n"], j["seed"]) for j in got] \
        == RAGGED_JOBS
    assert all(j["beta"] in ("1.0", "2.0") and type(j["n"]) is int for j in got)
    grid = config_file.expected_grid(RAGGED)
    assert grid == {"density": ["sym_beta"], "beta": [1.0, 2.0], "d": [1, 2],
                    "n": [100, 300, 1000], "seed": [0, 1]}
    # 3 x 2 x 2 x 3 x 2 = 24 grid cells around 16 jobs
    assert len(got) == 16 < np.prod([len(v) for v in grid.values()])


def test_a_plain_config_keeps_its_product_and_order():
    plain = {"densities": [{"name": "sym_beta", "beta": [2.0, 1.0]},
                           {"name": "gauss_mix", "beta": [2.0]}],
             "d": [2, 1], "n": [300, 100], "seeds": [1, 0]}
    got = [tuple(j.values()) for j in config_file.jobs(plain)]
    assert got == [(e["name"], config_file.beta_label(b), d, n, s) for e in plain["densities"]
                   for b in e["beta"] for d in plain["d"] for n in plain["n"]
                   for s in plain["seeds"]]
    assert config_file.expected_grid(plain)["d"] == [1, 2]


def test_entry_d_and_n_replace_the_top_level_ones_and_are_normalised():
    cfg = _cfg(densities=[{"name": "sym_beta", "beta": [1.0], "d": [3.0], "n": [1e2, 300.0]},
                          {"name": "gauss_mix", "beta": [2.0]}])
    config_file.normalise_config(cfg)
    entry = cfg["densities"][0]
    assert entry["d"] == [3] and entry["n"] == [100, 300]
    assert all(type(v) is int for v in entry["d"] + entry["n"])
    cells_ = {(j["density"], j["d"], j["n"]) for j in config_file.jobs(cfg)}
    assert cells_ == ({("sym_beta", 3, n) for n in (100, 300)}
                      | {("gauss_mix", d, n) for d in (1, 2) for n in (100, 300, 1000)})
    assert config_file.expected_grid(cfg)["d"] == [1, 2, 3]


# ---------------------------------------------------------------- config checks


def test_a_ragged_config_passes_the_checks():
    config_file.check_config(RAGGED)


def test_the_same_job_cell_in_two_entries_is_one_error_naming_it():
    cfg = _cfg(densities=[{"name": "sym_beta", "beta": [1.0, 2.0], "d": [1, 2]},
                          {"name": "sym_beta", "beta": [2.0], "d": [2, 3], "n": [300]}])
    with pytest.raises(ValueError) as err:
        config_file.check_config(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(r"densities\[0\] \(sym_beta\) and densities\[1\] \(sym_beta\) both list "
                     r"the job cell sym_beta beta=2\.0 d=2 n=300;", msg), msg
    # the same name twice with disjoint cells is fine; a plain duplicate is an overlap
    config_file.check_config(_cfg(densities=[{"name": "sym_beta", "beta": [1.0]},
                                      {"name": "sym_beta", "beta": [2.0]}]))
    with pytest.raises(ValueError, match=r"both list the job cell sym_beta beta=1\.0 d=1 "
                                         r"n=100 and 5 more;"):
        config_file.check_config(_cfg(densities=[{"name": "sym_beta", "beta": [1.0]},
                                          {"name": "sym_beta", "beta": [1]}]))


def test_the_registry_check_runs_over_each_entrys_own_d():
    # laplace takes beta < 1.5 at any d: fine in its own d = 3, refused where listed
    ok = _cfg(densities=[{"name": "laplace", "beta": [1.0], "d": [3], "n": [100]}])
    config_file.check_config(ok)
    bad = _cfg(densities=[{"name": "sym_beta", "beta": [1.0]},
                          {"name": "laplace", "beta": [2.0], "d": [2]}])
    with pytest.raises(ValueError) as err:
        config_file.check_config(bad)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 1, lines  # only d = 2, the entry's own d, not the top-level 1, 2
    assert re.match(r"  densities\[1\]: laplace beta=2\.0 d=2: .*beta must be < 1\.5", lines[0])


def test_sizing_sees_an_entrys_own_n(monkeypatch):
    monkeypatch.delenv("SCORERATE_FORCE_SIZE", raising=False)
    huge = _cfg(densities=[{"name": "sym_beta", "beta": [1.0], "d": [1], "n": [10**9]}])
    with pytest.raises(ValueError, match=r"a job with n=1000000000, d=1"):
        config_file.check_config(huge)


# ---------------------------------------------------------------- schema


def _schema_errors(cfg: dict) -> list[str]:
    v = jsonschema.Draft202012Validator(SCHEMA)
    return [e.message for e in v.iter_errors(cfg)]


def test_schema_accepts_entry_d_and_n():
    assert _schema_errors(RAGGED) == []
    props = SCHEMA["properties"]["densities"]["items"]["properties"]
    assert props["d"]["description"] and props["n"]["description"]


@pytest.mark.parametrize("entry, words", [
    ({"d": [0]}, "less than the minimum of 1"),
    ({"n": [1]}, "less than the minimum of 2"),
    ({"d": []}, "should be non-empty"),
    ({"n": [100, 100]}, "non-unique elements"),
    ({"n": [100.5]}, "is not of type 'integer'"),
    ({"seeds": [0]}, "Additional properties are not allowed ('seeds'"),
])
def test_schema_refuses_bad_entry_d_and_n(entry, words):
    cfg = _cfg(densities=[{"name": "sym_beta", "beta": [1.0], **entry}])
    errors = _schema_errors(cfg)
    assert any(words in e for e in errors), errors


# ---------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def ragged(tmp_path_factory):
    """Synthetic stores of RAGGED's jobs, aggregated with the config and reported."""
    root = tmp_path_factory.mktemp("ragged")
    runs = [write_run(root / "runs", density=a, beta=b, d=d, n=n, seed=s)
            for a, b, d, n, s in RAGGED_JOBS]
    ds = aggregate(runs, config=RAGGED)
    path = write_study(ds, root / "study.zarr")
    index = make_report(path, root / "report")
    return {"root": root, "runs": runs, "study": xr.open_zarr(path).load(),
            "path": path, "out": root / "report", "index": index}


def test_study_is_dense_with_nan_where_no_job(ragged):
    ds = ragged["study"]
    assert list(ds["beta"].values) == [1.0, 2.0] and list(ds["n"].values) == [100, 300, 1000]
    assert int(ds["tv_kde"].notnull().sum()) == len(RAGGED_JOBS)
    assert bool(ds["tv_kde"].sel(beta=2.0, d=2).isnull().all())
    assert bool(ds["tv_kde"].sel(beta=2.0, d=1, n=1000).isnull().all())
    assert cells(ds) == [("sym_beta", 1.0, 1), ("sym_beta", 1.0, 2), ("sym_beta", 2.0, 1)]


def test_predictions_only_where_a_job_exists(ragged):
    pred = ragged["study"]["l2_pred"]
    assert bool(pred.sel(beta=1.0).notnull().all())
    assert bool(pred.sel(beta=2.0, d=1, n=[100, 300]).notnull().all())
    assert bool(pred.sel(beta=2.0, d=2).isnull().all())
    assert bool(pred.sel(beta=2.0, d=1, n=1000).isnull().all())


def test_rates_have_no_row_for_an_absent_cell_or_n(ragged):
    rates = rate_table(ragged["study"])
    cells_ = set(zip(rates["beta"], rates["d"], strict=True))
    assert cells_ == {(1.0, 1), (1.0, 2), (2.0, 1)}
    short = rates[rates["beta"] == 2.0]
    in_n = short[short["axis"] == "n"]
    assert (in_n["num_points"] <= 2).all() and (in_n["num_points"] == 2).any()
    assert set(short.loc[short["axis"] == "t", "n"]) == {100.0, 300.0}
    full = rates[(rates["beta"] == 1.0) & (rates["axis"] == "n")]
    assert (full["num_points"] == 3).any()


def test_report_draws_nothing_for_an_absent_cell(ragged):
    out = ragged["out"]
    names = {p.name for p in (out / "figures").iterdir()}
    assert "rates_n_sym_beta_beta2_d1.png" in names
    assert not any("beta2_d2" in n for n in names), sorted(names)
    page = re.sub(r"base64,[A-Za-z0-9+/=]+", "", ragged["index"].read_text())
    headings = re.findall(r"<h[23][^>]*>([^<]*)</h[23]>", page)
    assert "sym_beta, &beta; = 2" in headings
    # beta 2 has one section, d = 1; beta 1 has d = 1 and d = 2
    section = page[page.index("sym_beta, &beta; = 2</h2>"):]
    section = section[:section.index("<h2")]
    assert re.findall(r"<h3>d = (\d)</h3>", section) == ["1"]
    assert not re.search(r"\bnan\b", page[:page.index('id="glossary"')], flags=re.I)
    # the cell table: three cells, beta 2 with its two n
    body = page[page.index('id="cells"'):]
    body = body[body.index("<tbody>"):body.index("</tbody>")]
    rows = re.findall(r"<tr><td>sym_beta</td><td>([\d.]+)</td><td>(\d)</td><td>([^<]*)</td>",
                      body)
    assert rows == [("1", "1", "100–1000 (3)"), ("1", "2", "100–1000 (3)"),
                    ("2", "1", "100–300 (2)")]
    rates = pd.read_csv(out / "rates.csv")
    assert not ((rates["beta"] == 2.0) & (rates["d"] == 2)).any()
    summary = (out / "summary.md").read_text()
    assert "| sym_beta | 2 | 2 |" not in summary and not re.search(r"\bnan\b", summary)


def test_theory_line_spans_the_n_the_cell_has(ragged):
    ds = ragged["study"]
    rows = rate_table(ds)
    cell = ds.sel(density="sym_beta", beta=2.0, d=1)
    sel = rows[(rows["beta"] == 2.0) & (rows["d"] == 1) & (rows["axis"] == "n")]
    fig = error_vs_n(cell, sel, "beta 2")
    spans = [line.get_xdata() for ax in fig.axes for line in ax.get_lines()
             if str(line.get_label()).startswith(("theory", "finite-n"))]
    assert spans and all(float(np.max(x)) == 300.0 for x in spans)


def test_aggregate_cli_counts_missing_jobs_apart_from_the_grid_holes(ragged, tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(RAGGED))
    runs = [str(p) for p in ragged["runs"][1:]]  # one job's store left out
    assert main(["aggregate", "--out", str(tmp_path / "s.zarr"), "--config", str(cfg),
                 *runs]) == 0
    out = capsys.readouterr().out
    assert "15 runs" in out and "1 of the config's 16 jobs missing; 8 grid cells are no job" \
        in out, out
