"""Gaussian kernel-sum engine: log p̂_t and the softmax mean over n training points.

`GaussianEngine(train).sums(x, t)` is the one entry point; the backend is chosen per
call by `dispatch.choose_backend` unless fixed by hand. Backends live one per module
and register themselves in `base.BACKENDS`.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_int
from . import binned, cutoff, dense, dense32, numpy_dense  # noqa: F401  (register backends)
from .base import BACKENDS, TrainShape, as_points
from .dispatch import choose_backend

__all__ = ["BACKENDS", "GaussianEngine", "as_points", "choose_backend"]


class GaussianEngine(TrainShape):
    """Prepared Gaussian kernel sums over one training set, for any queries and t.

    Parameters
    ----------
    train : (n, d) array of training points.
    backend : "auto" (per call, from n, m, d, t and rtol) or a name in BACKENDS.
    rtol : relative accuracy asked of p̂_t and ŝ_t where p̂_t is above the truncation level.
    plan_m : with "auto", choose the backend as if every call had this many queries. The
        choice (so the last bits, never the accuracy) then no longer depends on how the
        queries are split into calls: a job fixes it for bit-identity over chunk sizes.
    """

    def __init__(self, train: np.ndarray, *, backend: str = "auto", rtol: float = 1e-6,
                 plan_m: int | None = None) -> None:
        self.train = as_points(train, name="train")
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose 'auto' or one of "
                             f"{sorted(BACKENDS)}")
        if not (0 < rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
        if plan_m is not None:
            check_int("plan_m", plan_m, lo=1)
        self.backend = backend
        self.rtol = rtol
        self.plan_m = None if plan_m is None else int(plan_m)
        self._prepared: dict[str, object] = {}
        # the data's extent per axis: lets the dispatcher size grids and neighbour balls
        self.span = (self.train.max(axis=0) - self.train.min(axis=0)) if self.n else None
        self.last_backend: str | None = None  # the backend the last call used

    def _get(self, name: str):
        if name not in self._prepared:
            self._prepared[name] = BACKENDS[name](self.train, self.rtol)
        return self._prepared[name]

    def sums(self, queries: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (logp (m,), mean (m, d)) at time t > 0; see engine.base for definitions."""
        return self._call(queries, t, tail=False)

    def tail_sums(self, queries: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """`sums` for queries where p̂_t is known to be small (the grid score's uncertified
        cells, engine/grid.py): with "auto" the cutoff backend, whose ball around such a
        query holds only a shell at the data's near edge instead of all n points; a backend
        fixed by the caller is kept."""
        return self._call(queries, t, tail=True)

    def _call(self, queries: np.ndarray, t: float, *, tail: bool):
        if not (t > 0 and np.isfinite(t)):
            raise ValueError(f"t must be a finite number > 0, got {t!r}")
        x = as_points(queries, d=self.d, name="queries")
        name = self.backend
        if name == "auto":
            m = x.shape[0] if self.plan_m is None else self.plan_m
            name = "cutoff" if tail else choose_backend(self.n, m, self.d, float(t),
                                                        self.rtol, span=self.span)
        self.last_backend = name
        return self._get(name).sums(x, float(t))
