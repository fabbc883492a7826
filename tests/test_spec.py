"""The one declaration of the job's parameters: the schema, the CLI and the workflow agree."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import yaml

from scorerate.config import file as config_file
from scorerate.config import spec
from scorerate.sampler import INTEGRATORS

SCHEMA = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml")
                        .read_text())
PROPS = SCHEMA["properties"]
#: study keys that are the grid or the execution, not job parameters (step_check_seeds
#: picks the seeds whose jobs get the job parameter step_check)
GRID_KEYS = {"densities", "d", "n", "seeds", "dask", "step_check_seeds"}


def _types(prop: dict) -> set[str]:
    t = prop.get("type")
    return set(t) if isinstance(t, list) else {t}


def test_every_config_parameter_is_in_the_schema_and_nothing_else():
    declared = {p.name for p in spec.PARAMS if p.in_config}
    assert set(PROPS) - GRID_KEYS == declared


@pytest.mark.parametrize("p", [p for p in spec.PARAMS if p.in_config], ids=lambda p: p.name)
def test_schema_agrees_with_the_declaration(p):
    prop = PROPS[p.name]
    assert prop.get("description"), "every key documented"
    default = prop["default"]
    if p.kind == "grid":
        assert "object" in _types(prop)
        return
    want = list(p.default) if isinstance(p.default, tuple) else p.default
    assert default == want, f"schema default {default!r} != JobSpec default {want!r}"
    assert ("null" in _types(prop)) == p.nullable
    if p.kind == "int":
        assert "integer" in _types(prop)
    elif p.kind == "float":
        assert "number" in _types(prop)
    if p.lo is not None:
        key = "exclusiveMinimum" if p.lo_open else "minimum"
        assert prop.get(key) == p.lo, f"{p.name}: schema {key} {prop.get(key)} != {p.lo}"
    if p.hi is not None:
        assert prop.get("exclusiveMaximum") == p.hi, f"{p.name}: schema maximum != {p.hi}"
    if p.name == "integrator":
        assert prop["enum"] == list(INTEGRATORS)


def test_run_job_has_one_option_per_parameter():
    parser = argparse.ArgumentParser()
    spec.add_options(parser)
    flags = {a.dest: a.option_strings for a in parser._actions}
    for p in spec.PARAMS:
        assert flags[p.name] == [p.flag]
    args = parser.parse_args(["--density", "sym_beta", "--beta", "1", "--d", "1", "--n", "50",
                              "--estimators", "truncated,empirical", "--t-grid", "0.1", "1", "3"])
    s = spec.spec_from_options(**spec.options_from_args(args))
    assert s.estimators == ("truncated", "empirical") and s.t_grid == (0.1, 1.0, 3)
    assert s.m == spec.BY_NAME["m"].default


def test_params_hash_ignores_exactly_the_parameters_that_change_no_number():
    base = spec.JobSpec(density="sym_beta", beta=1.0, d=1, n=50)
    for p in spec.PARAMS:
        if p.name == "chunk":
            assert base.params_hash == spec.JobSpec(density="sym_beta", beta=1.0, d=1, n=50,
                                                    chunk=7).params_hash
            assert not p.in_hash
    assert base.params_hash != spec.JobSpec(density="sym_beta", beta=1.0, d=1, n=50,
                                            m=7).params_hash
    # hash_if_set: at their default these leave every existing job's hash as it was
    for p in spec.PARAMS:
        if p.hash_if_set:
            same = spec.JobSpec(density="sym_beta", beta=1.0, d=1, n=50, **{p.name: p.default})
            other = 1 if p.default != 1 else 2
            moved = spec.JobSpec(density="sym_beta", beta=1.0, d=1, n=50, **{p.name: other})
            assert same.params_hash == base.params_hash != moved.params_hash, p.name


def test_job_args_pass_an_estimator_option_only_when_it_runs():
    cfg = {"estimators": ["empirical"], "m": 10, "c_rho": 2.0, "eps": None,
           "t_grid": {"tmin": 0.1, "tmax": 1.0, "num": 3}, "highorder_C": 3.0}
    text = spec.job_args(cfg)
    assert "--m 10" in text and "--t-grid 0.1 1.0 3" in text
    assert "--c-rho" not in text and "--highorder-C" not in text and "--eps" not in text
    assert "--c-rho 2.0" in spec.job_args({**cfg, "estimators": ["truncated"]})


@pytest.mark.parametrize("name, value, words", [
    ("n_mc", 1, "n_mc must be an integer >= 2"),
    ("c_rho", math.inf, "c_rho must be a finite number > 0"),
    ("c_rho", math.nan, "c_rho must be a finite number > 0"),
    ("eps", math.nan, "eps must be a finite number > 0"),
    ("m", 2.5, "m must be an integer >= 1"),
    ("m", True, "m must be an integer"),
    ("rtol", 1.0, "rtol must be a finite number in (0, 1)"),
    ("integrator", "euler", "unknown integrator 'euler'"),
    ("estimators", ["truncated", "truncated"], "listed twice"),
])
def test_bad_values_are_refused_with_the_reason(name, value, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        spec.BY_NAME[name].check(value)


def test_study_refuses_non_finite_values_and_normalises_whole_floats():
    cfg = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1.0], "n": [100.0, 3e2],
           "seeds": [0], "m": 40.0, "t_grid": {"tmin": 0.1, "tmax": math.inf, "num": 3}}
    config_file.normalise_config(cfg)
    assert cfg["n"] == [100, 300] and all(type(v) is int for v in cfg["n"] + cfg["d"])
    assert type(cfg["m"]) is int
    with pytest.raises(ValueError, match="t_grid tmax must be a finite number"):
        config_file.check_config(cfg)
    assert [j["n"] for j in config_file.jobs(cfg)] == [100, 300]


def test_densities_as_a_mapping_are_refused_with_the_new_form():
    cfg = {"densities": {"sym_beta": {"beta": [1.0]}}, "d": [1], "n": [100], "seeds": [0]}
    with pytest.raises(ValueError, match=r"densities: \[\{name: sym_beta, beta: \[1.0\]\}\]"):
        config_file.check_config(cfg)
