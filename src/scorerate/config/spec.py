"""The job's parameters, declared once: `PARAMS` is the single source of every fact about them.

Each `Param` states its type, bound, default, help text, whether it changes the job's numbers
(`in_hash`), whether a study config may set it (`in_config`) and which estimator uses it
(`used_by`). From that declaration come: `JobSpec` (the validated dataclass), the
`scorerate run-job` options (`add_options`), the parameter hash (`JobSpec.params_hash`), the
command-line arguments a workflow passes for a study config (`job_args`), and the check that
the config schema agrees (tests/test_spec.py). Adding a job parameter means adding one
`Param` here plus the code that uses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from collections.abc import Mapping

import numpy as np

from .. import seeding, theory
from ..engine.grid import R_FLOOR
from ..estimators import config_params
from ..params import Param

__all__ = ["PARAMS", "JobSpec", "Param", "add_options", "job_args", "options_from_args",
           "spec_from_options"]


def _estimator_names() -> list[str]:
    from ..estimators import ESTIMATORS

    return list(ESTIMATORS)


def _estimator_variant(label: str) -> str:
    """One estimator or variant label, checked and in canonical form (names, import paths)."""
    from ..estimators import check_variant

    return check_variant(label, BY_NAME)


def _integrator_names() -> list[str]:
    from ..sampler import INTEGRATORS

    return list(INTEGRATORS)


def _backend_names() -> list[str]:
    from ..engine import BACKENDS

    return ["auto", *sorted(BACKENDS)]


#: seeds are below 2^63: the study store keeps them as int64 coordinates
SEED_END = 2 ** 63

#: Every parameter of a job, in the order of JobSpec's fields.
PARAMS: tuple[Param, ...] = (
    Param("density", "str", None, "ground-truth density p0: a registered name (sym_beta, "
          "gauss_mix, laplace, sym_beta_mix), an import path pkg.mod:Attr or an entry point",
          required=True),
    Param("beta", "float", None, "smoothness (Sobolev order) of p0", lo=0, lo_open=True,
          required=True),
    Param("d", "int", None, "dimension", lo=1, required=True),
    Param("n", "int", None, "training points", lo=2, required=True),
    Param("seed", "int", 0, "replicate seed", lo=0, hi=SEED_END),
    Param("study_seed", "int", 0, "seed of the whole study, mixed into every stream", lo=0,
          hi=SEED_END, in_config=True),
    Param("estimators", "names", ("truncated", "regularized", "empirical", "highorder"),
          "score estimators run in the job; a variant names options inline, e.g. "
          "highorder[order=4,C=2] (overrides highorder_order, highorder_C)",
          choices=_estimator_names, canonical=_estimator_variant, in_config=True),
    Param("m", "int", 1000, "generated samples per estimator", lo=1, in_config=True),
    Param("steps", "int", 64, "reverse-SDE steps on the geometric grid from T down to t0 "
          "(at n = steps_at_n when steps_power > 0)", lo=1, in_config=True),
    Param("steps_power", "float", 0.0, "the step count grows with n: ceil(steps (n / "
          "steps_at_n)^steps_power) (0: the same steps at every n)", lo=0, hi=2,
          in_config=True),
    Param("steps_at_n", "int", 1000, "the n at which a growing step count equals steps",
          lo=2, in_config=True),
    Param("steps_min", "int", 1, "the fewest steps at any n: a floor under the grown count "
          "(small n needs more than a power of n gives)", lo=1, in_config=True,
          hash_if_set=True),
    Param("step_check", "int", 0, "1: also compute the law at twice the steps and from it "
          "the measured step error of tv_law and l2_law (tv_law_steps_check); a study "
          "sets it on its step_check_seeds lowest seeds", lo=0, hi=2, hash_if_set=True),
    Param("integrator", "str", "euler_maruyama", "reverse-process integrator",
          choices=_integrator_names, in_config=True),
    Param("t0", "float", None, "early-stopping time (null: n^(-2/(2 beta + d)))", lo=0,
          lo_open=True, nullable=True, in_config=True),
    Param("T", "float", None, "forward horizon (null: n^(2 beta/(2 beta + d)))", lo=0,
          lo_open=True, nullable=True),
    Param("chunk", "int", 250, "particles per Dask task (does not change the numbers)", lo=1,
          in_hash=False),
    Param("t_grid", "grid", None, "absolute geometric t grid (tmin, tmax, num) of the score "
          "MSE, shared by a study (null: n_t points over [t0, T])", nullable=True,
          in_config=True),
    Param("n_t", "int", 12, "points of the default score-MSE t grid over [t0, T]", lo=1),
    Param("n_mc", "int", 1000, "Monte Carlo draws per score-MSE value", lo=2, in_config=True),
    Param("n_ref", "int", 2000, "reference draws from p0 for W1 and MMD", lo=2,
          in_config=True),
    Param("n_int", "int", 12, "t nodes of the integrated score error over [t0, T]", lo=2,
          in_config=True),
    Param("n_mc_kde", "int", 20000, "Monte Carlo draws of TV(p0, ideal KDE output)", lo=2,
          in_config=True),
    Param("backend", "str", "auto", "Gaussian engine backend", choices=_backend_names),
    Param("rtol", "float", 1e-6, "Gaussian engine relative accuracy", lo=0, lo_open=True,
          hi=1),
    Param("grid_ratio_floor", "float", R_FLOOR, "finest lattice of the grid score (the "
          "exact law's score calls), as spacing / sqrt(t): the default refines the lattice "
          "within a node budget so that far tails are certified on it; 1 keeps the coarsest "
          "certified lattice, cheaper on wide supports, other bits (benchmarks/README.md, "
          "'The grid score's blocks and its lattice floor')", lo=0, lo_open=True,
          in_config=True, hash_if_set=True),
    Param("law_resolution", "float", 3.0, "cells of the exact-law grid per step standard "
          "deviation (tv_law, l2_law; d <= 3)", lo=0, lo_open=True, in_config=True),
    Param("law_n_max_2d", "int", None, "largest n whose exact output law is computed in 2-D "
          "(tv_law, l2_law NaN above it): a user's cap, no longer needed since the Gaussian "
          "estimators' law costs about the same at every n; null: every n", lo=2,
          nullable=True, in_config=True),
    # the options the estimators declare for a study to set (c_rho, eps, highorder_order,
    # highorder_C): declared on the estimator, not here
    *config_params(),
)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


def n_steps_of(params: Mapping) -> int:
    """The step count of a job given by its parameters (a JobSpec's, or a study config's
    with n set; missing or null ones default): the one place that applies the step rule."""
    from ..sampler import steps_for

    def get(name: str):
        v = params.get(name)
        return BY_NAME[name].default if v is None else v

    return steps_for(int(params["n"]), get("steps"), get("steps_power"), get("steps_at_n"),
                     get("steps_min"))


class _SpecMethods:
    """Validation and derived values of JobSpec (its fields come from PARAMS)."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        for p in PARAMS:
            if p.name == "density":
                continue
            s(self, p.name, p.check(getattr(self, p.name)))
        if not isinstance(self.density, str) or not self.density:
            raise ValueError("density must be a name")
        from ..densities import density

        density(self.density, beta=self.beta, d=self.d)  # unknown / unsupported -> ValueError
        t0, T = theory.stop_times(self.n, self.beta, self.d, self.t0, self.T)
        if not t0 < T:
            raise ValueError(f"need t0 < T, got t0={t0!r} >= T={T!r}")
        s(self, "t0", float(t0))
        s(self, "T", float(T))

    @property
    def job_key(self) -> str:
        """seeding.job_key of this job."""
        return seeding.job_key(self.density, self.beta, self.d, self.n, self.seed)

    @property
    def key(self) -> tuple:
        """Root of every random stream of this job: (study_seed, job_key)."""
        return (self.study_seed, self.job_key)

    @property
    def ts(self) -> np.ndarray:
        """The score-MSE time grid (geometric, increasing)."""
        if self.t_grid is not None:
            tmin, tmax, num = self.t_grid
            return np.geomspace(tmin, tmax, num)
        return np.geomspace(self.t0, self.T, self.n_t)

    @property
    def ts_int(self) -> np.ndarray:
        """Nodes of the integrated score error: n_int geometric points over [t0, T]."""
        return np.geomspace(self.t0, self.T, self.n_int)

    def params(self) -> dict:
        """All parameters as plain JSON-able values (resolved t0, T; tuples as lists)."""
        return {p.name: (list(v) if isinstance(v := getattr(self, p.name), tuple) else v)
                for p in PARAMS}

    @property
    def n_steps(self) -> int:
        """The sampler's step count for this job (sampler.steps_for: steps, grown with n
        when steps_power > 0, at least steps_min)."""
        return n_steps_of(self.params())

    @property
    def params_hash(self) -> str:
        """sha256 of the canonical JSON of every parameter that changes the numbers."""
        p = {k: v for k, v in self.params().items() if BY_NAME[k].in_hash
             and not (BY_NAME[k].hash_if_set and v == BY_NAME[k].default)}
        text = json.dumps(p, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


JobSpec = dataclasses.make_dataclass(
    "JobSpec",
    [(p.name, object) if p.required else (p.name, object, dataclasses.field(default=p.default))
     for p in PARAMS],
    bases=(_SpecMethods,), frozen=True)
JobSpec.__module__ = __name__
JobSpec.__doc__ = (
    "Every parameter of one job (see PARAMS), validated on construction (ValueError).\n\n"
    "t0 and T default to the theory's n^(-2/(2b+d)) and n^(2b/(2b+d)); the score-MSE grid\n"
    "is geometric over [t0, T] with n_t points unless t_grid = (tmin, tmax, num) gives an\n"
    "absolute grid (one grid for a whole study, so the MSE compares across n at fixed t).")


def spec_from_options(**options: object) -> JobSpec:
    """JobSpec from keyword options, dropping those left at None so the defaults apply."""
    unknown = sorted(set(options) - set(BY_NAME))
    if unknown:
        raise ValueError(f"unknown job option(s) {unknown}")
    return JobSpec(**{k: v for k, v in options.items() if v is not None})


# ---------------------------------------------------------------- the command line

def add_options(group: argparse._ActionsContainer) -> None:
    """Add one run-job option per parameter of PARAMS (defaults left at None: JobSpec's)."""
    for p in PARAMS:
        default = "" if p.default is None else (
            " ".join(p.default) if isinstance(p.default, tuple) else p.default)
        text = p.help + (f" (default {default})" if not p.required and default != "" else "")
        kw: dict = {"help": text, "required": p.required}
        if p.kind == "int":
            kw["type"] = int
        elif p.kind == "float":
            kw["type"] = float
        elif p.kind == "names":
            kw.update(nargs="+", metavar="NAME")
        elif p.kind == "grid":
            kw.update(nargs=3, metavar=("TMIN", "TMAX", "NUM"))
        group.add_argument(p.flag, dest=p.name, **kw)


def options_from_args(args: argparse.Namespace) -> dict:
    """The job options an argparse namespace holds (lists flattened, commas split)."""
    out = {}
    for p in PARAMS:
        v = getattr(args, p.name)
        if v is not None and p.kind == "names":  # commas inside a variant's [...] kept
            from ..estimators import split_names

            v = tuple(x for item in v for x in split_names(item))
        elif v is not None and p.kind == "grid":
            try:
                v = (float(v[0]), float(v[1]), int(v[2]))
            except ValueError:
                raise ValueError(f"{p.flag} needs TMIN TMAX NUM (numbers, NUM an integer), "
                                 f"got {' '.join(v)}") from None
        out[p.name] = v
    return out


def job_args(config: Mapping) -> str:
    """run-job arguments for the parameters a study config sets (those with in_config).

    A parameter used by one estimator only is passed only when that estimator (or a
    variant of it) runs, so changing it changes nothing for the jobs that do not use it.
    Null values are left out (the job's default applies). The result changes exactly when
    a job's numbers may; every value is checked (`Param.check`) and goes through the one
    quoting helper (scorerate.config.shell.quote), estimator names as canonical labels.
    """
    from ..estimators import base_name
    from .shell import option, words

    ests = config.get("estimators", BY_NAME["estimators"].default)
    bases = {base_name(e) for e in ests}  # highorder[order=4] uses highorder's params
    parts = []
    for p in PARAMS:
        if not p.in_config or p.name not in config:
            continue
        if p.used_by is not None and p.used_by not in bases:
            continue
        v = config[p.name]
        if v is None:
            continue
        if p.kind == "names":  # canonical labels, quoted for the shell ([ is a glob)
            parts.append(f"{p.flag} {words(p.check(v))}")
            continue
        if p.kind == "grid":
            v = (v["tmin"], v["tmax"], v["num"]) if isinstance(v, Mapping) else tuple(v)
            p.check(v)
            parts.append(f"{p.flag} {words(v)}")
            continue
        p.check(v)  # the config's text is passed on (so 1 stays 1), once it is checked
        parts.append(option(p.flag, v))
    return " ".join(parts)
