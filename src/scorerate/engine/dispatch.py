"""Choice of backend for one call from (n, m, d, t), the tolerance and the data's extent.

Every backend the dispatcher may return meets the tolerance for every query (`cutoff` by
its radius bound, `binned` by its spacing bound plus its cutoff fallback, `dense` and
`numpy` exactly, `dense32` only where its float32 error is ten times below rtol); the
choice only decides speed. The tolerance (default rtol = 1e-6):

    |p̂ - p̂_exact| <= rtol p̂_exact   and   |ŝ - ŝ_exact| <= rtol max(|ŝ_exact|, 1/sqrt(t))

wherever p̂_exact >= rho_n(t) = 1/(n t^(d/2)); the score's scale 1/sqrt(t) is the size
of the score of N(x, t I) one standard deviation away (equivalently the mean's error is
relative to max(|mean - x|, sqrt t)). Below rho_n(t) the values stay finite and are in
practice as accurate, but only `dense`/`numpy`/`cutoff` promise it.

Each backend class owns its cost model (`Backend.cost`, engine/base.py); this module
only asks every registered backend and takes the cheapest.
"""

from __future__ import annotations

import numpy as np

from .base import BACKENDS

__all__ = ["choose_backend", "estimate_costs"]

#: the order in which ties are broken (the historical one); backends not named here follow
_ORDER = ("dense", "numpy", "dense32", "cutoff", "binned")


def estimate_costs(n: int, m: int, d: int, t: float, rtol: float, *, span=None) -> dict:
    """Predicted seconds of each registered backend able to meet rtol for this call."""
    if span is None:
        span = np.full(d, 2.0)  # assume data of unit scale
    span = np.broadcast_to(np.asarray(span, dtype=np.float64), (d,))
    names = [b for b in _ORDER if b in BACKENDS] + [b for b in BACKENDS if b not in _ORDER]
    costs: dict[str, float] = {}
    for name in names:
        c = BACKENDS[name].cost(n, m, d, t, rtol, span)
        if c is not None:
            costs[name] = float(c)
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
