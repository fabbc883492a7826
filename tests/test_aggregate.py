"""Aggregation: synthetic run stores -> one study store with NaN holes, attrs and metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from scorerate.cli import main
from scorerate.study.aggregate import (
    JOB_DIMS,
    METRICS,
    StoreError,
    aggregate,
    combine_runs,
    write_study,
)

sys.path.insert(0, str(Path(__file__).parent / "workflow"))
from synthetic import make_run, write_run  # noqa: E402

CONFIG = {"densities": [{"name": "sym_beta", "beta": [1.0]},
                        {"name": "gauss_mix", "beta": [2.0]}],
          "d": [1, 2], "n": [100, 300], "seeds": [0, 1, 2],
          "estimators": ["truncated", "empirical"], "steps": 20}


@pytest.fixture
def runs(tmp_path):
    """Stores of the sym_beta part of CONFIG, minus (d=2, n=300, seed=1): gauss_mix is
    absent altogether, so the study must keep it as an all-NaN slab."""
    paths = []
    for d in (1, 2):
        for n in (100, 300):
            for s in (0, 1, 2):
                if (d, n, s) != (2, 300, 1):
                    paths.append(write_run(tmp_path / "runs", d=d, n=n, seed=s))
    return paths


def test_dims_coords_and_values(runs):
    ds = aggregate(runs, config=CONFIG)
    for name, dims in METRICS.items():
        assert ds[name].dims == JOB_DIMS + dims
    assert list(ds["density"].values) == ["gauss_mix", "sym_beta"]
    assert list(ds["beta"].values) == [1.0, 2.0]
    assert list(ds["d"].values) == [1, 2] and list(ds["n"].values) == [100, 300]
    assert list(ds["seed"].values) == [0, 1, 2]
    assert list(ds["estimator"].values) == ["truncated", "empirical"]  # config order
    # every cell holds exactly the numbers of its own store
    for p in runs[::4]:
        src = xr.open_zarr(p)
        a = src.attrs
        cell = ds.sel(density=a["density"], beta=a["beta"], d=a["d"], n=a["n"], seed=a["seed"])
        for name in METRICS:
            np.testing.assert_array_equal(cell[name].values, src[name].values)
        assert float(cell["t0"]) == a["t0"] and float(cell["T"]) == a["T"]
        assert str(cell["store"].values) == str(p)


def test_missing_cells_are_nan_not_dropped(runs):
    ds = aggregate(runs, config=CONFIG)
    # 2 densities x 2 betas x 2 d x 2 n x 3 seeds cells; 11 runs exist
    assert ds.attrs["n_cells"] == 48 and ds.attrs["n_runs"] == 11
    hole = ds.sel(density="sym_beta", beta=1.0, d=2, n=300, seed=1)
    assert bool(hole["tv"].isnull().all()) and bool(hole["score_mse"].isnull().all())
    assert np.isnan(float(hole["t0"])) and str(hole["store"].values) == ""
    assert bool(ds["tv_kde"].sel(density="gauss_mix").isnull().all())
    have = ds["tv_kde"].notnull()
    assert int(have.sum()) == 11
    # without a config the grid is what the stores hold, still with the hole as NaN
    bare = aggregate(runs)
    assert list(bare["density"].values) == ["sym_beta"] and bare.sizes["seed"] == 3
    assert int(bare["tv_kde"].isnull().sum()) == 1


def test_per_job_scalars_are_variables_and_config_is_in_attrs(runs):
    ds = aggregate(runs, config=CONFIG)
    for name in ("t0", "T", "wall_time_s"):
        assert ds[name].dims == JOB_DIMS
        assert name not in ds.attrs
    # t0 differs across n (synthetic: n^-0.5), so it could never have been one attr
    assert float(ds["t0"].sel(density="sym_beta", beta=1.0, d=1, n=100, seed=0)) == 0.1
    assert json.loads(ds.attrs["config"]) == CONFIG
    assert ds.attrs["steps"] == 20 and ds.attrs["integrator"] == "euler_maruyama"


def test_disagreeing_shared_attrs_are_listed_not_dropped():
    a = make_run(n=100)
    b = make_run(n=300)
    b.attrs["steps"] = 40
    ds = combine_runs([a, b])
    assert json.loads(ds.attrs["steps"]) == [20, 40]


def test_union_of_t_grids_and_estimators_fills_nan():
    a = make_run(n=100, estimators=("truncated",), t_grid=[0.1, 1.0])
    b = make_run(n=300, estimators=("empirical",), t_grid=[1.0, 10.0])
    ds = combine_runs([a, b])
    assert list(ds["t"].values) == [0.1, 1.0, 10.0]
    mse = ds["score_mse"].sel(density="sym_beta", beta=1.0, d=1, seed=0)
    np.testing.assert_array_equal(mse.sel(n=100, estimator="truncated").values[:2],
                                  a["score_mse"].values[0])
    assert np.isnan(mse.sel(n=100, estimator="truncated", t=10.0))
    assert bool(mse.sel(n=100, estimator="empirical").isnull().all())


def test_write_study_consolidated_chunked_and_atomic(runs, tmp_path):
    out = tmp_path / "study.zarr"
    ds = aggregate(runs, config=CONFIG)
    write_study(ds, out)
    group = zarr.open_consolidated(str(out), mode="r")  # fails without consolidated metadata
    assert "score_mse" in group
    back = xr.open_zarr(out, consolidated=True)
    # chunks hold whole (n, seed) slabs of one (density, beta, d, estimator) cell
    assert back["tv"].encoding["chunks"] == (1, 1, 1, 2, 3, 1)
    xr.testing.assert_identical(back["tv"].load(), ds["tv"])
    assert json.loads(back.attrs["config"]) == CONFIG
    # rewriting replaces the store and leaves no temporary directories behind
    write_study(aggregate(runs[:3]), out)
    assert xr.open_zarr(out).attrs["n_runs"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.filterwarnings("ignore")  # the broken store is written raw, with zarr's warnings
def test_bad_stores_are_one_clear_error(runs, tmp_path):
    with pytest.raises(StoreError, match="no such directory"):
        aggregate([tmp_path / "nope.zarr"])
    with pytest.raises(StoreError, match="same job"):
        aggregate([runs[0], runs[0]])
    broken = make_run(n=777).drop_vars("tv")
    bpath = tmp_path / "broken.zarr"
    broken.to_zarr(bpath, mode="w")
    # written without the run writer (no consolidated metadata, no checksum): refused
    with pytest.raises(StoreError, match=r"broken.zarr.*(corrupt|not a valid)"):
        aggregate([runs[0], bpath])
    # a complete store whose checksum was stripped is refused too, not read unverified
    import shutil

    import zarr

    stripped = tmp_path / "stripped.zarr"
    shutil.copytree(runs[1], stripped)
    group = zarr.open_group(stripped, mode="r+")
    del group.attrs["content_sha256"]
    zarr.consolidate_metadata(stripped)
    with pytest.raises(StoreError, match=r"stripped.zarr.*checksum"):
        aggregate([runs[0], stripped])
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])


def test_cli_writes_study_and_reports_bad_input(runs, tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps(CONFIG))  # JSON is YAML
    out = tmp_path / "study.zarr"
    assert main(["aggregate", "--out", str(out), "--config", str(cfg), *map(str, runs)]) == 0
    assert "11 runs" in capsys.readouterr().out
    assert xr.open_zarr(out).sizes["seed"] == 3
    assert main(["aggregate", "--out", str(out), str(tmp_path / "missing.zarr")]) == 2
    assert "missing.zarr" in capsys.readouterr().err
    assert xr.open_zarr(out).attrs["n_runs"] == 11  # the old study survives a failed run


def test_every_variable_and_coordinate_is_described_and_versions_travel(runs, tmp_path):
    from scorerate.store.variables import COORDINATES, VARIABLES

    back = xr.open_zarr(write_study(aggregate(runs, config=CONFIG), tmp_path / "s.zarr"))
    for name in [*back.data_vars, *back.coords]:
        attrs = back[name].attrs
        assert attrs.get("long_name") and attrs.get("description"), name
    # units on quantities only: names, counts, indices and flags carry none (CF; no "[1]"
    # in xarray's plot labels)
    for name in ("density", "beta", "d", "n", "seed", "estimator", "store", "has_run"):
        assert "units" not in back[name].attrs, name
    assert back["wall_time_s"].attrs["units"] == "s" and back["tv"].attrs["units"] == "1"
    by_name = {v.name: v for v in VARIABLES}
    assert back["tv"].attrs == by_name["tv"].attrs
    assert back["mmd2"].attrs["long_name"] == "squared maximum mean discrepancy"
    assert "mmd" not in back
    assert back["t"].attrs["long_name"] == COORDINATES["t"][0]
    # the runs' library versions (synthetic stores: all equal) become one JSON object
    assert json.loads(back.attrs["versions"]) == {"python": "3.11.0", "numpy": "synthetic"}


def test_disagreeing_versions_are_listed():
    a, b = make_run(n=100), make_run(n=300)
    b.attrs["versions"] = {"python": "3.12.1"}
    assert len(json.loads(combine_runs([a, b]).attrs["versions"])) == 2


def test_cells_skip_cells_without_data(runs):
    from scorerate.study.coverage import cells

    ds = aggregate(runs, config=CONFIG)  # gauss_mix and beta = 2 are in the grid, all NaN
    assert cells(ds) == [("sym_beta", 1.0, 1), ("sym_beta", 1.0, 2)]


def test_has_run_marks_exactly_the_runs_also_in_memory():
    """has_run is the one record of which jobs have data: runs combined from memory (no
    store path) count, the config's missing jobs and a metric that is NaN by design
    (not a missing run) do not change it, and the cells, the predictions' cells and the
    report's cell table read it."""
    from scorerate.study.coverage import cells, has_run, points_with_run

    a, b = make_run(n=100, seed=0), make_run(n=300, seed=1)
    for v in ("tv_law", "l2_law", "tv_kde", "l2_kde"):  # NaN metrics still are a run
        b[v][...] = np.nan
    config = {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1],
              "n": [100, 300, 1000], "seeds": [0, 1]}
    study = combine_runs([a, b], config=config)
    runs = has_run(study)
    assert runs.dtype == bool and int(runs.sum()) == 2
    assert bool(runs.sel(n=100, seed=0)) and bool(runs.sel(n=300, seed=1))
    assert not bool(runs.sel(n=1000).any()) and not bool(runs.sel(n=100, seed=1))
    assert list(study["store"].values.ravel()) == [""] * study["store"].size
    assert cells(study) == [("sym_beta", 1.0, 1)]
    assert points_with_run(study).ravel().tolist() == [True, True, False]


