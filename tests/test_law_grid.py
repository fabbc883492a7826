"""output_law with a grid score (an estimator object) and in three dimensions.

Oracles: the plain score callable (the law is the same law; only the score's evaluation
differs, by <= rtol); the linear Gaussian chain's closed-form variance; the KDE limit of
the empirical score; a Monte Carlo of the sampler itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scorerate import density, sampler, theory
from scorerate.densities import ProductMixture
from scorerate.densities.shapes import Gauss
from scorerate.estimators import build
from scorerate.metrics import law


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("name", ["truncated", "regularized", "empirical"])
def test_grid_path_gives_the_plain_path_law(d, name):
    """Same tv_law and l2_law to 1e-9 (the scores agree to rtol 1e-6 and enter the law
    through the drift h s only), and the method counts are recorded."""
    n = 400
    p0 = density("sym_beta", beta=1.0, d=d)
    est = build(name, p0.sample(n, seed=6), {"backend": "dense"})
    kw = dict(d=d, t0=theory.t0_early_stop(n, 1.0, d), T=theory.T_horizon(n, 1.0, d),
              steps=12, resolution=2.0)
    plain = law.output_law(est.score, **kw)
    grid = law.output_law(est, **kw)
    assert plain.methods == {}
    assert sum(grid.methods[k] for k in ("grid", "bound", "exact", "skipped")) > 0
    assert abs(law.tv_law(plain, p0) - law.tv_law(grid, p0)) < 1e-9
    assert abs(law.l2_law(plain, p0) - law.l2_law(grid, p0)) < 1e-9
    assert abs(grid.mass.sum() - 1.0) < 1e-12


def test_grid_path_refuses_probability_flow():
    est = build("empirical", np.random.default_rng(0).standard_normal((50, 1)))
    with pytest.raises(ValueError, match="probability_flow"):
        law.output_law(est, d=1, t0=0.1, T=1.0, steps=4, integrator="probability_flow")


# ---------------------------------------------------------------- three dimensions

S2 = 0.3  # variance of the Gaussian p0 of the linear case


def gauss_score(x: np.ndarray, t: float) -> np.ndarray:
    return -x / (S2 + t)


def gauss3(var: float) -> ProductMixture:
    return ProductMixture("gauss", 1.0, [1.0], [[Gauss()] * 3], np.zeros((1, 3)),
                          np.full((1, 3), math.sqrt(var)), smoothness=math.inf)


def kde3(X: np.ndarray, t0: float) -> ProductMixture:
    n = X.shape[0]
    return ProductMixture("kde", 1.0, np.ones(n), [[Gauss()] * 3] * n, X,
                          np.full((n, 3), math.sqrt(t0)), smoothness=math.inf)


def chain_variance(t0: float, T: float, steps: int, integrator: str) -> float:
    """Variance of the discrete chain's output for the linear score (scalar recursion)."""
    ts = sampler.time_grid(t0, T, steps)
    v = T
    for k in range(steps):
        h = ts[k] - ts[k + 1]
        c = h if integrator == "euler_maruyama" else ts[k + 1] * h / ts[k]
        v = (1.0 - h / (S2 + ts[k])) ** 2 * v + c
    return v


@pytest.mark.parametrize("integrator", ["euler_maruyama", "ancestral"])
def test_3d_linear_chain_conserves_mass_and_matches_the_closed_form(integrator):
    """The discrete chain's law is N(0, v_S I): grid TV to it measured 7.7e-4 (EM) and
    1.3e-3 (ancestral) at resolution 2, 8 steps; the discretisation error (TV to
    N(0, s2 + t0)) is 100x larger, so the check can fail."""
    t0, T, steps = 0.05, 50.0, 8
    L = law.output_law(gauss_score, d=3, t0=t0, T=T, steps=steps, resolution=2.0,
                       integrator=integrator)
    assert L.mass.ndim == 3 and abs(L.mass.sum() - 1.0) < 1e-12 and L.lost < 1e-12
    assert law.tv_law(L, gauss3(chain_variance(t0, T, steps, integrator))) < 2.5e-3
    assert law.tv_law(L, gauss3(S2 + t0)) > 0.1


def test_3d_grid_refinement_moves_tv_law_by_less_than_1e_3():
    """Linear chain, 8 EM steps: resolution 2 against 2.5 (measured 0.23123 vs 0.23165, and
    0.23187 at 3; the continuous TV is 0.23244: binned TVs approach it from below). The
    law itself gets closer to the chain's closed form as the grid refines (TV 7.7e-4,
    4.9e-4, 3.6e-4)."""
    kw = dict(d=3, t0=0.05, T=50.0, steps=8, max_cells=4_000_000)
    a = law.output_law(gauss_score, resolution=2.0, **kw)
    b = law.output_law(gauss_score, resolution=2.5, **kw)
    assert abs(law.tv_law(a, gauss3(S2 + 0.05)) - law.tv_law(b, gauss3(S2 + 0.05))) < 1e-3
    chain = gauss3(chain_variance(0.05, 50.0, 8, "euler_maruyama"))
    assert law.tv_law(b, chain) < law.tv_law(a, chain) < 1e-3


