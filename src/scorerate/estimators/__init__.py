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

A *variant* names options inline after any of these: "highorder[order=4,C=2]" is highorder
with order 4 and C 2 whatever the job's highorder_order / highorder_C. The syntax needs no
spaces or quotes in YAML lists and run-job words, and `variant_label` writes one canonical
label per variant (the `estimator` coordinate of a store): keys sorted, whole numbers
without a decimal point, others as Python's repr ("highorder[C=2.5,order=4]").
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..params import Param
from ..registry import Registry
from .base import Estimator, option_name
from .gaussian import Empirical, GaussianScore, Regularized, Truncated
from .highorder import HighOrder

__all__ = ["ESTIMATORS", "Empirical", "Estimator", "GaussianScore", "HighOrder",
           "Regularized", "ScoreEstimator", "Truncated", "base_name", "build",
           "check_variant", "config_params", "declared_options", "log_zero_threshold", "options_of",
           "parse_variant", "register", "resolve", "split_names", "variant_label"]


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
_BUILTIN = {
    "truncated": Truncated,
    "regularized": Regularized,
    "empirical": Empirical,
    "highorder": HighOrder,
}
ESTIMATORS = Registry("estimator", "scorerate.estimators", dict(_BUILTIN))


def register(name: str, factory: Any, *, replace: bool = False) -> Any:
    """Add an estimator factory under `name` (usable as a decorator's target); returns it."""
    if isinstance(name, str) and any(c in name for c in _VARIANT_CHARS):
        raise ValueError(f"estimator name {name!r} may not hold any of "
                         f"{' '.join(_VARIANT_CHARS)} (they write variants)")
    return ESTIMATORS.register(name, factory, replace=replace)


def resolve(name: str) -> Any:
    """The estimator factory named by a registered name, "pkg.mod:Attr" or an entry point."""
    return ESTIMATORS.resolve(name)


def declared_options(factory: Any) -> tuple[str | Param, ...]:
    """A factory's `options` as declared: names of job parameters and its own `Param`s."""
    opts = getattr(factory, "options", ())
    if isinstance(opts, str) or not all(isinstance(o, str | Param) for o in opts):
        raise ValueError(f"{factory!r}.options must be a tuple of parameter names or Params, "
                         f"got {opts!r}")
    return tuple(opts)


def options_of(factory: Any) -> tuple[str, ...]:
    """The keywords a factory takes (its `options`; () if none)."""
    return tuple(option_name(o) for o in declared_options(factory))


def config_params() -> tuple[Param, ...]:
    """The job parameters the built-in estimators' options add (spec.PARAMS), one per
    option a study may set: named by its job_name, read only by its estimator."""
    out = []
    for est, factory in _BUILTIN.items():
        for o in declared_options(factory):
            if isinstance(o, Param) and o.in_config:
                out.append(dataclasses.replace(o, name=o.job_name or o.name, used_by=est,
                                               job_name=None))
    return tuple(out)


def build(name: str, X: np.ndarray, params: Mapping[str, Any] | None = None) -> ScoreEstimator:
    """The estimator `name` (a variant allowed) on training points X, given the params
    its factory declares, overridden by the variant's inline options.

    `params` may hold every job parameter (c_rho, eps, backend, highorder_order, ...);
    keys the factory does not declare are left out, so one mapping serves every estimator
    of a job. An option declared with a job_name is read under that name (or its own).
    """
    factory, options = _factory_options(name, params)
    est = factory(X, **options)
    if not callable(getattr(est, "score", None)):
        raise ValueError(f"estimator {name!r} built {type(est).__name__}, which has no "
                         f"score(x, t) method")
    return est


def _factory_options(name: str, params: Mapping[str, Any] | None) -> tuple[Any, dict]:
    """The factory of estimator `name` (a variant allowed) and the options it gets: those
    it declares, read from `params` (under an option's job_name where given), overridden
    by the variant's inline options."""
    base, inline = parse_variant(check_variant(name))  # one spelling, one estimator
    factory = resolve(base)
    params = {} if params is None else params
    kwargs = {}
    for o in declared_options(factory):
        key = o.job_name if isinstance(o, Param) and o.job_name in params else option_name(o)
        if key in params:
            kwargs[option_name(o)] = params[key]
    return factory, {**kwargs, **inline}


def log_zero_threshold(name: str, n: int, t: float, d: int,
                       params: Mapping[str, Any] | None = None) -> float | None:
    """log of the density estimate below which estimator `name` (a variant allowed, its
    options read as `build` reads them) returns a zero score at time t, for n points in d
    dimensions; None where it never does (a factory without `log_zero_threshold` too)."""
    factory, options = _factory_options(name, params)
    f = getattr(factory, "log_zero_threshold", None)
    return None if f is None else f(int(n), float(t), int(d), **options)


