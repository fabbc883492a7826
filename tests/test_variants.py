"""Estimator variants: name[option=number,...], one canonical label each, built and run."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from scorerate.config import file as config_file
from scorerate.config import spec
from scorerate.estimators import (
    base_name,
    build,
    check_variant,
    parse_variant,
    split_names,
    variant_label,
)
from scorerate.job import cluster
from scorerate.job.graph import JobSpec, run_job
from scorerate.report.build import make_report
from scorerate.store import runstore as store
from scorerate.study.aggregate import aggregate, write_study

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import write_run  # noqa: E402

VARIANTS = ("truncated", "highorder[order=2,C=1]", "highorder[order=4,C=2]")
LABELS = ["truncated", "highorder[C=1,order=2]", "highorder[C=2,order=4]"]
TINY = dict(density="sym_beta", beta=1.0, d=1, n=200, seed=0, m=50, steps=8, n_t=3,
            n_mc=100, n_int=3, n_ref=100, n_mc_kde=200, estimators=VARIANTS)


# -- names and labels -------------------------------------------------------------------

def test_parse_keeps_ints_and_floats():
    assert parse_variant("highorder[order=4,C=2.5]") == ("highorder", {"order": 4, "C": 2.5})
    base, opts = parse_variant("highorder[order=4,C=2.5]")
    assert type(opts["order"]) is int and type(opts["C"]) is float
    assert parse_variant("truncated") == ("truncated", {})
    assert parse_variant("pkg.mod:Attr[x=-1e-3]") == ("pkg.mod:Attr", {"x": -0.001})
    assert base_name("highorder[C=2]") == "highorder"


@pytest.mark.parametrize("a, b", [
    ("highorder[order=4,C=2]", "highorder[C=2.0,order=4]"),  # key order, whole float
    ("highorder[C=2.50]", "highorder[C=2.5]"),
    ("highorder[C=1e-1]", "highorder[C=0.1]"),
    ("highorder[order=4.0]", "highorder[order=4]"),
    ("highorder[]", "highorder"),
])
def test_two_spellings_are_one_label(a, b):
    assert variant_label(a) == variant_label(b)
    assert variant_label(variant_label(a)) == variant_label(a)  # a label is its own label


def test_label_is_sorted_and_plain_names_are_unchanged():
    assert variant_label("highorder[order=4,C=2.718]") == "highorder[C=2.718,order=4]"
    for name in ("truncated", "regularized", "empirical", "highorder", "a.b:C"):
        assert variant_label(name) == name


def test_split_keeps_the_commas_of_a_variant():
    assert split_names("truncated,highorder[order=4,C=2],empirical") == [
        "truncated", "highorder[order=4,C=2]", "empirical"]


@pytest.mark.parametrize("name, words", [
    ("highorder[ordr=4]", "unknown option 'ordr'; highorder takes order, C, noise_seed"),
    ("highorder[order=four]", "must be a number, got 'four'; highorder takes order, C"),
    ("highorder[C=nan]", "must be a number"),
    ("highorder[C=1e999]", "must be finite"),
    ("highorder[order=1,order=2]", "given twice"),
    ("highorder[order]", "malformed option"),
    ("highorder[order=4", "malformed estimator"),
    ("truncated[order=4]", "truncated takes backend, rtol, plan_m, grid_ratio_floor, c_rho"),
    ("kde[order=4]", "unknown estimator 'kde'"),
])
def test_bad_variants_are_one_line_errors_naming_the_options(name, words):
    with pytest.raises(ValueError, match=r".*") as info:
        check_variant(name)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_name_with_variant_characters_cannot_be_registered():
    from scorerate.estimators import register

    with pytest.raises(ValueError, match="variants"):
        register("mine[x=1]", lambda X: None)


# -- building -------------------------------------------------------------------------

def test_inline_options_override_the_job_params():
    X = np.random.default_rng(0).uniform(-1, 1, (300, 1))
    params = {"order": 3, "C": 2.718, "noise_seed": 7, "c_rho": 1.0, "backend": "auto"}
    plain = build("highorder", X, params)
    var = build("highorder[order=6,C=1]", X, params)
    assert (plain.order, plain.C) == (3, 2.718)
    assert (var.order, var.C) == (6, 1.0) and var.noise_seed == 7  # the rest from params
    x = np.array([[0.1], [0.5]])
    assert not np.allclose(var.score(x, 0.05), plain.score(x, 0.05))
    # the same variant spelt otherwise is the same estimator, bit for bit
    again = build("highorder[C=1.0,order=6]", X, params)
    np.testing.assert_array_equal(again.score(x, 0.05), var.score(x, 0.05))
    assert build("truncated[c_rho=3]", X, params).c_rho == 3.0


# -- the job's parameters ---------------------------------------------------------------

def test_spec_holds_labels_and_hashes_the_variant():
    s = JobSpec(**TINY)
    assert list(s.estimators) == LABELS
    respelt = JobSpec(**{**TINY, "estimators": ("truncated", "highorder[C=1.0,order=2]",
                                                "highorder[C=2,order=4]")})
    assert respelt.params_hash == s.params_hash
    other = JobSpec(**{**TINY, "estimators": ("truncated", "highorder[order=2,C=1]",
                                              "highorder[order=4,C=3]")})
    assert other.params_hash != s.params_hash
    with pytest.raises(ValueError, match="listed twice"):
        JobSpec(**{**TINY, "estimators": ("highorder[C=1]", "highorder[C=1.0]")})
    with pytest.raises(ValueError, match="unknown option"):
        JobSpec(**{**TINY, "estimators": ("highorder[k=1]",)})


def test_run_job_words_split_outside_brackets():
    parser = argparse.ArgumentParser()
    spec.add_options(parser)
    args = parser.parse_args(["--density", "sym_beta", "--beta", "1", "--d", "1", "--n", "50",
                              "--estimators", "truncated,highorder[order=2,C=1]",
                              "highorder[order=4,C=2]"])
    s = spec.spec_from_options(**spec.options_from_args(args))
    assert list(s.estimators) == LABELS


def test_job_args_quote_labels_and_pass_highorder_params_to_variants():
    cfg = {"estimators": ["truncated", "highorder[order=4,C=2]"], "highorder_C": 3.0,
           "c_rho": 2.0}
    words = shlex.split(spec.job_args(cfg))
    i = words.index("--estimators")
    assert words[i + 1:i + 3] == ["truncated", "highorder[C=2,order=4]"]
    assert "--highorder-C" in words  # a variant of highorder uses highorder's params
    assert "--highorder-C" not in spec.job_args({"estimators": ["truncated"],
                                                 "highorder_C": 3.0})


def test_study_check_accepts_variants_and_names_a_bad_one():
    cfg = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1], "n": [100],
           "seeds": [0], "estimators": ["truncated", "highorder[order=4,C=2]"]}
    config_file.check_config(cfg)
    with pytest.raises(ValueError, match="config estimators: .*unknown option 'Cx'"):
        config_file.check_config({**cfg, "estimators": ["highorder[Cx=2]"]})


def test_schema_accepts_variants():
    import re

    import yaml

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas"
                             / "config.schema.yaml").read_text())
    pattern = schema["$defs"]["estimator"]["pattern"]
    assert all(re.search(pattern, n) for n in (*VARIANTS, "pkg.mod:A[x=1]"))
    assert not any(re.search(pattern, n) for n in ("highorder[order = 4]", "high order"))


# -- a real job and its report ----------------------------------------------------------

@pytest.fixture(scope="module")
def job_store(tmp_path_factory) -> Path:
    with cluster.dask_client(None, threads=1, n_workers=1) as client:
        ds = run_job(JobSpec(**TINY), client, progress=False)
    root = tmp_path_factory.mktemp("variants")
    return store.write_run(ds, root / "runs" / "tiny.zarr")


@pytest.mark.slow  # one tiny job, ~6 s
def test_a_job_of_variants_stores_their_labels_and_numbers(job_store):
    ds = store.open_run(job_store).load()
    assert list(ds["estimator"].values) == LABELS
    assert json.loads(ds.attrs["estimators"]) == LABELS  # JSON text: netCDF holds no lists
    assert np.isfinite(ds["samples"].values).all()
    for var in ("tv", "w1", "score_mse_int"):
        assert np.isfinite(ds[var].values).all(), var
    assert np.isfinite(ds["score_mse"].values).all()
    # order and C change the numbers: the two highorder variants differ
    s = ds["samples"].values
    assert not np.array_equal(s[1], s[2])
    assert ds["score_mse"].values[1].tolist() != ds["score_mse"].values[2].tolist()


@pytest.mark.slow  # the report of three runs, ~10 s
def test_report_of_a_variant_store_renders(job_store, tmp_path):
    # the real job's store beside two synthetic n's with the same labels, spelt otherwise
    # in the config, so rates can be fitted and every figure drawn
    runs = [job_store] + [write_run(tmp_path / "runs", d=1, n=n, seed=0, estimators=LABELS)
                          for n in (500, 1000)]
    config = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1],
              "n": [200, 500, 1000], "seeds": [0],
              "estimators": ["truncated", "highorder[C=1.0,order=2]",
                             "highorder[order=4,C=2]"]}
    st = aggregate(runs, config=config)
    assert list(st["estimator"].values) == LABELS  # config spellings map onto the labels
    path = write_study(st, tmp_path / "study.zarr")
    index = make_report(path, tmp_path / "report")
    html = index.read_text()
    for label in LABELS:
        assert label in html
    figs = sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert {"rates_n_sym_beta_beta1_d1.png", "samples_sym_beta_beta1_d1.png"} <= set(figs)


def test_figures_give_many_estimators_distinct_styles_and_wrap_panels():
    from scorerate.report import figures

    styles = [figures.series_style(i) for i in range(12)]
    assert len(set(styles)) == 12
    mse = xr.DataArray(np.ones((2, 1, 6, 3)), dims=("n", "seed", "estimator", "t"),
                       coords={"n": [100, 200], "seed": [0], "t": [0.1, 1.0, 10.0],
                               "estimator": [f"highorder[order={k}]" for k in range(6)]})
    fig = figures.score_mse_vs_t(mse, 1, "c")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6 and fig.get_size_inches()[0] <= 4.6 * figures.MAX_COLS + 1e-9
    assert {ax.get_title() for ax in visible} == set(mse["estimator"].values)


@pytest.mark.parametrize("name, words", [
    ("truncated[c_rho=-1]", "c_rho must be a finite number > 0"),
    ("highorder[order=0]", "order must be an integer in"),
    ("highorder[order=2.5]", "order must be an integer"),
    ("highorder[order=1000000]", "order must be an integer in"),
    ("regularized[eps=-1]", "eps must be a finite number > 0"),
    ("truncated[rtol=5]", "rtol must be a finite number in (0, 1)"),
    ("highorder[C=0]", "C must be a finite number > 0"),
])
def test_variant_options_are_checked_against_their_declared_bounds(name, words):
    """A variant's value is refused where the config is read (one line naming the
    variant), not in a worker after the job started."""
    with pytest.raises(ValueError) as err:
        check_variant(name)
    text = str(err.value)
    assert words in text and name in text and "\n" not in text


def test_the_config_rows_of_estimator_options_come_from_the_estimators():
    from scorerate.config.spec import BY_NAME
    from scorerate.estimators import config_params

    rows = {p.name: p for p in config_params()}
    assert set(rows) == {"c_rho", "eps", "highorder_order", "highorder_C"}
    for name, p in rows.items():
        assert BY_NAME[name] == p and p.in_config
    assert rows["highorder_order"].used_by == "highorder" and rows["c_rho"].used_by == "truncated"
