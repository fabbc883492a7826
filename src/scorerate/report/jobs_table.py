"""jobs.csv: one row per job and estimator with the output's numbers, so a published
study can be checked against the pipeline's own output and a rerun of one job against
its row (floats written with 17 significant digits: they read back bit for bit)."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from ..config.file import JOB_DIMS

__all__ = ["JOB_COLUMNS", "job_table", "write_job_table"]

#: the leading columns, then the per-job scalars, then every per-estimator scalar metric
JOB_COLUMNS = (*JOB_DIMS, "estimator")
#: per-job scalars (no estimator dim) that sit beside each estimator's row
_PER_JOB = ("t0", "T", "n_steps", "tv_kde", "l2_kde", "tv_floor")


def job_table(study: xr.Dataset) -> pd.DataFrame:
    """Rows (density, beta, d, n, seed, estimator) of every job with a run; columns: the
    job's t0, T, n_steps, tv_kde, l2_kde, tv_floor and every metric with one value per
    estimator (tv_law, l2_law, tv_sampler, l2_sampler, tv_steps, tv, ...)."""
    per_est = [k for k, v in study.data_vars.items()
               if set(v.dims) == {*JOB_DIMS, "estimator"} and v.dtype.kind == "f"]
    per_job = [k for k in _PER_JOB if k in study]
    if not per_est:
        return pd.DataFrame(columns=[*JOB_COLUMNS, *per_job])
    ds = study[per_est + per_job].where(study["has_run"])
    df = ds.to_dataframe().reset_index()
    has = study["has_run"].to_dataframe().reset_index()
    df = df.merge(has, on=list(JOB_DIMS))
    df = df[df["has_run"]].drop(columns="has_run")
    df["estimator"] = df["estimator"].astype(str)
    df["density"] = df["density"].astype(str)
    if "n_steps" in df:
        df["n_steps"] = df["n_steps"].astype("Int64")
    cols = [*JOB_COLUMNS, *per_job, *sorted(per_est, key=_order)]
    return df[cols].reset_index(drop=True)  # the study's coordinate order


def _order(name: str) -> tuple[int, str]:
    """The output law's numbers first (the ones a results page quotes), then the rest."""
    first = ("tv_law", "l2_law", "tv_sampler", "l2_sampler", "tv_steps")
    return (first.index(name), "") if name in first else (len(first), name)


def write_job_table(study: xr.Dataset, path) -> None:
    """Write job_table(study) as CSV, floats with 17 significant digits."""
    job_table(study).to_csv(path, index=False, float_format="%.17g", na_rep="NaN")