def _check_option(name: str, option: str | Param, value: int | float,
                  job_params: Mapping[str, Param]) -> int | float:
    """An inline option's value against its declared bound (a Param of the factory, else
    the job parameter of that name in `job_params`); ValueError naming the variant."""
    if not isinstance(option, Param):
        option = job_params.get(option)  # a job parameter the factory takes (rtol, c_rho, ...)
        if option is None:
            return value
    try:
        return option.check(value)
    except ValueError as exc:
        raise ValueError(f"estimator {name!r}: {exc}") from None


# ---------------------------------------------------------------- variants

#: characters that write a variant, so never part of a base name
_VARIANT_CHARS = ("[", "]", ",", "=")
_VARIANT = re.compile(r"(?P<base>[^\[\]=,\s]+)(?:\[(?P<opts>[^\[\]\s]*)\])?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_SYNTAX = "write name[option=number,...], e.g. highorder[order=4,C=2]"


def parse_variant(name: str) -> tuple[str, dict[str, int | float]]:
    """(base name, {option: number}) of an estimator name; a plain name has no options.

    "highorder[order=4,C=2.5]" -> ("highorder", {"order": 4, "C": 2.5}). Integer text
    gives an int, other numbers a float. Only the syntax is checked here (`check_variant`
    also checks the options against the factory).
    """
    return _parse(name, None)


def _parse(name: str, valid: tuple[str, ...] | None) -> tuple[str, dict[str, int | float]]:
    """parse_variant; with `valid` (the factory's options) unknown keys are refused too,
    and every error names the valid options."""
    if not isinstance(name, str):
        raise ValueError(f"estimator must be named by a string, got {name!r}")
    m = _VARIANT.fullmatch(name)
    if m is None:
        raise ValueError(f"malformed estimator {name!r}; {_SYNTAX}")
    base = m["base"]
    takes = "" if valid is None else "; " + _takes(base, valid)
    opts: dict[str, int | float] = {}
    for item in filter(None, (m["opts"] or "").split(",")):
        key, eq, text = item.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise ValueError(f"malformed option {item!r} in estimator {name!r}; {_SYNTAX}"
                             + takes)
        if valid is not None and key not in valid:
            raise ValueError(f"estimator {name!r}: unknown option {key!r}{takes}")
        if key in opts:
            raise ValueError(f"estimator {name!r}: option {key!r} given twice{takes}")
        if _INT.fullmatch(text):
            opts[key] = int(text)
        elif _FLOAT.fullmatch(text):
            opts[key] = float(text)
        else:
            raise ValueError(f"estimator {name!r}: option {key} must be a number, got "
                             f"{text!r}{takes}")
        if not math.isfinite(opts[key]):  # 1e999
            raise ValueError(f"estimator {name!r}: option {key} must be finite, got "
                             f"{text!r}{takes}")
    return base, opts


def _takes(base: str, valid: tuple[str, ...]) -> str:
    return f"{base} takes {', '.join(valid)}" if valid else f"{base} takes no options"


def _number_text(v: int | float) -> str:
    """Canonical text of a value: whole numbers as integers (2.0 -> '2'), others repr."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return str(int(v))
    return str(v) if isinstance(v, int) else repr(float(v))


def _label(base: str, opts: Mapping[str, int | float]) -> str:
    if not opts:
        return base
    return base + "[" + ",".join(f"{k}={_number_text(opts[k])}" for k in sorted(opts)) + "]"


def variant_label(name: str) -> str:
    """The canonical label of an estimator name: one text per variant, however written.

    Keys sorted, numbers by `_number_text`, no empty brackets: "highorder[order=4,C=2.0]"
    and "highorder[C=2,order=4]" are both "highorder[C=2,order=4]"; a plain name is itself.
    Syntax only (nothing is imported), so it serves stores and configs alike.
    """
    return _label(*parse_variant(name))


def base_name(name: str) -> str:
    """The estimator a variant is of: "highorder[order=4]" -> "highorder" (syntax only)."""
    return parse_variant(name)[0]


def check_variant(name: str, job_params: Mapping[str, Param] | None = None) -> str:
    """The canonical label of `name` after checking that its base resolves and that its
    factory declares each inline option (one-line ValueError naming the valid ones).

    Options the factory declares as Params are checked against them; options it names as
    job parameters (rtol, c_rho, ...) against `job_params` (default: the job's own table,
    scorerate.config.spec.BY_NAME)."""
    m = _VARIANT.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        return variant_label(name)  # the syntax error
    declared = {option_name(o): o for o in declared_options(resolve(m["base"]))}
    base, opts = _parse(name, tuple(declared))
    if job_params is None:  # the job's table; lazy: config sits above (tests/test_layout.py)
        from ..config.spec import BY_NAME as job_params
    return _label(base, {k: _check_option(name, declared[k], v, job_params)
                         for k, v in opts.items()})


def split_names(text: str) -> list[str]:
    """Names in one comma-separated word, commas inside [...] kept:
    "truncated,highorder[order=4,C=2]" -> ["truncated", "highorder[order=4,C=2]"]."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [s for s in out if s]
