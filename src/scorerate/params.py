"""A declared parameter: kind, bounds, default and meaning, and the check that enforces them.

`Param` is what the job (`scorerate.config.spec.PARAMS`) and the estimators (their `options`)
declare, so one declaration gives the check, the error text, the run-job option and the
config row. Low level: it imports nothing of the package but lazily the registries its
`choices` name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Param"]


@dataclass(frozen=True)
class Param:
    """One job parameter: its kind, bounds, default and meaning, in one place.

    kind: "int", "float", "str", "names" (a non-empty list of distinct names) or "grid"
    ((tmin, tmax, num), a geometric grid). lo / hi bound numbers (lo_open: lo excluded;
    hi is always excluded). nullable: None is allowed and means the documented default.
    choices: a callable giving the valid names (a registry), checked when not None.
    in_hash: changes the numbers. in_config: a study config may set it (same name).
    hash_if_set: enters the parameter hash only where it differs from its default, so
    the jobs that leave it there keep the hash they had before it existed.
    used_by: only this estimator reads it (so a workflow passes it only when it runs).
    job_name: on an estimator's option, the job parameter (config key, run-job option)
    that sets it when that is not its own name (highorder's `order` is `highorder_order`).
    canonical: on a "names" parameter, checks one name and gives its canonical form (the
    estimators' variants); it replaces `choices`, which then only lists names for help.
    """

    name: str
    kind: str
    default: object
    help: str
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    nullable: bool = False
    choices: Callable[[], list[str]] | None = None
    in_hash: bool = True
    hash_if_set: bool = False
    in_config: bool = False
    used_by: str | None = None
    required: bool = False
    job_name: str | None = None
    canonical: Callable[[str], str] | None = None

    @property
    def flag(self) -> str:
        """The run-job option: --name with dashes."""
        return "--" + self.name.replace("_", "-")

    def bound_text(self) -> str:
        """The bound in words, for errors and help ('>= 2', '> 0', 'in (0, 1)')."""
        if self.lo is None:
            return ""
        if self.hi is not None:
            hi = (f"2^{int(self.hi).bit_length() - 1}" if self.hi >= 2 ** 32
                  and int(self.hi).bit_count() == 1 else f"{self.hi:g}")
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {hi})"
        return f"{'>' if self.lo_open else '>='} {self.lo:g}"

    def check(self, value: object) -> object:
        """The value in canonical form (int, float, str, tuple), or ValueError with the reason."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"{self.name} must be given")
        if self.kind == "int":
            return _number(self, value, integer=True)
        if self.kind == "float":
            return _number(self, value, integer=False)
        if self.kind == "str":
            if not isinstance(value, str) or not value:
                raise ValueError(f"{self.name} must be a name, got {value!r}")
            _in_choices(self, [value])
            return value
        if self.kind == "names":
            names = (value,) if isinstance(value, str) else tuple(value)
            if not names or not all(isinstance(v, str) and v for v in names):
                raise ValueError(f"{self.name} must be a non-empty list of names, got {value!r}")
            if self.canonical is not None:  # e.g. estimator variants: one label each
                names = tuple(self.canonical(v) for v in names)
            if len(set(names)) != len(names):
                raise ValueError(f"{self.name}: names listed twice: {list(names)}")
            _in_choices(self, names)
            return names
        if self.kind == "grid":
            try:
                tmin, tmax, num = value
            except (TypeError, ValueError):
                raise ValueError(f"{self.name} must be (tmin, tmax, num), got {value!r}") from None
            pos = Param(f"{self.name} tmin", "float", None, "", lo=0, lo_open=True)
            tmin = pos.check(tmin)
            tmax = dataclasses.replace(pos, name=f"{self.name} tmax").check(tmax)
            num = Param(f"{self.name} num", "int", None, "", lo=1).check(num)
            if not (tmin < tmax or (tmin == tmax and num == 1)):
                raise ValueError(f"{self.name} needs tmin < tmax, got {tmin!r}, {tmax!r}")
            return (tmin, tmax, num)
        raise AssertionError(f"unknown kind {self.kind!r}")


def _number(p: Param, value: object, *, integer: bool) -> int | float:
    """An int (whole-number floats accepted, as YAML writes 1e5) or a finite float in bounds."""
    what = "an integer" if integer else "a finite number"
    ok_type = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool)
    if ok_type and integer and not isinstance(value, int | np.integer):
        ok_type = math.isfinite(value) and float(value).is_integer()
    if not ok_type or (not integer and not math.isfinite(value)):
        raise ValueError(f"{p.name} must be {what} {p.bound_text()}, got {value!r}".replace(
            "  ", " "))
    v = int(value) if integer else float(value)
    bad = p.lo is not None and (v <= p.lo if p.lo_open else v < p.lo)
    bad = bad or (p.hi is not None and v >= p.hi)
    if bad:
        raise ValueError(f"{p.name} must be {what} {p.bound_text()}, got {value!r}")
    return v


def _in_choices(p: Param, names: Sequence[str]) -> None:
    if p.choices is None or p.canonical is not None:
        return
    valid = p.choices()
    bad = [v for v in names if v not in valid]
    if bad:
        raise ValueError(f"unknown {p.name} {bad[0]!r}; choose one of {valid}")
