"""Metrics on cases with known answers: isotropic Gaussians, whose every quantity is closed form.

`Gauss` is a stand-in with the densities contract (d, sample, pdf, logpdf, pdf_t,
score_t, box_prob, l2_norm_sq) for p0 = N(mu, s2 I); the oracles below are derived from
its closed forms or from scipy quadrature, never from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from scorerate import seeding
from scorerate.densities import density
from scorerate.metrics import samples as metrics
from scorerate.metrics import score_error


class Gauss:
    """p0 = N(mu, s2 I_d): everything in closed form."""

    name, beta = "gauss", 1.0

    def __init__(self, d: int, s2: float = 1.0, mu: float = 0.0) -> None:
        self.d, self.s2, self.mu = d, s2, mu

    def sample(self, n, seed=None, rng=None):
        rng = rng if rng is not None else seeding.rng("gauss-standin", seed)
        return self.mu + math.sqrt(self.s2) * rng.standard_normal((n, self.d))

    def logpdf_t(self, x, t):
        v = self.s2 + t
        return (-0.5 * np.sum((x - self.mu) ** 2, axis=1) / v
                - 0.5 * self.d * math.log(2 * math.pi * v))

    def pdf_t(self, x, t):
        return np.exp(self.logpdf_t(x, t))

    def logpdf(self, x):
        return self.logpdf_t(x, 0.0)

    def pdf(self, x):
        return self.pdf_t(x, 0.0)

    def score_t(self, x, t):
        return -(x - self.mu) / (self.s2 + t)

    def box_prob(self, lo, hi):
        z = stats.norm(self.mu, math.sqrt(self.s2))
        return np.prod(z.cdf(hi) - z.cdf(lo), axis=1)

    def l2_norm_sq(self):
        return (4 * math.pi * self.s2) ** (-self.d / 2)

    def support_box(self):
        half = stats.norm.isf(1e-12 / (2 * self.d)) * math.sqrt(self.s2)
        return np.full(self.d, self.mu - half), np.full(self.d, self.mu + half)


class Scaled:
    """An 'estimator' whose score is (1 + a) times the true score of p0."""

    def __init__(self, p0, a):
        self.p0, self.a = p0, a

    def score(self, x, t):
        return (1 + self.a) * self.p0.score_t(x, t)


def mixture_se_gauss(d: int, s2: float, a: float, t: float, n_mc: int) -> float:
    """Exact sd of score_error.score_mse for p0 = N(0, s2 I) and the score (1 + a) s_t.

    The estimator draws n_j points from q_j = N(0, (s2 + lambda_j t) I) (its published
    plan, score_error.mixture_plan) and averages g = p_t / q |a s_t|^2 with
    q = sum_j (n_j / n_mc) q_j; its variance is sum_j n_j Var_{q_j}(g) / n_mc^2. Every
    density here is isotropic, so each moment is a 1-D integral over the radius r.
    """
    from scorerate.metrics.score_error import mixture_plan

    lam, counts = mixture_plan(n_mc)
    v = s2 + t
    vj = s2 + lam * t
    cj = counts / n_mc

    def log_phi(r, var):  # log N(0, var I_d) density at radius r
        return -0.5 * r * r / var - 0.5 * d * math.log(2 * math.pi * var)

    def g(r):
        lq = np.logaddexp.reduce([math.log(c) + log_phi(r, w) for c, w in zip(cj, vj, strict=True)])
        return math.exp(log_phi(r, v) - lq) * a * a * r * r / (v * v)

    var = 0.0
    for n_j, w in zip(counts, vj, strict=True):
        def dens(r, w=w):  # chi density of |x| under N(0, w I_d)
            return math.exp((d - 1) * math.log(r) - 0.5 * r * r / w - (d / 2 - 1) * math.log(2)
                            - math.lgamma(d / 2) - 0.5 * d * math.log(w)) if r > 0 else 0.0
        hi = 40 * math.sqrt(w)
        m1 = integrate.quad(lambda r: g(r) * dens(r), 0, hi, limit=200)[0]
        m2 = integrate.quad(lambda r: g(r) ** 2 * dens(r), 0, hi, limit=200)[0]
        var += n_j * (m2 - m1 * m1)
    return math.sqrt(var) / n_mc


def tv_shift_1d(delta: float) -> float:
    """TV(N(0,1), N(delta,1)) = 2 Phi(delta/2) - 1 (densities cross at delta/2)."""
    return 2 * stats.norm.cdf(delta / 2) - 1


# ---------------------------------------------------------------- score MSE

def test_score_mse_of_the_exact_score_is_zero():
    p0 = Gauss(2)
    mse, se = score_error.score_mse(Scaled(p0, 0.0), p0, [0.01, 1.0, 100.0], n_mc=500, key=("k",))
    assert np.array_equal(mse, np.zeros(3)) and np.array_equal(se, np.zeros(3))


def test_score_mse_of_a_scaled_score_matches_the_fisher_information():
    # |a s_t(x)|^2 with x ~ N(0, (s2+t) I): E = a^2 d / (s2 + t) (Fisher information of p_t).
    d, s2, a = 3, 0.5, 0.3
    p0 = Gauss(d, s2)
    ts = np.array([1e-3, 0.1, 1.0, 30.0])
    mse, se = score_error.score_mse(Scaled(p0, a), p0, ts, n_mc=20000, key=("fisher",))
    exact = a * a * d / (s2 + ts)
    assert np.all(np.abs(mse - exact) < 4 * se), (mse, exact, se)
    # the SE is honest: it matches the exact standard deviation of the importance-sampling
    # estimator (radial quadrature below), not just any number that covers the error
    np.testing.assert_allclose(se, [mixture_se_gauss(d, s2, a, t, 20000) for t in ts],
                               rtol=0.1)
    again, _ = score_error.score_mse(Scaled(p0, a), p0, ts, n_mc=20000, key=("fisher",))
    assert np.array_equal(mse, again)


def test_integrate_log_t_converges_to_the_integral():
    # int_{t0}^{T} 1/(s2+t) dt = log((s2+T)/(s2+t0)); trapezoid in log t is O(h^2).
    f = lambda t: 1.0 / (0.5 + t)  # noqa: E731
    exact = math.log((0.5 + 50.0) / (0.5 + 1e-3))
    errs = []
    for num in (50, 100):
        ts = np.geomspace(1e-3, 50.0, num)
        val, se = score_error.integrate_log_t(ts, f(ts))
        errs.append(abs(val - exact))
        assert math.isnan(se)
    assert errs[1] < 1e-3 * exact and 3.5 < errs[0] / errs[1] < 4.5
    # exact for f = 1/t
    ts = np.geomspace(1e-2, 1e2, 7)
    assert score_error.integrate_log_t(ts, 1 / ts)[0] == pytest.approx(math.log(1e4), rel=1e-13)


def test_integrated_score_error_of_a_scaled_score():
    d, s2, a, t0, T = 2, 1.0, 0.2, 1e-2, 20.0
    p0 = Gauss(d, s2)
    val, se = score_error.integrated_score_error(Scaled(p0, a), p0, t0, T, num=60, n_mc=4000,
                                             key=("ise",), return_se=True)
    exact = a * a * d * math.log((s2 + T) / (s2 + t0))  # closed form of int a^2 d/(s2+t) dt
    # MC (4 se) plus the log-trapezoid error at num = 60 (< 1e-3 relative, test above)
    assert abs(val - exact) < 4 * se + 1e-3 * exact, (val, exact, se)
    assert val == score_error.integrated_score_error(Scaled(p0, a), p0, t0, T, num=60, n_mc=4000,
                                                 key=("ise",))


@pytest.mark.parametrize("call", [
    lambda p0: score_error.score_mse(Scaled(p0, 0), p0, [0.0, 1.0], n_mc=10, key="k"),
    lambda p0: score_error.score_mse(Scaled(p0, 0), p0, [1.0], n_mc=1, key="k"),
    lambda p0: score_error.integrated_score_error(Scaled(p0, 0), p0, 1.0, 1.0, key="k"),
    lambda p0: score_error.integrated_score_error(Scaled(p0, 0), p0, 0.1, 1.0, num=1, key="k"),
])
def test_score_error_bad_input(call):
    with pytest.raises(ValueError):
        call(Gauss(1))


# ---------------------------------------------------------------- TV of samples

@pytest.mark.parametrize("d", [1, 2, 3])
def test_tv_binned_small_for_a_sample_of_p0_and_near_exact_for_a_shift(d):
    p0 = Gauss(d)
    m = 20000
    b = metrics.tv_binned_bins(m, d)
    # mean of the noise floor for equal-mass cells (docstring); its sd is far smaller (a sum
    # of B weakly dependent terms), so a sample of p0 stays below 1.3 floor. Seen: 0.92-1.06.
    floor = math.sqrt(b ** d / (2 * math.pi * m))
    x = p0.sample(m, rng=seeding.rng("tv-binned-test", d))
    tv0 = metrics.tv_binned(x, p0)
    assert 0 < tv0 < 1.3 * floor
    # shift one coordinate by delta: TV of the product = the 1D TV of the shift
    delta = 0.6
    xs = x.copy()
    xs[:, 0] += delta
    tv = metrics.tv_binned(xs, p0)
    exact = tv_shift_1d(delta)
    # binning lowers it, noise raises it; seen: within 0.004 of exact for d <= 3
    assert abs(tv - exact) < 0.02, (tv, exact, floor)


def test_tv_binned_counts_non_finite_rows_outside_and_is_nan_above_d3():
    p0 = Gauss(1)
    x = p0.sample(10000, rng=seeding.rng("tv-binned-nan"))
    x[:2000] = np.nan
    tv = metrics.tv_binned(x, p0)
    # 20% of the mass is outside every cell (p0 has ~ 1e-4 there, beyond its grid)
    assert 0.2 - 1e-3 <= tv < 0.2 + 0.03
    assert math.isnan(metrics.tv_binned(np.zeros((10, 4)), Gauss(4)))
    with pytest.raises(ValueError):
        metrics.tv_binned(np.zeros((10, 2)), Gauss(3))


def test_tv_binned_counts_mass_beyond_the_support_fully():
    # the audit's case: every output beyond |x| > 1.5 of a density supported on [-1, 1]
    # was reported at TV 0.80 when the outer bins stretched to the samples; it is 1
    p0 = density("sym_beta", beta=1.0, d=1)
    g = seeding.rng("tv-binned-escape")
    x = np.sign(g.standard_normal((400, 1))) * g.uniform(1.5, 3.0, (400, 1))
    assert metrics.tv_binned(x, p0) == pytest.approx(1.0, abs=1e-9)
    assert metrics.escape_fraction(x, p0) == 1.0
    assert metrics.escape_fraction(p0.sample(400, rng=g), p0) == 0.0


@pytest.mark.parametrize("d", [1, 2])
def test_tv_binned_floor_is_the_noise_of_a_sample_of_p0(d):
    p0 = Gauss(d)
    m = 400
    b = metrics.tv_binned_bins(m, d)
    # mean absolute deviation of a multinomial on B equal cells: about sqrt(B / (2 pi m));
    # seen 0.9-1.0 of it (the tail cells hold ~1e-12)
    approx = math.sqrt(b ** d / (2 * math.pi * m))
    floor = metrics.tv_binned_floor(p0, m, key="floor-test", reps=32)
    assert 0.75 * approx < floor < 1.15 * approx, (floor, approx)


def test_nearest_distance_ratio_separates_copies_from_new_points():
    p0 = Gauss(1)
    train = p0.sample(3000, rng=seeding.rng("memo-train"))
    g = seeding.rng("memo-out")
    copies = train[g.integers(0, 3000, 500)] + 1e-7 * g.standard_normal((500, 1))
    fresh = p0.sample(500, rng=g)
    assert metrics.nearest_distance_ratio(copies, train, p0, key="memo") < 0.01
    # two samples of 500 fresh draws: their median nearest distances agree to ~10%
    assert 0.8 < metrics.nearest_distance_ratio(fresh, train, p0, key="memo") < 1.25


def test_tv_binned_bin_rule():
    assert metrics.tv_binned_bins(20000, 1) == 27 and metrics.tv_binned_bins(10000, 2) == 10
    assert metrics.tv_binned_bins(3, 3) == 2


# ---------------------------------------------------------------- TV and L2 of the KDE

def kde_pdf_1d(train, t0):
    return lambda x: np.mean(stats.norm.pdf((x - train[:, 0]) / math.sqrt(t0))) / math.sqrt(t0)


def test_tv_kde_matches_quadrature_in_1d():
    p0 = Gauss(1)
    train = p0.sample(7, rng=seeding.rng("tv-kde-train"))
    t0 = 0.05
    phat = kde_pdf_1d(train, t0)
    pts = sorted(train[:, 0])
    exact = 0.5 * integrate.quad(lambda x: abs(phat(x) - stats.norm.pdf(x)), -12, 12,
                                 points=pts, limit=400, epsabs=1e-11)[0]
    tv, se = metrics.tv_kde(train, t0, p0, n_mc=40000, key=("tvk",))
    assert abs(tv - exact) < 4 * se and se < 0.01, (tv, exact, se)


def test_tv_kde_of_a_single_point_kde_equal_to_p0_is_zero():
    # p̂_{t0} = N(0, t0) with t0 = s2 is p0 itself: TV = 0 (every integrand term ~ 1e-16).
    p0 = Gauss(2, s2=0.3)
    tv, se = metrics.tv_kde(np.zeros((1, 2)), 0.3, p0, n_mc=1000, key="z")
    assert tv < 1e-12 and se < 1e-12


def test_l2_kde_matches_quadrature_in_1d_and_a_fine_grid_in_2d():
    t0 = 0.1
    p0 = Gauss(1, s2=0.7)
    train = p0.sample(9, rng=seeding.rng("l2-train", 1))
    phat = kde_pdf_1d(train, t0)
    p0pdf = stats.norm(0, math.sqrt(0.7)).pdf
    exact = math.sqrt(integrate.quad(lambda x: (phat(x) - p0pdf(x)) ** 2, -12, 12,
                                     points=sorted(train[:, 0]), limit=400,
                                     epsabs=1e-13)[0])
    assert metrics.l2_kde(train, t0, p0) == pytest.approx(exact, rel=1e-6)
    # 2D: trapezoid on a 401^2 grid over [-8, 8]^2 (spacing 0.04 << sqrt(t0) = 0.32, so the
    # rule is spectrally accurate for these Gaussians; tails beyond 8 are < 1e-14)
    p0 = Gauss(2, s2=0.7)
    train = p0.sample(6, rng=seeding.rng("l2-train", 2))
    g = np.linspace(-8, 8, 401)
    xx = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    diff2 = (xx[:, None, :] - train[None, :, :]) ** 2
    hat = np.mean(np.exp(-diff2.sum(-1) / (2 * t0)), axis=1) / (2 * math.pi * t0)
    f = ((hat - p0.pdf(xx)) ** 2).reshape(401, 401)
    exact = math.sqrt(integrate.trapezoid(integrate.trapezoid(f, g, axis=1), g))
    assert metrics.l2_kde(train, t0, p0) == pytest.approx(exact, rel=1e-6)


# ---------------------------------------------------------------- W1 and MMD

def test_wasserstein_1d_matches_scipy():
    rng = seeding.rng("w1-scipy")
    for m, n in ((7, 13), (50, 50), (300, 1000)):
        x, y = rng.standard_normal((m, 3)), 2 * rng.standard_normal((n, 3)) + 0.1
        got = metrics.wasserstein_1d(x, y)
        want = [stats.wasserstein_distance(x[:, k], y[:, k]) for k in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_w1_of_a_shift_is_the_shift_in_1d_and_sliced():
    m, delta = 20000, 0.4
    p0 = Gauss(1)
    x = p0.sample(m, rng=seeding.rng("w1-test", 1))
    # W1(p0, p0 + delta) = delta; noise of two samples (m, n_ref) adds ~ 1/sqrt(m) = 0.007
    assert abs(metrics.w1(x + delta, p0, key="w") - delta) < 0.02
    assert metrics.w1(x, p0, key="w") < 0.02
    # sliced, d = 3: for a shift v, the projections differ by the shift <theta, v>
    p0 = Gauss(3)
    x = p0.sample(m, rng=seeding.rng("w1-test", 3))
    v = np.array([0.4, -0.3, 0.2])
    dirs = metrics.projection_directions(3, 64, "w")
    expected = np.mean(np.abs(dirs @ v))
    assert abs(metrics.w1(x + v, p0, key="w") - expected) < 0.02
    assert metrics.w1(x, p0, key="w") < 0.02


def gauss_kernel_mean(dist2_means: float, var_sum: float, sigma: float, d: int) -> float:
    """E exp(-|X - Y|^2 / (2 sigma^2)) for X - Y ~ N(delta, var_sum I), |delta|^2 given."""
    c = sigma * sigma + var_sum
    return (sigma * sigma / c) ** (d / 2) * math.exp(-dist2_means / (2 * c))


def test_mmd_is_unbiased_for_two_gaussians():
    # MMD^2(N(delta e1, I), N(0, I)) = 2 (E k(X,X') - E k(X,Y)) in closed form;
    # the mean over 20 seeds must be within 4 of its standard errors of it, and for
    # samples from p0 itself within 4 standard errors of 0 (unbiased: no positive floor).
    d, sigma, delta, m = 2, 1.5, 0.5, 600
    p0 = Gauss(d)
    exact = 2 * (gauss_kernel_mean(0.0, 2.0, sigma, d)
                 - gauss_kernel_mean(delta ** 2, 2.0, sigma, d))
    alt, null = [], []
    for rep in range(20):
        x = p0.sample(m, rng=seeding.rng("mmd-test", rep))
        null.append(metrics.mmd(x, p0, key=("mmd", rep), n_ref=m, bandwidth=sigma))
        x[:, 0] += delta
        alt.append(metrics.mmd(x, p0, key=("mmd", rep), n_ref=m, bandwidth=sigma))
    se_alt, se_null = np.std(alt, ddof=1) / math.sqrt(20), np.std(null, ddof=1) / math.sqrt(20)
    assert abs(np.mean(alt) - exact) < 4 * se_alt, (np.mean(alt), exact, se_alt)
    assert abs(np.mean(null)) < 4 * se_null and min(null) < 0  # unbiased U-statistic


def test_mmd_streaming_matches_brute_force_and_median_rule(monkeypatch):
    monkeypatch.setattr(metrics, "_BLOCK", 128)  # several blocks: exercises the streaming
    rng = seeding.rng("mmd-brute")
    p0 = Gauss(3)
    x = rng.standard_normal((1000, 3)) + 0.2
    y = p0.sample(300, rng=seeding.rng("k", "mmd_ref"))
    sigma = 0.8

    def kmat(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma ** 2))

    kxx = kmat(x, x)  # brute force, diagonal removed exactly
    np.fill_diagonal(kxx, 0)
    kyy = kmat(y, y)
    np.fill_diagonal(kyy, 0)
    brute = (kxx.sum() / (1000 * 999) + kyy.sum() / (300 * 299) - 2 * kmat(x, y).mean())
    got = metrics.mmd(x, p0, key="k", n_ref=300, bandwidth=sigma)
    assert got == pytest.approx(brute, rel=1e-9, abs=1e-12)
    # the median heuristic: median of the pairwise distances of the reference sample
    dist = np.sqrt(((y[:, None] - y[None]) ** 2).sum(-1))[np.triu_indices(300, 1)]
    assert metrics.median_bandwidth(y) == pytest.approx(np.median(dist), rel=1e-12)
    assert metrics.mmd(x, p0, key="k", n_ref=300) == metrics.mmd(
        x, p0, key="k", n_ref=300, bandwidth=metrics.median_bandwidth(y))
