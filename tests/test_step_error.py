"""The discretisation error estimate of a law's number from S, S/2 and S/4 steps."""

from __future__ import annotations

import pytest

from scorerate.metrics.step_error import (
    check_model,
    required_steps,
    step_error,
    step_error_check,
    step_rule_covering,
)
from scorerate.sampler import steps_for


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_exact_for_a_first_order_sequence(sign):
    """v(S) = c + a / S: the estimate is |v(S) - c| exactly, for either sign of a."""
    c, a, s = 0.07, sign * 0.3, 64

    def v(k):
        return c + a / k

    assert step_error(v(s), v(s // 2), v(s // 4)) == pytest.approx(abs(v(s) - c), rel=1e-12)


def test_conservative_for_a_second_order_sequence():
    """v(S) = c + a / S^2 (an order-2 law): 6x the error, on the safe side."""
    c, a, s = 0.07, 0.3, 64
    v = [c + a / k ** 2 for k in (s, s // 2, s // 4)]
    assert step_error(*v) == pytest.approx(6.0 * abs(v[0] - c), rel=1e-12)


def test_a_turning_point_does_not_hide_the_error():
    """The measured case behind the rule (regularized, n = 200, Euler-Maruyama, tv_law at
    16, 32, 64 steps, then 0.06307 at 512): the last change alone (4.9e-4) is below the
    distance to the 512-step law (1.9e-3), which is itself below the error; the change
    before it, halved, is above that distance."""
    v16, v32, v64, v512 = 0.06799, 0.06068, 0.06117, 0.06307
    assert abs(v64 - v32) < abs(v64 - v512) / 3
    assert step_error(v64, v32, v16) >= abs(v64 - v512)


@pytest.mark.parametrize("order, ratio", [(1.0, 1.0), (2.0, 1.5), (4.0, 2.0 * (1 - 2 ** -4))])
def test_the_check_from_twice_the_steps(order, ratio):
    """v(S) = c + a / S^p: 2 |v(S) - v(2S)| = 2 (1 - 2^-p) |v(S) - c|: exact at order 1,
    1.5x at order 2, below 2x at any order (a monotone sequence)."""
    c, a, s = 0.07, -0.3, 64

    def v(k):
        return c + a / k ** order

    got = step_error_check(v(s), v(2 * s))
    assert got == pytest.approx(ratio * abs(v(s) - c), rel=1e-12)


@pytest.mark.parametrize("order", [1.0, 1.8, 2.0])
def test_check_model_recovers_an_order_p_sequence(order):
    """v(S) = c + a S^-p at S, 2S, 4S: p exactly, and C S^-p is the check at S."""
    c, a, s = 0.13, -0.4, 150
    v = [c + a * k ** -order for k in (s, 2 * s, 4 * s)]
    big_c, p = check_model((s, 2 * s, 4 * s), v)
    assert p == pytest.approx(order, rel=1e-9)
    assert big_c * s ** -p == pytest.approx(step_error_check(v[0], v[1]), rel=1e-9)


def test_check_model_refuses_steps_that_are_not_doublings():
    with pytest.raises(ValueError, match="2S, 4S"):
        check_model((100, 200, 300), [0.1, 0.11, 0.12])


def test_required_steps_is_the_fewest_that_hold_the_fraction():
    c, p, se, f = 6.0, 1.8, 1.0e-3, 1.0 / 3.0
    s = required_steps(c, p, se, f)
    assert c * s ** -p <= f * se < c * (s - 1) ** -p


def test_the_covering_rule_gives_every_n_its_steps():
    """Required steps from the d2_sym_beta_2 measurement (C = 6, p = 1.8, the seed SEs of
    benchmarks/README.md): the fitted rule, through steps_for, gives at least as many at
    every n, and no fewer than the floor below the knee."""
    ns = [100, 300, 1000, 3000, 10_000, 30_000, 100_000]
    se = [2.5e-3, 3.4e-3, 1.45e-3, 1.01e-3, 7.5e-4, 3.88e-4, 2.3e-4]
    need = [required_steps(6.0, 1.8, e, 1.0 / 3.0) for e in se]
    rule = step_rule_covering(ns, need)
    got = [steps_for(n, rule.steps, rule.steps_power, rule.steps_at_n, rule.steps_min)
           for n in ns]
    assert all(g >= r for g, r in zip(got, need, strict=True)), (got, need)
    assert rule.steps_min == max(need[:2])
    assert any(g == r for g, r in zip(got[2:], need[2:], strict=True))  # tight somewhere


def test_a_rule_is_covered_by_itself():
    """Counts made by a rule come back as a rule that gives at most one step more."""
    ns = [1000, 3000, 10_000, 30_000, 100_000]
    need = [steps_for(n, 300, 0.25, 10_000) for n in ns]
    rule = step_rule_covering(ns, need)
    got = [steps_for(n, rule.steps, rule.steps_power, rule.steps_at_n, rule.steps_min)
           for n in ns]
    assert all(0 <= g - r <= 1 for g, r in zip(got, need, strict=True)), (got, need)


def test_plan_warnings_flag_a_law_outside_the_model_and_a_rule_below_the_probes(monkeypatch):
    """benchmarks/plan_steps.py says when its plan is an extrapolation (the beta 0.5 plan)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from plan_steps import plan_warnings

    converging = [{"n": 1000, "steps": [128, 256, 512], "tv_law": [0.1, 0.1 - 4e-4, 0.1 - 5e-4]}]
    assert plan_warnings(converging, [100, 1000], [64, 128]) == []
    below = plan_warnings(converging, [100, 1000], [64, 100])
    assert len(below) == 1 and "below the probed 128" in below[0]
    back_and_forth = [{"n": 1000, "steps": [128, 256, 512],
                       "tv_law": [0.071326, 0.071127, 0.071291]}]
    assert "not asymptotic" in plan_warnings(back_and_forth, [1000], [128])[0]
    growing = [{"n": 1000, "steps": [128, 256, 512], "tv_law": [0.1, 0.1 + 1e-5, 0.1 + 4e-5]}]
    assert "not asymptotic" in plan_warnings(growing, [1000], [128])[0]
