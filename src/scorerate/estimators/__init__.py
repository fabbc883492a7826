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

import math
import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..registry import Registry
from .base import Estimator
from .gaussian import Empirical, GaussianScore, Regularized, Truncated
from .highorder import HighOrder

__all__ = ["ESTIMATORS", "Empirical", "Estimator", "GaussianScore", "HighOrder",
           "Regularized", "ScoreEstimator", "Truncated", "base_name", "build",
           "check_variant", "options_of", "parse_variant", "register", "resolve",
           "split_names", "variant_label"]


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
    if isinstance(name, str) and any(c in name for c in _VARIANT_CHARS):
        raise ValueError(f"estimator name {name!r} may not hold any of "
                         f"{' '.join(_VARIANT_CHARS)} (they write variants)")
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
    """The estimator `name` (a variant allowed) on training points X, given the params
    its factory declares, overridden by the variant's inline options.

    `params` may hold every job parameter (c_rho, eps, backend, ...); keys the factory
    does not declare are left out, so one mapping serves every estimator of a job.
    """
    base, inline = parse_variant(check_variant(name))  # one spelling, one estimator
    factory = resolve(base)
    params = {} if params is None else params
    kwargs = {k: params[k] for k in options_of(factory) if k in params}
    est = factory(X, **{**kwargs, **inline})
    if not callable(getattr(est, "score", None)):
        raise ValueError(f"estimator {name!r} built {type(est).__name__}, which has no "
                         f"score(x, t) method")
    return est


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


def check_variant(name: str) -> str:
    """The canonical label of `name` after checking that its base resolves and that its
    factory declares each inline option (one-line ValueError naming the valid ones)."""
    m = _VARIANT.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        return variant_label(name)  # the syntax error
    factory = resolve(m["base"])
    base, opts = _parse(name, options_of(factory))
    _check_bounds(name, factory, opts)
    return _label(base, opts)


def _check_bounds(name: str, factory: Any, opts: Mapping[str, int | float]) -> None:
    """One-line ValueError for an inline option outside the bound of the job parameter it
    stands for (scorerate.spec.PARAMS; a factory maps option -> parameter in its
    `option_params`, else the names agree), so highorder[order=0] or truncated[c_rho=-1]
    is refused with the config, not in a worker. Options with no parameter pass as given."""
    from ..spec import BY_NAME

    params = getattr(factory, "option_params", {})
    for key, value in opts.items():
        p = BY_NAME.get(params.get(key, key))
        if p is None or p.kind not in ("int", "float"):
            continue
        try:
            p.check(value)
        except ValueError as exc:
            raise ValueError(f"estimator {name!r}: option {key}: {exc}") from None


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
