"""Sampler: time grid, validation, bit-identity over chunking/scheduling, and the KDE oracle.

The oracle (DESIGN.md section 1): the exact reverse flow of the `empirical` score started
from p̂_T outputs exactly p̂_{t0} = (1/n) sum_i N(X_i, t0 I), whose marginal cdfs are known
in closed form. So a one-sample KS test of each output coordinate against that cdf must not
reject, and the KS statistic must shrink as steps grow (it is huge with 2 steps).
"""

from __future__ import annotations

import math

import dask
import numpy as np
import pytest
from scipy import stats

from scorerate import sampler, seeding

ALPHA = 0.01  # level of each KS test (per coordinate, per integrator) in the oracle


def empirical_score(X: np.ndarray):
    """The `empirical` kernel score of X (scorerate.estimators.build)."""
    from scorerate.estimators import build

    return build("empirical", X).score


def kde_cdf(X: np.ndarray, t0: float, j: int):
    """Exact cdf of coordinate j under p̂_{t0} = (1/n) sum_i N(X_i, t0 I)."""
    def cdf(x):
        return stats.norm.cdf((np.asarray(x)[:, None] - X[None, :, j]) / np.sqrt(t0)).mean(1)
    return cdf


# ---------------------------------------------------------------- time grid, validation

def test_time_grid_is_geometric_with_exact_endpoints():
    g = sampler.time_grid(1e-3, 50.0, 40)
    assert g.shape == (41,) and g[0] == 50.0 and g[-1] == 1e-3
    ratios = g[1:] / g[:-1]
    np.testing.assert_allclose(ratios, (1e-3 / 50.0) ** (1 / 40), rtol=1e-12)


def test_edm_schedule():
    """The EDM schedule: exact endpoints, decreasing, sqrt(t)^(1/rho) equally spaced;
    rho large approaches the geometric grid; an unknown schedule is refused."""
    g = sampler.time_grid(1e-3, 50.0, 40, schedule="edm", rho=7.0)
    assert g.shape == (41,) and g[0] == 50.0 and g[-1] == 1e-3 and np.all(np.diff(g) < 0)
    np.testing.assert_allclose(np.diff(g ** (1 / 14)), (1e-3 ** (1 / 14) - 50 ** (1 / 14)) / 40,
                               rtol=1e-9)
    np.testing.assert_allclose(sampler.time_grid(1e-3, 50.0, 40, schedule="edm", rho=1e6),
                               sampler.time_grid(1e-3, 50.0, 40), rtol=1e-4)
    with pytest.raises(ValueError, match="geometric.*edm"):
        sampler.time_grid(1e-3, 50.0, 40, schedule="cosine")


@pytest.mark.parametrize("kwargs, match", [
    (dict(t0=1.0, T=1.0), "t0 < T"),
    (dict(t0=2.0, T=1.0), "t0 < T"),
    (dict(t0=0.0), "t0 < T"),
    (dict(T=np.inf), "t0 < T"),
    (dict(steps=0), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(m=0), "m must"),
    (dict(d=0), "d must"),
    (dict(chunk=0), "chunk"),
    (dict(integrator="rk4"), "euler_maruyama.*ancestral.*probability_flow.*heun"),
    (dict(start="uniform"), "gaussian.*kde"),
    (dict(start="kde"), "start_points"),
    (dict(start="kde", start_points=np.zeros((5, 3))), r"\(n, 2\)"),
])
def test_bad_input_raises_before_any_work(kwargs, match):
    calls = []
    args = dict(m=10, d=2, t0=0.01, T=1.0, steps=5, key=("k",))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sampler.sample(lambda x, t: calls.append(1) or x, **args)
    assert not calls


def test_score_is_called_on_whole_chunks_only():
    shapes = []

    def score(x, t):
        shapes.append(x.shape)
        return -x / (1.0 + t)

    sampler.sample(score, m=23, d=3, t0=0.1, T=4.0, steps=6, key=("w",),
                   chunk=10).compute(scheduler="sync")
    assert sorted(shapes) == sorted([(10, 3)] * 12 + [(3, 3)] * 6)


# ---------------------------------------------------------------- bit-identity

@pytest.mark.parametrize("integrator", list(sampler.INTEGRATORS))
@pytest.mark.parametrize("start", sampler.STARTS)
def test_bit_identical_over_chunk_sizes_and_schedulers(integrator, start):
    X = seeding.rng("test-sampler-train").standard_normal((40, 2))
    score = empirical_score(X)
    m = 90
    outs = []
    for chunk, scheduler in [(7, "sync"), (64, "threads"), (m, "sync"), (7, "threads")]:
        arr = sampler.sample(score, m=m, d=2, t0=0.01, T=3.0, steps=12, integrator=integrator,
                             key=("bit", 1), start=start, start_points=X, chunk=chunk)
        assert arr.chunks[0][0] == min(chunk, m)
        with dask.config.set(num_workers=4):
            outs.append(arr.compute(scheduler=scheduler))
    assert np.all(np.isfinite(outs[0]))
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])
    # and the key matters: another key gives other particles
    other = sampler.sample(score, m=m, d=2, t0=0.01, T=3.0, steps=12, integrator=integrator,
                           key=("bit", 2), start=start, start_points=X).compute()
    assert not np.array_equal(other, outs[0])


