"""One suite run over every registered estimator, density and engine backend (benchopt-style).

A new estimator, density or backend is tested by being registered. Oracles: a direct NumPy
log-sum-exp for the Gaussian estimators, the `numpy` backend for the others, and the
contracts themselves (finite, shaped, reproducible bit for bit, picklable).
"""

from __future__ import annotations

import math
import pickle
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import logsumexp

from scorerate import theory
from scorerate.densities import DENSITIES, Density, density
from scorerate.engine import BACKENDS
from scorerate.estimators import ESTIMATORS, ScoreEstimator, build, resolve
from scorerate.seeding import rng

D = 2
TIMES = (1e-10, 1e-3, 0.5, 1e6)


def _train(n=200, d=D, key="train"):
    return rng("test_contracts", key, n, d).standard_normal((n, d))


def _queries(d=D):
    near = rng("test_contracts", "q", d).standard_normal((40, d))
    far = np.array([[1e6] * d, [-1e6] + [3e5] * (d - 1), [50.0] * d])
    return np.concatenate([near, far])


# ---------------------------------------------------------------- estimators
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_contract(name):
    X, x = _train(), _queries()
    est = build(name, X, {"backend": "dense"} if "backend" in resolve(name).options else {})
    assert isinstance(est, ScoreEstimator)
    copy = pickle.loads(pickle.dumps(est))
    for t in TIMES:
        s = est.score(x, t)
        assert s.shape == x.shape and s.dtype == np.float64
        assert np.all(np.isfinite(s)), (name, t)
        np.testing.assert_array_equal(s, est.score(x, t))  # reproducible
        np.testing.assert_array_equal(s, copy.score(x, t))  # pickling round trip
        np.testing.assert_array_equal(s, build(name, X, {"backend": "dense"}).score(x, t))


def _lse_score(X, x, t):
    """log p̂_t and the untruncated score by a direct (m, n) NumPy log-sum-exp."""
    n, d = X.shape
    logits = -((x[:, None, :] - X[None]) ** 2).sum(-1) / (2 * t)
    logp = logsumexp(logits, axis=1) - math.log(n) - 0.5 * d * math.log(2 * math.pi * t)
    w = np.exp(logits - logits.max(1, keepdims=True))
    return logp, ((w @ X) / w.sum(1, keepdims=True) - x) / t


@pytest.mark.parametrize("name", [n for n in ESTIMATORS if "backend" in ESTIMATORS[n].options])
@pytest.mark.parametrize("t", [1e-3, 0.5, 20.0])
def test_gaussian_estimators_vs_direct_logsumexp(name, t):
    X, x = _train(), _queries()[:40]
    est = build(name, X, {"backend": "dense", "c_rho": 1.0, "eps": 1e-3})
    logp, s = _lse_score(X, x, t)
    if name == "truncated":
        s[~(logp > theory.log_rho_n(len(X), t, D, 1.0))] = 0.0
    elif name == "regularized":
        s *= np.exp(np.minimum(0.0, logp - math.log(1e-3)))[:, None]
    scale = np.maximum(np.abs(s), 1 / math.sqrt(t))
    assert np.max(np.abs(est.score(x, t) - s) / scale) < 1e-9
    np.testing.assert_allclose(est.density(x, t), np.exp(logp), rtol=1e-9, atol=0)


def test_unknown_estimator_lists_valid_names():
    with pytest.raises(ValueError, match="truncated.*highorder"):
        resolve("kde")
    with pytest.raises(ValueError, match="cannot import"):
        resolve("no_such_module_xyz:Thing")


