"""Small argument checks shared by the library, each raising one clear ValueError.

Booleans are refused where a number is asked (True is an int in Python, never a count
here). Every function returns the value normalised (int or float) so callers store it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_beta", "check_int", "check_positive", "check_time"]


def check_int(name: str, value: object, lo: int | None = None) -> int:
    """`value` as an int (not bool), >= lo when lo is given."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or (lo is not None and value < lo):
        bound = f" >= {lo}" if lo is not None else ""
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    """`value` as a finite float > 0 (a real scalar, 0-d arrays included; not bool or str)."""
    try:
        v = float(value) if not isinstance(value, bool | str | bytes) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_time(t: object) -> float:
    """A diffusion time t: a finite scalar > 0."""
    return check_positive("time t", t)


def check_beta(beta: object) -> float:
    """The smoothness parameter beta of a rate study: a finite number > 0."""
    return check_positive("beta", beta)
