"""Numerics at the extremes (issue #11, item 6), shown by property-based tests (hypothesis).

For every registered estimator and engine backend and every ground-truth density: any
finite query (coordinates up to +-1e300, or down to 1e-300), t in [1e-12, 1e12], d up to
32, float32 or float64 data and queries, degenerate data (duplicated, identical,
clustered points) give finite outputs of the right shape and no exception but a clear
ValueError; NaN/Inf queries and t <= 0 or non-finite raise ValueError. Oracles for the
far-field values themselves: the exact nearest-point limit of the Gaussian sums, the
`numpy` backend for the overflow-free path on ordinary inputs, mpmath for the uniform
density's far-field form. Every random number comes from `seeding.rng`; hypothesis runs
derandomized, so the examples are the same on every run.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorerate.densities import DENSITIES, density
from scorerate.densities.shapes import SymBeta
from scorerate.engine import BACKENDS
from scorerate.engine.base import BIG, far_sums
from scorerate.estimators import ESTIMATORS, build
from scorerate.seeding import rng

GAUSSIAN_BACKENDS = ("auto", *sorted(BACKENDS))
#: examples per property: the whole file runs in about 30 s on 2 busy cores
EXAMPLES = 300
#: reproducible and bounded: the same examples every run, no example database on disk;
#: too_slow is suppressed because numba compiles the kernels on the first examples
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies
#: d from 1 to 32, weighted to small
dims = st.one_of(st.sampled_from([1, 1, 2, 2, 3]), st.integers(1, 8), st.integers(9, 32))
times = st.floats(-12.0, 12.0).map(lambda e: 10.0 ** e)
dtypes = st.sampled_from([np.float64, np.float32])
#: magnitudes of query coordinates: ordinary, huge (to 1e300) and tiny (to 1e-300)
magnitudes = st.one_of(st.floats(-2.0, 2.0), st.floats(100.0, 300.0), st.floats(-300.0, -100.0),
                       st.sampled_from([0.0, 154.0, 300.0])).map(lambda e: 10.0 ** e)


@st.composite
def training_sets(draw, d: int, dtype) -> np.ndarray:
    """n in [2, 50] points: random, duplicated, all identical or tightly clustered."""
    n = draw(st.integers(2, 50))
    kind = draw(st.sampled_from(["random", "duplicated", "identical", "clustered"]))
    centre = draw(st.sampled_from([0.0, 3.0, -1e3]))
    g = rng("test_extremes", "train", draw(st.integers(0, 2**16)), n, d, kind)
    if kind == "random":
        X = g.standard_normal((n, d))
    elif kind == "duplicated":
        half = g.standard_normal(((n + 1) // 2, d))
        X = np.concatenate([half, half])[:n]
    elif kind == "identical":
        X = np.tile(g.standard_normal(d), (n, 1))
    else:
        X = 1e-9 * g.standard_normal((n, d))
    return (X + centre).astype(dtype)


@st.composite
def query_sets(draw, d: int, dtype, X: np.ndarray) -> np.ndarray:
    """1 to 6 finite queries: on a data point, or coordinates of random sign and a magnitude
    drawn from `magnitudes` (huge, tiny, ordinary; per query or per coordinate)."""
    k = draw(st.integers(1, 6))
    g = rng("test_extremes", "queries", draw(st.integers(0, 2**16)), k, d)
    rows = []
    for _ in range(k):
        kind = draw(st.sampled_from(["data", "uniform", "mixed"]))
        if kind == "data":
            rows.append(X[g.integers(len(X))].astype(np.float64))
            continue
        sign = g.choice([-1.0, 1.0], size=d)
        if kind == "uniform":
            rows.append(sign * draw(magnitudes))
        else:
            rows.append(sign * np.array([draw(magnitudes) for _ in range(min(d, 4))]
                                        + [1.0] * (d - min(d, 4))))
    x = np.array(rows)
    if dtype == np.float32:  # float32 holds |x| <= 3.4e38 only
        x = np.clip(x, -1e38, 1e38)
    return x.astype(dtype)


@st.composite
def cases(draw):
    d = draw(dims)
    dtype = draw(dtypes)
    X = draw(training_sets(d, dtype))
    return d, dtype, X, draw(query_sets(d, dtype, X)), draw(times)


# ------------------------------------------------------------------ properties
@SETTINGS
@given(case=cases(), name=st.sampled_from(sorted(ESTIMATORS)),
       backend=st.sampled_from(GAUSSIAN_BACKENDS))
def test_estimators_finite_everywhere(case, name, backend):
    d, dtype, X, x, t = case
    params = {"backend": backend} if "backend" in ESTIMATORS[name].options else {}
    est = build(name, X, params)
    try:
        s = est.score(x, t)
    except ValueError as e:
        # forcing `binned` in d > 2, or where its grid cannot meet rtol, is a clear error
        # (auto never picks it there)
        assert params.get("backend") == "binned"
        assert "cannot meet rtol" in str(e) or "d <= 2" in str(e)
        return
    assert s.shape == (len(x), d) and s.dtype == np.float64
    assert np.all(np.isfinite(s)), (name, backend, t, x)
    p, g = est.density(x, t), est.grad_density(x, t)
    assert p.shape == (len(x),) and g.shape == (len(x), d)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(g))


@SETTINGS
@given(case=cases(), name=st.sampled_from(sorted(BACKENDS)))
def test_backends_finite_and_mean_in_the_data_box(case, name):
    d, dtype, X, x, t = case
    X = X.astype(np.float64)
    if name == "binned" and d > 2:
        return
    try:
        logp, mean = BACKENDS[name](X, 1e-4 if name == "dense32" else 1e-6).sums(x, t)
    except ValueError as e:
        assert name == "binned" and "cannot meet rtol" in str(e)
        return
    assert logp.shape == (len(x),) and mean.shape == (len(x), d)
    assert np.all(np.isfinite(logp)) and np.all(np.isfinite(mean))
    # p̂_t <= (2 pi t)^(-d/2); the mean is a convex combination of the data
    assert np.all(logp <= -0.5 * d * math.log(2 * math.pi * t) + 1e-9 * (1 + abs(logp)))
    lo, hi = X.min(0), X.max(0)
    slack = 1e-6 * (1.0 + np.maximum(np.abs(lo), np.abs(hi)))  # dense32's float32 rounding
    if name in ("binned", "cutoff"):
        # they promise the mean to rtol max(|mean - x|, sqrt t) only (engine.dispatch):
        # cutoff forms it as x + (mean - x), which keeps ~1e-16 |x| of absolute error
        slack = slack + 3e-6 * (math.sqrt(t) + np.abs(x.astype(np.float64) - mean))
    assert np.all(mean >= lo - slack) and np.all(mean <= hi + slack)


@SETTINGS
@given(name=st.sampled_from(sorted(DENSITIES)), beta=st.sampled_from([0.5, 1.0, 1.4]),
       d=dims, t=times, dtype=dtypes, mags=st.lists(magnitudes, min_size=1, max_size=6),
       seed=st.integers(0, 2**16))
def test_densities_finite_everywhere(name, beta, d, t, dtype, mags, seed):
    p0 = density(name, beta, d)
    g = rng("test_extremes", "density-queries", seed, d)
    x = np.array([g.choice([-1.0, 1.0], size=d) * m for m in mags])
    if dtype == np.float32:
        x = np.clip(x, -1e38, 1e38)
    x = x.astype(dtype)
    s, lp = p0.score_t(x, t), p0.logpdf_t(x, t)
    assert s.shape == (len(x), d) and lp.shape == (len(x),)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(lp))
    assert np.all(np.isfinite(p0.pdf_t(x, t)))


# ------------------------------------------------------------------ invalid input
BAD_QUERIES = [np.nan, np.inf, -np.inf]
BAD_TIMES = [0.0, -1.0, np.nan, np.inf, -np.inf]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimators_refuse_nonfinite_queries_and_bad_t(name):
    X = rng("test_extremes", "bad", name).standard_normal((10, 2))
    est = build(name, X, {})
    for bad in BAD_QUERIES:
        with pytest.raises(ValueError, match="NaN or Inf"):
            est.score(np.array([[0.0, bad]]), 1.0)
    for t in BAD_TIMES:
        with pytest.raises(ValueError, match="t must be"):
            est.score(np.zeros((1, 2)), t)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backends_refuse_nonfinite_queries_and_bad_t(name):
    b = BACKENDS[name](rng("test_extremes", "bad-be", name).standard_normal((10, 2)))
    for bad in BAD_QUERIES:
        with pytest.raises(ValueError, match="NaN or Inf"):
            b.sums(np.array([[bad, 0.0]]), 1.0)
    for t in BAD_TIMES:
        with pytest.raises(ValueError, match="t must be"):
            b.sums(np.zeros((1, 2)), t)


@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_densities_refuse_nonfinite_queries_and_bad_t(name):
    p0 = density(name, 1.0, 2)
    for bad in BAD_QUERIES:
        for f in (p0.score_t, p0.logpdf_t, p0.pdf_t):
            with pytest.raises(ValueError, match="NaN or Inf"):
                f(np.array([[bad, 0.0]]), 1.0)
    for t in BAD_TIMES:
        with pytest.raises(ValueError, match="time t"):
            p0.score_t(np.zeros((1, 2)), t)


# ------------------------------------------------------------------ far-field values
@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("t", [1e-12, 1.0, 1e12])
def test_far_queries_weigh_only_the_nearest_point(name, t):
    """At x = +-1e300 e_1 every weight but the nearest point's underflows: mean = that point
    exactly, logp clipped to -BIG at small t, and the score (X_near - x)/t clipped to
    +-BIG where it overflows."""
    X = rng("test_extremes", "far", 1).standard_normal((30, 2))
    x = np.array([[1e300, 0.0], [-1e300, 0.0], [1e200, -1e200]])
    _, mean = BACKENDS[name](X).sums(x, t)
    near = [np.argmin(X[:, 0]) if row[0] < 0 else np.argmax(X[:, 0] - X[:, 1]) if row[1] < 0
            else np.argmax(X[:, 0]) for row in x]
    np.testing.assert_array_equal(mean, X[near])
    s = build("empirical", X, {"backend": name}).score(x, t)
    with np.errstate(over="ignore"):
        expect = np.clip((X[near] - x) / t, -BIG, BIG)
    np.testing.assert_allclose(s, expect, rtol=1e-15)


@pytest.mark.parametrize("t", [1e-3, 0.5, 20.0])
def test_far_path_agrees_with_the_numpy_backend_on_ordinary_queries(t):
    """The overflow-free path is exact: on ordinary data and queries it matches the
    reference log-sum-exp to rounding (1e-12), logp and mean, in d = 1, 3, 16."""
    for d in (1, 3, 16):
        g = rng("test_extremes", "far-vs-numpy", d, t)
        X = g.standard_normal((200, d))
        x = np.concatenate([X[:20] + math.sqrt(t) * g.standard_normal((20, d)),
                            3.0 * g.standard_normal((20, d))])
        lp, mu = far_sums(X, x, t)
        ref_lp, ref_mu = BACKENDS["numpy"](X).sums(x, t)
        np.testing.assert_allclose(lp, ref_lp, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mu, ref_mu, rtol=0, atol=1e-12 * (1 + np.abs(ref_mu)).max())


def test_ordinary_queries_never_take_the_far_path(monkeypatch):
    """A study's queries (|x| <= 1e6, t >= 1e-12) stay on each backend's own path, so its
    numbers are those it gave before the far path existed."""
    import scorerate.engine.base as base

    def boom(*args):
        raise AssertionError("far path used")

    monkeypatch.setattr(base, "far_sums", boom)
    X = rng("test_extremes", "ordinary").standard_normal((50, 2))
    x = np.array([[1e6, -1e6], [0.0, 0.0], [3.0, 1e-300]])
    for name in BACKENDS:
        for t in (1e-12, 1.0, 1e12):
            if name == "binned" and t < 1e-4:
                continue  # its grid cannot meet rtol there
            BACKENDS[name](X).sums(x, t)


@pytest.mark.parametrize("x", [2.0**26, 1e8, -1e12, 1e20, 3e25])
@pytest.mark.parametrize("t", [1e-6, 1.0, 1e12])
def test_uniform_far_field_vs_mpmath(x, t):
    """The uniform shape's far-field form (|x| >= 2^26) against 120-digit mpmath:
    f_t = (Phi((1 - x)/sqrt t) - Phi((-1 - x)/sqrt t))/2 and its log-derivative."""
    mpmath.mp.dps = 120
    xm, s = mpmath.mpf(x), mpmath.sqrt(mpmath.mpf(t))
    a, b = (abs(xm) - 1) / s, (abs(xm) + 1) / s
    f = (mpmath.erfc(a / mpmath.sqrt(2)) - mpmath.erfc(b / mpmath.sqrt(2))) / 4
    score = (mpmath.npdf(b) - mpmath.npdf(a)) / (2 * s) / f * mpmath.sign(xm)
    lf, sc = SymBeta(0.0).smooth(np.array([x]), t)
    assert abs(lf[0] / float(mpmath.log(f)) - 1) < 1e-13
    assert abs(sc[0] / float(score) - 1) < 1e-10


def test_highorder_and_cutoff_in_high_d_write_nothing_to_stderr(capfd):
    """d = 16 and 32 with queries 1e154 and 1e300 away: finite, and no thread tracebacks
    (cKDTree used to overflow inside its worker threads and print them)."""
    for d in (16, 32):
        X = rng("test_extremes", "stderr", d).standard_normal((40, d))
        x = np.stack([np.full(d, 1e154), -np.full(d, 1e300), X[0],
                      np.where(np.arange(d) % 2 == 0, 1e300, -1e300)])
        for t in (1e-12, 1.0, 1e12):
            for name, params in (("highorder", {}), ("truncated", {"backend": "cutoff"})):
                assert np.all(np.isfinite(build(name, X, params).score(x, t)))
    out = capfd.readouterr()
    assert out.err == ""
