"""Which jobs and cells of a study have a run: the one answer, read from `has_run`.

A cell is (density, beta, d); a job is a cell at one n and seed. The aggregation writes
the study's `has_run` variable from the runs themselves; the rate table, the predictions
and the report all ask here.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..config.file import CELL_DIMS, JOB_DIMS, POINT_DIMS
from ..store.variables import METRICS

__all__ = ["cells", "has_run", "points_with_run"]


def has_run(study: xr.Dataset) -> xr.DataArray | None:
    """Boolean (density, beta, d, n, seed): which jobs of a study have a run.

    The one answer to "which cells have data": the study's `has_run` variable, written by
    `combine_runs` from the runs themselves (a ragged grid's holes and the config's
    missing jobs are False). A study written before that variable existed gets it derived
    from its metrics (a job with any non-NaN metric has a run); a dataset of coordinates
    alone (no runs to tell) gives None.
    """
    if "has_run" in study:
        return study["has_run"].astype(bool)
    have = None
    for m in (v.name for v in METRICS if v.name in study):
        extra = [dim for dim in study[m].dims if dim not in JOB_DIMS]
        cur = study[m].notnull().any(extra) if extra else study[m].notnull()
        have = cur if have is None else have | cur
    return None if have is None else have.transpose(*JOB_DIMS)


def cells(study: xr.Dataset) -> list[tuple[str, float, int]]:
    """The (density, beta, d) cells of a study that have a run, in coordinate order.

    The one cell filter of the rate table and the report (a config may ask for cells no
    run has filled yet, and a ragged config's dense grid holds cells that are no job).
    """
    runs = has_run(study)
    if runs is None:
        return []
    have = runs.any(("n", "seed")).transpose(*CELL_DIMS).values
    return [(str(a), float(b), int(c))
            for i, a in enumerate(study["density"].values)
            for j, b in enumerate(study["beta"].values)
            for k, c in enumerate(study["d"].values) if have[i, j, k]]


def points_with_run(study: xr.Dataset) -> np.ndarray:
    """Boolean (density, beta, d, n) array: the points with a run of any seed, which are
    the points a prediction is for. Coordinates alone (no runs to tell) ask for all."""
    runs = has_run(study)
    if runs is None:
        return np.ones(tuple(study.sizes[k] for k in POINT_DIMS), dtype=bool)
    return runs.any("seed").transpose(*POINT_DIMS).values
