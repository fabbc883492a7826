"""Can the Dask workers of an existing cluster import what a job names?

A job resolves its density and estimators (a plug-in given by import path or entry point)
in the process that plans it, but the tasks run on the workers: a cluster started
without the plug-in on its path would fail only inside the first task, as a long remote
traceback. So before any work the job asks every connected worker to resolve each name
(`client.run`, one round trip) and refuses with one line naming the first that fails.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["WorkerImportError", "check_worker_imports", "resolve_here"]


class WorkerImportError(ValueError):
    """A worker cannot import something the job needs (one line, names the worker)."""


def resolve_here(names: tuple[tuple[str, str], ...]) -> str | None:
    """Resolve each (kind, name) in this process ("density" or "estimator"); None if all
    resolve, else one line on the first that does not. Runs on a worker."""
    from ..densities import resolve as density
    from ..estimators import base_name
    from ..estimators import resolve as estimator

    for kind, name in names:
        try:
            if kind == "density":
                density(name)
            else:
                estimator(base_name(name))
        except Exception as exc:  # noqa: BLE001  the reason goes into the one line
            why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            why = " ".join(why.split())[:300]  # the registry's ValueError names the plug-in
            return why if repr(name) in why else f"cannot import {kind} {name!r}: {why}"
    return None


def check_worker_imports(client, densities: Iterable[str], estimators: Iterable[str]) -> int:
    """Raise WorkerImportError unless every worker connected to `client` resolves every
    density and estimator name; returns how many workers were asked (0: none connected
    yet, nothing to check; the job then waits for workers as usual)."""
    names = tuple(dict.fromkeys([*(("density", d) for d in densities),
                                 *(("estimator", e) for e in estimators)]))
    address = getattr(client.scheduler, "address", None) or "?"
    try:
        answers = client.run(resolve_here, names)
    except Exception as exc:  # noqa: BLE001  e.g. scorerate itself missing on a worker
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise WorkerImportError(
            f"the Dask workers at {address} cannot run scorerate's check of the job's "
            f"densities and estimators ({why}); install scorerate (this version) and the "
            f"plug-ins on every worker") from None
    for worker, problem in sorted(answers.items()):
        if problem:
            raise WorkerImportError(
                f"Dask worker {worker} of the scheduler at {address} {problem}; install "
                f"it on every worker or put its module on the workers' PYTHONPATH, then "
                f"restart them")
    return len(answers)
