"""The contract every Gaussian kernel-sum backend keeps, and the registry of backends.

For training points X_1..X_n in R^d, queries x and a time t > 0, a backend returns

    logp(x) = log( (1/n) sum_i phi_t(x - X_i) ),   phi_t = N(0, t I_d) density,
    mean(x) = sum_i w_i(x) X_i / sum_i w_i(x),     w_i(x) = exp(-|x - X_i|^2 / (2 t)),

finite for every finite query (log space, running max), so that the Gaussian
smoothing of the empirical measure is p̂_t = exp(logp), its score (mean - x)/t and
its gradient p̂_t (mean - x)/t. Backends differ only in speed and accuracy.

Each backend owns its cost model: `cost(n, m, d, t, rtol, span)` predicts the seconds of
one call, or returns None where the backend cannot meet `rtol` (or cannot run at all);
`dispatch.choose_backend` takes the cheapest. The constants were fitted by
benchmarks/kernels.py on a 2-core machine; they rank candidates, nothing more.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["BACKENDS", "Backend", "as_points", "dim_factor", "register_backend"]


class Backend(Protocol):
    """A prepared evaluator of (logp, mean) for one fixed training set."""

    name: str

    def __init__(self, train: np.ndarray, rtol: float = 1e-6) -> None: ...

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float | None:
        """Predicted seconds of one call (m queries, n points), None if rtol is out of reach."""
        ...

    def sums(self, queries: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Return logp (m,) and mean (m, d) for queries (m, d) at time t."""
        ...


#: name -> backend class; filled by the backend modules at import.
BACKENDS: dict[str, type] = {}


def register_backend(cls: type) -> type:
    """Class decorator adding a backend to BACKENDS under its `name`."""
    BACKENDS[cls.name] = cls
    return cls


def dim_factor(d: int) -> float:
    """Relative cost of one kernel evaluation in d dimensions (1 in d = 1)."""
    return 0.6 + 0.4 * d


def as_points(x: np.ndarray, d: int | None = None, name: str = "x") -> np.ndarray:
    """Shape any input into a C-contiguous float64 (m, d) array (1-D input is (m, 1))."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(-1, 1) if (d is None or d == 1) else a.reshape(1, -1)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (m, d) array, got shape {np.shape(x)}")
    if d is not None and a.shape[1] != d:
        raise ValueError(f"{name} has {a.shape[1]} columns, expected d = {d}")
    return np.ascontiguousarray(a)
