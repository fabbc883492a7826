"""The discretisation error estimate of a law's number from S, S/2 and S/4 steps."""

from __future__ import annotations

import pytest

from scorerate.metrics.step_error import step_error


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
    from scorerate.metrics.step_error import step_error_check

    c, a, s = 0.07, -0.3, 64

    def v(k):
        return c + a / k ** order

    got = step_error_check(v(s), v(2 * s))
    assert got == pytest.approx(ratio * abs(v(s) - c), rel=1e-12)
