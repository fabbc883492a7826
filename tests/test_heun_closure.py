"""The stochastic Heun law in d >= 2: the Gaussian closure of its step (metrics/heun_closure.py)
and its two-level noise mixture in output_law, against independent oracles.

- heun_moments against the closed-form step of a linear score (the step is affine in x, z).
- Correlated Gaussian p0 in 2-D and 3-D: the Heun chain maps N(0, V) to N(0, M V M^T +
  h N N^T), a matrix recursion; the grid law must match it (the Euler-Maruyama law must not).
- d = 1: the closure against the strata law (_heun_law_1d, itself checked by Monte Carlo in
  test_heun.py), on KDE estimators, by less than the strata law's own step error.
- 2-D Monte Carlo of sampler.integrate(..., "heun") on a truncated estimator: a chi-square
  test on 64 boxes does not reject the closure's law and rejects the Euler-Maruyama law.
- Order 2: TV(law_S, p̂_t0) of the empirical score falls like S^-2 in 2-D.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.interpolate import RegularGridInterpolator
from test_law import kde

from scorerate import density, sampler, seeding, theory
from scorerate.estimators import build
from scorerate.metrics import law
from scorerate.metrics.heun_closure import heun_moments, node_shifts

C2 = np.array([[1.0, 0.6], [0.6, 0.5]])
C3 = np.array([[1.0, 0.4, 0.2], [0.4, 0.7, -0.2], [0.2, -0.2, 0.6]])


def linear_score(C: np.ndarray):
    """The score of N(0, C) * N(0, t I): -(C + t I)^-1 x."""
    Id = np.eye(C.shape[0])
    return lambda x, t: -x @ np.linalg.inv(C + t * Id)


def heun_step_matrices(C: np.ndarray, tau: float, tau1: float):
    """y = M x + sqrt(h) N z for the Heun step of the linear score (A, B its precisions)."""
    Id = np.eye(C.shape[0])
    h = tau - tau1
    A, B = np.linalg.inv(C + tau * Id), np.linalg.inv(C + tau1 * Id)
    return Id - 0.5 * h * A - 0.5 * h * B @ (Id - h * A), Id - 0.5 * h * B


def chain_cov(C: np.ndarray, t0: float, T: float, steps: int, integrator: str) -> np.ndarray:
    """Covariance of the chain's output from N(0, T I), by the exact matrix recursion."""
    Id = np.eye(C.shape[0])
    ts = sampler.time_grid(t0, T, steps)
    V = T * Id
    for k in range(steps):
        h = ts[k] - ts[k + 1]
        if integrator == "heun":
            M, N = heun_step_matrices(C, ts[k], ts[k + 1])
        else:
            M, N = Id - h * np.linalg.inv(C + ts[k] * Id), Id
        V = M @ V @ M.T + h * N @ N.T
    return V


def moments(L: law.GridLaw) -> tuple[np.ndarray, np.ndarray]:
    ctr = np.meshgrid(*[0.5 * (e[1:] + e[:-1]) for e in L.edges], indexing="ij")
    X = np.stack([c.ravel() for c in ctr], axis=1)
    m = L.mass.ravel()
    mean = m @ X
    return mean, (X * m[:, None]).T @ X - np.outer(mean, mean)


def tv_to_gaussian(L: law.GridLaw, V: np.ndarray) -> float:
    """TV between the grid law and N(0, V) (midpoint masses; the missing mass counts)."""
    ctr = np.meshgrid(*[0.5 * (e[1:] + e[:-1]) for e in L.edges], indexing="ij")
    X = np.stack([c.ravel() for c in ctr], axis=1)
    P = stats.multivariate_normal(np.zeros(len(V)), V).pdf(X) * L.volumes().ravel()
    return 0.5 * (float(np.abs(P - L.mass.ravel()).sum()) + abs(1.0 - float(P.sum())))


