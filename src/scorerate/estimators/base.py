"""Shared plumbing of the built-in estimators: training data, declared options, checks.

An estimator declares its options in `options`: a `Param` (kind, bound, default, help, and
with `in_config` the study config row that sets it, see spec.PARAMS) is an option of its
own, checked here once; a plain name is a job parameter it takes as it is (the engine's
backend, rtol, plan_m; highorder's noise_seed), as a plug-in's `options = ("c_rho",)`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..checks import check_time
from ..engine.base import as_points
from ..params import Param

__all__ = ["Estimator", "option_name"]


def option_name(option: str | Param) -> str:
    """The keyword an estimator receives an option under."""
    return option.name if isinstance(option, Param) else option


class Estimator:
    """Base of the built-in estimators: validated training points and declared options.

    Subclasses list the options they take in `options` and implement `_configure` with
    exactly those keywords; `__init__` refuses any other with a ValueError naming them and
    checks each declared `Param` against its bound before `_configure` sees it.
    """

    options: ClassVar[tuple[str | Param, ...]] = ()
    name: ClassVar[str] = "estimator"

    def __init__(self, X: np.ndarray, **options: Any) -> None:
        names = [option_name(o) for o in self.options]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"estimator {self.name!r} does not take option(s) {unknown}; "
                             f"its options are {names}")
        for o in self.options:
            if isinstance(o, Param) and o.name in options:
                options[o.name] = o.check(options[o.name])
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

    @classmethod
    def log_zero_threshold(cls, n: int, t: float, d: int, **options: Any) -> float | None:
        """log of the density estimate p̂_t below which this estimator returns a zero score,
        for n points in d dimensions with these options; None: it never zeroes its score.
        The finite-n prediction of the zero region's error reads it (study.zero_region)."""
        return None

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
