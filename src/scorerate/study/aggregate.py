"""Combine per-job run stores into one study store with dims (density, beta, d, n, seed, ...).

Only the metrics travel (the samples and training points stay in the run stores); every
cell of the (density, beta, d, n, seed) grid that has no store is NaN, never dropped. The
study store is written to a temporary directory beside the target and renamed into place,
so an interrupted aggregation never leaves a store that looks finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ..config.file import JOB_DIMS, expected_grid
from ..store.cf import global_attrs, netcdf_attrs
from ..store.runstore import StoreError, open_run, write_zarr_atomic
from ..store.variables import COORDINATES, STOP_FACTORS, coordinate_attrs
from ..store.variables import METRICS as VARIABLE_METRICS

__all__ = [
    "JOB_DIMS",
    "METRICS",
    "RUN_ATTRS",
    "StoreError",
    "SHARED_ATTRS",
    "STUDY_MARKER",
    "BadRunStore",
    "aggregate",
    "combine_runs",
    "open_study",
    "read_run",
    "write_study",
]

#: metric variables of a run store -> their dims there (the study adds JOB_DIMS in front);
#: the store's schema less the bulky per-job arrays (samples stay in the run stores)
METRICS: dict[str, tuple[str, ...]] = {v.name: v.dims for v in VARIABLE_METRICS}
#: the study store's marker (attribute scorerate_store; see scorerate.store.targets)
STUDY_MARKER = "study/1"
#: numeric per-job attrs copied into the study as (density, beta, d, n, seed) variables
RUN_ATTRS = ("t0", "T", "n_steps", "wall_time_s")


def _job_id(attrs: Mapping, path: str) -> tuple:
    """(density, beta, d, n, seed) from a store's attrs, with types checked."""
    missing = [k for k in JOB_DIMS if k not in attrs]
    if missing:
        raise StoreError(f"run store {path}: attrs lack {missing} (needs {list(JOB_DIMS)})")
    try:
        return (str(attrs["density"]), float(attrs["beta"]), int(attrs["d"]), int(attrs["n"]),
                int(attrs["seed"]))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"run store {path}: malformed job attrs ({exc})") from None


def read_run(path: str | os.PathLike) -> tuple[tuple, xr.Dataset]:
    """Open one run store, check its schema and return (job id, its metrics loaded in memory).

    Raises StoreError naming `path` if the store is absent, unreadable, lacks a metric or
    has a metric with the wrong dims.
    """
    path = str(path)
    if not Path(path).is_dir():
        raise StoreError(f"run store {path}: no such directory")
    try:  # schema and data checksum: a truncated or stripped store is refused, not read
        ds = open_run(path, verify=True)
    except StoreError as exc:
        raise StoreError(f"run store {path}: {exc}") from None
    key = _job_id(ds.attrs, path)
    metrics = ds[list(METRICS)]
    metrics.attrs = dict(ds.attrs)  # job identity and per-job scalars (t0, T, ...)
    return key, metrics


