"""Choice of backend for one call from (n, m, d, t), the tolerance and the data's extent.

Every backend the dispatcher may return meets the tolerance for every query (`cutoff` by
its radius bound, `binned` by its spacing bound plus its cutoff fallback, `dense` and
`numpy` exactly); the choice only decides speed. The tolerance (default rtol = 1e-6):

    |p̂ - p̂_exact| <= rtol p̂_exact   and   |ŝ - ŝ_exact| <= rtol max(|ŝ_exact|, 1/sqrt(t))

wherever p̂_exact >= rho_n(t) = 1/(n t^(d/2)); the score's scale 1/sqrt(t) is the size
of the score of N(x, t I) one standard deviation away (equivalently the mean's error is
relative to max(|mean - x|, sqrt t)). Below rho_n(t) the values stay finite and are in
practice as accurate, but only `dense`/`numpy`/`cutoff` promise it.

The cost model (seconds) is rough, fitted by benchmarks/kernels.py on a 2-core machine;
it ranks the candidates, it does not need to be exact.
"""

from __future__ import annotations

import math

import numpy as np

from .base import BACKENDS
from .binned import Q, binned_grid_shape, binned_ok
from .cutoff import cutoff_log_ratio
from .dense32 import expected_error

__all__ = ["COST", "DENSE32_MIN_RTOL", "choose_backend", "estimate_costs"]

#: float32 evaluation is about 1e-5 accurate (engine/dense32.py), so only for looser rtol
DENSE32_MIN_RTOL = 1e-4

#: seconds per unit of work (see estimate_costs), 2 cores, float64
COST = {
    "dense": 2.5e-9,      # per kernel evaluation (m n), times (0.6 + 0.4 d)
    "dense32": 1.5e-9,    # the same in single precision (offered only for rtol >= 1e-4)
    "numpy": 1.5e-8,      # per kernel evaluation, times (0.6 + 0.4 d)
    "cutoff_pair": 4e-9,  # per (query, neighbour) pair in d = 1, times (0.6 + 0.4 d)
    "cutoff_list": 6e-8,  # extra per pair in d >= 2 (cKDTree neighbour lists)
    "cutoff_query": 2e-6,  # per query (nearest neighbour, radius, ranges)
    "binned_bin": 3e-9,   # per training point and stencil node
    "binned_fft": 4e-9,   # per grid node and log2(size), per transform
    "binned_query": 3e-9,  # per query and stencil node and output
}


def expected_neighbours(n: int, d: int, t: float, rtol: float, span) -> float:
    """Neighbours per query kept by `cutoff` for data spread uniformly over its box."""
    L = float(cutoff_log_ratio(n, rtol, 0.0))
    R = math.sqrt(2.0 * t * L)
    frac = 1.0
    for s in np.broadcast_to(np.asarray(span, dtype=np.float64), (d,)):
        frac *= min(1.0, 2.0 * R / s) if s > 0 else 1.0
    return max(1.0, n * frac)


def estimate_costs(n: int, m: int, d: int, t: float, rtol: float, *, span=None) -> dict:
    """Predicted seconds of each registered backend able to meet rtol for this call."""
    dim = 0.6 + 0.4 * d
    costs: dict[str, float] = {}
    if "dense" in BACKENDS:
        costs["dense"] = COST["dense"] * m * n * dim
    costs["numpy"] = COST["numpy"] * m * n * dim
    if span is None:
        span = np.full(d, 2.0)  # assume data of unit scale
    if ("dense32" in BACKENDS and rtol >= DENSE32_MIN_RTOL
            and rtol >= 10 * expected_error(t, float(np.max(span)))):
        costs["dense32"] = COST["dense32"] * m * n * dim
    if "cutoff" in BACKENDS:
        k = expected_neighbours(n, d, t, rtol, span)
        per = COST["cutoff_pair"] * dim + (COST["cutoff_list"] if d > 1 else 0.0)
        costs["cutoff"] = m * (k * per + COST["cutoff_query"] * (1 + math.log2(n) / 20))
    if "binned" in BACKENDS and binned_ok(n, d, t, rtol, span):
        G = math.prod(binned_grid_shape(n, d, t, rtol, span))
        costs["binned"] = (COST["binned_bin"] * n * Q ** d
                           + COST["binned_fft"] * G * math.log2(G) * (d + 2)
                           + COST["binned_query"] * m * Q ** d * (d + 1))
    return costs


def choose_backend(n: int, m: int, d: int, t: float, rtol: float, *, span=None) -> str:
    """Name of the fastest registered backend known to meet `rtol` for this call.

    Parameters
    ----------
    n, m, d : training points, queries, dimension.
    t : time (> 0); rtol : tolerance (see the module docstring).
    span : optional per-axis extent (max - min) of the training points; defaults to 2.
    """
    costs = estimate_costs(n, m, d, t, rtol, span=span)
    return min(costs, key=costs.get)
