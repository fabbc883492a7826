"""scorerate: rate studies of kernel-score diffusion models.

>>> import scorerate as sr
>>> p0 = sr.density("sym_beta", beta=1.0, d=2)
>>> X = p0.sample(1000, seed=0)
>>> est = sr.estimators.build("truncated", X, {"c_rho": 1.0})
>>> x = p0.sample(3, seed=1)
>>> est.score(x, 0.01).shape
(3, 2)
"""

from __future__ import annotations

import importlib

from .version import __version__

__all__ = ["__version__", "density", "estimators"]


def __getattr__(name: str):
    # Lazy: `import scorerate` stays cheap (no numba compile) for the CLI's --help.
    if name == "density":
        from .densities import density

        return density
    if name == "estimators":
        # import_module, not `from . import`: the latter asks this module for the
        # attribute again (via __getattr__) before the submodule is bound: RecursionError
        return importlib.import_module(f"{__name__}.estimators")
    raise AttributeError(f"module 'scorerate' has no attribute {name!r}")