class BadRunStore(StoreError):
    """A run store that fails its own verification (unreadable, schema, checksum): damage
    to move aside, unlike a store that is fine but not this study's."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def aggregate(paths: Sequence[str | os.PathLike], config: Mapping | None = None) -> xr.Dataset:
    """Read and check every run store, then combine them (see `combine_runs`).

    Raises BadRunStore naming the first damaged store, StoreError for two stores of the
    same job or a store whose density or estimator the config does not name (`check_named`).
    """
    if not paths:
        raise ValueError("aggregate needs at least one run store")
    densities, is_named = named_components(config)
    runs, where = [], []
    for p in paths:
        try:
            _key, ds = read_run(p)
        except StoreError as exc:
            raise BadRunStore(str(exc), str(p)) from None
        check_named(ds, str(p), densities, is_named)
        runs.append(ds)
        where.append(str(p))
    return combine_runs(runs, config=config, paths=where)


def named_components(config: Mapping | None) -> tuple[set[str], Callable[[str], bool]]:
    """(densities, is_named(estimator)) a study may hold: what its config names, or where
    the config (or a part of it: no densities, no estimators) is absent the registered
    names and the default estimators (so nothing a store names is ever imported)."""
    from ..densities import DENSITIES
    from ..estimators import ESTIMATORS, base_name, variant_label

    if config is None:
        return set(DENSITIES), lambda e: base_name(e) in ESTIMATORS
    from ..config.spec import BY_NAME

    listed = config.get("densities")
    dens = ({str(e.get("name")) for e in listed if isinstance(e, Mapping)} if listed
            else set(DENSITIES))
    labels = {variant_label(e) for e in config.get("estimators") or BY_NAME["estimators"].default}
    return dens, lambda e: variant_label(e) in labels


def check_named(ds: xr.Dataset, path: str, densities: set[str],
                is_named: Callable[[str], bool]) -> None:
    """StoreError unless the store's density and estimators are among those named: a
    store's attributes (which anyone can write, checksum included) never choose a module
    for the aggregation to import (the finite-n prediction builds each density)."""
    dens = str(ds.attrs.get("density"))
    if dens not in densities:
        raise StoreError(f"run store {path} names density {dens!r}, which the study config "
                         f"does not name ({', '.join(sorted(densities)) or 'none'}); refusing "
                         f"to import it (pass a --config that lists it, if you trust it)")
    for e in (str(v) for v in ds["estimator"].values):
        try:
            ok = is_named(e)
        except ValueError:  # not even an estimator's syntax
            ok = False
        if not ok:
            raise StoreError(f"run store {path} names estimator {e!r}, which the study "
                             f"config does not name; refusing it")


#: run attrs a study shares (recorded once in the study's attrs when all runs agree, as a
#: JSON list of the distinct values otherwise)
SHARED_ATTRS = ("scorerate_version", "steps", "integrator", "m", "c_rho")


def combine_runs(runs: Sequence[xr.Dataset], *, config: Mapping | None = None,
                 paths: Sequence[str] | None = None, predictions: bool = True) -> xr.Dataset:
    """Combine run Datasets into one with dims (density, beta, d, n, seed, estimator, t).

    Each run carries its job identity in attrs (density, beta, d, n, seed). Per-job
    scalars that differ across jobs (t0, T, n_steps, wall_time_s) become variables over the job
    dims instead of attrs, so nothing is merged attr by attr; attrs shared by the whole
    study (SHARED_ATTRS), the library versions of the runs (JSON, key "versions") and the
    config (JSON, key "config") go into the study's attrs; every variable and coordinate
    carries long_name, units and description (scorerate.store.variables).
    The job coords are the union of those in the runs and, when given, those the config
    asks for (scorerate.config.file.expected_grid: with densities entries that set their own d /
    n, a dense grid around a ragged set of jobs); cells without a run are NaN, never
    dropped, and get no finite-n prediction. `store` holds the path each
    cell came from ("" where missing). Memory: one float64 array of the grid per metric.

    Raises StoreError if two runs are the same job, ValueError if `runs` is empty.
    """
    keyed = _keyed_runs(runs, paths)
    coords = _study_coords(keyed, config)
    data, not_computed = _fill(keyed, coords)
    # variable-length strings (object dtype): Zarr v3 has a spec for those, not fixed UTF-32
    for k in ("density", "estimator"):
        coords[k] = np.array(coords[k], dtype=object)
    out = xr.Dataset(data, coords=coords)
    for v in VARIABLE_METRICS:  # the run stores' descriptions travel with the numbers
        out[v.name].attrs.update(v.attrs)
        if not_computed[v.name]:
            out[v.name].attrs["not_computed"] = "; ".join(
                f"{reason} ({k} job{'s' if k > 1 else ''})"
                for reason, k in sorted(not_computed[v.name].items()))
    for name in COORDINATES:
        if name in out.variables:
            out[name].attrs.update(coordinate_attrs(name))
    out.attrs.update(_study_attrs(keyed, config, n_cells=int(np.prod(data["has_run"][1].shape))))
    if predictions:  # only for the (density, beta, d, n) that have a run
        from .prediction import prediction_dataset

        out = out.merge(prediction_dataset(out), combine_attrs="override")
    out.attrs = netcdf_attrs(out.attrs)
    return out


def _keyed_runs(runs: Sequence[xr.Dataset], paths: Sequence[str] | None
                ) -> dict[tuple, tuple[str, xr.Dataset]]:
    """job identity -> (path, run); StoreError if two runs are the same job."""
    if not len(runs):
        raise ValueError("combine_runs needs at least one run")
    if paths is None:
        paths = [""] * len(runs)
    if len(paths) != len(runs):
        raise ValueError(f"{len(paths)} paths for {len(runs)} runs")
    keyed: dict[tuple, tuple[str, xr.Dataset]] = {}
    for ds, p in zip(runs, paths, strict=True):
        key = _job_id(ds.attrs, p or "(in memory)")
        if key in keyed:
            raise StoreError(f"run stores {keyed[key][0] or '(in memory)'} and "
                             f"{p or '(in memory)'} are the same job {key}")
        keyed[key] = (p, ds)
    return keyed


def _study_coords(keyed: Mapping[tuple, tuple[str, xr.Dataset]],
                  config: Mapping | None) -> dict[str, object]:
    """The study's coordinates: the union of the runs' and the config's job grid, the
    estimators in the config's order then the rest, the union of the t grids."""
    coords: dict[str, object] = {k: set() for k in JOB_DIMS}
    for key in keyed:
        for dim, v in zip(JOB_DIMS, key, strict=True):
            coords[dim].add(v)
    if config is not None:
        for dim, vals in expected_grid(config).items():
            coords[dim].update(vals)
    coords = {k: sorted(v) for k, v in coords.items()}
    estimators = sorted({str(e) for _, ds in keyed.values() for e in ds["estimator"].values})
    if config is not None and config.get("estimators"):
        from ..estimators import variant_label  # the stores hold canonical labels

        listed = [variant_label(e) for e in config["estimators"]]
        estimators = listed + [e for e in estimators if e not in listed]
    coords["estimator"] = estimators
    coords["t"] = np.unique(np.concatenate([np.asarray(ds["t"].values, dtype=float)
                                            for _, ds in keyed.values()]))
    coords["stop"] = np.asarray(STOP_FACTORS)
    return coords


