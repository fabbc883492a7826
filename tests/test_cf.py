"""The run and study stores follow CF (scorerate.store.cf.RULES), save with to_netcdf, and a CF
checker (cfchecker, when installed) finds no error in them; the attributes changed, the
data and checksums did not, so stores written before stay valid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from scorerate.store import cf
from scorerate.store import runstore as store

sys.path.insert(0, str(Path(__file__).parent))
from test_store import fake_run  # noqa: E402

#: units a store may carry: UDUNITS strings of what the stores hold
UDUNITS = {"1", "s"}
#: names, counts, indices, flags, paths: no units (CF needs none; no "[1]" in plot labels)
NO_UNITS = {"density", "beta", "d", "n", "seed", "estimator", "dim", "store", "has_run"}
GLOBAL = ("Conventions", "title", "history", "source", "references", "date_created",
          "git_commit")


def _run(seed: int = 0, n: int = 30) -> xr.Dataset:
    """A run store's Dataset as the job builds it (store.run_dataset), synthetic values."""
    old = fake_run(seed=seed, n=n)
    values = {name: old[name].values for name in store.SCHEMA}
    attrs = {**old.attrs, "created": "2026-01-01T00:00:00+00:00"}
    return store.run_dataset(values, estimators=tuple(old["estimator"].values),
                             ts=old["t"].values, d=old.sizes["dim"], attrs=attrs)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path]:
    """(a run store, a study store of two runs), written by the package."""
    from scorerate.study.aggregate import aggregate, write_study

    root = tmp_path_factory.mktemp("cf")
    runs = [store.write_run(_run(seed=s), root / f"r{s}.zarr") for s in (0, 1)]
    return runs[0], write_study(aggregate([str(r) for r in runs]), root / "study.zarr")


def _check_rules(ds: xr.Dataset) -> None:
    """RULES 1-4 (the fifth is test_both_kinds_save_with_to_netcdf)."""
    for key in GLOBAL:
        assert isinstance(ds.attrs.get(key), str) and ds.attrs[key], key
    assert ds.attrs["Conventions"].startswith("CF-1.")
    assert ds.attrs["history"].startswith(ds.attrs["date_created"])
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), name
        units = var.attrs.get("units")
        assert units is None or units in UDUNITS, (name, units)
        if name in NO_UNITS:
            assert units is None, name
    for where in (ds.attrs, *(v.attrs for v in ds.variables.values())):
        for key, value in where.items():
            ok = isinstance(value, str | int | float | np.integer | np.floating) or (
                isinstance(value, np.ndarray) and value.dtype.kind in "if")
            assert ok and not isinstance(value, bool), (key, value)


def test_a_run_store_follows_the_rules(stores):
    ds = store.open_run(stores[0])
    _check_rules(ds)
    assert ds.attrs["date_created"] == "2026-01-01T00:00:00+00:00"
    assert ds["score_mse"].attrs["scaling"] == "length^-2"  # the dimension, for people


def test_the_study_follows_the_rules(stores):
    _check_rules(xr.open_zarr(stores[1]))


@pytest.mark.parametrize("engine", ["scipy", None])
def test_both_kinds_save_with_to_netcdf(stores, tmp_path, engine):
    """netCDF3 (scipy, no extra library) and the default engine; same data back."""
    run = store.open_run(stores[0])
    study = xr.open_zarr(stores[1]).load()
    for name, ds in (("run", run), ("study", study)):
        path = tmp_path / f"{name}.nc"
        ds.to_netcdf(path, engine=engine)
        with xr.open_dataset(path, engine=engine) as back:
            for var in ds.data_vars:
                if ds[var].dtype.kind == "f":
                    np.testing.assert_array_equal(back[var].values, ds[var].values)
            assert back.attrs["Conventions"] == cf.CONVENTIONS


_TABLE = ('<?xml version="1.0"?>\n<{0}><version_number>1</version_number>'
          '<last_modified>2024-01-01T00:00:00Z</last_modified><date>2024-01-01</date></{0}>\n')


def test_a_cf_checker_finds_no_error(stores, tmp_path):
    """cfchecker (PyPI; needs netCDF4 and libudunits2) against local, empty name tables:
    the stores use no standard_name, and the machine may have no network. Its warnings
    (train is a 2-D variable named like a dim; a netCDF3 string coordinate is a 2-D char
    array; dim, an index, has no units) are known and listed in docs/reliability.md."""
    cfchecks = shutil.which("cfchecks") or shutil.which(
        "cfchecks", path=str(Path(sys.executable).parent))
    # the test extra installs cfchecker and .ci/run libudunits2: missing means a broken install
    assert cfchecks is not None, "cfchecks not found: pip install -e '.[test]'"
    tables = []
    for flag, root in (("-s", "standard_name_table"), ("-a", "area_type_table"),
                       ("-r", "standardized_region_list")):
        f = tmp_path / f"{root}.xml"
        f.write_text(_TABLE.format(root))
        tables += [flag, str(f)]
    for name, ds in (("run", store.open_run(stores[0])),
                     ("study", xr.open_zarr(stores[1]).load())):
        path = tmp_path / f"{name}.nc"
        ds.to_netcdf(path, engine="scipy")  # netCDF3: CF-1.8 has no netCDF-4 vlen strings
        res = subprocess.run([cfchecks, *tables, "-v", "auto", str(path)],
                             capture_output=True, text=True, timeout=300)
        assert "ERRORS detected: 0" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


def test_attributes_change_neither_checksum_nor_params_hash(tmp_path):
    """A store written before the CF attributes (None, mappings, old unit strings, no
    global attributes) has the checksum a new store of the same numbers has, opens, and
    gets the CF attributes in memory: it need not be recomputed."""
    from scorerate.config.spec import JobSpec

    old = fake_run()
    for name in ("score_mse", "l2_law"):
        old[name].attrs["units"] = {"score_mse": "1/length^2", "l2_law": "length^(-d/2)"}[name]
    new = _run()
    assert store.content_checksum(old) == store.content_checksum(new)
    path = store.write_run(old, tmp_path / "old.zarr")
    assert xr.open_zarr(path).attrs.get("Conventions") is None  # nothing rewritten on disk
    back = store.open_run(path)
    _check_rules(back)
    np.testing.assert_array_equal(back["samples"].values, old["samples"].values)
    # the job's parameter hash, as computed before this change (git 02ad32c)
    spec = JobSpec(density="sym_beta", beta=1.0, d=1, n=300, m=40, steps=6)
    assert spec.params_hash == (
        "65abe6b72cefb7083b1a4a054fb85ee4e10074db3c363208c4b17592a38ef9d0")


def test_the_written_rules_are_the_ones_checked():
    assert len(cf.RULES) == 5 and "Conventions" in cf.RULES[0]
