"""jobs.csv: one row per job and estimator with the output's numbers, so a published
study can be checked against the pipeline's own output and a rerun of one job against
its row (floats written with 17 significant digits: they read back bit for bit)."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from ..config.file import JOB_DIMS

__all__ = ["JOB_COLUMNS", "job_table", "write_job_table"]

#: the leading columns, then the per-job numbers, then every per-estimator scalar metric
JOB_COLUMNS = (*JOB_DIMS, "estimator")
#: per-job numbers a rerun does not reproduce (left out)
_NOT_REPRODUCED = ("wall_time_s",)


def job_table(study: xr.Dataset) -> pd.DataFrame:
    """Rows (density, beta, d, n, seed, estimator) of every job with a run; columns: the
    job's own numbers (t0, T, n_steps, tv_kde, l2_kde, tv_floor: the float variables over
    the job dims) and every metric with one value per estimator (tv_law, l2_law,
    tv_sampler, l2_sampler, tv_steps, tv, ...), in the study's coordinate order."""
    def floats_over(dims):
        return [k for k, v in study.data_vars.items()
                if set(v.dims) == set(dims) and v.dtype.kind == "f" and k not in _NOT_REPRODUCED]

    per_job, per_est = floats_over(JOB_DIMS), floats_over((*JOB_DIMS, "estimator"))
    if not per_est:
        return pd.DataFrame(columns=[*JOB_COLUMNS, *per_job])
    df = study[[*per_est, *per_job, "has_run"]].to_dataframe().reset_index()
    df = df[df["has_run"]].drop(columns="has_run")
    for k in ("density", "estimator"):
        df[k] = df[k].astype(str)
    if "n_steps" in df:
        df["n_steps"] = df["n_steps"].astype("Int64")
    return df[[*JOB_COLUMNS, *sorted(per_job, key=_order), *sorted(per_est, key=_order)]
              ].reset_index(drop=True)


#: columns shown first, in this order (the job's setting, then the output law's numbers)
_FIRST = ("t0", "T", "n_steps", "tv_kde", "l2_kde", "tv_floor",
          "tv_law", "l2_law", "tv_sampler", "l2_sampler", "tv_steps", "tv_law_steps",
          "l2_law_steps", "tv_law_steps_check", "l2_law_steps_check", "law_exact_share",
          "law_resolution_used")


def _order(name: str) -> tuple[int, str]:
    return (_FIRST.index(name), "") if name in _FIRST else (len(_FIRST), name)


def write_job_table(study: xr.Dataset, path) -> None:
    """Write job_table(study) as CSV, floats with 17 significant digits."""
    job_table(study).to_csv(path, index=False, float_format="%.17g", na_rep="NaN")
