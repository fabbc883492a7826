"""Finite-n predictions for the ideal output p̂_t0 (Gaussian KDE of n draws, bandwidth sqrt t0).

The theorems give upper bounds on the rate; a given density at a given n can do better, and
the Gaussian kernel's bias bends the local slope. These predictions are parameter-free:

- E||p̂_t0 - p0||_2^2 = ||p_t0 - p0||^2 + ((4 pi t0)^(-d/2) - ||p_t0||^2) / n, exactly, with
  ||p_t0 - p0||^2 = I(2 t0) - 2 I(t0) + I(0), ||p_t0||^2 = I(2 t0), I(s) = int p_s p0: a sum
  over component pairs of products of 1-D integrals int (f_a smoothed by s) f_b (scipy quad
  with algebraic end weights for SymBeta, ~1e-10 relative; closed form for Gaussian pairs).
- E TV(p0, p̂_t0) = 1/2 int E|p̂(x) - p0(x)| dx with p̂(x) ~ N(p_t0(x), v(x) / n),
  v(x) = (4 pi t0)^(-d/2) p_{t0/2}(x) - p_t0(x)^2 (its exact mean and variance), and
  E|N(m, s^2)| = m (2 Phi(m/s) - 1) + 2 s phi(m/s). The x integral is a composite
  Gauss-Legendre rule (pieces graded to sqrt(t0) at every support edge and kink) in d = 1,
  its tensor product in d = 2 (the density is a sum of products, so the grid values are
  outer products of 1-D values), and importance-sampled Monte Carlo for d >= 3 (draws from
  q = (p0 + p_t0)/2, which bounds the integrand by 2; fixed seed, standard error returned).

The score MSE's zero-region part of an estimate that truncates (score_mse_zero) has its
own prediction, scorerate.study.zero_region, stored here as score_mse_zero_pred.

The study's l2 metric estimates ||p̂ - p0||_2, not its square: `predict` reports
sqrt(E||.||^2), which exceeds E||.||_2 by Jensen; the gap is Var||.|| / (2 E||.||) to first
order, small once the L2 distance concentrates (relative spread of order n^-1/2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import integrate, special

from .. import seeding
from ..config.file import POINT_DIMS
from ..densities import ProductMixture, _overlap
from ..densities.shapes import Shape
from ..theory import t0_early_stop
from .coverage import points_with_run

__all__ = ["expected_l2_sq", "expected_tv", "predict", "prediction_dataset",
           "smoothed_overlap"]

_NODES = 10  # Gauss-Legendre nodes per piece of the TV rule
_GL = np.polynomial.legendre.leggauss(_NODES)


def _scaled_pdf_t(shape: Shape, mu: float, sigma: float, x: np.ndarray, t: float) -> np.ndarray:
    """sigma^-1 S((x - mu)/sigma) smoothed by N(0, t) (t = 0: unsmoothed)."""
    u = (np.asarray(x, dtype=np.float64) - mu) / sigma
    if t == 0.0:
        return np.exp(shape.logpdf(u)) / sigma
    return np.exp(shape.smooth(u, t / (sigma * sigma))[0]) / sigma


def _features(shape: Shape, mu: float, sigma: float) -> list[float]:
    """Points where the scaled shape is not smooth (Shape.features, scaled)."""
    return [mu + sigma * f for f in shape.features]


def smoothed_overlap(sa: Shape, ma: float, ca: float, sb: Shape, mb: float, cb: float,
                     s: float) -> float:
    """int (f_a * N(0, s))(x) f_b(x) dx for 1-D scaled shapes f = c^-1 S((x - m)/c).

    s = 0 is densities._overlap; Gaussian pairs are closed form; otherwise scipy quad over
    f_b's support, cut at f_a's edges +- (1, 4) sqrt(s) and f_b's kinks, with algebraic
    end weights (x - lo)^g (hi - x)^g for a SymBeta f_b (exact for its edge singularity).
    Accuracy ~1e-10 relative (the shapes' smoothing is). Cost: a few hundred smooth() calls.
    """
    s = float(s)
    if s == 0.0:
        return _overlap(sa, ma, ca, sb, mb, cb)
    if sa.gaussian and sb.gaussian:
        v = ca * ca + cb * cb + s
        return math.exp(-0.5 * (ma - mb) ** 2 / v) / math.sqrt(2.0 * math.pi * v)
    la, ha = sb.interval(1e-16)
    lo, hi = mb + cb * la, mb + cb * ha
    rs = math.sqrt(s)
    pts = set(_features(sb, mb, cb))
    for e in _features(sa, ma, ca):
        pts.update(e + k * rs for k in (-4.0, -1.0, 0.0, 1.0, 4.0))
    edges = [lo, *sorted(p for p in pts if lo < p < hi), hi]

    def fa(x: float) -> float:
        return float(_scaled_pdf_t(sa, ma, ca, np.array([x]), s)[0])

    g = sb.edge_exponent
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if g != 0.0:
            left, right = a == lo, b == hi
            c = math.exp(sb.log_norm) / cb ** (1.0 + 2.0 * g)
            if left or right:
                def fun(x, left=left, right=right, c=c):
                    fac = 1.0 if left else (x - lo) ** g
                    fac *= 1.0 if right else (hi - x) ** g
                    return c * fac * fa(x)
                val, _ = integrate.quad(fun, a, b, weight="alg",
                                        wvar=(g if left else 0.0, g if right else 0.0),
                                        limit=200, epsabs=0.0, epsrel=1e-12)
            else:
                def fun(x, c=c):
                    return c * ((x - lo) * (hi - x)) ** g * fa(x)
                val, _ = integrate.quad(fun, a, b, limit=200, epsabs=0.0, epsrel=1e-12)
        else:
            def fun(x):
                return float(_scaled_pdf_t(sb, mb, cb, np.array([x]), 0.0)[0]) * fa(x)
            val, _ = integrate.quad(fun, a, b, limit=200, epsabs=0.0, epsrel=1e-12)
        total += val
    return float(total)


def _cross(p0: ProductMixture, s: float) -> float:
    """I(s) = int p_s p0 = sum_ab w_a w_b prod_j int f_aj,s f_bj."""
    K = len(p0.weights)
    tot = 0.0
    memo: dict[tuple, float] = {}
    for a in range(K):
        for b in range(K):
            prod = 1.0
            for j in range(p0.d):
                key = (id(p0.shapes[a][j]), p0.loc[a, j], p0.scale[a, j],
                       id(p0.shapes[b][j]), p0.loc[b, j], p0.scale[b, j])
                if key not in memo:
                    memo[key] = smoothed_overlap(p0.shapes[a][j], p0.loc[a, j], p0.scale[a, j],
                                                 p0.shapes[b][j], p0.loc[b, j], p0.scale[b, j],
                                                 s)
                prod *= memo[key]
            tot += p0.weights[a] * p0.weights[b] * prod
    return float(tot)


def _check(t0: float, n: float) -> tuple[float, float]:
    t0, n = float(t0), float(n)
    if not (t0 > 0 and math.isfinite(t0)):
        raise ValueError(f"t0 must be a finite number > 0, got {t0!r}")
    if not (n >= 1 and math.isfinite(n)):
        raise ValueError(f"n must be a finite number >= 1, got {n!r}")
    return t0, n


def expected_l2_sq(p0: ProductMixture, t0: float, n: float) -> dict:
    """E||p̂_t0 - p0||_2^2 for the Gaussian KDE of n draws of p0, exactly (no approximation).

    Returns a dict: total, bias_sq (||p_t0 - p0||^2), variance
    (((4 pi t0)^(-d/2) - ||p_t0||^2) / n) and bias_share (bias_sq / total).
    Cost: 3 sums over component pairs of d 1-D quadratures (a fraction of a second).
    """
    t0, n = _check(t0, n)
    i0, i1, i2 = p0.l2_norm_sq(), _cross(p0, t0), _cross(p0, 2.0 * t0)
    bias_sq = max(i2 - 2.0 * i1 + i0, 0.0)
    var = ((4.0 * math.pi * t0) ** (-0.5 * p0.d) - i2) / n
    total = bias_sq + var
    return {"total": total, "bias_sq": bias_sq, "variance": var, "bias_share": bias_sq / total}


def _axis_rule(p0: ProductMixture, j: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on axis j, graded to sqrt(t0) at features."""
    rs = math.sqrt(t0)
    lo, hi = p0.support_box()
    a, b = lo[j] - 12.0 * rs, hi[j] + 12.0 * rs
    pts = set(np.linspace(a, b, max(16, int(math.ceil((b - a) / rs))) + 1))
    grade = np.concatenate([-(2.0 ** np.arange(-6, 4)), [0.0], 2.0 ** np.arange(-6, 4)]) * rs
    for k in range(len(p0.weights)):
        for e in _features(p0.shapes[k][j], p0.loc[k, j], p0.scale[k, j]):
            pts.update(e + grade)
    br = np.array(sorted(p for p in pts if a <= p <= b))
    half = 0.5 * np.diff(br)
    mid = 0.5 * (br[1:] + br[:-1])
    x = (mid[:, None] + half[:, None] * _GL[0][None, :]).ravel()
    w = (half[:, None] * _GL[1][None, :]).ravel()
    return x, w


def _grid_pdf(p0: ProductMixture, axes: list[np.ndarray], t: float) -> np.ndarray:
    """p_t on the tensor grid of `axes` (sum over components of outer products)."""
    out = np.zeros(tuple(len(x) for x in axes))
    for k, w in enumerate(p0.weights):
        term = np.array(w)
        for j, x in enumerate(axes):
            f = _scaled_pdf_t(p0.shapes[k][j], p0.loc[k, j], p0.scale[k, j], x, t)
            term = np.multiply.outer(term, f)
        out += term
    return out


def _mean_abs_normal(m: np.ndarray, var: np.ndarray) -> np.ndarray:
    """E|N(m, var)| = m (2 Phi(m/s) - 1) + 2 s phi(m/s); |m| where var = 0."""
    s = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = m / s
        val = m * (2.0 * special.ndtr(z) - 1.0) + 2.0 * s * np.exp(-0.5 * z * z) / math.sqrt(
            2.0 * math.pi)
    return np.where(s > 0, val, np.abs(m))


def _tv_terms(p0v: np.ndarray, pt: np.ndarray, ph: np.ndarray, t0: float, n: float,
              d: int) -> tuple[np.ndarray, np.ndarray]:
    var = ((4.0 * math.pi * t0) ** (-0.5 * d) * ph - pt * pt) / n
    return _mean_abs_normal(pt - p0v, var), np.abs(pt - p0v)


def expected_tv(p0: ProductMixture, t0: float, n: float, *, method: str = "auto",
                n_mc: int = 200_000, key: Sequence[object] = ()) -> dict:
    """E TV(p0, p̂_t0) by the pointwise normal approximation of p̂(x), and the bias-only TV.

    Returns a dict: tv (1/2 int E|p̂ - p0|), tv_bias (||p_t0 - p0||_1 / 2), se (their
    Monte Carlo standard errors, 0 for quadrature) and method ("quadrature" d = 1,
    "tensor grid" d = 2, "importance sampling" d >= 3 with n_mc draws from the stream
    seeding.rng("prediction-tv", name, beta, d, *key): the same draws for every t0 and n, so
    predicted slopes carry little of the MC noise). method "grid" / "importance" forces one
    route ("auto": grid for d <= 2). Cost: O(sqrt(t0)^-d) density values for
    d <= 2 (about 1e3 per axis at t0 = 1e-4), O(n_mc) for d >= 3.
    """
    t0, n = _check(t0, n)
    d = p0.d
    if method not in ("auto", "grid", "importance"):
        raise ValueError(f"method must be 'auto', 'grid' or 'importance', got {method!r}")
    if method == "grid" or (method == "auto" and d <= 2):
        rules = [_axis_rule(p0, j, t0) for j in range(d)]
        axes = [r[0] for r in rules]
        w = rules[0][1]
        for r in rules[1:]:
            w = np.multiply.outer(w, r[1])
        e_abs, bias = _tv_terms(_grid_pdf(p0, axes, 0.0), _grid_pdf(p0, axes, t0),
                                _grid_pdf(p0, axes, 0.5 * t0), t0, n, d)
        return {"tv": 0.5 * float((w * e_abs).sum()), "tv_bias": 0.5 * float((w * bias).sum()),
                "se": 0.0, "se_bias": 0.0, "method": "quadrature" if d == 1 else "tensor grid"}
    g = seeding.rng("prediction-tv", p0.name, p0.beta, d, *key)
    x = p0.sample(int(n_mc), rng=g)
    z = g.standard_normal(x.shape)
    smooth = g.random(x.shape[0]) < 0.5
    x = x + np.where(smooth[:, None], math.sqrt(t0) * z, 0.0)
    p0v = p0.pdf(x)
    pt = p0.pdf_t(x, t0)
    q = 0.5 * (p0v + pt)
    e_abs, bias = _tv_terms(p0v, pt, p0.pdf_t(x, 0.5 * t0), t0, n, d)
    fa, fb = 0.5 * e_abs / q, 0.5 * bias / q
    sq = math.sqrt(x.shape[0])
    return {"tv": float(fa.mean()), "tv_bias": float(fb.mean()), "se": float(fa.std() / sq),
            "se_bias": float(fb.std() / sq), "method": "importance sampling"}


def _local_slopes(ns: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d log y / d log n at each n (centred differences; one-sided at the ends)."""
    if len(ns) < 2:
        return np.full(len(ns), np.nan)
    return np.gradient(np.log(y), np.log(ns))


def predict(p0: ProductMixture, ns: Sequence[float], t0s: Sequence[float] | None = None,
            **tv_kw) -> dict:
    """Predicted E TV and sqrt(E L2^2) of p̂_t0 at every n, with their local slopes in n.

    t0s defaults to the theory's n^(-2/(2 beta + d)). Returns arrays keyed n, t0, tv,
    tv_bias, tv_se, l2 (sqrt(E||p̂ - p0||_2^2), an upper bound on E||.||_2 by Jensen),
    l2_bias (||p_t0 - p0||_2), l2_bias_share (bias^2 / E||.||^2), and slope_tv, slope_l2
    (d log / d log n by finite differences over the given n).
    """
    ns = np.asarray(ns, dtype=np.float64)
    t0s = (np.array([t0_early_stop(int(v), p0.beta, p0.d) for v in ns]) if t0s is None
           else np.asarray(t0s, dtype=np.float64))
    if t0s.shape != ns.shape:
        raise ValueError("t0s must have one value per n")
    tv, tvb, tvse, l2, l2b, share = (np.empty(len(ns)) for _ in range(6))
    for i, (n, t0) in enumerate(zip(ns, t0s, strict=True)):
        e = expected_l2_sq(p0, t0, n)
        r = expected_tv(p0, t0, n, **tv_kw)
        tv[i], tvb[i], tvse[i] = r["tv"], r["tv_bias"], r["se"]
        l2[i], l2b[i], share[i] = math.sqrt(e["total"]), math.sqrt(e["bias_sq"]), e["bias_share"]
    return {"n": ns, "t0": t0s, "tv": tv, "tv_bias": tvb, "tv_se": tvse, "l2": l2,
            "l2_bias": l2b, "l2_bias_share": share, "slope_tv": _local_slopes(ns, tv),
            "slope_l2": _local_slopes(ns, l2)}


def prediction_dataset(study, density_factory=None, jobs=None):
    """The study variables of scorerate.store.variables.STUDY_VARIABLES over (density, beta, d, n)
    (and estimator, t for the zero-region prediction of scorerate.study.zero_region).

    Predictions at each job's t0 (the study's t0 variable, mean over seeds; the theory's
    t0 where absent), only where `jobs` (a boolean (density, beta, d, n) array; default
    `coverage.points_with_run(study)`) is True: a ragged study's absent points stay NaN
    and cost nothing. Cells whose density the factory refuses, or that lack the product structure
    the integrals need, stay NaN. Cost: one `predict` per cell, over the n it has.
    """
    import xarray as xr

    from ..store.variables import STUDY_VARIABLES

    if density_factory is None:
        from ..densities import density as density_factory
    ns = study["n"].values.astype(float)
    coords = {k: study[k].values for k in POINT_DIMS}
    shape = tuple(len(v) for v in coords.values())
    have = points_with_run(study) if jobs is None else np.asarray(jobs, dtype=bool)
    if have.shape != shape:
        raise ValueError(f"jobs mask has shape {have.shape}, the study's cells {shape}")
    extra = {k: study[k].values for v in STUDY_VARIABLES for k in v.dims
             if k not in POINT_DIMS and k in study.coords}
    data = {v.name: np.full(tuple(len({**coords, **extra}[k]) for k in v.dims), np.nan)
            for v in STUDY_VARIABLES if all(k in coords or k in extra for k in v.dims)}
    params = _estimator_params(study.attrs)
    zero = "score_mse_zero_pred" in data and "score_mse_zero" in study and params is not None
    for i, dens in enumerate(coords["density"]):
        for j, beta in enumerate(coords["beta"]):
            for k, d in enumerate(coords["d"]):
                at = have[i, j, k]
                if not at.any():  # no job in this cell: not part of the study
                    continue
                try:
                    p0 = density_factory(str(dens), beta=float(beta), d=int(d))
                except ValueError:
                    continue
                if not hasattr(p0, "shapes"):  # no product structure: no prediction
                    continue
                t0s = np.array([t0_early_stop(int(v), float(beta), int(d)) for v in ns[at]])
                if "t0" in study:
                    t = study["t0"].sel(density=dens, beta=beta, d=d)
                    t = t.mean([x for x in t.dims if x != "n"]).values.astype(float)[at]
                    t0s = np.where(np.isfinite(t), t, t0s)
                pr = predict(p0, ns[at], t0s)
                for name, key in (("tv_pred", "tv"), ("tv_bias_pred", "tv_bias"),
                                  ("l2_pred", "l2"), ("l2_bias_share", "l2_bias_share")):
                    data[name][i, j, k, at] = pr[key]
                if zero:
                    data["score_mse_zero_pred"][i, j, k, at] = _zero_region(
                        p0, ns[at], extra["estimator"], extra["t"], params)
    out = xr.Dataset({v.name: (v.dims, data[v.name]) for v in STUDY_VARIABLES
                      if v.name in data}, coords={**coords, **extra})
    for v in STUDY_VARIABLES:
        if v.name in out:
            out[v.name].attrs.update(v.attrs)
    return out


def _estimator_params(attrs) -> dict | None:
    """The estimators' study options (estimators.config_params: c_rho, eps, ...) that the
    study records in its attrs (one value where every run agrees); None where the runs
    disagree on one (no one threshold to predict with)."""
    from ..estimators import config_params

    out = {}
    for p in config_params():
        if p.name in attrs:
            v = attrs[p.name]
            if isinstance(v, str):  # a JSON list of the values the runs disagree on
                return None
            out[p.name] = v
    return out


def _zero_region(p0, ns: np.ndarray, estimators, ts: np.ndarray, params: dict) -> np.ndarray:
    """(n, estimator, t): study.zero_region's prediction for each estimator that sets its
    score to 0 below a threshold; NaN for the others (and where its options are unknown)."""
    from ..estimators import log_zero_threshold
    from .zero_region import zero_region_mse

    out = np.full((len(ns), len(estimators), len(ts)), np.nan)
    for e, est in enumerate(str(v) for v in estimators):
        try:
            if log_zero_threshold(est, int(ns[0]), 1.0, p0.d, params) is None:
                continue
        except ValueError:  # an estimator this library cannot resolve, or a bad option
            continue
        for i, n in enumerate(int(v) for v in ns):
            out[i, e] = zero_region_mse(
                p0, ts, lambda t, n=n, est=est: log_zero_threshold(est, n, t, p0.d, params),
                key=("prediction", p0.name, p0.beta, p0.d))["mse"]
    return out
