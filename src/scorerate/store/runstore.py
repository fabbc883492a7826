"""One Zarr store per job: its schema, an atomic writer and a validating reader.

A store is written through xarray to a hidden temporary sibling directory and renamed
into place only once complete, so an interrupted job never leaves a store that looks
finished. An existing store is replaced only with ``overwrite=True``, and then only
after the new one is complete. `open_run` checks the schema and a checksum of the
data and of the attributes that identify the run (density, beta, d, n, seed, t0, T,
params_hash), so a truncated, tampered or relabelled store is reported instead of read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from ..config.file import JOB_DIMS
from .targets import MARKER, MARKER_ATTR, is_kind
from .variables import RUN_COORDS, STOP_FACTORS, VARIABLES

__all__ = [
    "REQUIRED_ATTRS",
    "SCHEMA",
    "StoreError",
    "IDENTITY_ATTRS",
    "content_checksum",
    "describe_run",
    "is_complete",
    "is_run_store",
    "quarantine_bad_stores",
    "json_safe",
    "open_run",
    "run_dataset",
    "swap_into_place",
    "validate_run",
    "write_run",
    "write_zarr_atomic",
]

#: variable -> dims (the table in scorerate.store.variables is the source)
SCHEMA: dict[str, tuple[str, ...]] = {v.name: v.dims for v in VARIABLES}
REQUIRED_ATTRS = (*JOB_DIMS, "t0", "T", "steps", "integrator",
                  "c_rho", "m", "scorerate_version", "wall_time_s", "params_hash")
CHECKSUM_ATTR = "content_sha256"
#: attributes that say which job a store holds: covered by the checksum
IDENTITY_ATTRS = (*JOB_DIMS, "params_hash", "t0", "T")
# zarr 3 warns that consolidated metadata is not in the v3 spec yet; we rely on it knowingly.
_CONSOLIDATED_WARNING = "Consolidated metadata is currently not part"


class StoreError(ValueError):
    """A run store is missing, incomplete, corrupt or would be overwritten."""


def json_safe(value: object) -> object:
    """Convert `value` to plain JSON types (numpy scalars/arrays, tuples, paths); NaN -> None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def content_checksum(ds: xr.Dataset) -> str:
    """sha256 over the identity attrs and the names, dims, dtypes and bytes of every schema
    variable and coordinate: a store whose data or label (say n) was edited no longer matches.
    """
    h = hashlib.sha256()
    ident = {k: json_safe(ds.attrs.get(k)) for k in IDENTITY_ATTRS}
    h.update(b"attrs|" + json.dumps(ident, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(set(SCHEMA) | set(RUN_COORDS)):
        if name not in ds.variables:
            continue
        var = ds.variables[name]
        values = np.ascontiguousarray(var.values)
        if values.dtype.kind in "biufc":
            data = values.astype(values.dtype.newbyteorder("<")).tobytes()
            kind = values.dtype.newbyteorder("<").str
        else:  # strings: U, object or StringDType, whichever the reader hands back
            data = "\x1f".join(str(v) for v in values.ravel()).encode()
            kind = "str"
        h.update(f"{name}|{var.dims}|{kind}|{values.shape}|".encode())
        h.update(data)
    return h.hexdigest()


def run_dataset(values: Mapping[str, object], *, estimators: tuple[str, ...],
                ts: np.ndarray, d: int, attrs: Mapping[str, object]) -> xr.Dataset:
    """The run-store Dataset of one job from its values keyed by variable name.

    Dims, meanings and units of variables and coordinates come from scorerate.store.variables;
    every variable of the table must be in `values` (KeyError otherwise), nothing else is
    stored. The attributes follow CF (scorerate.store.cf: its global attributes, values netCDF
    holds), so `to_netcdf` writes the store as it is.
    """
    ds = xr.Dataset(
        {v.name: (v.dims, np.asarray(values[v.name], dtype=np.float64)) for v in VARIABLES},
        coords={"estimator": list(estimators), "t": np.asarray(ts, dtype=np.float64),
                "dim": np.arange(d), "stop": np.asarray(STOP_FACTORS)},
    )
    return describe_run(ds, attrs)


def describe_run(ds: xr.Dataset, attrs: Mapping[str, object]) -> xr.Dataset:
    """`ds` with the CF attributes of a run store (scorerate.store.cf): each variable's and
    coordinate's from scorerate.store.variables, the global ones, and `attrs` in values netCDF
    holds. Attributes only, so the checksum (`content_checksum`) does not change: a store
    written before them gets them in memory when it is opened, and stays valid on disk."""
    from .cf import global_attrs, netcdf_attrs
    from .variables import coordinate_attrs

    for v in VARIABLES:
        ds[v.name].attrs.update(v.attrs)
    for c in RUN_COORDS:
        ds[c].attrs.update(coordinate_attrs(c))
    job = " ".join(f"{k}={attrs.get(k)}" for k in JOB_DIMS)
    ds.attrs = {**global_attrs(f"scorerate run: {job}", f"scorerate run-job {job}",
                               created=attrs.get("created")),
                **netcdf_attrs(attrs)}
    return ds


def validate_run(ds: xr.Dataset, *, where: str = "dataset") -> None:
    """Raise StoreError unless `ds` has the run schema (variables, dims, coords, attrs)."""
    problems = []
    for name, dims in SCHEMA.items():
        if name not in ds.variables:  # xarray files `train` (named like its dim) as a coord
            problems.append(f"missing variable {name!r}")
        elif tuple(ds[name].dims) != dims:
            problems.append(f"{name!r} has dims {tuple(ds[name].dims)}, expected {dims}")
    problems += [f"missing coordinate {c!r}" for c in RUN_COORDS if c not in ds.coords]
    problems += [f"missing attribute {a!r}" for a in REQUIRED_ATTRS if a not in ds.attrs]
    if problems:
        hint = ""
        if any(p.startswith("missing variable") for p in problems):
            hint = (" (a store written by an older scorerate lacks the newer variables: "
                    "recompute it with `scorerate run-job ... --overwrite`, or delete it and "
                    "rerun snakemake, which recomputes missing stores)")
        raise StoreError(f"{where} is not a valid scorerate run: " + "; ".join(problems)
                         + hint)


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """Compression for data variables (zstd via Blosc); each coordinate in a single chunk."""
    from zarr.codecs import BloscCodec

    enc: dict[str, dict] = {}
    for name, var in ds.variables.items():
        if var.ndim == 0:
            enc[name] = {}
            continue
        chunks = tuple(max(1, s) for s in var.shape)
        if name == "samples":  # one chunk per estimator: read one estimator's samples alone
            chunks = (1, *chunks[1:])
        enc[name] = {"chunks": chunks}
        if name not in ds.indexes and var.dtype.kind in "fiu":
            enc[name]["compressors"] = [BloscCodec(cname="zstd", clevel=5, shuffle="shuffle",
                                                   typesize=var.dtype.itemsize)]
    return enc


def is_complete(path: str | os.PathLike) -> bool:
    """True if `path` holds a run store that opens and passes validation."""
    try:
        open_run(path).close()
    except StoreError:
        return False
    return True


def is_run_store(path: str | os.PathLike) -> bool:
    """True if `path` is a run store written by this project, by its marker (the data are
    not read, so a damaged store of ours still counts: it may be replaced or moved aside);
    the one recogniser is scorerate.store.targets.is_kind."""
    return is_kind(path, "run")


def write_run(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `ds` as a Zarr (format 3, consolidated) store at `path`, atomically.

    The store is written to a hidden sibling ``.<name>.tmp-<uuid>`` and renamed onto
    `path` when complete. With ``overwrite=False`` an existing `path` raises StoreError
    and is left untouched; with ``overwrite=True`` it is swapped out only after the new
    store is complete (and restored if the swap fails). Attributes are made JSON-safe
    and a checksum of the data and identity attrs is added, which `open_run` verifies.

    Returns the final path. Memory: the dataset is written as it is (load it first if
    it is lazy); the store is a few arrays of size m x estimators x d.
    """
    path = Path(path)
    validate_run(ds)
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; pass overwrite=True to replace it")
    out = ds.copy()
    out.attrs = {k: json_safe(v) for k, v in ds.attrs.items()}
    out.attrs[MARKER_ATTR] = MARKER
    out.attrs[CHECKSUM_ATTR] = content_checksum(out)
    return write_zarr_atomic(out, path, _encoding(out), overwrite=overwrite)


def write_zarr_atomic(ds: xr.Dataset, path: str | os.PathLike, encoding: Mapping[str, dict],
                      *, overwrite: bool) -> Path:
    """The one atomic Zarr writer (run stores and the study store): write `ds` (format 3,
    consolidated) to a hidden sibling ``.<name>.tmp-<uuid>``, then `swap_into_place`.

    An existing `path` is replaced only with `overwrite`, and only once the new store is
    complete; an interrupted write leaves no store that looks finished.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    out = ds.copy()
    for name in list(out.variables):
        out[name].encoding = {}
        if out[name].dtype.kind == "U":  # variable-length strings have a Zarr 3 spec; <U9 not
            out[name] = out[name].astype(object)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CONSOLIDATED_WARNING)
            out.to_zarr(tmp, mode="w-", consolidated=True, zarr_format=3,
                        encoding=dict(encoding))
        swap_into_place(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def swap_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the complete store `tmp` onto `path`; an old store moves aside until then."""
    old = None
    if path.exists() or path.is_symlink():
        if not overwrite:  # appeared while we were writing: another writer won
            raise StoreError(f"{path} appeared while writing; left it untouched")
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
        os.replace(path, old)
    try:
        os.rename(tmp, path)  # fails (not clobbers) if a non-empty directory appeared
    except OSError:
        if old is not None and not path.exists():
            os.replace(old, path)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def open_run(path: str | os.PathLike, *, verify: bool = True) -> xr.Dataset:
    """Open a run store, checking its schema and (with `verify`) its data checksum.

    Raises StoreError naming the path and the problem for a missing, incomplete or
    corrupt store. With `verify` the (small) data is loaded into memory.
    """
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"no run store at {path}")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CONSOLIDATED_WARNING)
            ds = xr.open_zarr(path, consolidated=True, zarr_format=3)
    except Exception as exc:  # zarr/xarray raise many types for a broken store
        raise StoreError(f"{path} is corrupt or incomplete: {type(exc).__name__}: {exc}") from None
    validate_run(ds, where=str(path))
    if verify:
        want = ds.attrs.get(CHECKSUM_ATTR)
        try:
            ds = ds.load()
        except Exception as exc:
            raise StoreError(f"{path} is corrupt: cannot read its data: "
                             f"{type(exc).__name__}: {exc}") from None
        if ds.attrs.get(MARKER_ATTR) != MARKER:
            raise StoreError(f"{path} has no {MARKER_ATTR}={MARKER!r} marker: written by "
                             f"another program or an older scorerate; recompute it")
        if want is None or content_checksum(ds) != want:
            raise StoreError(f"{path} is corrupt: its data or identifying attributes "
                             f"({', '.join(IDENTITY_ATTRS)}) do not match the checksum "
                             f"written with it")
    if "Conventions" not in ds.attrs:  # written before the CF attributes (scorerate.store.cf)
        ds = describe_run(ds, dict(ds.attrs))
    return ds



def _signature(path: Path) -> str:
    """Fingerprint of a store's content: sha256 over every file's relative path and bytes.

    Content, not size and mtime: a byte flipped with both kept (bit rot, a careless copy)
    changes it, so the verification cache cannot vouch for a store that changed. Cost: one
    read of the store's files (no decompression), far less than `open_run`'s check.
    """
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(f"{os.path.relpath(full, path)}|{os.path.getsize(full)}|".encode())
            with open(full, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
    return "sha256:" + h.hexdigest()


def quarantine_bad_stores(expected: Mapping[str, Mapping[str, object]], corrupt_dir: str |
                          os.PathLike, *, cache: str | os.PathLike | None = None) -> list[str]:
    """Verify every existing run store of `expected` (path -> its job's density, beta, d, n,
    seed); move each one that fails `open_run` or holds another job into `corrupt_dir`.

    A workflow calls this before planning, so a damaged store is missing when the plan is
    made and gets recomputed. Only run stores of this project (`is_run_store`) are moved;
    any other directory there is left in place and reported. `cache` (a JSON file)
    remembers the content hash of each store found good (`_signature`), so an unchanged
    store costs one read of its files instead of a full verification. Returns one line
    per bad store (moved or left).
    """
    cache_path = Path(cache) if cache is not None else None
    known: dict[str, str] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            known = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):  # not a cache of ours: verify everything again
            known = {}
    good: dict[str, str] = {}
    moved = []
    for key, ident in expected.items():
        path = Path(key)
        if not path.is_dir():
            continue
        sig = _signature(path)
        if known.get(key) == sig:
            good[key] = sig
            continue
        try:
            ds = open_run(path)
            wrong = [f"{k}={ds.attrs.get(k)!r} (path says {v!r})" for k, v in ident.items()
                     if str(ds.attrs.get(k)) != str(v)]
            ds.close()
            if wrong:
                raise StoreError(f"{path} holds another job: " + ", ".join(wrong))
        except StoreError as exc:
            if not is_run_store(path):  # a directory of someone's, not ours to move
                moved.append(f"left {path} in place: it is not a scorerate run store "
                             f"({exc}); remove or rename it")
                continue
            dest = Path(corrupt_dir) / f"{uuid.uuid4().hex[:8]}-{path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            (dest.parent / f"{dest.name}.why.txt").write_text(f"{path}\n{exc}\n")
            moved.append(f"moved a bad run store aside, {path} -> {dest}: {exc}")
            continue
        good[key] = sig
    if cache_path is not None and good != known:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f".{cache_path.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(good, sort_keys=True))
        os.replace(tmp, cache_path)
    return moved
