"""Combine per-job run stores into one study store with dims (density, beta, d, n, seed, ...).

Only the metrics travel (the samples and training points stay in the run stores); every
cell of the (density, beta, d, n, seed) grid that has no store is NaN, never dropped. The
study store is written to a temporary directory beside the target and renamed into place,
so an interrupted aggregation never leaves a store that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = [
    "JOB_DIMS",
    "METRICS",
    "RUN_ATTRS",
    "StoreError",
    "aggregate",
    "expected_grid",
    "read_run",
    "write_study",
]

#: the identity of one job, in the order of the study's leading dims
JOB_DIMS = ("density", "beta", "d", "n", "seed")
#: metric variables of a run store -> their dims there (the study adds JOB_DIMS in front)
METRICS: dict[str, tuple[str, ...]] = {
    "score_mse": ("estimator", "t"),
    "score_mse_se": ("estimator", "t"),
    "score_mse_int": ("estimator",),
    "tv": ("estimator",),
    "w1": ("estimator",),
    "mmd": ("estimator",),
    "tv_kde": (),
    "l2_kde": (),
}
#: numeric per-job attrs copied into the study as (density, beta, d, n, seed) variables
RUN_ATTRS = ("t0", "T", "wall_time_s")


class StoreError(ValueError):
    """A run store that is missing, unreadable or does not follow the run-store schema."""


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
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds = xr.open_zarr(path)
    except Exception as exc:  # zarr raises many kinds; the message is what matters
        raise StoreError(f"run store {path}: cannot be opened as Zarr ({exc})") from None
    key = _job_id(ds.attrs, path)
    for name, dims in METRICS.items():
        if name not in ds:
            raise StoreError(f"run store {path}: variable {name!r} missing")
        if tuple(ds[name].dims) != dims:
            raise StoreError(f"run store {path}: {name!r} has dims {ds[name].dims}, "
                             f"expected {dims}")
    if "content_sha256" in ds.attrs:  # written by scorerate.store: check the data too
        from .store import StoreError as _RunStoreError
        from .store import open_run

        try:
            open_run(path, verify=True).close()
        except _RunStoreError as exc:
            raise StoreError(f"run store {path}: {exc}") from None
    metrics = ds[list(METRICS)].load()
    for a in RUN_ATTRS:
        metrics[a] = xr.DataArray(float(ds.attrs.get(a, np.nan)))
    metrics.attrs = dict(ds.attrs)
    ds.close()
    return key, metrics


def expected_grid(config: Mapping) -> dict[str, list]:
    """The job coordinates a study config asks for (union over densities for beta)."""
    dens = config.get("densities", {})
    betas = sorted({float(b) for spec in dens.values() for b in spec.get("beta", [])})
    return {
        "density": sorted(dens),
        "beta": betas,
        "d": sorted({int(v) for v in config.get("d", [])}),
        "n": sorted({int(v) for v in config.get("n", [])}),
        "seed": sorted({int(v) for v in config.get("seeds", [])}),
    }


def aggregate(paths: Sequence[str | os.PathLike], config: Mapping | None = None) -> xr.Dataset:
    """Combine run stores into one Dataset with dims (density, beta, d, n, seed, estimator, t).

    The job coords are the union of those in the stores and, when given, those the config
    asks for; cells without a store are NaN. Variables `t0`, `T`, `wall_time_s` (per job)
    and `store` (the path each cell came from, "" where missing) sit beside the metrics.
    Memory: one float64 array of the full grid per metric.

    Raises StoreError naming the first bad store, or two stores for the same job.
    """
    if not paths:
        raise ValueError("aggregate needs at least one run store")
    runs: dict[tuple, tuple[str, xr.Dataset]] = {}
    for p in paths:
        key, ds = read_run(p)
        if key in runs:
            raise StoreError(f"run stores {runs[key][0]} and {p} are the same job {key}")
        runs[key] = (str(p), ds)

    coords: dict[str, list] = {k: set() for k in JOB_DIMS}
    for key in runs:
        for dim, v in zip(JOB_DIMS, key, strict=True):
            coords[dim].add(v)
    if config is not None:
        for dim, vals in expected_grid(config).items():
            coords[dim].update(vals)
    coords = {k: sorted(v) for k, v in coords.items()}
    estimators = sorted({str(e) for _, ds in runs.values() for e in ds["estimator"].values})
    if config is not None and config.get("estimators"):
        estimators = list(config["estimators"]) + [e for e in estimators
                                                   if e not in config["estimators"]]
    ts = np.unique(np.concatenate([ds["t"].values for _, ds in runs.values()]))
    coords["estimator"] = estimators
    coords["t"] = ts

    shape = tuple(len(coords[k]) for k in JOB_DIMS)
    data = {}
    for name, dims in METRICS.items():
        full = JOB_DIMS + dims
        data[name] = (full, np.full(shape + tuple(len(coords[k]) for k in dims), np.nan))
    for a in RUN_ATTRS:
        data[a] = (JOB_DIMS, np.full(shape, np.nan))
    data["store"] = (JOB_DIMS, np.full(shape, "", dtype=object))
    index = {dim: {v: i for i, v in enumerate(coords[dim])} for dim in JOB_DIMS}

    for key, (path, ds) in runs.items():
        at = tuple(index[dim][v] for dim, v in zip(JOB_DIMS, key, strict=True))
        # align each run onto the study's estimator and t coords (missing -> NaN)
        ds = ds.reindex(estimator=estimators, t=ts)
        for name in METRICS:
            data[name][1][at] = ds[name].values
        for a in RUN_ATTRS:
            data[a][1][at] = float(ds[a])
        data["store"][1][at] = path

    # variable-length strings (object dtype): Zarr v3 has a spec for those, not for fixed UTF-32
    for k in ("density", "estimator"):
        coords[k] = np.array(coords[k], dtype=object)
    out = xr.Dataset(data, coords=coords)
    out.attrs.update({
        "description": "scorerate study: metrics of every (density, beta, d, n, seed) job",
        "n_runs": len(runs),
        "n_cells": int(np.prod(shape)),
    })
    for key in ("scorerate_version", "steps", "integrator", "m", "c_rho"):
        vals = {json.dumps(ds.attrs.get(key), default=str) for _, ds in runs.values()}
        if len(vals) == 1:
            out.attrs[key] = json.loads(vals.pop())
    if config is not None:
        out.attrs["config"] = json.dumps(config, sort_keys=True, default=str)
    return out


def _chunks(ds: xr.Dataset) -> dict[str, int]:
    """Chunks for reading whole (n, seed) slabs: one (density, beta, d, estimator) cell each."""
    return {"density": 1, "beta": 1, "d": 1, "n": ds.sizes["n"], "seed": ds.sizes["seed"],
            "estimator": 1, "t": ds.sizes["t"]}


def write_study(ds: xr.Dataset, out: str | os.PathLike) -> Path:
    """Write the study store atomically (temp dir + rename), consolidated metadata.

    An existing store at `out` is replaced only once the new one is complete.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    target = tmp / "store.zarr"
    try:
        chunks = _chunks(ds)
        encoding = {}
        for name, var in ds.data_vars.items():
            if var.dtype.kind == "f":
                encoding[name] = {"chunks": tuple(chunks[d] for d in var.dims)}
        with warnings.catch_warnings():
            # consolidated metadata is not (yet) in the Zarr v3 spec; xarray reads it fine
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds.to_zarr(target, mode="w", consolidated=True, encoding=encoding)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        target.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_config(path: str | os.PathLike) -> dict:
    """Read a study config (YAML or JSON) into a dict."""
    import yaml

    with open(path) as fh:
        cfg = yaml.safe_load(fh)
    if not isinstance(cfg, dict):
        raise ValueError(f"config {path}: expected a mapping at top level")
    return cfg


def iter_stores(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The run-store paths as strings, in a stable order."""
    return sorted(str(p) for p in paths)
