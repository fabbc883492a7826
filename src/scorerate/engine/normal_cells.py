"""Matrices of normal cell probabilities, P(centre + sd Z in cell), on a rectilinear axis.

The one place the law's Gaussian transitions, the KDE's masses on a law's cells and the
grid score's cell masses get their normal cdf differences from.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, special

__all__ = ["KERNEL_BAND", "normal_cell_probs"]

#: a kernel's Gaussian is cut at this many sds when its mass is put on cells (~1e-23 lost)
KERNEL_BAND = 10.0


def normal_cell_probs(edges: np.ndarray, centre: np.ndarray, sd: np.ndarray,
                       band: float) -> sparse.csr_matrix:
    """(k, G) matrix: row i holds P(centre_i + sd_i Z in cell j), cut at +-band sd_i.

    Upper tails use sf differences, so entries far right of the centre keep their digits.
    A zero sd puts the whole mass in the cell holding the centre. Cost O(k x band cells).
    """
    G = edges.size - 1
    jlo = np.clip(np.searchsorted(edges, centre - band * sd, side="right") - 1, 0, G - 1)
    jhi = np.clip(np.searchsorted(edges, centre + band * sd, side="left"), jlo + 1, G)
    counts = jhi - jlo
    rows = np.repeat(np.arange(centre.size), counts)
    cols = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols += np.repeat(jlo, counts)
    c, s = centre[rows], sd[rows]
    a, b = edges[cols], edges[cols + 1]
    pos = s > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        za = np.where(pos, (a - c) / np.where(pos, s, 1.0), np.where(a <= c, -np.inf, np.inf))
        zb = np.where(pos, (b - c) / np.where(pos, s, 1.0), np.where(b <= c, -np.inf, np.inf))
    # a zero sd: the cell with a <= c < b gets 1 (za = -inf, zb = +inf), all others 0
    upper = za > 0
    vals = np.where(upper, special.ndtr(-za) - special.ndtr(-zb),
                    special.ndtr(zb) - special.ndtr(za))
    return sparse.csr_matrix((np.clip(vals, 0.0, None), (rows, cols)), shape=(centre.size, G))