def test_3d_empirical_score_approaches_the_kde():
    """Empirical score (n = 12), T large: TV(law, p̂_t0) falls with steps 4, 8, 16
    (~2/S), and l2_law(p0) approaches the KDE's binned L2 on the law's cells: their gap
    is at most the L2 distance between the law and p̂_t0, which falls with the steps."""
    t0 = 0.1
    p0 = density("sym_beta", beta=1.0, d=3)
    X = p0.sample(12, seed=4)
    est = build("empirical", X)
    target = kde3(X, t0)
    tvs, gaps, l2s = [], [], []
    for steps in (4, 8, 16):
        L = law.output_law(est, d=3, t0=t0, T=100.0, steps=steps, resolution=1.5)
        assert abs(L.mass.sum() - 1.0) < 1e-12
        lo, hi = L.boxes()
        Pk = np.asarray(target.box_prob(lo, hi))
        P0 = np.asarray(p0.box_prob(lo, hi))
        l2_kde = math.sqrt(float(np.sum((Pk - P0) ** 2 / L.volumes().ravel())))
        tvs.append(law.tv_law(L, target))
        gaps.append(abs(law.l2_law(L, p0) - l2_kde))
        l2s.append(law.l2_law(L, target))
        assert L.methods["grid"] > 0
    assert tvs[0] > 1.6 * tvs[1] > 2.56 * tvs[2]  # measured 0.532, 0.288, 0.152
    assert tvs[2] < 0.2
    assert l2s[0] > 1.3 * l2s[1] > 1.69 * l2s[2]  # measured 0.264, 0.170, 0.100
    assert all(g <= l2 + 1e-12 for g, l2 in zip(gaps, l2s, strict=True))


def test_3d_law_agrees_with_a_monte_carlo_of_the_sampler():
    """sampler.sample with m = 1e5 particles (fixed key), truncated score, 8 EM steps.

    The particles are histogrammed on the law's cells and the cells merged into 6 x 6 x 6
    blocks of about equal marginal mass; Pearson's chi-square over the blocks with expected
    counts >= 20 must not reject at level 1e-3 (df = blocks - 1): the tolerance is the
    Monte Carlo's own sampling error. The law's grid error (TV ~1e-3, tests above) spread
    over B = 216 blocks (dp ~ 2 TV / B, p ~ 1 / B) adds about m sum dp^2 / p = 4 m TV^2 ~ 0.4
    to the statistic, whose sd is sqrt(2 df) ~ 21: the test checks the law, not the grid.
    """
    n, m, steps = 200, 100_000, 8
    p0 = density("sym_beta", beta=1.0, d=3)
    est = build("truncated", p0.sample(n, seed=5), {"backend": "dense"})
    t0, T = 0.05, 4.0
    L = law.output_law(est, d=3, t0=t0, T=T, steps=steps, resolution=2.0)
    y = np.asarray(sampler.sample(est.score, m=m, d=3, t0=t0, T=T, steps=steps,
                                  key=("test_law_grid", "mc"), chunk=25_000)
                   .compute(scheduler="synchronous"))
    counts = np.histogramdd(y, bins=list(L.edges))[0]
    outside = m - counts.sum()
    blocks = []
    for j in range(3):  # 6 blocks per axis at the law's marginal sextiles
        marg = L.mass.sum(axis=tuple(i for i in range(3) if i != j))
        cut = np.searchsorted(np.cumsum(marg), np.arange(1, 6) / 6.0)
        blocks.append(np.concatenate([[0], cut + 1, [marg.size]]))
    obs, exp = [], []
    for a in range(6):
        for b in range(6):
            for c in range(6):
                sl = tuple(slice(blocks[j][k], blocks[j][k + 1]) for j, k in enumerate((a, b, c)))
                obs.append(counts[sl].sum())
                exp.append(m * L.mass[sl].sum())
    obs, exp = np.array(obs), np.array(exp)
    big = exp >= 20
    obs_b = np.append(obs[big], obs[~big].sum() + outside)
    exp_b = np.append(exp[big], exp[~big].sum() + m * (1.0 - L.mass.sum()))
    chi2 = float(np.sum((obs_b - exp_b) ** 2 / np.maximum(exp_b, 1e-300)))
    assert chi2 < stats.chi2.ppf(0.999, obs_b.size - 1), (chi2, obs_b.size)  # 225, df 216
