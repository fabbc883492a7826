"""Shared plumbing of the built-in estimators: training data, declared options, checks."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..checks import check_time
from ..engine.base import as_points

__all__ = ["Estimator"]


class Estimator:
    """Base of the built-in estimators: validated training points and declared options.

    Subclasses list the options they take in `options` and implement `_configure` with
    exactly those keywords; `__init__` refuses any other with a ValueError naming them.
    """

    options: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str] = "estimator"

    def __init__(self, X: np.ndarray, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"estimator {self.name!r} does not take option(s) {unknown}; "
                             f"its options are {list(self.options)}")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(f"X must be an (n, d) array with n >= 2 and d >= 1, "
                             f"got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or Inf")
        self.X = np.ascontiguousarray(X)
        self.n, self.d = X.shape
        self._configure(**options)

    def _configure(self) -> None:
        """Check and store the options (subclasses)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, d={self.d})"

    def _check(self, x: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        if not np.isscalar(t):
            raise ValueError(f"t must be a finite number > 0, got {t!r}")
        t = check_time(t)
        x = as_points(x, d=self.d, name="x")
        if not np.all(np.isfinite(x)):
            raise ValueError("queries x contain NaN or Inf")
        return x, t

    def score(self, x: np.ndarray, t: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
