"""Reference backend: exact streaming log-sum-exp in plain NumPy.

Blocks of queries x blocks of training points; a running max, sum and weighted sum
per query, rescaled whenever the max grows. Memory is O(q_block * n_block * d)
whatever n and m are. The slow, obviously-correct yardstick for the other backends.
"""

from __future__ import annotations

import numpy as np

from .base import KernelSums, as_points, dim_factor, register_backend

__all__ = ["NumpyDense"]


@register_backend
class NumpyDense(KernelSums):
    """Exact dense evaluation with NumPy (reference; O(m n d) time)."""

    name = "numpy"
    #: seconds per kernel evaluation (m n), times dim_factor(d)
    COST = 1.5e-8

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float:
        """Exact for every rtol: O(m n d)."""
        return NumpyDense.COST * m * n * dim_factor(d)

    def __init__(self, train: np.ndarray, rtol: float = 1e-6, *, q_block: int = 512,
                 n_block: int = 4096) -> None:
        self.train = as_points(train, name="train")
        self.rtol = rtol
        self.q_block = q_block
        self.n_block = n_block

    def _sums(self, x: np.ndarray, t: float, log_norm: float) -> tuple[np.ndarray, np.ndarray]:
        X = self.train
        n, d = X.shape
        m = x.shape[0]
        logp = np.empty(m)
        mean = np.empty((m, d))
        for q0 in range(0, m, self.q_block):
            xq = x[q0:q0 + self.q_block]
            run_max = np.full(xq.shape[0], -np.inf)
            run_sum = np.zeros(xq.shape[0])
            run_vec = np.zeros((xq.shape[0], d))
            for j0 in range(0, n, self.n_block):
                Xb = X[j0:j0 + self.n_block]
                diff = xq[:, None, :] - Xb[None, :, :]
                expo = -np.einsum("qnd,qnd->qn", diff, diff) / (2.0 * t)
                bmax = expo.max(axis=1)
                new_max = np.maximum(run_max, bmax)
                scale = np.exp(run_max - new_max)
                w = np.exp(expo - new_max[:, None])
                run_sum = run_sum * scale + w.sum(axis=1)
                run_vec = run_vec * scale[:, None] + w @ Xb
                run_max = new_max
            logp[q0:q0 + xq.shape[0]] = run_max + np.log(run_sum) + log_norm
            mean[q0:q0 + xq.shape[0]] = run_vec / run_sum[:, None]
        return logp, mean
