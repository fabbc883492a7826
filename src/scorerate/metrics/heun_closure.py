"""The stochastic Heun step's transition as a Gaussian of exact-to-second-order moments.

A Heun step of the reverse SDE from a point x (score s, step h, noise sd r = sqrt(h)):

    y(z) = x + h/2 (s(x, tau) + f(z)) + r z,   f(z) = s(x + h s(x, tau) + r z, tau'),

is not affine in the noise z ~ N(0, I), so its transition is not Gaussian. In d = 1 the law
pushes it forward stratum by stratum (law._heun_law_1d); in d >= 2 that costs strata^d per
cell. Here the transition is replaced by the Gaussian with y's mean and covariance,
computed from the score on 2 d shifted copies of the grid (the degree-3 cubature z = +-sqrt(d)
e_k, so each shift is a tensor grid the grid score takes at once). With a = h s(x, tau):

    E f      ~ mean over nodes of s(x + r z_q) + E[J] a,   E[J]_ik = E[z_k s_i] / r (Stein),
    Cov y    ~ r^2 I + (h r / 2) (C + C^T) + (h^2 / 4) Cov f,   C_ki = E[z_k s_i].

The first-order Taylor step in a (f(z) ~ s(x + r z) + J a) errs by O(h^2 |s''| |a|^2), and the
closure leaves out y's third cumulant, O(h r^4 s''): both are O(h^3) per step, so the chain
keeps Heun's weak order 2, and it is exact for a linear score (a Gaussian p0's), where the
transition is Gaussian. Where the score jumps inside the step's noise (a truncated score's
edge) the closure keeps mass, mean and covariance only; tests/test_heun_closure.py
measures it against the d = 1 strata law.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["heun_moments", "node_shifts"]


def node_shifts(d: int, r: float) -> list[np.ndarray]:
    """The cubature nodes' displacements r z_q, z_q = +-sqrt(d) e_k: 2 d vectors (k, sign)."""
    out = []
    for k in range(d):
        for sign in (1.0, -1.0):
            v = np.zeros(d)
            v[k] = sign * r * math.sqrt(d)
            out.append(v)
    return out


def heun_moments(x: np.ndarray, s1: np.ndarray, s_nodes: list[np.ndarray], h: float,
                 r: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean (k, d) and covariance (k, d, d) of a Heun step's y from points x (k, d).

    s1: s(x, tau) (k, d); s_nodes: s(x + shift_q, tau') for the shifts of node_shifts (same
    order), each (k, d); h the step, r its noise sd.
    """
    k, d = x.shape
    S = np.stack(s_nodes, axis=1)                      # (k, 2d, d)
    if S.shape != (k, 2 * d, d):
        raise ValueError(f"expected {2 * d} node scores of shape {(k, d)}")
    rd = math.sqrt(d)
    # C[:, k, i] = E[z_k s_i]: the pair of nodes on axis k, (s(+) - s(-)) sqrt(d) / (2 d)
    C = (S[:, 0::2, :] - S[:, 1::2, :]) * (rd / (2.0 * d))
    EJ = np.swapaxes(C, 1, 2) / r                      # E[J]_ik
    Ef0 = S.mean(axis=1)
    a = h * s1
    Ef = Ef0 + np.einsum("nik,nk->ni", EJ, a)
    mean = x + 0.5 * h * (s1 + Ef)
    dev = S - Ef0[:, None, :]
    covf = np.einsum("nqi,nqj->nij", dev, dev) / (2 * d)
    cov = (0.5 * h * r) * (C + np.swapaxes(C, 1, 2)) + (0.25 * h * h) * covf
    cov[:, np.arange(d), np.arange(d)] += r * r
    return mean, cov
