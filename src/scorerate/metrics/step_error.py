"""The discretisation error of a number computed from the sampler's law (tv_law, l2_law),
estimated from the same number at S, S/2 and S/4 steps.

For a first-order scheme v(S) - v(inf) ~ a / S, so v(S/2) - v(S) ~ a / S (Richardson). A
scalar of the law can be non-monotone in S before that range, and near its turning point the
last change is small while the error is not (measured, sym_beta, d = 1, n = 200:
`regularized` with Euler-Maruyama moves tv_law by -7.3e-3 from 16 to 32 steps, then by
+4.9e-4 from 32 to 64, still 1.9e-3 from its value at 512; `truncated` with stochastic Heun
moves l2_law by -6e-5 from 32 to 64 steps, 6.4e-4 from its value at 256). So the estimate
is the larger of the last change and half the change before it: exact for a first-order
sequence, 3x-6x the error for an order-2 one (a stochastic Heun law with a smooth score).
The first-order rule holds for every integrator: for `truncated` (a score cut off at the
truncation edge) the Heun law converged at order ~1.5 (n = 200). How far it is from the
error against far longer chains, and why sharper rules were not taken: benchmarks/README.md,
"The job's step-error rule against far more steps".

That rule looks backwards, into the early steps' transient, and at large n it reads many
times the error (the law converges faster than first order there). `step_error_check`
looks forwards instead: from the law at S and at 2S it measures the error at S directly,
2 |v(S) - v(2S)| (exact for a first-order sequence, 1.5x the error at order 2, at most 2x
for a sequence that converges monotonically at any order). It costs a law at twice the
steps, so a study computes it on a few seeds of each (cell, n) (`step_check`).
"""

from __future__ import annotations

__all__ = ["step_error", "step_error_check"]


def step_error(v_s: float, v_half: float, v_quarter: float) -> float:
    """Estimate of |v(S) - v(inf)| from v at S, S/2 and S/4 steps:
    max(|v_S - v_S/2|, |v_S/2 - v_S/4| / 2)."""
    return max(abs(v_s - v_half), abs(v_half - v_quarter) / 2.0)


def step_error_check(v_s: float, v_double: float) -> float:
    """Estimate of |v(S) - v(inf)| from v at S and at 2S steps: 2 |v_S - v_2S|."""
    return 2.0 * abs(v_s - v_double)
