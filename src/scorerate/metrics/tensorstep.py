"""The two tensor operations of one grid-law step in d dimensions (law.py): deposit and noise.

A step moves each source cell's mass onto the new grid by one sparse row per axis (the
deposit D_j, a few entries each), so the new masses are sum_i mu_i D_1[i] x ... x D_d[i]
(an outer product per source cell, never a cells x cells matrix), then blurs them by a
separable Gaussian, one sparse matrix per axis applied along that axis. Both are
sequential loops or sparse products in a fixed order: same numbers on any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse

__all__ = ["apply_axes", "deposit_outer"]


@njit(cache=True)
def _scatter3(mu, p0, i0, v0, p1, i1, v1, p2, i2, v2, out):  # pragma: no cover - numba
    for k in range(mu.shape[0]):
        m = mu[k]
        for a in range(p0[k], p0[k + 1]):
            ma = m * v0[a]
            for b in range(p1[k], p1[k + 1]):
                mab = ma * v1[b]
                for c in range(p2[k], p2[k + 1]):
                    out[i0[a], i1[b], i2[c]] += mab * v2[c]


def deposit_outer(mu: np.ndarray, deposits: list[sparse.csr_matrix]) -> np.ndarray:
    """sum_k mu_k D_1[k] x ... x D_d[k] for d <= 3 CSR deposits (k, G_j); shape (G_1..G_d)."""
    mats = [sparse.csr_matrix(D) for D in deposits]
    shape = tuple(D.shape[1] for D in mats)
    while len(mats) < 3:  # pad with a (k, 1) all-ones axis
        mats.append(sparse.csr_matrix(np.ones((mu.size, 1))))
    out = np.zeros(tuple(D.shape[1] for D in mats))
    args = []
    for D in mats:
        D.sort_indices()
        args += [D.indptr.astype(np.int64), D.indices.astype(np.int64),
                 D.data.astype(np.float64)]
    _scatter3(np.ascontiguousarray(mu, dtype=np.float64), *args, out)
    return out.reshape(shape)


def apply_axes(T: np.ndarray, mats: list[sparse.spmatrix]) -> np.ndarray:
    """T (G_1, ..., G_d) with mats[j]^T (G_j -> G'_j) applied along each axis j in turn."""
    out = T
    for j, M in enumerate(mats):
        moved = np.moveaxis(out, j, 0)
        rest = moved.shape[1:]
        res = M.T @ moved.reshape(moved.shape[0], -1)
        out = np.moveaxis(np.asarray(res).reshape((M.shape[1], *rest)), 0, j)
    return np.ascontiguousarray(out)
