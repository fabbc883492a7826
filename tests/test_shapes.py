"""1-D shapes: smoothed values and scores against 30-digit mpmath quadrature, cdf/sf, sampling."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy import stats

from scorerate import seeding
from scorerate.densities.shapes import Gauss, Laplace, SymBeta

TS = [1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4]
GAMMAS = [0.0, 0.25, 0.5, 1.0, 1.5]  # beta = 0.5, 0.75, 1, 1.5, 2
LOG_TINY = math.log(1e-300)


def _ref(logf, x: float, t: float, pts: list) -> tuple[float, float]:
    """(log f_t(x), d/dx log f_t(x)) by mp.quad (30 digits) over the pieces `pts` of
    int f(y) phi_t(x - y) dy and int f(y) phi_t(x - y) (y - x)/t dy.

    mp.quad stops on an absolute error test (~1e-30), so the integrand is first divided by
    its largest value on a grid of each finite piece: integrals of size e^-450 are then
    refined like those of size 1."""
    with mp.workdps(30):
        x, t = mp.mpf(x), mp.mpf(t)
        c = -mp.log(2 * mp.pi * t) / 2

        def h(y):
            return logf(y) + c - (x - y) ** 2 / (2 * t)

        fin = [p for p in pts if mp.isfinite(p)]
        grid = fin + [a + (b - a) * k / 64 for a, b in zip(fin[:-1], fin[1:], strict=False)
                      for k in range(1, 64)]
        shift = max(h(y) for y in grid)

        def g(y):
            return mp.exp(h(y) - shift)

        v = mp.quad(g, pts)
        dv = mp.quad(lambda y: g(y) * (y - x) / t, pts)
        return mp.log(v) + shift, dv / v


def _symbeta_ref(gamma: float, x: float, t: float) -> tuple[float, float]:
    with mp.workdps(30):
        g = mp.mpf(gamma)
        lc = -mp.log(mp.beta(mp.mpf(1) / 2, g + 1))
        st = mp.sqrt(t)
        lo, hi = mp.mpf(-1), mp.mpf(1)
        if t < 1e-2:  # the Gaussian factor is < e^-800 outside x +- 40 sqrt t
            lo, hi = max(lo, x - 40 * st), min(hi, x + 40 * st)
        pts = {lo, hi}
        if lo < x < hi:
            pts.add(mp.mpf(x))
        ax = abs(mp.mpf(x))
        if ax > 1:  # outside: the integrand is ~ (1 - |y|)^gamma exp(-(|x| - 1)(1 - |y|)/t)
            for k in (1, 4, 16, 64):  # near the end: split at multiples of that layer
                e = mp.sign(x) * (1 - k * t / (ax - 1))
                if lo < e < hi:
                    pts.add(e)
        return _ref(lambda y: lc + g * mp.log(1 - y * y) if abs(y) < 1 else mp.mpf("-inf"),
                    x, t, sorted(pts))


def _xs(t: float) -> list[float]:
    st = math.sqrt(t)
    return [0.0, 0.37, -0.8, 1.0 - 1e-7, 1.0, -1.0 - 1e-7, 1.0 + st, 1.0 + 5 * st,
            -(1.0 + 30 * st)]


@pytest.mark.parametrize("gamma", GAMMAS)
def test_symbeta_smooth_vs_mpmath(gamma):
    """|log f_t - ref| <= 1e-8 (1e-8 relative in f_t) wherever f_t > 1e-300; the score to
    1e-7 relative, or 1e-7 / sqrt(t) absolute (its natural scale) where it is near 0."""
    s = SymBeta(gamma)
    shapes = [s, SymBeta(gamma, method="quad")]  # closed form / compiled kernel, numpy rule
    for t in TS:
        xs = _xs(t)
        refs = [_symbeta_ref(gamma, x, t) for x in xs]
        for sh in shapes:
            lf, sc = sh.smooth(np.array(xs), t)
            for x, a, b, (rl, rs) in zip(xs, lf, sc, refs, strict=True):
                if rl < LOG_TINY:
                    continue
                assert abs(a - float(rl)) <= 1e-8, (sh, t, x, a, rl)
                rs = float(rs)
                assert abs(b - rs) <= 1e-7 * max(abs(rs), 1.0 / math.sqrt(t)), (sh, t, x, b, rs)


def test_laplace_smooth_vs_mpmath():
    sh = Laplace()
    for t in TS:
        st = math.sqrt(t)
        xs = [0.0, 0.6, -3.0, t, -t - 2.0 * st, 40.0, -300.0, 1.0 + 30 * st]
        lf, sc = sh.smooth(np.array(xs), t)
        for x, a, b in zip(xs, lf, sc, strict=True):
            # pieces at the kink 0, the Gaussian's centre x, the tilted peak x - sign(x) t and
            # +- 40 sqrt t around x; infinite tails handled by mp.quad's substitution
            pts = {-mp.inf, mp.inf, mp.mpf(0), mp.mpf(x), mp.mpf(x) - 40 * mp.sqrt(t),
                   mp.mpf(x) + 40 * mp.sqrt(t), mp.mpf(x) - math.copysign(t, x)}
            rl, rs = _ref(lambda y: -abs(y) - mp.log(2), x, t, sorted(pts))
            if rl < LOG_TINY:
                continue
            assert abs(a - float(rl)) <= 1e-8, (t, x, a, rl)
            assert abs(b - float(rs)) <= 1e-7 * max(abs(float(rs)), 1.0 / math.sqrt(t)), (t, x)


def test_gauss_smooth_vs_mpmath():
    sh = Gauss()
    for t in TS[::2]:
        xs = [0.0, 1.3, -25.0]
        lf, sc = sh.smooth(np.array(xs), t)
        for x, a, b in zip(xs, lf, sc, strict=True):
            pts = sorted({-mp.inf, mp.mpf(0), mp.mpf(x), mp.mpf(x) - 40 * mp.sqrt(t),
                          mp.mpf(x) + 40 * mp.sqrt(t), mp.inf})
            rl, rs = _ref(lambda y: -y * y / 2 - mp.log(2 * mp.pi) / 2, x, t, pts)
            assert abs(a - float(rl)) <= 1e-10
            assert abs(b - float(rs)) <= 1e-9 * max(abs(float(rs)), 1.0)


def _mp_pdf(sh):
    """The shape's density written independently in mpmath."""
    if isinstance(sh, Gauss):
        return lambda y: mp.exp(-y * y / 2) / mp.sqrt(2 * mp.pi)
    if isinstance(sh, Laplace):
        return lambda y: mp.exp(-abs(y)) / 2
    g = mp.mpf(sh.gamma)
    return lambda y: (1 - y * y) ** g / mp.beta(mp.mpf(1) / 2, g + 1) if abs(y) < 1 else 0