def test_bit_identical_with_a_realistic_estimator_on_a_pinned_backend():
    # n = 1000 in 1D, where the engine's "auto" dispatch picks its backend from the number
    # of queries (dense for 7 rows, binned for 64): bit-identity over chunk sizes needs a
    # score whose rows do not depend on the batch, so the backend is pinned here.
    from scorerate.estimators import build

    X = seeding.rng("test-sampler-train", 1000).standard_normal((1000, 1))
    score = build("truncated", X, {"backend": "dense"}).score
    outs = [sampler.sample(score, m=130, d=1, t0=0.01, T=10.0, steps=10, key=("real",),
                           chunk=chunk).compute(scheduler=sch)
            for chunk, sch in [(7, "threads"), (64, "sync"), (130, "threads")]]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_particle_draws_depend_only_on_its_index():
    kw = dict(d=2, T=2.0, steps=5, integrator="euler_maruyama", key=("p",))
    y_all, z_all = sampler.start_and_noise(0, 10, **kw)
    y_mid, z_mid = sampler.start_and_noise(4, 7, **kw)
    assert np.array_equal(y_all[4:7], y_mid) and np.array_equal(z_all[4:7], z_mid)
    assert z_all.shape == (10, 5, 2)


# ---------------------------------------------------------------- integrators, exact cases

def test_probability_flow_is_second_order_on_a_gaussian():
    # p0 = N(0, s2): s_t(x) = -x/(s2+t); the exact flow maps x(T) to x(T) sqrt((s2+t0)/(s2+T)).
    s2, t0, T = 0.5, 0.01, 20.0
    y0 = np.array([[1.0, -2.0], [0.3, 4.0]])
    exact = y0 * np.sqrt((s2 + t0) / (s2 + T))
    errs = []
    for steps in (20, 40, 80):
        out = sampler.integrate(lambda x, t: -x / (s2 + t), y0, sampler.time_grid(t0, T, steps),
                                None, "probability_flow")
        errs.append(np.abs(out - exact).max())
    # Heun: error ratio 4 per doubling; accept 3.3..4.7
    assert 3.3 < errs[0] / errs[1] < 4.7 and 3.3 < errs[1] / errs[2] < 4.7


def test_ancestral_is_exact_for_one_training_point_with_any_steps():
    # With one distinct point the denoiser is the point itself, so each ancestral step is
    # the exact Brownian-bridge posterior: the output is N(x1, t0 I) for any number of
    # steps. (Two copies of the point: an estimator needs n >= 2; the KDE is the same.)
    x1 = np.array([[0.7, -1.2]])
    t0, T, m = 0.05, 30.0, 3000
    score = empirical_score(np.repeat(x1, 2, axis=0))
    for steps in (1, 3):
        Y = sampler.sample(score, m=m, d=2, t0=t0, T=T, steps=steps, integrator="ancestral",
                           key=("one-point", steps)).compute()
        for j in range(2):
            p = stats.kstest(Y[:, j], stats.norm(x1[0, j], np.sqrt(t0)).cdf).pvalue
            assert p > ALPHA, (steps, j, p)


def test_euler_maruyama_on_a_gaussian_matches_the_variance_recursion():
    # Linear score: Y_{k+1} = a_k Y_k + sqrt(h_k) Z with a_k = 1 - h_k/(s2 + tau_k), so
    # Var Y_{k+1} = a_k^2 Var Y_k + h_k from Var Y_0 = T; the sample variance must match
    # that within 5 standard errors (SE of a variance of m normals: v sqrt(2/(m-1))).
    s2, t0, T, steps, m = 1.0, 0.01, 10.0, 8, 4000
    times = sampler.time_grid(t0, T, steps)
    var = T
    for k in range(steps):
        h = times[k] - times[k + 1]
        var = (1 - h / (s2 + times[k])) ** 2 * var + h
    Y = sampler.sample(lambda x, t: -x / (s2 + t), m=m, d=1, t0=t0, T=T, steps=steps,
                       key=("em-var",)).compute()
    assert abs(Y.var(ddof=1) - var) < 5 * var * np.sqrt(2 / (m - 1))
    assert abs(var - (s2 + t0)) > 0.05  # 8 steps are visibly biased: the test can see it


# ---------------------------------------------------------------- the KDE oracle

