"""scorerate: rate studies of kernel-score diffusion models.

    import scorerate as sr
    p0 = sr.density("sym_beta", beta=1.0, d=2)
    X = p0.sample(1000, seed=0)
    est = sr.estimators.build("truncated", X, {"c_rho": 1.0})
    est.density(x, t); est.score(x, t)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scorerate")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["__version__", "density", "estimators"]


def __getattr__(name: str):
    # Lazy: `import scorerate` stays cheap (no numba compile) for the CLI's --help.
    if name == "density":
        from .densities import density

        return density
    if name == "estimators":
        from . import estimators

        return estimators
    raise AttributeError(f"module 'scorerate' has no attribute {name!r}")
