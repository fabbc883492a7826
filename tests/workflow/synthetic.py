"""Synthetic run stores that follow the run-store schema (for aggregate/rates/report tests).

Errors follow known power laws err = C n^a t^b times log-normal noise from seeding.rng, so
a test can check that the fitted slopes recover a and b.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from scorerate import seeding
from scorerate.config.spec import BY_NAME as PARAMS
from scorerate.store import runstore as store
from scorerate.store.variables import STOP_FACTORS, VARIABLES

T_GRID = np.geomspace(0.01, 100.0, 9)


def make_run(density: str = "sym_beta", beta: float = 1.0, d: int = 1, n: int = 100,
             seed: int = 0, *, estimators=("truncated", "empirical"), m: int = 60,
             slope_n: float = -0.5, noise: float = 0.05, t_grid=T_GRID) -> xr.Dataset:
    """One job's Dataset: metrics n^slope_n (x noise); score MSE n^-1 t^-(d+2)/2 or t^-1."""
    g = seeding.rng("synthetic", density, beta, d, n, seed)
    k = len(estimators)
    t = np.asarray(t_grid, dtype=float)
    shape_t = np.where(t < 1, t ** (-(d + 2) / 2), t ** -1.0)

    def noisy(base, size=()):
        return base * np.exp(noise * g.standard_normal(size))

    mse = noisy(shape_t / n, (k, len(t)))
    ds = xr.Dataset(
        {
            "train": (("train", "dim"), g.standard_normal((n, d))),
            "samples": (("estimator", "sample", "dim"), g.uniform(-1, 1, (k, m, d))),
            "score_mse": (("estimator", "t"), mse),
            "score_mse_se": (("estimator", "t"), 0.01 * mse),
            "score_mse_int": (("estimator",), noisy(float(n) ** slope_n, k)),
            "tv": (("estimator",), noisy(float(n) ** slope_n, k)),
            "w1": (("estimator",), noisy(float(n) ** slope_n, k)),
            "mmd2": (("estimator",), noisy(float(n) ** slope_n, k)),
            "tv_kde": ((), float(noisy(float(n) ** slope_n))),
            "l2_kde": ((), float(noisy(float(n) ** slope_n))),
            # the law ran at the asked resolution (no lattice hit its cap)
            "law_resolution_used": (("estimator",),
                                    np.full(k, PARAMS["law_resolution"].default)),
        },
        coords={"estimator": list(estimators), "t": t, "dim": np.arange(d),
                "stop": np.asarray(STOP_FACTORS)},
        attrs={"density": density, "beta": float(beta), "d": int(d), "n": int(n),
               "seed": int(seed), "t0": float(n) ** -0.5, "T": float(n) ** 0.5, "steps": 20,
               "n_steps": 20,
               "integrator": "euler_maruyama", "c_rho": 1.0, "m": m,
               "scorerate_version": "synthetic", "wall_time_s": 0.1, "params_hash": "x",
               "versions": {"python": "3.11.0", "numpy": "synthetic"}},
    )
    # no zero region (an estimate that is nowhere 0), unless a test sets one
    ds["score_mse_zero"] = (("estimator", "t"), np.zeros((k, len(t))))
    ds["score_zero_mass"] = (("estimator", "t"), np.zeros((k, len(t))))
    # every other variable of the table: fitted metrics follow the power law, diagnostics
    # are neutral (a floor far below the values, new points, no escapes)
    sizes = {"estimator": k, "t": len(t), "stop": len(STOP_FACTORS)}
    for v in VARIABLES:
        if v.name not in ds:
            shape = tuple(sizes[dim] for dim in v.dims)
            value = noisy(float(n) ** slope_n, shape) if v.fit_n else np.full(shape, 1e-6)
            ds[v.name] = (v.dims, value)
    return ds


def write_run(root: Path, **kw) -> Path:
    """Write make_run(**kw) to root/{density}/beta={beta}/d={d}/n={n}/seed={seed}.zarr."""
    ds = make_run(**kw)
    a = ds.attrs
    path = (Path(root) / a["density"] / f"beta={a['beta']!r}" / f"d={a['d']}" / f"n={a['n']}"
            / f"seed={a['seed']}.zarr")
    store.write_run(ds, path)  # the real writer: schema check, checksum, atomic rename
    return path


def rot_a_byte(store_path: Path, variable: str = "w1") -> Path:
    """Bit rot: flip the last byte of one chunk of `variable` in a Zarr store, keeping the
    file's size and mtime (what a cache keyed by them cannot see). Returns the chunk."""
    import os

    chunk = next(p for p in (Path(store_path) / variable).rglob("*")
                 if p.is_file() and p.name != "zarr.json")
    st = chunk.stat()
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (chunk.stat().st_size, chunk.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    return chunk
