"""Distances between grid laws and the KDE's law on a grid: closed forms, brute force, and
the first-order behaviour of the sampler's own error they measure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scorerate import theory
from scorerate.densities import density
from scorerate.estimators import build
from scorerate.metrics import law
from scorerate.metrics.law import GridLaw
from scorerate.metrics.law_distance import (
    kde_cell_probs,
    l2_between,
    remap,
    tv_between,
    tv_to_kde,
    union_edges,
)


def _uniform(edges: np.ndarray) -> np.ndarray:
    w = np.diff(edges)
    return w / w.sum()


def test_two_uniform_laws_on_different_grids():
    """U[0, 1] and U[0.5, 1.5]: TV 1/2 and L2 1, whatever their cells."""
    ea, eb = np.linspace(0, 1, 5), np.array([0.5, 0.8, 1.1, 1.5])
    a = GridLaw(edges=(ea,), mass=_uniform(ea), t=1.0)
    b = GridLaw(edges=(eb,), mass=_uniform(eb), t=1.0)
    assert tv_between(a, b) == pytest.approx(0.5, abs=1e-15)
    assert l2_between(a, b) == pytest.approx(1.0, abs=1e-14)
    assert tv_between(a, a) == 0.0


def test_products_in_two_dimensions():
    """U[0,1]^2 against U[0.5,1.5] x U[0,1] (other cells on both axes): TV 1/2, L2 1."""
    e1, e2 = np.linspace(0, 1, 4), np.linspace(0, 1, 7)
    f1, f2 = np.linspace(0.5, 1.5, 6), np.array([0.0, 0.3, 1.0])
    a = GridLaw(edges=(e1, e2), mass=np.multiply.outer(_uniform(e1), _uniform(e2)), t=1.0)
    b = GridLaw(edges=(f1, f2), mass=np.multiply.outer(_uniform(f1), _uniform(f2)), t=1.0)
    assert tv_between(a, b) == pytest.approx(0.5, abs=1e-14)
    assert l2_between(a, b) == pytest.approx(1.0, abs=1e-13)


def test_remap_keeps_mass_and_a_law_equals_its_refinement():
    rng = np.random.default_rng(0)
    e1, e2 = np.cumsum(rng.uniform(0.1, 1, 6)), np.cumsum(rng.uniform(0.1, 1, 5))
    m = rng.uniform(size=(5, 4))
    a = GridLaw(edges=(e1, e2), mass=m / m.sum(), t=1.0)
    fine = tuple(np.union1d(e, rng.uniform(e[0], e[-1], 9)) for e in a.edges)
    ma = remap(a, fine)
    assert ma.sum() == pytest.approx(1.0, abs=1e-14)
    b = GridLaw(edges=fine, mass=ma, t=1.0)
    assert tv_between(a, b) == pytest.approx(0.0, abs=1e-15)
    assert [len(e) for e in union_edges(a, b)] == [len(e) for e in fine]


def test_kde_cell_masses_match_brute_force_in_2d():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2))
    e1, e2 = np.linspace(-4, 4, 31), np.linspace(-3, 5, 17)
    g = GridLaw(edges=(e1, e2), mass=np.full((30, 16), 1 / 480), t=0.05)
    t = 0.05
    P = kde_cell_probs(g, X, t)
    s = math.sqrt(t)
    c1 = stats.norm.cdf((e1[None, :] - X[:, :1]) / s)
    c2 = stats.norm.cdf((e2[None, :] - X[:, 1:]) / s)
    want = np.einsum("ia,ib->ab", np.diff(c1, axis=1), np.diff(c2, axis=1)) / 50
    assert np.max(np.abs(P - want)) < 1e-13
    assert tv_to_kde(GridLaw(edges=(e1, e2), mass=want / want.sum(), t=t), X, t) < 1e-3


@pytest.mark.parametrize("n", [300, 20_000])
def test_kde_cell_masses_match_brute_force_in_3d(n):
    """3-D goes through the grid score's lattice (O(n + lattice x cells)), not the O(n k^3)
    product: against the exact per-point product of cdf differences (far tails included:
    the outer edges reach 50), in each cell and in total."""
    X = density("sym_beta", beta=1.0, d=3).sample(n, seed=2)
    t = 0.01
    e = np.concatenate([np.linspace(-3.0, -1.5, 5)[:-1], np.linspace(-1.5, 1.5, 31),
                        np.geomspace(1.6, 50.0, 6)])
    edges = tuple(e + 0.01 * j for j in range(3))
    shape = tuple(len(a) - 1 for a in edges)
    g = GridLaw(edges=edges, mass=np.full(shape, 1.0 / math.prod(shape)), t=t)
    P = kde_cell_probs(g, X, t)
    s = math.sqrt(t)
    want = np.zeros(shape)
    for blk in np.array_split(np.arange(n), max(1, n // 2000)):
        d1, d2, d3 = (np.diff(stats.norm.cdf((a[None, :] - X[blk, j:j + 1]) / s), axis=1)
                      for j, a in enumerate(edges))
        want += np.einsum("ia,ib,ic->abc", d1, d2, d3)
    want /= n
    assert P.shape == shape and np.all(P >= 0)
    assert np.max(np.abs(P - want)) < 1e-13   # measured ~3e-19
    assert np.sum(np.abs(P - want)) < 1e-12   # measured ~1e-15
    assert abs(P.sum() - want.sum()) < 1e-13


def test_the_samplers_own_error_is_first_order_and_halving_the_steps_estimates_it():
    """Empirical score, d = 1: TV(law_S, p̂_t0) falls like 1/S, and TV(law_S, law_{S/2})
    estimates it (equal for an exact first-order error c/S)."""
    n, beta, d = 200, 1.0, 1
    p0 = density("sym_beta", beta=beta, d=d)
    X = p0.sample(n, rng=np.random.default_rng(3))
    est = build("empirical", X, {"plan_m": 1000})
    t0, T = theory.t0_early_stop(n, beta, d), theory.T_horizon(n, beta, d)
    laws = {S: law.output_law(est.score, d=d, t0=t0, T=T, steps=S, resolution=3.0)
            for S in (32, 64, 128)}
    err = {S: tv_to_kde(g, X, t0) for S, g in laws.items()}
    assert 1.6 < err[32] / err[64] < 2.5 and 1.6 < err[64] / err[128] < 2.5
    for S in (64, 128):
        assert 0.6 < tv_between(laws[S], laws[S // 2]) / err[S] < 1.5


def test_the_samplers_own_error_is_first_order_in_3d():
    """Empirical score, d = 3, the job's 3-D law settings: TV(law_S, p̂_t0), with p̂_t0's
    cell masses from the lattice (kde_cell_probs in 3-D), falls like 1/S (measured 0.0716,
    0.0342, 0.0155 at 16, 32, 64 steps): the 3-D sampler's error is measured, not a floor
    of the grid or of the masses."""
    from scorerate.job.metric_table import LAW_3D

    n, beta, d = 300, 1.0, 3
    p0 = density("sym_beta", beta=beta, d=d)
    X = p0.sample(n, seed=3)
    est = build("empirical", X)
    t0, T = theory.t0_early_stop(n, beta, d), theory.T_horizon(n, beta, d)
    err = {S: tv_to_kde(law.output_law(est, d=d, t0=t0, T=T, steps=S, resolution=2.0,
                                       **LAW_3D), X, t0) for S in (16, 32, 64)}
    assert 1.7 < err[16] / err[32] < 2.6 and 1.7 < err[32] / err[64] < 2.6
