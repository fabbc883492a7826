"""Distances between laws on rectilinear grids, and the KDE's law on a law's cells.

The sampler's numerical error is a distance between laws that live on different grids:
its output law against the ideal output p̂_t0 (the KDE the sampler converges to as its
steps become exact), and the output law at S steps against the one at S/2 steps (for a
first-order scheme, law_S - p̂_t0 ~ c/S, so TV(law_S, law_{S/2}) estimates the error at
S). Two grid laws are compared on the union of their edges per axis, each law uniform
within its own cells (the convention of `scorerate.metrics.law`): exact for such piecewise
constant laws, O(cells of the union) per axis and in total.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine.normal_cells import KERNEL_BAND, normal_cell_probs
from .law import GridLaw, cell_volumes, l2_masses, tv_masses

__all__ = ["kde_cell_probs", "l2_between", "l2_to_kde", "remap", "tv_between", "tv_to_kde",
           "union_edges"]

#: training points per block of the 2-D cell-mass product (bounds memory whatever n is)
_BLOCK = 8192


def union_edges(a: GridLaw, b: GridLaw) -> tuple[np.ndarray, ...]:
    """The union of the two laws' edges, per axis (sorted, distinct)."""
    if a.d != b.d:
        raise ValueError(f"laws of different dimension: {a.d} and {b.d}")
    return tuple(np.union1d(ea, eb) for ea, eb in zip(a.edges, b.edges, strict=True))


def remap(law: GridLaw, edges: tuple[np.ndarray, ...]) -> np.ndarray:
    """The law's cell masses on a refinement `edges` of its grid (every edge of the law is
    one of `edges`): each fine cell gets its share of the law cell holding it (uniform
    within the cell); cells outside the law's grid get 0. Cost O(fine cells)."""
    mass = law.mass
    for j, (own, fine) in enumerate(zip(law.edges, edges, strict=True)):
        mid = 0.5 * (fine[1:] + fine[:-1])
        i = np.searchsorted(own, mid, side="right") - 1
        inside = (i >= 0) & (i < own.size - 1)
        i = np.clip(i, 0, own.size - 2)
        frac = np.where(inside, np.diff(fine) / np.diff(own)[i], 0.0)
        shape = [1] * mass.ndim
        shape[j] = -1
        mass = np.take(mass, i, axis=j) * frac.reshape(shape)
    return mass


def tv_between(a: GridLaw, b: GridLaw) -> float:
    """Total variation between two grid laws (each uniform within its cells)."""
    u = union_edges(a, b)
    return 0.5 * float(np.abs(remap(a, u) - remap(b, u)).sum())


def l2_between(a: GridLaw, b: GridLaw) -> float:
    """L2 distance between the two laws' piecewise-constant densities."""
    u = union_edges(a, b)
    return math.sqrt(float(np.sum((remap(a, u) - remap(b, u)) ** 2 / cell_volumes(u))))


def kde_cell_probs(law: GridLaw, train: np.ndarray, t: float) -> np.ndarray:
    """Masses of p̂_t = (1/n) sum_i N(X_i, t I) on the law's cells, shaped like law.mass.

    d <= 2: exact normal cdf differences per axis (cut at 10 sds), multiplied across axes
    and averaged over the training points (in 2-D a sparse product A_1^T A_2 over blocks
    of points, O(n k^2) for k cells within 10 sds of a point per axis). d = 3, where that
    is O(n k^3): the points binned on the grid score's lattice and contracted with one
    cell-probability matrix per axis (`GridScorer.cell_masses`, O(n + lattice x cells)),
    within ~1e-15 of the exact sum in total (tests/test_law_distance.py).
    """
    train = np.asarray(train, dtype=np.float64)
    if train.ndim != 2 or train.shape[1] != law.d:
        raise ValueError(f"train must have shape (n, {law.d}), got {train.shape}")
    if law.d > 3:
        raise ValueError("kde_cell_probs handles d <= 3")
    if law.d == 3:
        from ..engine.grid import GridScorer

        return GridScorer(train).cell_masses(law.edges, t)
    n = train.shape[0]
    sd = np.full(n, math.sqrt(t))
    if law.d == 1:
        A = normal_cell_probs(law.edges[0], train[:, 0], sd, KERNEL_BAND)
        return np.asarray(A.sum(axis=0)).ravel() / n
    out = np.zeros(law.mass.shape)
    for s in range(0, n, _BLOCK):
        blk = slice(s, min(n, s + _BLOCK))
        A1 = normal_cell_probs(law.edges[0], train[blk, 0], sd[blk], KERNEL_BAND)
        A2 = normal_cell_probs(law.edges[1], train[blk, 1], sd[blk], KERNEL_BAND)
        out += (A1.T @ A2).toarray()
    return out / n


def tv_to_kde(law: GridLaw, train: np.ndarray, t: float) -> float:
    """TV between the law and p̂_t on the law's cells; p̂_t's mass outside the grid counts
    in full (a lower bound on the true TV that converges to it as the cells shrink)."""
    return tv_masses(law, kde_cell_probs(law, train, t))


def l2_to_kde(law: GridLaw, train: np.ndarray, t: float) -> float:
    """L2 distance between the law and p̂_t binned on the law's cells (histogram densities)."""
    return l2_masses(law, kde_cell_probs(law, train, t))