BASIC = [Gauss(), Laplace(), SymBeta(0.0), SymBeta(-0.3), SymBeta(0.25), SymBeta(1.5)]


@pytest.mark.parametrize("sh", BASIC, ids=repr)
def test_logpdf_cdf_sf_vs_mpmath(sh):
    """logpdf vs the formula; cdf = int of the pdf (mp.quad split at the support end and 0);
    sf(-x) = cdf(x) by symmetry; interval holds all but 1e-12."""
    f = _mp_pdf(sh)
    start = mp.mpf(sh.support[0]) if math.isfinite(sh.support[0]) else -mp.inf
    with mp.workdps(20):
        for x in (-0.99, -0.3, 0.0, 0.5, 0.999):
            assert float(sh.logpdf(np.array(x))) == pytest.approx(float(mp.log(f(mp.mpf(x)))),
                                                                  rel=1e-12, abs=1e-13)
            ref = float(mp.quad(f, sorted({start, mp.mpf(min(x, 0.0)), mp.mpf(x)})))
            assert float(sh.cdf(np.array(x))) == pytest.approx(ref, rel=1e-9, abs=1e-15)
            assert float(sh.sf(np.array(-x))) == pytest.approx(ref, rel=1e-9, abs=1e-15)
    lo, hi = sh.interval(1e-12)
    assert float(sh.cdf(np.array(lo)) + sh.sf(np.array(hi))) <= 1.0001e-12
    assert sh.support[0] <= lo < hi <= sh.support[1]