def test_moments_are_exact_for_a_linear_score():
    """2-D correlated Gaussian: mean M x and covariance h N N^T of the closed-form step."""
    score = linear_score(C2)
    tau, tau1 = 0.8, 0.5
    h, r = tau - tau1, math.sqrt(tau - tau1)
    x = seeding.rng("test_heun_closure", "x").standard_normal((7, 2))
    mean, cov = heun_moments(x, score(x, tau), [score(x + v, tau1) for v in node_shifts(2, r)],
                             h, r)
    M, N = heun_step_matrices(C2, tau, tau1)
    np.testing.assert_allclose(mean, x @ M.T, rtol=0, atol=1e-13)
    np.testing.assert_allclose(cov, np.broadcast_to(h * N @ N.T, cov.shape), rtol=0, atol=1e-13)


@pytest.mark.parametrize("d", [2, 3])
def test_correlated_gaussian_chain_is_exact(d):
    """Grid law against the exact chain N(0, V_S). Measured: 2-D, 64 steps, TV 6.0e-4,
    covariances within 1.0e-4 (Euler-Maruyama's law: TV 0.020 from the Heun chain);
    3-D, 32 steps, TV 1.3e-3, covariances within 3.3e-4 (Euler-Maruyama 0.041)."""
    C, t0, steps, kw = ((C2, 0.01, 64, dict(resolution=3.0, noise_resolution=0.5)) if d == 2
                        else (C3, 0.05, 32, dict(resolution=2.0, noise_resolution=0.5,
                                                 growth=1.5, tail_mass=1e-5,
                                                 max_cells=8_000_000)))
    V = chain_cov(C, t0, 10.0, steps, "heun")
    L = law.output_law(linear_score(C), d=d, t0=t0, T=10.0, steps=steps, integrator="heun", **kw)
    assert abs(L.mass.sum() - 1.0) < 1e-12 and L.lost < 1e-12
    mean, cov = moments(L)
    assert np.abs(mean).max() < 1e-6
    np.testing.assert_allclose(cov, V, rtol=0, atol=5e-4)
    tv = tv_to_gaussian(L, V)
    assert tv < 3e-3
    em = law.output_law(linear_score(C), d=d, t0=t0, T=10.0, steps=steps, **kw)
    assert tv_to_gaussian(em, V) > 4 * tv


def _binned(L: law.GridLaw, b: np.ndarray) -> np.ndarray:
    F = np.concatenate([[0.0], np.cumsum(L.mass)])
    return np.diff(np.interp(b, L.edges[0], F))


@pytest.mark.parametrize("name", ["truncated", "regularized"])
def test_closure_matches_the_strata_law_in_1d(name):
    """sym_beta beta 1, n = 1000, 128 steps, on bins of sqrt(t0) / 4: TV(closure, strata)
    against the strata law's change from 64 to 128 steps. Measured 4.6e-4 against 9.6e-4
    (truncated), 1.7e-4 against 9.0e-4 (regularized); at n = 1e5 1/10 of it and both fall
    with the steps (benchmarks/README.md, "Heun in d >= 2")."""
    n = 1000
    p0 = density("sym_beta", beta=1.0, d=1)
    est = build(name, p0.sample(n, seed=1))
    t0 = theory.t0_early_stop(n, 1.0, 1)
    kw = dict(d=1, t0=t0, T=theory.T_horizon(n, 1.0, 1), integrator="heun", resolution=3.0)
    b = np.arange(-3.0, 3.0, math.sqrt(t0) / 4)
    strata = _binned(law.output_law(est, steps=128, **kw), b)
    half = _binned(law.output_law(est, steps=64, **kw), b)
    gauss = law.output_law(est, steps=128, heun_law="gaussian", **kw)
    assert gauss.lost < 1e-12
    diff = 0.5 * np.abs(_binned(gauss, b) - strata).sum()
    assert diff < 0.6 * 0.5 * np.abs(strata - half).sum()
    assert diff < 1e-3


