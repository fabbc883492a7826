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

A study's step rule is planned from the same check: its model C S^-p (`check_model`, from
the law at S, 2S, 4S), the seed SE of tv_law at each n, the steps that hold the check at a
fraction of the SE (`required_steps`) and the rule that gives them at every n
(`step_rule_covering`); benchmarks/plan_steps.py runs it for a part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["StepRule", "check_model", "required_steps", "step_error", "step_error_check",
           "step_rule_covering"]


def step_error(v_s: float, v_half: float, v_quarter: float) -> float:
    """Estimate of |v(S) - v(inf)| from v at S, S/2 and S/4 steps:
    max(|v_S - v_S/2|, |v_S/2 - v_S/4| / 2)."""
    return max(abs(v_s - v_half), abs(v_half - v_quarter) / 2.0)


def step_error_check(v_s: float, v_double: float) -> float:
    """Estimate of |v(S) - v(inf)| from v at S and at 2S steps: 2 |v_S - v_2S|."""
    return 2.0 * abs(v_s - v_double)


def check_model(steps: Sequence[int], values: Sequence[float]) -> tuple[float, float]:
    """(C, p) of the step check C S^-p from a law's number at S, 2S, 4S: the checks
    2 |v(S) - v(2S)| and 2 |v(2S) - v(4S)| give the order p = log2 of their ratio (at
    least 0.5: a check that does not fall is not a convergent sequence's) and C at S."""
    s, s2, s4 = (int(k) for k in steps)
    if not (s2 == 2 * s and s4 == 4 * s):
        raise ValueError(f"steps must be S, 2S, 4S, got {list(steps)}")
    c1 = step_error_check(values[0], values[1])
    c2 = step_error_check(values[1], values[2])
    if not (c1 > 0 and c2 > 0):
        raise ValueError("the law's number did not change with the steps: no order to fit")
    p = max(math.log2(c1 / c2), 0.5)
    return c1 * s ** p, p


def required_steps(c: float, p: float, se: float, fraction: float) -> int:
    """Fewest steps S with the check C S^-p at most `fraction` of the standard error se."""
    if not (c > 0 and p > 0 and se > 0 and fraction > 0):
        raise ValueError("c, p, se and fraction must be > 0")
    return math.ceil((c / (fraction * se)) ** (1.0 / p))


@dataclass(frozen=True)
class StepRule:
    """A study's step rule (config steps, steps_power, steps_at_n, steps_min):
    max(steps_min, ceil(steps (n / steps_at_n)^steps_power)), as sampler.steps_for."""

    steps: int
    steps_power: float
    steps_at_n: int
    steps_min: int


def step_rule_covering(ns: Sequence[int], required: Sequence[int], *, at_n: int = 10_000,
                       knee: int = 1000, power_step: float = 0.01) -> StepRule:
    """The rule that gives at least `required[i]` steps at every ns[i]: its power is the
    least-squares slope of log(required) on log(n) over n >= knee (rounded up to
    power_step), its steps at at_n the least that covers every n >= knee, and its floor
    the most any n < knee needs (a power of n runs short at small n, where the chain's
    transient sets the need)."""
    from ..sampler import steps_for

    if len(ns) != len(required) or not ns:
        raise ValueError("ns and required must be non-empty and of one length")
    big = [(math.log(n), math.log(r)) for n, r in zip(ns, required, strict=True) if n >= knee]
    power = 0.0
    if len(big) >= 2:
        mx = sum(x for x, _ in big) / len(big)
        my = sum(y for _, y in big) / len(big)
        sxx = sum((x - mx) ** 2 for x, _ in big)
        power = max(0.0, sum((x - mx) * (y - my) for x, y in big) / sxx)
        power = math.ceil(power / power_step - 1e-9) * power_step
        power = round(power, 10)
    steps = max((math.ceil(r / (n / at_n) ** power) for n, r in zip(ns, required, strict=True)
                 if n >= knee), default=1)
    # ceil inside steps_for can only add; shrink while every n >= knee stays covered
    while steps > 1 and all(steps_for(n, steps - 1, power, at_n) >= r
                            for n, r in zip(ns, required, strict=True) if n >= knee):
        steps -= 1
    floor = max((r for n, r in zip(ns, required, strict=True) if n < knee), default=1)
    return StepRule(steps=steps, steps_power=power, steps_at_n=at_n, steps_min=int(floor))
