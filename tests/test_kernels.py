"""Legendre kernels: normalisation and vanishing moments (exact quadrature), derivative, l = 1."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import legendre as L

from scorerate.estimators.kernels import legendre_kernel

ORDERS = [1, 2, 3, 4, 7, 10, 14, 20]


@pytest.mark.parametrize("order", ORDERS)
def test_unit_mass_and_vanishing_moments(order):
    # K u^k is a polynomial of degree <= 2 order + 2: Gauss-Legendre with order + 3 nodes is exact.
    nodes, weights = L.leggauss(order + 3)
    K = legendre_kernel(order)(nodes)
    moments = [np.sum(weights * K * nodes**k) for k in range(order + 1)]
    assert moments[0] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(moments[1:], 0.0, atol=1e-11)


@pytest.mark.parametrize("order", [1, 3, 5])
def test_first_nonzero_moment_for_odd_order(order):
    # K is even, so odd moments vanish trivially; for odd l the order is exactly l
    # (moment l + 1 is not 0), otherwise the kernel would be of higher order.
    nodes, weights = L.leggauss(order + 4)
    m = np.sum(weights * legendre_kernel(order)(nodes) * nodes ** (order + 1))
    assert abs(m) > 1e-3


def test_order_one_is_epanechnikov():
    u = np.linspace(-1.5, 1.5, 1001)
    K = legendre_kernel(1)
    np.testing.assert_allclose(K(u), np.where(np.abs(u) <= 1, 0.75 * (1 - u**2), 0.0), atol=1e-15)
    inside = np.abs(u) < 1
    np.testing.assert_allclose(K.deriv(u)[inside], -1.5 * u[inside], atol=1e-15)


@pytest.mark.parametrize("order", ORDERS)
def test_derivative_matches_finite_differences(order):
    K = legendre_kernel(order)
    u = np.linspace(-0.99, 0.99, 397)
    h = 1e-5
    fd = (K(u + h) - K(u - h)) / (2 * h)  # error O(h^2 K''') + O(eps/h)
    scale = np.max(np.abs(K.deriv(u)))
    np.testing.assert_allclose(K.deriv(u), fd, atol=1e-6 * max(scale, 1.0) * order**2)


@pytest.mark.parametrize("order", ORDERS)
def test_vanishes_at_and_outside_the_ends(order):
    K = legendre_kernel(order)
    assert abs(K(np.array([-1.0]))[0]) < 1e-12 and abs(K(np.array([1.0]))[0]) < 1e-12
    out = np.array([-3.0, -1.0 - 1e-12, 1.0 + 1e-12, 7.0])
    np.testing.assert_array_equal(K(out), 0.0)
    np.testing.assert_array_equal(K.deriv(out), 0.0)
    u = np.linspace(-1, 1, 201)
    np.testing.assert_allclose(K(u), K(-u), atol=1e-13)  # even kernel


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_rejects_bad_order(bad):
    with pytest.raises(ValueError, match="order"):
        legendre_kernel(bad)
