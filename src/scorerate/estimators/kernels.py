"""Compactly supported high-order Legendre kernels on [-1, 1] (the paper's Appendix C).

The 1-D kernel of order l has derivative K' = sum over odd j <= l+1 of a_j P_j with
a_j = -(2j+1)/2 P_j'(0), and K(x) = int_{-1}^x K'. It integrates to 1 and its moments
1..l vanish, so a KDE with it has bias O(h^{l+1}) on smooth densities; l = 1 is the
Epanechnikov kernel 3/4 (1 - x^2). For l >= 2 it takes negative values.

Both K and K' are kept as Legendre series and evaluated by Clenshaw recurrence
(numerically stable for the orders ceil(log n) ~ 10..20 used here); O(size * l) time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre as L

from ..checks import check_int

__all__ = ["LegendreKernel", "legendre_kernel"]


@dataclass(frozen=True, eq=False)
class LegendreKernel:
    """The order-`order` Legendre kernel; `coef` and `dcoef` are the Legendre series of K, K'."""

    order: int
    coef: np.ndarray
    dcoef: np.ndarray

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """K(u), zero outside [-1, 1]; any shape in, same shape out."""
        u = np.asarray(u, dtype=np.float64)
        inside = np.abs(u) <= 1.0
        return np.where(inside, L.legval(np.where(inside, u, 0.0), self.coef), 0.0)

    def deriv(self, u: np.ndarray) -> np.ndarray:
        """K'(u), zero outside [-1, 1] (one-sided value kept at the end points)."""
        u = np.asarray(u, dtype=np.float64)
        inside = np.abs(u) <= 1.0
        return np.where(inside, L.legval(np.where(inside, u, 0.0), self.dcoef), 0.0)


@functools.lru_cache(maxsize=64)
def legendre_kernel(order: int) -> LegendreKernel:
    """The Legendre kernel of order `order` >= 1 (int K = 1, moments 1..order equal 0).

    Parameters
    ----------
    order : int
        l >= 1; K is an even polynomial of degree l + 2 (l odd) or l + 1 (l even) on [-1, 1].

    Returns
    -------
    LegendreKernel, callable as K(u), with K'(u) as `.deriv(u)`.
    """
    order = check_int("kernel order", order, lo=1)
    dcoef = np.zeros(order + 2)
    for j in range(1, order + 2, 2):
        pj = np.zeros(j + 1)
        pj[j] = 1.0
        dpj0 = L.legval(0.0, L.legder(pj))  # P_j'(0)
        dcoef[j] = -(2 * j + 1) / 2.0 * dpj0
    coef = L.legint(dcoef, lbnd=-1.0)  # K(x) = int_{-1}^x K', so K(-1) = 0
    dcoef.setflags(write=False)
    coef.setflags(write=False)
    return LegendreKernel(order, coef, dcoef)