def _box_chi2(L: law.GridLaw, y: np.ndarray, k: int = 8) -> float:
    """Chi-square of 2-D points y against the law on k x k boxes cut at the law's marginal
    k-quantiles (box masses from the law's cumulative, exact for uniform cells)."""
    cum = np.zeros(tuple(e.size for e in L.edges))
    cum[1:, 1:] = L.mass.cumsum(0).cumsum(1)
    F = RegularGridInterpolator(L.edges, cum)
    cuts = []
    for j, e in enumerate(L.edges):
        Fm = np.concatenate([[0.0], np.cumsum(L.mass.sum(axis=1 - j))])
        cuts.append(np.concatenate([[e[0]], np.interp(np.arange(1, k) / k, Fm, e), [e[-1]]]))
    g = np.stack(np.meshgrid(*cuts, indexing="ij"), axis=-1).reshape(-1, 2)
    p = np.diff(np.diff(F(g).reshape(k + 1, k + 1), axis=0), axis=1).ravel()
    yc = np.stack([np.clip(y[:, j], cuts[j][0], cuts[j][-1]) for j in range(2)], axis=1)
    cnt = np.histogram2d(yc[:, 0], yc[:, 1], bins=cuts)[0].ravel()
    m = y.shape[0]
    return float(np.sum((cnt - m * p) ** 2 / (m * p)))


def test_monte_carlo_of_the_2d_heun_sampler_agrees():
    """2e5 particles of sampler.integrate(..., "heun"), truncated estimator (n = 200, d = 2,
    128 steps): chi-square on 64 boxes, 63 df. Measured: closure 49.4 (p 0.89), the
    Euler-Maruyama law 181 (p 3e-13). At 8 steps (h / t ~ 0.5, a far from Gaussian step) the
    closure's law is rejected too (2814), as any second-order scheme's would be."""
    n, m, steps = 200, 200_000, 128
    p0 = density("sym_beta", beta=1.0, d=2)
    est = build("truncated", p0.sample(n, seed=5), {"backend": "dense"})
    t0, T = theory.t0_early_stop(n, 1.0, 2), theory.T_horizon(n, 1.0, 2)
    heun = law.output_law(est.score, d=2, t0=t0, T=T, steps=steps, integrator="heun")
    assert abs(heun.mass.sum() - 1.0) < 1e-12 and heun.lost < 1e-10
    em = law.output_law(est.score, d=2, t0=t0, T=T, steps=steps)
    r = seeding.rng("test_heun", "mc2")
    y = math.sqrt(T) * r.standard_normal((m, 2))
    noise = r.standard_normal((m, steps, 2))
    out = sampler.integrate(est.score, y, sampler.time_grid(t0, T, steps), noise, "heun")
    assert _box_chi2(heun, out) < stats.chi2.ppf(0.999, 63)
    assert _box_chi2(em, out) > stats.chi2.ppf(1 - 1e-6, 63)


def test_heun_is_second_order_in_2d():
    """Empirical score (n = 40, d = 2), t0 = 0.05, T = 100: slope of log TV(law_S, p̂_t0)
    over S = 16, 32, 64. Measured: heun -2.11 (0.035, 0.0077, 0.0019), Euler-Maruyama -0.98."""
    p0 = density("sym_beta", beta=1.0, d=2)
    X = p0.sample(40, seed=4)
    est = build("empirical", X)
    target = kde(X, 0.05)
    S = np.array([16, 32, 64])
    tvs = [law.tv_law(law.output_law(est.score, d=2, t0=0.05, T=100.0, steps=int(s),
                                     integrator="heun", resolution=2.0), target) for s in S]
    assert -2.4 < float(np.polyfit(np.log(S), np.log(tvs), 1)[0]) < -1.7


def test_grid_score_and_callable_give_the_same_2d_law():
    """The closure's 2 d + 1 score calls on shifted tensor grids (an estimator's grid_score)
    against the same calls on the cells' points (its score callable): sym_beta, n = 1000,
    32 steps. Measured: the same tv_law to 1e-15, cell masses within 3e-19 (truncated)."""
    n = 1000
    p0 = density("sym_beta", beta=1.0, d=2)
    X = p0.sample(n, seed=1)
    kw = dict(d=2, t0=theory.t0_early_stop(n, 1.0, 2), T=theory.T_horizon(n, 1.0, 2),
              steps=32, integrator="heun", resolution=2.0)
    for name in ("truncated", "regularized"):
        est = build(name, X)
        grid, call = law.output_law(est, **kw), law.output_law(est.score, **kw)
        assert grid.methods.get("grid", 0) > 0 and not call.methods
        assert abs(law.tv_law(grid, p0) - law.tv_law(call, p0)) < 1e-10, name