def test_plugin_estimator_by_import_path(tmp_path, monkeypatch):
    # a researcher's own estimator, in a module the package knows nothing of
    (tmp_path / "myscores_ct.py").write_text(textwrap.dedent('''
        import numpy as np

        class ShrunkScore:
            """score of N(mean(X), (var(X) + t) I), shrunk by `alpha`."""
            options = ("alpha",)

            def __init__(self, X, alpha=1.0):
                self.mu, self.v, self.alpha = X.mean(0), X.var(), float(alpha)

            def score(self, x, t):
                return self.alpha * (self.mu - np.asarray(x)) / (self.v + t)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    f = resolve("myscores_ct:ShrunkScore")
    assert f.__name__ == "ShrunkScore"
    X, x = _train(), _queries()[:5]
    est = build("myscores_ct:ShrunkScore", X, {"alpha": 0.5, "c_rho": 2.0})  # c_rho not taken
    np.testing.assert_allclose(est.score(x, 1.0), 0.5 * (X.mean(0) - x) / (X.var() + 1.0))
    with pytest.raises(ValueError, match="not callable"):
        resolve("myscores_ct:np.pi")
    sys.modules.pop("myscores_ct", None)


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        ESTIMATORS.register("truncated", lambda X: None)


# ---------------------------------------------------------------- densities
CASES = [(name, 1.0) for name in DENSITIES]


@pytest.mark.parametrize("name, beta", CASES)
def test_density_contract(name, beta):
    p0 = density(name, beta=beta, d=D)
    assert isinstance(p0, Density) and p0.d == D
    a = p0.sample(300, rng=rng("test_contracts", name))
    assert a.shape == (300, D) and a.dtype == np.float64 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, p0.sample(300, rng=rng("test_contracts", name)))
    x = _queries()
    for t in TIMES:
        s, p = p0.score_t(x, t), p0.pdf_t(x, t)
        assert s.shape == x.shape and p.shape == (len(x),)
        assert np.all(np.isfinite(s)) and np.all(np.isfinite(p)) and np.all(p >= 0)
    lp = p0.logpdf(a)
    assert lp.shape == (300,) and np.all(np.isfinite(lp))
    copy = pickle.loads(pickle.dumps(p0))
    np.testing.assert_array_equal(copy.score_t(x, 0.5), p0.score_t(x, 0.5))
    # the score is grad log p_t: central differences of log pdf_t at in-support points
    h, t = 1e-5, 0.5
    for k in range(D):
        e = np.zeros(D)
        e[k] = h
        fd = (np.log(p0.pdf_t(a[:20] + e, t)) - np.log(p0.pdf_t(a[:20] - e, t))) / (2 * h)
        np.testing.assert_allclose(p0.score_t(a[:20], t)[:, k], fd, rtol=1e-5, atol=1e-6)


def test_plugin_density_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "mydens_ct.py").write_text(textwrap.dedent('''
        import numpy as np

        class Iso:
            """N(0, beta I_d), with only the members the Density protocol requires."""
            def __init__(self, beta, d):
                self.v, self.d = beta, d

            def sample(self, n, *, rng):
                return np.sqrt(self.v) * rng.standard_normal((n, self.d))

            def logpdf(self, x):
                return -0.5 * (x ** 2).sum(1) / self.v - 0.5 * self.d * np.log(2 * np.pi * self.v)

            def pdf_t(self, x, t):
                v = self.v + t
                return np.exp(-0.5 * (x ** 2).sum(1) / v) / (2 * np.pi * v) ** (self.d / 2)

            def score_t(self, x, t):
                return -x / (self.v + t)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    p0 = density("mydens_ct:Iso", beta=2.0, d=3)
    assert isinstance(p0, Density) and p0.d == 3
    np.testing.assert_allclose(p0.score_t(np.ones((1, 3)), 1.0), -np.ones((1, 3)) / 3)
    with pytest.raises(ValueError, match="beta"):
        density("mydens_ct:Iso", beta=-1.0, d=3)
    with pytest.raises(ValueError, match="sym_beta"):
        density("no_such_density", beta=1.0, d=1)
    sys.modules.pop("mydens_ct", None)


# ---------------------------------------------------------------- engine backends
@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.parametrize("t", [1e-3, 0.5, 20.0])
def test_backend_contract_vs_numpy(name, t):
    X = _train(500, key="be")
    x = np.concatenate([X[:30] + math.sqrt(t) * rng("test_contracts", "jit", t).standard_normal(
        (30, D)), _queries()])  # queries near the data, where the tolerance applies, and far
    rtol = 1e-4 if name == "dense32" else 1e-6
    span = X.max(0) - X.min(0)
    cost = BACKENDS[name].cost(len(X), len(x), D, t, rtol, span)
    assert cost is None or (math.isfinite(cost) and cost > 0)
    if name == "binned" and cost is None:
        pytest.skip(reason="binned cannot meet rtol here (its own cost model says so)")
    b = BACKENDS[name](X, rtol)
    lp, mu = b.sums(x, t)
    assert lp.shape == (len(x),) and mu.shape == x.shape
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(mu))
    lp2, mu2 = pickle.loads(pickle.dumps(b)).sums(x, t)
    np.testing.assert_array_equal(lp, lp2)
    np.testing.assert_array_equal(mu, mu2)
    ref_lp, ref_mu = BACKENDS["numpy"](X).sums(x, t)
    # where p̂ >= rho_n the tolerance holds; down to e^-10 rho_n so small t is tested too
    above = ref_lp >= -math.log(len(X)) - 0.5 * D * math.log(t) - 10.0
    assert above.sum() >= 20
    tol = 3 * (1e-5 if name == "dense32" else rtol)
    assert np.max(np.abs(np.expm1(lp[above] - ref_lp[above]))) < tol
    scale = np.maximum(np.linalg.norm(ref_mu - x, axis=1), math.sqrt(t))[above]
    assert np.max(np.linalg.norm(mu - ref_mu, axis=1)[above] / scale) < tol