def test_sf_upper_tail_relative_accuracy():
    # closed forms: Gauss sf(x) = erfc(x/sqrt 2)/2, Laplace sf(x) = e^-x / 2; SymBeta(1)
    # sf(1 - e) = (3 e^2 - e^3) / 4 from integrating (3/4)(1 - y^2) over [1 - e, 1]
    e = 1e-6
    assert float(Gauss().sf(np.array(30.0))) == pytest.approx(float(mp.erfc(30 / mp.sqrt(2)) / 2),
                                                              rel=1e-12)
    assert float(Laplace().sf(np.array(600.0))) == pytest.approx(math.exp(-600) / 2, rel=1e-12)
    assert float(SymBeta(1.0).sf(np.array(1 - e))) == pytest.approx((3 * e**2 - e**3) / 4,
                                                                   rel=1e-8)


@pytest.mark.parametrize("sh", BASIC, ids=repr)
def test_sample_ks(sh):
    x = sh.sample(5000, seeding.rng("shape-ks", repr(sh)))
    assert x.shape == (5000,)
    assert stats.kstest(x, sh.cdf).pvalue > 1e-3


def test_smoothness_and_bad_gamma():
    assert SymBeta(0.7).smoothness == pytest.approx(1.2)
    assert Laplace().smoothness == 1.5 and Gauss().smoothness == math.inf
    for g in (-0.5, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="gamma"):
            SymBeta(g)
    with pytest.raises(ValueError, match="method"):
        SymBeta(1.0, method="bogus")
    for t in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="t must"):
            SymBeta(1.0).smooth(np.zeros(2), t)


@pytest.mark.parametrize("sh", [Gauss(), Laplace(), SymBeta(0.0), SymBeta(0.5),
                                SymBeta(-0.3)])
def test_smooth_extreme_queries_finite_and_symmetric(sh):
    x = np.array([[1e6, -1e6, 0.0], [3.0, -3.0, 1.0]])
    for t in (1e-12, 1e-6, 1.0, 1e6):
        lf, sc = sh.smooth(x, t)
        assert lf.shape == x.shape and sc.shape == x.shape
        assert np.all(np.isfinite(lf)) and np.all(np.isfinite(sc))
        lf2, sc2 = sh.smooth(-x, t)
        np.testing.assert_allclose(lf2, lf, rtol=1e-13)
        np.testing.assert_allclose(sc2, -sc, rtol=1e-13, atol=1e-300)
        assert sc[0, 0] < 0 < sc[0, 1]


def test_symbeta_blocks_do_not_change_values():
    x = np.linspace(-3, 3, 1001)
    a = SymBeta(0.8).smooth(x, 0.01)
    b = SymBeta(0.8, block=7).smooth(x, 0.01)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("gamma", [-0.3, 0.25, 1.5])
def test_symbeta_kernel_matches_numpy_rule(gamma):
    """The compiled kernel evaluates the same quadrature rule as the numpy reference."""
    r = seeding.rng("kernel-vs-numpy", gamma)
    x = np.concatenate([r.uniform(-3, 3, 3000), 1 + r.uniform(-1e-6, 1e-6, 300),
                        [0.0, 1.0, -1.0, 1e6, -1e6]])
    for t in (1e-12, 1e-6, 1e-3, 1.0, 1e4):
        la, sa = SymBeta(gamma).smooth(x, t)
        lb, sb = SymBeta(gamma, method="quad").smooth(x, t)
        np.testing.assert_allclose(la, lb, rtol=1e-13, atol=1e-10)
        np.testing.assert_allclose(sa, sb, rtol=1e-10, atol=1e-12 / math.sqrt(t))


@pytest.mark.parametrize("shape", [Gauss(), Laplace(), SymBeta(0.0), SymBeta(0.5),
                                   SymBeta(1.5)], ids=repr)
def test_a_shapes_own_facts_agree_with_quadrature(shape):
    """The facts the predictions read off a shape (self_overlap, features, edge_exponent)
    are its own: int f^2 by quadrature, and f is smooth away from its features."""
    from scipy import integrate

    lo, hi = shape.interval(1e-16)
    pts = [p for p in shape.features if lo < p < hi]
    want, _ = integrate.quad(lambda x: float(shape.pdf(np.array([x]))[0]) ** 2, lo, hi,
                             points=pts or None, limit=400, epsabs=0, epsrel=1e-12)
    assert shape.self_overlap() == pytest.approx(want, rel=1e-9)
    if shape.edge_exponent:
        x = np.array([0.999, 0.9999])  # f ~ (1 - x)^gamma at the right edge
        slope = np.diff(np.log(shape.pdf(x))) / np.diff(np.log(1 - x))
        assert slope[0] == pytest.approx(shape.edge_exponent, rel=1e-3)