@pytest.fixture(scope="module")
def kde_case():
    out = {}
    for d, n in ((1, 60), (2, 40)):
        X = seeding.rng("oracle-train", d, n).standard_normal((n, d))
        out[d] = (X, empirical_score(X))
    return out


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("integrator", list(sampler.INTEGRATORS))
def test_kde_oracle_many_steps_indistinguishable_few_steps_not(kde_case, d, integrator):
    X, score = kde_case[d]
    t0, T, m = 0.02, 5.0, 3000

    def ks(steps):
        Y = sampler.sample(score, m=m, d=d, t0=t0, T=T, steps=steps, integrator=integrator,
                           key=("oracle", d), start="kde", start_points=X).compute()
        return [stats.kstest(Y[:, j], kde_cdf(X, t0, j)) for j in range(d)]

    many = ks(64)
    few = ks(2)
    # enough steps: no coordinate rejects at level ALPHA
    assert min(r.pvalue for r in many) > ALPHA, [r.pvalue for r in many]
    # too few steps: the same KS test rejects overwhelmingly, and the statistic is far larger.
    # Seen (these seeds): KS(2 steps) 0.09-0.39 (p < 1e-19) vs KS(64 steps) 0.011-0.018,
    # at the noise floor 0.87/sqrt(m) = 0.016.
    assert min(r.pvalue for r in few) < 1e-4
    assert max(r.statistic for r in few) > 2 * max(r.statistic for r in many)


def test_recorded_states_are_the_chain_stopped_early():
    # the state kept after j steps is bit for bit the output of the same sampler run on
    # the first j steps of the grid (the same particles' noise): early stopping at times[j]
    from scorerate.estimators import build

    X = seeding.rng("record-data").standard_normal((50, 1))
    score = build("empirical", X).score
    times = sampler.time_grid(1e-3, 10.0, 12)
    y, noise = sampler.start_and_noise(0, 20, d=1, T=10.0, steps=12,
                                       integrator="euler_maruyama", key=("record",))
    out = sampler.integrate(score, y, times, noise, record=[3, 7])
    assert out.shape == (3, 20, 1)
    for i, j in enumerate((3, 7)):
        np.testing.assert_array_equal(out[i], sampler.integrate(score, y, times[:j + 1],
                                                                noise[:, :j]))
    np.testing.assert_array_equal(out[-1], sampler.integrate(score, y, times, noise))
    with pytest.raises(ValueError, match="record"):
        sampler.integrate(score, y, times, noise, record=[13])


def test_truncated_escapes_fall_as_the_steps_grow():
    # `truncated` zeroes the score where p̂_t < rho_n: particles the coarse early steps
    # throw there feel no drift and stay outside p0's support. More steps, fewer escapes.
    # Seen (n = 1000, d = 2, m = 2000, these seeds): 16 steps 0.21, 128 steps 0.13; the
    # binomial sd of each fraction is below 0.01, so the 0.8 ratio is ~4 sd from it.
    from scorerate import theory
    from scorerate.densities import density
    from scorerate.estimators import build
    from scorerate.metrics import samples as metrics

    p0 = density("sym_beta", beta=1.0, d=2)
    n, m = 1000, 2000
    est = build("truncated", p0.sample(n, rng=seeding.rng("escapes-data")), {"plan_m": m})
    t0, T = theory.t0_early_stop(n, 1.0, 2), theory.T_horizon(n, 1.0, 2)
    frac = {}
    for steps in (16, 128):
        y, noise = sampler.start_and_noise(0, m, d=2, T=T, steps=steps,
                                           integrator="euler_maruyama", key=("escapes", steps))
        out = sampler.integrate(est.score, y, sampler.time_grid(t0, T, steps), noise)
        frac[steps] = metrics.escape_fraction(out, p0)
    assert frac[16] > 0.1 and frac[128] < 0.8 * frac[16], frac


def test_steps_grow_with_n_by_the_declared_rule():
    from scorerate.config.spec import JobSpec
    from scorerate.sampler import steps_for

    assert steps_for(100, 64) == steps_for(1e5, 64) == 64  # power 0: a fixed count
    assert steps_for(1000, 64, 0.5, 1000) == 64
    assert steps_for(100_000, 64, 0.5, 1000) == 640
    assert steps_for(100, 64, 0.5, 1000) == math.ceil(64 / math.sqrt(10))
    assert steps_for(2, 1, 1.0, 1000) == 1  # never below one step
    # a floor for small n: it binds where the grown count is below it, nowhere else
    assert steps_for(100, 64, 0.5, 1000, 80) == 80
    assert steps_for(100_000, 64, 0.5, 1000, 80) == 640
    floored = JobSpec(density="sym_beta", beta=1.0, d=1, n=100, steps=64, steps_power=0.5,
                      steps_min=80)
    assert floored.n_steps == 80
    spec = JobSpec(density="sym_beta", beta=1.0, d=1, n=100_000, steps=64, steps_power=0.5)
    assert spec.n_steps == 640 and spec.steps == 64
    with pytest.raises(ValueError, match="steps_power"):
        JobSpec(density="sym_beta", beta=1.0, d=1, n=100, steps_power=-1)