def _aggregate_cli(cwd: Path, *args: str):
    """`python -m scorerate aggregate ...` in `cwd`, which is on the import path too (as a
    module beside a Snakefile is found)."""
    import os
    import subprocess

    src = str(Path(__file__).resolve().parents[1] / "src")
    return subprocess.run([sys.executable, "-m", "scorerate", "aggregate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{src}:{cwd}"})


@pytest.mark.parametrize("with_config", [True, False])
def test_a_store_never_chooses_a_module_to_import(tmp_path, with_config):
    """A store naming an import-path density (checksum and all: it is not a secret) is
    refused in one line unless the config names it; the module is never imported."""
    (tmp_path / "evil.py").write_text(
        "import pathlib\npathlib.Path('IMPORTED').write_text('x')\n"
        "def Dens(beta, d):\n    raise ValueError('no')\n")
    good = write_run(tmp_path / "runs", n=100)
    bad = write_run(tmp_path / "runs", density="evil:Dens", n=300)
    args = ["--out", "study.zarr", str(good), str(bad)]
    if with_config:
        (tmp_path / "cfg.json").write_text(json.dumps(CONFIG))
        args = ["--config", "cfg.json", *args]
    proc = _aggregate_cli(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "names density 'evil:Dens'" in lines[0], proc.stderr
    assert not (tmp_path / "IMPORTED").exists()
    assert not (tmp_path / "study.zarr").exists()


def test_a_store_with_an_estimator_the_config_does_not_name_is_refused(runs, tmp_path):
    other = write_run(tmp_path / "other", n=100, estimators=("truncated", "mine:Est"))
    with pytest.raises(StoreError, match="names estimator 'mine:Est'"):
        aggregate([runs[0], other], config={**CONFIG, "n": [100, 300]})
    with pytest.raises(StoreError, match="names estimator 'mine:Est'"):
        aggregate([other])  # no config: registered names only


def test_bad_config_file_is_one_line(runs, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("densities: [unclosed\n")
    proc = _aggregate_cli(tmp_path, "--config", str(cfg), "--out", "s.zarr", str(runs[0]))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not valid YAML" in proc.stderr


def test_the_aggregations_own_store_error_moves_the_store_aside(tmp_path):
    """A store that rots after check-stores passed it: aggregate --corrupt-dir refuses in one
    line, moves that store aside with its reason (so a workflow recomputes it), keeps the
    good one and writes no study."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "workflow"))
    from synthetic import make_run, rot_a_byte

    from scorerate.store.runstore import write_run

    good = write_run(make_run(n=100, seed=0), tmp_path / "good.zarr")
    bad = write_run(make_run(n=100, seed=1), tmp_path / "bad.zarr")
    rot_a_byte(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "scorerate", "aggregate", "--out", str(tmp_path / "study.zarr"),
         "--corrupt-dir", str(tmp_path / "corrupt"), str(good), str(bad)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "moved a bad run store aside" in lines[0], proc.stderr
    assert not bad.exists() and good.exists() and not (tmp_path / "study.zarr").exists()
    moved = [p for p in (tmp_path / "corrupt").iterdir() if not p.name.endswith(".why.txt")]
    assert len(moved) == 1 and moved[0].name.endswith("bad.zarr")
    assert (tmp_path / "corrupt" / f"{moved[0].name}.why.txt").read_text().startswith(str(bad))
