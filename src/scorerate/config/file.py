"""A study configuration: reading it, checking what a JSON schema cannot, and its job grid.

One home for what the workflow (Snakefile, rules) and the aggregation both need: the
(density, beta, d, n, seed) grid, the canonical text of beta in paths, and the checks
against the registries (a density name, a beta it cannot take, an unknown estimator).
The config's `densities` is a list of {name, beta} entries: a study passed with
`--configfile` then replaces the default list instead of being merged into it.

An entry may carry its own `d` and/or `n` lists, which replace the top-level ones for that
entry only (e.g. beta 2.5 in d = 1 only, or n to 3e4 in d = 3). The job grid is then ragged:
the union over entries of each entry's product beta x d x n x seeds. `expected_grid` is the
union of the coordinates, so the aggregated study stays a dense (density, beta, d, n, seed)
array with NaN where no job exists; the rate table and the report skip those holes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["CELL_DIMS", "DENSITY_PATTERN", "ENTRY_GRID_KEYS", "JOB_DIMS", "POINT_DIMS",
           "beta_label", "check_config", "check_grid", "entry_grid", "expected_grid", "jobs",
           "load_config", "load_configs", "normalise_config", "study_job_spec"]

#: the job identity, one home. A cell is (density, beta, d): what a rate is fitted in. A
#: point is a cell at one n: what a finite-n prediction is for. A job is a point at one
#: seed. The study's leading dims are JOB_DIMS, in this order.
CELL_DIMS = ("density", "beta", "d")
POINT_DIMS = (*CELL_DIMS, "n")
JOB_DIMS = (*POINT_DIMS, "seed")
#: grid keys a `densities` entry may set for itself, replacing the top-level list
ENTRY_GRID_KEYS = ("d", "n")
#: a study's density names its run stores' directory: a registered name or an entry
#: point's, never an import path (its ':' and capitals cannot be in the workflow's paths)
DENSITY_PATTERN = "[a-z][a-z0-9_]*"


def load_config(path: str | os.PathLike) -> dict:
    """Read a study config (YAML or JSON) into a dict, its grid checked (`check_grid`);
    ValueError (one line) if it cannot be read, is not YAML, not a mapping, or its grid is
    malformed."""
    import yaml

    try:
        with open(path) as fh:
            cfg = yaml.safe_load(fh)
    except yaml.YAMLError as exc:  # one line, not a parser traceback
        raise ValueError(f"config {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"config {path}: cannot be read: {why}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"config {path}: expected a mapping at top level")
    try:
        check_grid(normalise_config(cfg))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return cfg


def _merge(base: dict, over: Mapping) -> dict:
    """base updated by over, nested mappings merged key by key (as Snakemake merges
    successive --configfile files: a later file replaces the keys it sets, lists whole)."""
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def load_configs(*paths: str | os.PathLike) -> dict:
    """Several study config files read and merged in order, as `snakemake --configfile a b`
    merges them over the Snakefile's config.yaml (pass that first to reproduce a workflow
    run); the result normalised and its grid checked."""
    import copy

    cfg: dict = {}
    for path in paths:
        _merge(cfg, copy.deepcopy(load_config(path)))
    cfg = normalise_config(cfg)
    check_grid(cfg)
    return cfg


def check_grid(cfg: Mapping) -> None:
    """One ValueError for a malformed job grid, the part of a config that the aggregation
    and the report read: `densities` a list of {name, beta[, d, n]} with a name and lists of
    values each within the job's bound (spec.PARAMS), top-level d, n and seeds likewise,
    estimators a list of names written as variants. Keys may be absent (they are optional
    outside the workflow, whose schema fills them)."""
    from ..estimators import variant_label
    from .spec import BY_NAME

    def values(where: str, v: object, param: str) -> None:
        if not isinstance(v, list) or not v:
            raise ValueError(f"config {where}: expected a non-empty list, got {v!r}")
        for x in v:
            try:
                BY_NAME[param].check(x)
            except ValueError as exc:
                raise ValueError(f"config {where}: {exc}") from None

    for key, param in (("d", "d"), ("n", "n"), ("seeds", "seed")):
        if cfg.get(key) is not None:
            values(key, cfg[key], param)
    if cfg.get("densities") is not None:
        for i, entry in enumerate(_density_entries(cfg)):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise ValueError(f"config densities[{i}]: expected {{name, beta}} with a "
                                 f"name, got {entry!r}")
            values(f"densities[{i}].beta", entry.get("beta"), "beta")
            for key in ENTRY_GRID_KEYS:
                if entry.get(key) is not None:
                    values(f"densities[{i}].{key}", entry[key], key)
    ests = cfg.get("estimators")
    if ests is not None:
        if not isinstance(ests, list) or not ests:
            raise ValueError(f"config estimators: expected a non-empty list, got {ests!r}")
        for e in ests:
            variant_label(e)  # the syntax, one line; nothing is imported


def normalise_config(cfg: dict) -> dict:
    """Whole-number floats (YAML's 1e5, 100.0) made ints where an integer is meant, in place.

    A JSON schema's "integer" accepts 100.0, which would otherwise reach paths as "n=100.0".
    Returns cfg.
    """
    from .spec import PARAMS

    def whole(v: object) -> object:
        return int(v) if isinstance(v, float) and v.is_integer() else v

    for key in ("d", "n", "seeds"):
        if isinstance(cfg.get(key), list):
            cfg[key] = [whole(v) for v in cfg[key]]
    dens = cfg.get("densities")
    for entry in dens if isinstance(dens, list) else []:
        for key in ENTRY_GRID_KEYS:
            if isinstance(entry, dict) and isinstance(entry.get(key), list):
                entry[key] = [whole(v) for v in entry[key]]
    for p in PARAMS:
        if p.kind == "int" and p.name in cfg:
            cfg[p.name] = whole(cfg[p.name])
    if isinstance(cfg.get("t_grid"), dict) and "num" in cfg["t_grid"]:
        cfg["t_grid"]["num"] = whole(cfg["t_grid"]["num"])
    return cfg


def beta_label(beta: float) -> str:
    """Canonical text of a beta value in paths and keys (repr of the float: 1 -> '1.0')."""
    return repr(float(beta))


def _density_entries(cfg: Mapping) -> list[Mapping]:
    dens = cfg.get("densities")
    if isinstance(dens, Mapping):
        example = ", ".join(f"{{name: {k}, beta: {v.get('beta')}}}" if isinstance(v, Mapping)
                            else f"{{name: {k}, beta: {v}}}" for k, v in dens.items())
        raise ValueError("config densities: expected a list of {name, beta} entries (a "
                         "--configfile study then replaces the default list), got a mapping; "
                         f"write: densities: [{example}]")
    if not isinstance(dens, list):
        raise ValueError(f"config densities: expected a list of {{name, beta}} entries, "
                         f"got {dens!r}")
    return dens


def _entry_label(i: int, entry: Mapping) -> str:
    """How an error names a densities entry: its position and name."""
    return f"densities[{i}] ({entry.get('name')})"


def entry_grid(cfg: Mapping, entry: Mapping) -> dict[str, list]:
    """The (beta, d, n) lists of one densities entry: its own d / n, else the top-level ones."""
    return {"beta": list(entry.get("beta", [])),
            **{k: list(entry[k] if entry.get(k) is not None else cfg.get(k, []))
               for k in ENTRY_GRID_KEYS}}


def _entry_cells(cfg: Mapping, entries: list[Mapping]):
    """(entry index, (name, beta, d, n)) for every job cell each densities entry lists."""
    for i, entry in enumerate(entries):
        g = entry_grid(cfg, entry)
        for b in g["beta"]:
            for d in g["d"]:
                for n in g["n"]:
                    yield i, (entry["name"], float(b), int(d), int(n))


def _check_overlaps(cfg: Mapping, entries: list[Mapping]) -> None:
    """ValueError naming two entries that list the same (density, beta, d, n) job cell.

    Such a cell would be one job listed twice (or, with other d / n per entry, a study
    whose entries disagree about it); the message names the first pair and its overlap.
    """
    owner: dict[tuple, int] = {}
    clash: dict[tuple[int, int], list[tuple]] = {}
    for i, cell in _entry_cells(cfg, entries):
        j = owner.setdefault(cell, i)
        if j != i:
            clash.setdefault((j, i), []).append(cell)
    if clash:
        (j, i), both = next(iter(clash.items()))
        name, b, d, n = both[0]
        more = f" and {len(both) - 1} more" if len(both) > 1 else ""
        raise ValueError(f"config densities: {_entry_label(j, entries[j])} and "
                         f"{_entry_label(i, entries[i])} both list the job cell {name} "
                         f"beta={b} d={d} n={n}{more}; give each (density, beta, d, n) to "
                         f"one entry (an entry's own d / n lists keep them apart)")


def check_config(cfg: Mapping) -> None:
    """One ValueError for what the schema cannot see, before any job is planned.

    A density the registry does not know or a beta it rejects in one of its entry's d, the
    same (density, beta, d, n) job cell listed by two entries, an estimator that does not
    resolve, tmin >= tmax of the t grid, a job too big for this machine's memory or a week
    (scorerate.config.sizing; $SCORERATE_FORCE_SIZE skips that check).
    """
    from ..densities import density
    from .spec import PARAMS

    check_grid(cfg)
    tg = cfg.get("t_grid")
    if isinstance(tg, Mapping) and not tg["tmin"] < tg["tmax"]:
        raise ValueError(f"config t_grid: tmin ({tg['tmin']}) must be < tmax ({tg['tmax']})")
    _check_dask(cfg)
    _check_density_names(cfg)
    entries = _density_entries(cfg)
    _check_overlaps(cfg, entries)
    for p in PARAMS:  # the job's own checks (finite numbers, bounds, registry names)
        if p.in_config and cfg.get(p.name) is not None:
            v = cfg[p.name]
            if p.kind == "grid" and isinstance(v, Mapping):
                v = (v.get("tmin"), v.get("tmax"), v.get("num"))
            try:
                p.check(v)
            except ValueError as exc:
                raise ValueError(f"config {p.name}: {exc}") from None
    _check_seeds(cfg)
    _check_t0(cfg, entries)
    bad = []
    for i, entry in enumerate(entries):
        g = entry_grid(cfg, entry)
        for beta in g["beta"]:
            for d in g["d"]:
                try:
                    density(entry["name"], beta=float(beta), d=int(d))
                except ValueError as exc:
                    bad.append(f"  densities[{i}]: {entry['name']} beta={beta} d={d}: {exc}")
    if bad:
        raise ValueError("config: the density registry rejects\n" + "\n".join(bad))
    from .sizing import check_config_size

    check_config_size(cfg, jobs(cfg))  # n: 1e9 or m: 1e10 fails here, not after hours


def _check_seeds(cfg: Mapping) -> None:
    """Every replicate seed within the job's bound (0 <= seed < 2^63: seeds: [1e30] would
    run every job and then fail the aggregation's int64 coordinate)."""
    from .spec import BY_NAME

    for s in cfg.get("seeds") or []:
        try:
            BY_NAME["seed"].check(s)
        except ValueError as exc:
            raise ValueError(f"config seeds: {exc}") from None


def _check_t0(cfg: Mapping, entries: list[Mapping]) -> None:
    """A fixed t0 below every job's horizon T = n^(2 beta/(2 beta + d)) (each job would
    refuse t0 >= T only once it starts)."""
    from ..theory import T_horizon

    t0 = cfg.get("t0")
    if t0 is None:
        return
    for _, (name, b, d, n) in _entry_cells(cfg, entries):
        T = T_horizon(n, b, d)
        if not float(t0) < T:
            raise ValueError(f"config t0: {t0!r} must be below the horizon T = {T:.4g} of "
                             f"every job; {name} beta={b} d={d} n={n} has T = {T:.4g}")


def _check_dask(cfg: Mapping) -> None:
    """dask.scheduler_address, if set, is scheme://host:port and nothing else (it reaches
    every job's command line; scorerate.config.shell.check_address)."""
    from .shell import check_address

    dask = cfg.get("dask")
    address = dask.get("scheduler_address") if isinstance(dask, Mapping) else None
    if address is None:
        return
    if not isinstance(address, str) or "://" not in address:
        raise ValueError(f"config dask.scheduler_address: expected tcp://HOST:PORT, "
                         f"got {address!r}")
    try:
        check_address(address)
    except ValueError as exc:
        raise ValueError(f"config dask.scheduler_address: {exc}") from None


def _check_density_names(cfg: Mapping) -> None:
    """Names that cannot be a path (DENSITY_PATTERN: an import path, which would pass -n and
    then never match a job's output), unknown names with a suggestion and the valid ones."""
    import difflib
    import re

    from ..densities import DENSITIES, resolve

    for i, entry in enumerate(_density_entries(cfg)):
        name = entry["name"]
        if not re.fullmatch(DENSITY_PATTERN, name):
            raise ValueError(f"config densities[{i}]: {name!r} cannot name a study's density: "
                             f"it names the run stores' directory, so it must be a registered "
                             f"name or an entry point's ({DENSITY_PATTERN}); register an "
                             f"import path as an entry point of group scorerate.densities "
                             f"(docs/extending.md)")
        if name in DENSITIES:
            continue
        try:  # an entry point of a plug-in
            resolve(name)
            continue
        except ValueError:
            pass
        hint = difflib.get_close_matches(name, list(DENSITIES), n=1)
        raise ValueError(f"config: unknown density {name!r}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else "")
                         + f"; valid: {', '.join(sorted(DENSITIES))}")


def jobs(cfg: Mapping) -> list[dict]:
    """Every (density, beta, d, n, seed) of the study, as dicts of path-ready values.

    The union over densities entries of each entry's product (its own d / n where given),
    without duplicates, in the order the entries first list them (a plain config: the
    product in entry, beta, d, n, seed order, as before entries could set d / n).
    """
    out: dict[tuple, dict] = {}
    for _, (name, b, d, n) in _entry_cells(cfg, _density_entries(cfg)):
        for s in cfg["seeds"]:
            j = {"density": name, "beta": beta_label(b), "d": d, "n": n, "seed": int(s)}
            out.setdefault(tuple(j.values()), j)
    return list(out.values())


def step_check_seeds(cfg: Mapping) -> frozenset[int]:
    """The seeds whose jobs also measure their step error on a law at twice the steps
    (spec `step_check`): the config's step_check_seeds lowest seeds."""
    k = int(cfg.get("step_check_seeds") or 0)
    return frozenset(sorted({int(s) for s in cfg.get("seeds") or []})[:k])


def step_check_option(seed: int, check_seeds: frozenset[int]) -> str:
    """The run-job option that makes `seed`'s job a step-check job (" --step-check 1"),
    or "": the one place a config's step_check_seeds becomes a job option (the workflow's
    jobs and a rerun of a published job both use it)."""
    return " --step-check 1" if int(seed) in check_seeds else ""


def study_job_spec(cfg: Mapping, *, density: str, beta: float, d: int, n: int, seed: int,
                   **overrides: object):
    """The JobSpec of one job of a study, built the way the workflow builds it: the
    config's run-job arguments (spec.job_args), the job's identity and its step-check
    option, parsed as `scorerate run-job` parses them. overrides (JobSpec fields, e.g. a
    finer law_resolution) replace values after that. Benchmarks and reruns that need a
    study's job take it from here, never from a copy of the config's settings."""
    import argparse
    import dataclasses
    import shlex

    from .spec import add_options, job_args, options_from_args, spec_from_options

    parser = argparse.ArgumentParser(prog="run-job", add_help=False)
    add_options(parser)
    line = (f"{job_args(cfg)} --density {shlex.quote(str(density))} --beta {float(beta)!r}"
            f" --d {int(d)} --n {int(n)} --seed {int(seed)}"
            + step_check_option(seed, step_check_seeds(cfg)))
    spec = spec_from_options(**options_from_args(parser.parse_args(shlex.split(line))))
    return dataclasses.replace(spec, **overrides) if overrides else spec


def expected_grid(cfg: Mapping) -> dict[str, list]:
    """The job coordinates a study config asks for: the union over densities entries.

    With entries that set their own d / n the jobs are a subset of this grid's product;
    the study store holds NaN in the cells no job fills.
    """
    entries = _density_entries(cfg) if "densities" in cfg else []
    grids = [entry_grid(cfg, e) for e in entries] or [entry_grid(cfg, {})]
    return {
        "density": sorted({e["name"] for e in entries}),
        "beta": sorted({float(b) for g in grids for b in g["beta"]}),
        "d": sorted({int(v) for g in grids for v in g["d"]}),
        "n": sorted({int(v) for g in grids for v in g["n"]}),
        "seed": sorted({int(v) for v in cfg.get("seeds", [])}),
    }