def _fill(keyed: Mapping[tuple, tuple[str, xr.Dataset]], coords: Mapping[str, object]
          ) -> tuple[dict[str, tuple], dict[str, dict[str, int]]]:
    """The study's variables as (dims, array), every job's run written at its place (NaN,
    "" and False where no run is), and the not_computed reasons counted per metric."""
    shape = tuple(len(coords[k]) for k in JOB_DIMS)
    data = {}
    for name, dims in METRICS.items():
        full = JOB_DIMS + dims
        data[name] = (full, np.full(shape + tuple(len(coords[k]) for k in dims), np.nan))
    for a in RUN_ATTRS:
        data[a] = (JOB_DIMS, np.full(shape, np.nan))
    data["store"] = (JOB_DIMS, np.full(shape, "", dtype=object))
    data["has_run"] = (JOB_DIMS, np.zeros(shape, dtype=bool))
    index = {dim: {v: i for i, v in enumerate(coords[dim])} for dim in JOB_DIMS}
    not_computed: dict[str, dict[str, int]] = {name: {} for name in METRICS}
    for key, (path, run) in keyed.items():
        at = tuple(index[dim][v] for dim, v in zip(JOB_DIMS, key, strict=True))
        for name in METRICS:  # why a run left a metric NaN (scorerate.job.metric_table)
            if reason := run[name].attrs.get("not_computed"):
                not_computed[name][reason] = not_computed[name].get(reason, 0) + 1
        # align each run onto the study's estimator and t coords (missing -> NaN)
        ds = run[list(METRICS)].reindex(estimator=coords["estimator"], t=coords["t"])
        for name in METRICS:
            data[name][1][at] = ds[name].values
        for a in RUN_ATTRS:
            data[a][1][at] = float(run.attrs.get(a, np.nan))
        data["store"][1][at] = path
        data["has_run"][1][at] = True
    return data, not_computed


