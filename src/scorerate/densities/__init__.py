"""Ground-truth densities: mixtures of products of shifted / scaled 1-D shapes.

p0(x) = sum_k w_k prod_j S_kj((x_j - mu_kj) / sigma_kj) / sigma_kj, with S_kj a standard
shape of scorerate.densities.shapes. Everything follows from the 1-D pieces in any d, in log space:
p_t = p0 * N(0, t I_d) (a scaled shape sigma S smoothed by t is sigma times S smoothed by
t / sigma^2), the score s_t = grad log p_t (responsibility-weighted component scores),
exact box probabilities (products of cdf / sf differences) and int p0^2.
Far out, where log p_t ~ -|x|^2/(2t) and the score ~ -x/t leave the float64 range (|x| ~
1e154 and beyond), log p_t is clipped to -BIG and the score to +-BIG (BIG ~ 1.8e308, the
largest float64); a mixture whose components all sit at -BIG weighs them equally there.

Registry: `DENSITIES` (the only list of names) maps a name to a factory(beta, d) ->
density; `register`, `resolve` (a registered name, an import path "pkg.module:Attr" or an
entry point of group "scorerate.densities") and `density(name, beta=, d=)`, which checks
beta and d before calling the factory. Any object keeping the `Density` Protocol below can
be plugged in (docs/extending.md). beta is the Sobolev smoothness of the rate study:

- "sym_beta": prod_j SymBeta(gamma = beta - 1/2) on [-1, 1]^d, in H^s for s < beta; beta > 0
  (beta = 0.5 is the uniform density on the cube). No density lower bound.
- "gauss_mix": 1/2 N(-2 e_1, 0.25 I) + 1/2 N(+2 e_1, 0.25 I), well separated. The density is
  C-infinity, so any beta is accepted: beta is only the smoothness *claimed* for the study
  (the theory's class needs beta <= 2, which this density belongs to for every such beta).
- "laplace": prod_j Laplace(0, 1), in H^s only for s < 3/2 and not sub-Gaussian (outside the
  theory's assumptions); beta must be < 1.5.
- "sym_beta_mix": 0.6 SymBeta-product at -1.5 e_1 with scale 0.8 + 0.4 SymBeta-product at
  +1.2 e_1 with scale 0.5 (gamma = beta - 1/2): multi-modal, non-smooth, disjoint supports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import integrate, special

from .. import seeding
from ..checks import check_beta, check_int, check_time
from ..registry import Registry
from .shapes import _BIG, Gauss, Laplace, Shape, SymBeta

__all__ = ["DENSITIES", "Density", "ProductMixture", "density", "register", "resolve"]


@runtime_checkable
class Density(Protocol):
    """What a study needs of a ground-truth density p0 in R^d (a factory(beta, d) makes one).

    Required (every job uses them):

    - `d`: the dimension;
    - `sample(n, *, rng)`: n draws, an (n, d) float64 array, every random number taken from
      the numpy Generator `rng` (the job passes one keyed by its identity: reproducibility);
    - `logpdf(x)`: log p0 at x (m, d), shape (m,) (TV of the ideal output p̂_t0);
    - `score_t(x, t)`: the true score grad log p_t, p_t = p0 * N(0, t I), shape (m, d),
      finite for every finite x and t > 0 (score MSE, the main metric);
    - `pdf_t(x, t)`: p_t(x), shape (m,) (the L2 distance of the ideal output).

    Optional (a metric that needs an omitted one is NaN, the rest of the job runs):

    - `box_prob(lo, hi)`: P0 of boxes (k, d) -> (k,), exact: TV of the samples on bins;
    - `l2_norm_sq()`: int p0^2: the L2 distance of the ideal output (with `pdf_t`);
    - `pdf(x)`: p0(x) (the report's plots; exp(logpdf) otherwise);
    - `support_box()`, `logpdf_t`, `grad_pdf_t`, `smoothness`, product structure: used by
      tests and helpers only, never required.

    Objects must pickle (Dask ships them) and may be called from several threads.
    """

    d: int

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray: ...

    def logpdf(self, x: np.ndarray) -> np.ndarray: ...

    def score_t(self, x: np.ndarray, t: float) -> np.ndarray: ...

    def pdf_t(self, x: np.ndarray, t: float) -> np.ndarray: ...


_check_t = check_time


class ProductMixture:
    """sum_k w_k prod_j sigma_kj^-1 S_kj((x_j - mu_kj) / sigma_kj), everything in log space.

    Parameters
    ----------
    name, beta : registry name and the study's smoothness parameter (attributes only).
    weights : (K,) positive, normalised here.
    shapes : K sequences of d standard shapes (shape objects may be shared).
    loc, scale : (K, d) locations and positive scales.
    smoothness : p0 is in H^s for every s < smoothness.
    """

    def __init__(self, name: str, beta: float, weights: Sequence[float],
                 shapes: Sequence[Sequence[Shape]], loc: np.ndarray, scale: np.ndarray,
                 smoothness: float) -> None:
        w = np.asarray(weights, dtype=np.float64)
        loc = np.atleast_2d(np.asarray(loc, dtype=np.float64))
        scale = np.atleast_2d(np.asarray(scale, dtype=np.float64))
        K, d = loc.shape
        if w.shape != (K,) or scale.shape != (K, d) or len(shapes) != K \
                or any(len(s) != d for s in shapes):
            raise ValueError("weights (K,), shapes K x d, loc and scale (K, d) must agree")
        if not (np.all(w > 0) and np.all(scale > 0) and np.all(np.isfinite(loc))):
            raise ValueError("weights and scales must be > 0, locations finite")
        self.name = name
        self.beta = float(beta)
        self.d = int(d)
        self.weights = w / w.sum()
        self.log_weights = np.log(self.weights)
        self.shapes = [list(s) for s in shapes]
        self.loc = loc
        self.scale = scale
        self.smoothness = float(smoothness)
        # Groups of (k, j) sharing a shape object and a scale: one vectorised smooth() call.
        groups: dict[tuple[int, float], list[tuple[int, int]]] = {}
        for k in range(K):
            for j in range(d):
                groups.setdefault((id(self.shapes[k][j]), float(scale[k, j])), []).append((k, j))
        self._groups = [(self.shapes[m[0][0]][m[0][1]], s, m) for (_, s), m in groups.items()]
        self._l2: float | None = None

    def __repr__(self) -> str:
        return f"density({self.name!r}, beta={self.beta!r}, d={self.d})"

    # ------------------------------------------------------------------ input checks
    def _points(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and self.d == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"x must have shape (m, {self.d}), got {x.shape}")
        return x

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = None, *,
               rng: np.random.Generator | None = None) -> np.ndarray:
        """n draws, (n, d) float64, from `rng` or the stream ("density-sample", name, beta,
        d, n, seed); exactly one of seed / rng must be given.

        n is part of the `seed=` stream, so draws of different sizes are independent (not
        nested prefixes of one sequence); with `rng=` the caller keys the stream.
        """
        n = check_int("n", n, lo=0)
        if (seed is None) == (rng is None):
            raise ValueError("give exactly one of seed= or rng=")
        if rng is None:
            rng = seeding.rng("density-sample", self.name, self.beta, self.d, n, seed)
        K = len(self.weights)
        labels = rng.choice(K, size=n, p=self.weights) if K > 1 else np.zeros(n, np.intp)
        out = np.empty((n, self.d), dtype=np.float64)
        for k in range(K):
            idx = np.flatnonzero(labels == k)
            for j in range(self.d):
                u = self.shapes[k][j].sample(idx.size, rng)
                out[idx, j] = self.loc[k, j] + self.scale[k, j] * u
        return out

    # ------------------------------------------------------------------ densities
    def _component_logpdf(self, x: np.ndarray) -> np.ndarray:
        """(m, K) log of w_k times component k's density at x."""
        lc = np.tile(self.log_weights, (x.shape[0], 1))
        for k, comp in enumerate(self.shapes):
            for j, s in enumerate(comp):
                u = (x[:, j] - self.loc[k, j]) / self.scale[k, j]
                lc[:, k] += s.logpdf(u) - math.log(self.scale[k, j])
        return lc

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """log p0(x), (m,)."""
        x = self._points(x)
        return special.logsumexp(self._component_logpdf(x), axis=1)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """p0(x), (m,)."""
        return np.exp(self.logpdf(x))

    def _smooth(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """log p_t (m,) and the score (m, d)."""
        x = self._points(x)
        t = _check_t(t)
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or Inf")
        m, d = x.shape
        K = len(self.weights)
        lc = np.tile(self.log_weights, (m, 1))          # (m, K)
        sc = np.empty((K, m, d), dtype=np.float64)      # component scores
        for shape, s, members in self._groups:
            with np.errstate(over="ignore"):  # |x| ~ 1e308: u = +-inf, handled by the shapes
                u = np.concatenate([(x[:, j] - self.loc[k, j]) / s for k, j in members])
            lf, ds = shape.smooth(u, t / (s * s))
            with np.errstate(over="ignore"):
                for i, (k, j) in enumerate(members):
                    lc[:, k] += lf[i * m:(i + 1) * m] - math.log(s)
                    sc[k, :, j] = ds[i * m:(i + 1) * m] / s
        np.maximum(lc, -_BIG, out=lc)                    # -inf far out: see the module
        lp = special.logsumexp(lc, axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            if K == 1:
                return lp, np.clip(sc[0], -_BIG, _BIG)
            r = np.exp(lc - lp[:, None])                 # responsibilities (m, K)
            return lp, np.clip(np.einsum("mk,kmd->md", r, sc), -_BIG, _BIG)

    def logpdf_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """log p_t(x), p_t = p0 * N(0, t I_d); (m,)."""
        return self._smooth(x, t)[0]

    def pdf_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """p_t(x); (m,)."""
        return np.exp(self._smooth(x, t)[0])

    def score_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """grad log p_t(x); (m, d)."""
        return self._smooth(x, t)[1]

    def grad_pdf_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """grad p_t(x) = p_t(x) s_t(x); (m, d)."""
        lp, sc = self._smooth(x, t)
        return np.exp(lp)[:, None] * sc

    # ------------------------------------------------------------------ exact integrals
    def box_prob(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """P0(lo < X <= hi) for boxes lo, hi of shape (k, d); exact (cdf / sf differences)."""
        lo = self._points(lo)
        hi = self._points(hi)
        if lo.shape != hi.shape:
            raise ValueError(f"lo and hi must have the same shape, got {lo.shape}, {hi.shape}")
        total = np.zeros(lo.shape[0])
        for k, comp in enumerate(self.shapes):
            prob = np.ones(lo.shape[0])
            for j, s in enumerate(comp):
                a = (lo[:, j] - self.loc[k, j]) / self.scale[k, j]
                b = (hi[:, j] - self.loc[k, j]) / self.scale[k, j]
                # Shapes are symmetric about 0: use upper tails right of the centre.
                upper = a >= 0.0
                p = np.where(upper, s.sf(a) - s.sf(b), s.cdf(b) - s.cdf(a))
                prob *= np.clip(p, 0.0, None)
            total += self.weights[k] * prob
        return np.where(np.all(hi > lo, axis=1), total, 0.0)

    def l2_norm_sq(self) -> float:
        """int p0^2 = sum_ab w_a w_b prod_j int f_aj f_bj (closed forms or scipy quad)."""
        if self._l2 is None:
            K = len(self.weights)
            tot = 0.0
            for a in range(K):
                for b in range(K):
                    prod = 1.0
                    for j in range(self.d):
                        prod *= _overlap(self.shapes[a][j], self.loc[a, j], self.scale[a, j],
                                         self.shapes[b][j], self.loc[b, j], self.scale[b, j])
                    tot += self.weights[a] * self.weights[b] * prod
            self._l2 = float(tot)
        return self._l2

    def support_box(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo (d,), hi (d,)): a box holding all but ~1e-12 of the mass."""
        eps = 1e-12 / (len(self.weights) * self.d)
        lo = np.full(self.d, np.inf)
        hi = np.full(self.d, -np.inf)
        for k, comp in enumerate(self.shapes):
            for j, s in enumerate(comp):
                a, b = s.interval(eps)
                lo[j] = min(lo[j], self.loc[k, j] + self.scale[k, j] * a)
                hi[j] = max(hi[j], self.loc[k, j] + self.scale[k, j] * b)
        return lo, hi


def _overlap(sa: Shape, ma: float, ca: float, sb: Shape, mb: float, cb: float) -> float:
    """int f_a f_b for the 1-D scaled shapes f = c^-1 S((x - m)/c)."""
    same = sa is sb or (type(sa) is type(sb) and repr(sa) == repr(sb))
    if sa.gaussian and sb.gaussian:
        v = ca * ca + cb * cb
        return math.exp(-0.5 * (ma - mb) ** 2 / v) / math.sqrt(2.0 * math.pi * v)
    if same and ma == mb and ca == cb and (own := sa.self_overlap()) is not None:
        return own / ca
    la, ha = sa.interval(1e-16)
    lb, hb = sb.interval(1e-16)
    lo = max(ma + ca * la, mb + cb * lb)
    hi = min(ma + ca * ha, mb + cb * hb)
    if not lo < hi:
        return 0.0

    def f(x: float) -> float:
        return float(sa.pdf((x - ma) / ca) * sb.pdf((x - mb) / cb)) / (ca * cb)

    pts = sorted({p for p in (ma, mb) if lo < p < hi})
    val, _ = integrate.quad(f, lo, hi, points=pts or None, limit=400, epsabs=0.0,
                            epsrel=1e-11)
    return float(val)


def sym_beta(beta: float, d: int) -> ProductMixture:
    """prod_j c (1 - x_j^2)_+^(beta - 1/2) on [-1, 1]^d; H^s for s < beta."""
    s = SymBeta(beta - 0.5)
    return ProductMixture("sym_beta", beta, [1.0], [[s] * d], np.zeros((1, d)), np.ones((1, d)),
                          smoothness=beta)


def gauss_mix(beta: float, d: int) -> ProductMixture:
    """1/2 N(-2 e1, 1/4 I) + 1/2 N(2 e1, 1/4 I); C-infinity (beta is nominal)."""
    g = Gauss()
    loc = np.zeros((2, d))
    loc[:, 0] = [-2.0, 2.0]
    return ProductMixture("gauss_mix", beta, [0.5, 0.5], [[g] * d, [g] * d], loc,
                          np.full((2, d), 0.5), smoothness=math.inf)


def laplace(beta: float, d: int) -> ProductMixture:
    """prod_j exp(-|x_j|)/2; H^s for s < 3/2, not sub-Gaussian; beta < 1.5."""
    if beta >= 1.5:
        raise ValueError(f"laplace is in H^s only for s < 3/2; beta must be < 1.5, got {beta!r}")
    s = Laplace()
    return ProductMixture("laplace", beta, [1.0], [[s] * d], np.zeros((1, d)), np.ones((1, d)),
                          smoothness=1.5)


def sym_beta_mix(beta: float, d: int) -> ProductMixture:
    """0.6 sym_beta(-1.5 e1, scale 0.8) + 0.4 sym_beta(1.2 e1, scale 0.5)."""
    s = SymBeta(beta - 0.5)
    loc = np.zeros((2, d))
    loc[:, 0] = [-1.5, 1.2]
    scale = np.array([[0.8] * d, [0.5] * d])
    return ProductMixture("sym_beta_mix", beta, [0.6, 0.4], [[s] * d, [s] * d], loc, scale,
                          smoothness=beta)


#: the only list of density names: name -> factory(beta, d) (its docstring describes it)
DENSITIES = Registry("density", "scorerate.densities", {
    "sym_beta": sym_beta,
    "gauss_mix": gauss_mix,
    "laplace": laplace,
    "sym_beta_mix": sym_beta_mix,
})


def register(name: str, factory: Callable[[float, int], Any], *, replace: bool = False) -> Any:
    """Add a density factory(beta, d) under `name`; returns it."""
    return DENSITIES.register(name, factory, replace=replace)


def resolve(name: str) -> Callable[[float, int], Any]:
    """The density factory named by a registered name, "pkg.mod:Attr" or an entry point."""
    return DENSITIES.resolve(name)


def density(name: str, beta: float, d: int) -> Density:
    """The density `name` (see `resolve`) with smoothness parameter beta in dimension d.

    ValueError for an unknown name, beta not a finite number > 0, d not an integer >= 1,
    or a beta the density refuses.
    """
    factory = resolve(name)
    d = check_int("d", d, lo=1)
    return factory(check_beta(beta), d)
