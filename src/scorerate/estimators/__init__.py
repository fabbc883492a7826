"""Score estimators of p_t = p0 * N(0, t I) from n training points, as an open registry.

The contract (`ScoreEstimator`) is small: `score(x, t)`. Built-ins (DESIGN.md section 1):

- "truncated":   ŝ_t 1{p̂_t > rho_n(t)}, rho_n = c_rho / (n t^{d/2}) (the paper's threshold);
- "regularized": grad p̂_t / max(p̂_t, eps), eps = n^-2 by default (Wibisono, Wu, Yang);
- "empirical":   ŝ_t = grad p̂_t / p̂_t, no truncation (memorises the data as t -> 0);
- "highorder":   the paper's estimator, a Legendre-kernel KDE of noised samples.

A factory is any callable `factory(X, **options) -> ScoreEstimator` (the classes here are
their own factories) with an attribute `options`, the job parameters it takes, as data.
`build(name, X, params)` passes each factory only the params it declares; a factory
called with an option it does not declare raises ValueError naming the valid ones.
`resolve(name)` accepts a registered name, an import path "pkg.module:Attr" or an entry
point of group "scorerate.estimators" (see docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..registry import Registry
from .base import Estimator
from .gaussian import Empirical, GaussianScore, Regularized, Truncated
from .highorder import HighOrder

__all__ = ["ESTIMATORS", "Empirical", "Estimator", "GaussianScore", "HighOrder",
           "Regularized", "ScoreEstimator", "Truncated", "build", "options_of",
           "register", "resolve"]


@runtime_checkable
class ScoreEstimator(Protocol):
    """What the pipeline needs of an estimator built from training points X (n, d).

    `score(x, t)` takes queries x of shape (m, d) and a time t > 0 and returns ŝ_t(x) of
    shape (m, d), finite for every finite x (far from the data, t tiny or huge included),
    and the same bits for the same inputs (the sampler's reproducibility rests on it). The
    object must pickle (Dask ships it to the workers) and should be thread-safe (several
    Dask threads call it at once).

    Optional: `density(x, t) -> (m,)` and `grad_density(x, t) -> (m, d)`, the estimates
    p̂_t and grad p̂_t; nothing in a study needs them, the tests use them where present.
    """

    def score(self, x: np.ndarray, t: float) -> np.ndarray: ...


#: the only list of estimator names: name -> factory(X, **options)
ESTIMATORS = Registry("estimator", "scorerate.estimators", {
    "truncated": Truncated,
    "regularized": Regularized,
    "empirical": Empirical,
    "highorder": HighOrder,
})


def register(name: str, factory: Any, *, replace: bool = False) -> Any:
    """Add an estimator factory under `name` (usable as a decorator's target); returns it."""
    return ESTIMATORS.register(name, factory, replace=replace)


def resolve(name: str) -> Any:
    """The estimator factory named by a registered name, "pkg.mod:Attr" or an entry point."""
    return ESTIMATORS.resolve(name)


def options_of(factory: Any) -> tuple[str, ...]:
    """The job parameters a factory declares (its `options` attribute; () if none)."""
    opts = getattr(factory, "options", ())
    if isinstance(opts, str) or not all(isinstance(o, str) for o in opts):
        raise ValueError(f"{factory!r}.options must be a tuple of parameter names, got {opts!r}")
    return tuple(opts)


def build(name: str, X: np.ndarray, params: Mapping[str, Any] | None = None) -> ScoreEstimator:
    """The estimator `name` on training points X, given the params its factory declares.

    `params` may hold every job parameter (c_rho, eps, backend, ...); keys the factory
    does not declare are left out, so one mapping serves every estimator of a job.
    """
    factory = resolve(name)
    params = {} if params is None else params
    est = factory(X, **{k: params[k] for k in options_of(factory) if k in params})
    if not callable(getattr(est, "score", None)):
        raise ValueError(f"estimator {name!r} built {type(est).__name__}, which has no "
                         f"score(x, t) method")
    return est