def _study_attrs(keyed: Mapping[tuple, tuple[str, xr.Dataset]], config: Mapping | None, *,
                 n_cells: int) -> dict[str, object]:
    """The study's global attributes: CF's, the counts, what every run shares
    (SHARED_ATTRS), the library versions and the config (JSON)."""
    attrs = global_attrs(
        "scorerate study: convergence rates of kernel score-based diffusion samplers",
        f"scorerate aggregate of {len(keyed)} run stores")
    attrs.update({
        "description": "scorerate study: metrics of every (density, beta, d, n, seed) job",
        "n_runs": len(keyed),
        "n_cells": n_cells,
    })
    for key in SHARED_ATTRS:
        vals = sorted({json.dumps(ds.attrs.get(key), default=str) for _, ds in keyed.values()})
        if vals == ["null"]:
            continue
        attrs[key] = json.loads(vals[0]) if len(vals) == 1 else json.dumps(
            [json.loads(v) for v in vals])
    versions = sorted({json.dumps(_json_attr(ds.attrs.get("versions")), sort_keys=True,
                                  default=str) for _, ds in keyed.values()} - {"null"})
    if versions:  # one JSON object when every run agrees, else the list of distinct ones
        attrs["versions"] = versions[0] if len(versions) == 1 else json.dumps(
            [json.loads(v) for v in versions], sort_keys=True)
    if config is not None:
        attrs["config"] = json.dumps(config, sort_keys=True, default=str)
    return attrs


def _json_attr(value: object) -> object:
    """An attribute that a store holds as JSON text (scorerate.store.cf.netcdf_attrs: mappings,
    lists of names) as its value again; anything else as it is (older stores hold the
    mapping itself)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _chunks(ds: xr.Dataset) -> dict[str, int]:
    """Chunks for reading whole (n, seed) slabs: one (density, beta, d, estimator) cell each."""
    return {"density": 1, "beta": 1, "d": 1, "n": ds.sizes["n"], "seed": ds.sizes["seed"],
            "estimator": 1, "t": ds.sizes["t"], "stop": ds.sizes.get("stop", 1)}


def open_study(path: str | os.PathLike) -> xr.Dataset:
    """The study store at `path`, loaded; StoreError (one line) when it does not open or
    lacks the study's dims or metrics (a damaged or foreign store is refused, not read)."""
    try:
        ds = xr.open_zarr(path).load()
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(f"study store {path} does not open: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    missing = [k for k in (*JOB_DIMS, *METRICS) if k not in ds.variables]
    if missing:
        raise StoreError(f"study store {path} is not a complete study: missing "
                         f"{', '.join(missing)}")
    return ds


def write_study(ds: xr.Dataset, out: str | os.PathLike) -> Path:
    """Write the study store atomically (store.write_zarr_atomic), consolidated metadata.

    An existing store at `out` is replaced only once the new one is complete. The store
    carries the marker scorerate_store = STUDY_MARKER.
    """
    from ..store.targets import MARKER_ATTR

    ds = ds.copy()
    ds.attrs[MARKER_ATTR] = STUDY_MARKER  # what `scorerate aggregate --out` may replace
    chunks = _chunks(ds)
    encoding = {name: {"chunks": tuple(chunks[d] for d in var.dims)}
                for name, var in ds.data_vars.items() if var.dtype.kind == "f"}
    return write_zarr_atomic(ds, out, encoding, overwrite=True)
