"""Standard 1-D shapes and their exact Gaussian smoothings f_t = f * N(0, t).

Each shape is standard (location 0, scale 1); densities apply location and scale.
Every shape knows logpdf, pdf, cdf, sf, sample, its Sobolev smoothness (f in H^s for
all s < smoothness), its support and `smooth(x, t) -> (log f_t(x), d/dx log f_t(x))`,
accurate to ~1e-10 relative for any t > 0 and any finite x (log space, no under/overflow).
Far out (|x| ~ 1e154 and beyond) the true log f_t(x) ~ -x^2/(2t) and the score ~ -x/t
leave the float64 range: they are clipped to -BIG and +-BIG (BIG ~ 1.8e308, the largest
float64), so every output is finite, with the right sign:

- `Gauss`: closed form, f_t = N(0, 1 + t).
- `Laplace`: closed form through erfcx / log_ndtr, stable in log space for all (x, t).
- `SymBeta(gamma)`: f ∝ (1 - x^2)_+^gamma. gamma = 0 (uniform) in closed form; otherwise
  composite Gauss quadrature on pieces cut at level sets of the Gaussian exponent, with
  Gauss-Jacobi rules (exact for the endpoint singularity (1 -+ y)^gamma) on pieces touching
  +-1; a compiled loop over the queries (numba, parallel, no temporaries) with the same
  rule as the vectorised numpy reference `_smooth_quad` (kept as its test oracle).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from scipy import special

from ..checks import check_time

__all__ = ["Gauss", "Laplace", "Shape", "SymBeta", "log1mexp"]

_LOG2 = math.log(2.0)
_LOG2PI = math.log(2.0 * math.pi)
#: the largest float64: the clip level of log f_t (below) and of the score (both signs)
_BIG = float(np.finfo(np.float64).max)
#: |x| from which the uniform shape uses its overflow-free far-field form (no ordinary
#: input reaches it; the closed form loses all accuracy only near |x| ~ 1e15)
_UNIFORM_FAR = 2.0 ** 26


def _finite(lf: np.ndarray, sc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log f_t, score) with log f_t >= -BIG and |score| <= BIG (no-op where finite)."""
    return np.maximum(lf, -_BIG), np.clip(sc, -_BIG, _BIG)


def log1mexp(u: np.ndarray) -> np.ndarray:
    """log(1 - exp(u)) for u <= 0, accurate for u near 0 and for u -> -inf."""
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(u > -_LOG2, np.log(-np.expm1(np.minimum(u, 0.0))),
                        np.log1p(-np.exp(np.minimum(u, -_LOG2))))


_check_t = check_time


class Shape:
    """Base class: pdf from logpdf, and convenience wrappers around `smooth`."""

    name: str = "shape"
    smoothness: float = math.inf
    support: tuple[float, float] = (-math.inf, math.inf)
    #: a standard normal (pairs of Gaussians have closed-form overlaps at any smoothing)
    gaussian: bool = False
    #: points where f is not smooth (support edges, kinks): quadrature breaks there
    features: tuple[float, ...] = ()
    #: f ~ (distance to the support's edge)^edge_exponent at its edges (0: no singularity),
    #: the algebraic end weight that integrates it exactly; non-zero promises
    #: f(x) = exp(log_norm) ((1 - x)(1 + x))^edge_exponent on (-1, 1), as SymBeta's
    edge_exponent: float = 0.0

    def self_overlap(self) -> float | None:
        """int f^2 in closed form, or None (then computed by quadrature)."""
        return None

    def logpdf(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Density f(x)."""
        return np.exp(self.logpdf(x))

    def smooth(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(log f_t(x), d/dx log f_t(x)) for f_t = f * N(0, t)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def logpdf_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """log f_t(x)."""
        return self.smooth(x, t)[0]

    def pdf_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """f_t(x)."""
        return np.exp(self.smooth(x, t)[0])

    def score_t(self, x: np.ndarray, t: float) -> np.ndarray:
        """d/dx log f_t(x)."""
        return self.smooth(x, t)[1]

    def interval(self, eps: float = 1e-12) -> tuple[float, float]:
        """A symmetric interval holding all but at most `eps` of the mass."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gauss(Shape):
    """Standard normal N(0, 1); smooth (H^s for every s), f_t = N(0, 1 + t)."""

    name = "gauss"
    smoothness = math.inf
    gaussian = True

    def self_overlap(self) -> float:
        """int phi^2 = 1 / (2 sqrt(pi))."""
        return 1.0 / math.sqrt(4.0 * math.pi)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return -0.5 * x * x - 0.5 * _LOG2PI

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x)."""
        return special.ndtr(np.asarray(x, dtype=np.float64))

    def sf(self, x: np.ndarray) -> np.ndarray:
        """P(X > x), accurate in the upper tail."""
        return special.ndtr(-np.asarray(x, dtype=np.float64))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n independent draws."""
        return rng.standard_normal(n)

    def smooth(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        t = _check_t(t)
        x = np.asarray(x, dtype=np.float64)
        v = 1.0 + t
        with np.errstate(over="ignore"):
            return _finite(-0.5 * x * x / v - 0.5 * (_LOG2PI + math.log(v)), -x / v)

    def interval(self, eps: float = 1e-12) -> tuple[float, float]:
        a = -float(special.ndtri(eps / 2.0))
        return -a, a


class Laplace(Shape):
    """Standard Laplace f(x) = exp(-|x|)/2: in H^s for s < 3/2, not sub-Gaussian.

    f_t(x) = e^{t/2} (e^{-x} Phi((x - t)/sqrt t) + e^{x} Phi((-x - t)/sqrt t)) / 2; each
    term is evaluated in log space as exp(-x^2/(2t)) erfcx(.)/4 when its erfc argument is
    >= 0 and through log_ndtr otherwise, so no cancellation, underflow or overflow occurs.
    The score is -tanh((l1 - l2)/2) with l1, l2 the logs of the two terms (the Gaussian
    boundary terms of the derivative cancel exactly).
    """

    name = "laplace"
    smoothness = 1.5
    features = (0.0,)

    def self_overlap(self) -> float:
        """int (e^-|x| / 2)^2 = 1/4."""
        return 0.25

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        return -np.abs(np.asarray(x, dtype=np.float64)) - _LOG2

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x)."""
        x = np.asarray(x, dtype=np.float64)
        return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0.0)),
                        1.0 - 0.5 * np.exp(-np.maximum(x, 0.0)))

    def sf(self, x: np.ndarray) -> np.ndarray:
        """P(X > x), accurate in the upper tail."""
        return self.cdf(-np.asarray(x, dtype=np.float64))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n independent draws."""
        return rng.laplace(0.0, 1.0, n)

    @staticmethod
    def _log_term(x: np.ndarray, t: float) -> np.ndarray:
        # log( e^{t/2} e^{-x} Phi((x - t)/sqrt t) / 2 )
        z = (t - x) / math.sqrt(2.0 * t)
        with np.errstate(divide="ignore", over="ignore"):
            a = -x * x / (2.0 * t) + np.log(special.erfcx(np.maximum(z, 0.0))) - 2.0 * _LOG2
            b = 0.5 * t - x + special.log_ndtr((x - t) / math.sqrt(t)) - _LOG2
        return np.where(z >= 0.0, a, b)

    def smooth(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        t = _check_t(t)
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            l1 = self._log_term(x, t)
            l2 = self._log_term(-x, t)
            return _finite(np.logaddexp(l1, l2), -np.tanh(0.5 * (l1 - l2)))

    def interval(self, eps: float = 1e-12) -> tuple[float, float]:
        a = -math.log(eps)
        return -a, a


#: E-levels (multiples of the Gaussian exponent) at which SymBeta's integration pieces are
#: cut; the last one is the truncation: mass with exponent below -60 is < e^-55 relative.
_LEVELS = np.array([1.0, 3.0, 6.0, 10.0, 15.0, 21.0, 28.0, 36.0, 46.0, 60.0])
_NODES = 12


class SymBeta(Shape):
    """f(x) = c (1 - x^2)_+^gamma on [-1, 1], gamma > -1/2: in H^s for s < gamma + 1/2.

    Parameters
    ----------
    gamma : float
        Exponent, gamma = beta - 1/2 > -1/2 (gamma = 0 is the uniform density).
    method : {"auto", "quad"}
        "auto": closed form for gamma = 0, else the compiled quadrature kernel; "quad": the
        vectorised numpy quadrature (same rule, also for gamma = 0; the kernel's oracle).
    levels, nodes
        Quadrature design (exponent levels cutting the pieces, Gauss nodes per piece).

    Notes
    -----
    `smooth` costs O(m * 2 len(levels) * nodes) time; queries are processed in blocks of
    `block` so the memory is O(block * 2 len(levels) * nodes) floats.
    """

    name = "sym_beta"
    support = (-1.0, 1.0)
    features = (-1.0, 1.0)

    def __init__(self, gamma: float, method: str = "auto", *, levels: np.ndarray | None = None,
                 nodes: int = _NODES, block: int = 2048) -> None:
        gamma = float(gamma)
        if not (gamma > -0.5 and math.isfinite(gamma)):
            raise ValueError(f"SymBeta needs gamma = beta - 1/2 > -1/2 (beta > 0), got {gamma!r}")
        if method not in ("auto", "quad"):
            raise ValueError(f"method must be 'auto' or 'quad', got {method!r}")
        self.gamma = gamma
        self.edge_exponent = gamma
        self.smoothness = gamma + 0.5
        self.method = method
        self.log_norm = -float(special.betaln(0.5, gamma + 1.0))
        self.levels = np.asarray(_LEVELS if levels is None else levels, dtype=np.float64)
        self.block = int(block)
        g = gamma
        # Rules on [-1, 1]: 0 interior (Legendre), 1 singular at the right end (weight
        # (1-z)^g), 2 at the left end ((1+z)^g), 3 at both ((1-z^2)^g).
        rules = [special.roots_legendre(nodes), special.roots_jacobi(nodes, g, 0.0),
                 special.roots_jacobi(nodes, 0.0, g), special.roots_jacobi(nodes, g, g)]
        z = np.array([r[0] for r in rules])
        self._omz = 1.0 - z  # 1 - z and 1 + z, used so 1 -+ y never cancels
        self._opz = 1.0 + z
        self._logw = np.log(np.array([r[1] for r in rules]))
        self._halfpow = np.array([1.0, 1.0 + g, 1.0 + g, 1.0 + 2.0 * g])  # power of half-length


    def self_overlap(self) -> float:
        """int f^2 = c^2 int (1 - x^2)^(2 gamma) = c^2 B(1/2, 2 gamma + 1)."""
        return math.exp(2.0 * self.log_norm + special.betaln(0.5, 2.0 * self.gamma + 1.0))
    def __repr__(self) -> str:
        return f"SymBeta(gamma={self.gamma!r})"

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        ax = np.abs(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = self.log_norm + self.gamma * (np.log(1.0 - ax) + np.log1p(ax))
        edge = self.log_norm if self.gamma == 0 else (-np.inf if self.gamma > 0 else np.inf)
        return np.where(ax < 1.0, inside, np.where(ax == 1.0, edge, -np.inf))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """P(X <= x) = I_{(1+x)/2}(gamma+1, gamma+1), accurate in the lower tail."""
        x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
        a = self.gamma + 1.0
        return special.betainc(a, a, (1.0 + x) / 2.0)

    def sf(self, x: np.ndarray) -> np.ndarray:
        """P(X > x), accurate in the upper tail."""
        return self.cdf(-np.asarray(x, dtype=np.float64))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n independent draws: 2 B - 1 with B ~ Beta(gamma + 1, gamma + 1)."""
        a = self.gamma + 1.0
        return 2.0 * rng.beta(a, a, n) - 1.0

    def interval(self, eps: float = 1e-12) -> tuple[float, float]:
        return -1.0, 1.0

    def smooth(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        t = _check_t(t)
        x = np.asarray(x, dtype=np.float64)
        shape = x.shape
        xf = x.ravel()
        if self.gamma == 0.0 and self.method == "auto":
            lf, sc = self._smooth_uniform(xf, t)
        elif self.method == "auto":
            lf, sc = _symbeta_quad_kernel(np.ascontiguousarray(xf), t, self.gamma,
                                          self.levels, self._omz, self._opz, self._logw,
                                          self._halfpow, self.log_norm)
        else:
            lf = np.empty_like(xf)
            sc = np.empty_like(xf)
            for i in range(0, xf.size, self.block):
                lf[i:i + self.block], sc[i:i + self.block] = self._smooth_quad(
                    xf[i:i + self.block], t)
        return _finite(lf.reshape(shape), sc.reshape(shape))

    @staticmethod
    def _smooth_uniform(x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        # By symmetry work with ax = |x| >= 0: f_t = (Phi(-a) - Phi(-b))/2 with
        # a = (ax - 1)/sqrt t < b = (ax + 1)/sqrt t (upper tails: no cancellation).
        ax = np.abs(x)
        st = math.sqrt(t)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            a = (ax - 1.0) / st
            b = (ax + 1.0) / st
            la = special.log_ndtr(-a)
            lb = special.log_ndtr(-b)
            ld = la + log1mexp(lb - la)
            lf = ld - _LOG2
            # f_t' = (phi(b) - phi(a)) / (2 sqrt t) = -phi(a) (1 - e^{-2 ax / t}) / (2 sqrt t)
            lphi_a = -0.5 * a * a - 0.5 * _LOG2PI
            sc = -np.exp(lphi_a - ld) * -np.expm1(-2.0 * ax / t) / st
            far = ax >= _UNIFORM_FAR
            if far.any():
                lf_far, sc_far = SymBeta._smooth_uniform_far(ax[far], t)
                lf[far] = lf_far
                sc[far] = sc_far
        return lf, np.where(x < 0, -sc, sc)

    @staticmethod
    def _smooth_uniform_far(ax: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(log f_t, score) of the uniform shape at ax >= _UNIFORM_FAR, free of cancellation.

        With a = (ax - 1)/sqrt t, b = (ax + 1)/sqrt t and log Phi(-z) = -z^2/2 +
        log(erfcx(z/sqrt 2)/2): log(Phi(-b)/Phi(-a)) = -2 ax/t + log(erfcx(b/sqrt 2) /
        erfcx(a/sqrt 2)) (no difference of two huge squares), phi(a)/Phi(-a) =
        sqrt(2/pi)/erfcx(a/sqrt 2); for a > 1e150, erfcx(z) = 1/(z sqrt pi) to 1e-300.
        Overflows (a, a^2, the score) go to +-inf, clipped by the caller.
        """
        st = math.sqrt(t)
        u = ax - 1.0
        a = u / st
        big = ~(a <= 1e150)
        ea = special.erfcx(a / math.sqrt(2.0))
        eb = special.erfcx((ax + 1.0) / st / math.sqrt(2.0))
        r = 2.0 * ax / t
        log_ratio = np.where(big, -np.log1p(2.0 / u), np.log(eb) - np.log(ea))
        lbla = -r + log_ratio                               # log(Phi(-b)/Phi(-a)) < 0
        la = np.where(big, -0.5 * a * a - np.log(a) - 0.5 * _LOG2PI,
                      -0.5 * a * a + np.log(0.5 * ea))
        lf = la + log1mexp(lbla) - _LOG2
        mills = np.where(big, a, math.sqrt(2.0 / math.pi) / ea)  # phi(a)/Phi(-a)
        sc = -(mills / st) * -np.expm1(-r) / -np.expm1(lbla)
        return lf, sc

    def _smooth_quad(self, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        g = self.gamma
        ax = np.abs(x)[:, None]                         # (m, 1); symmetric shape
        ys = np.minimum(ax, 1.0)                        # maximiser of the Gaussian on [-1, 1]
        B = 1.0 - ys                                    # distance of ys to +1 (exact near 1)
        A = 1.0 + ys                                    # distance of ys to -1 (>= 1)
        dl = ax - ys                                    # x - ys >= 0
        s0 = -dl                                        # ys - x
        # Offsets from ys where the exponent E(o) = -o (o + 2 s0) / (2t) equals -level.
        tl2 = 2.0 * t * self.levels[None, :]
        vminus = tl2 / (dl + np.sqrt(dl * dl + tl2))    # towards -1 (away from x)
        vplus = np.sqrt(tl2)                            # towards +1 (only when x inside)
        o = np.concatenate([-np.minimum(vminus, A)[:, ::-1], np.zeros_like(ys),
                            np.minimum(vplus, B)], axis=1)   # (m, 2K+1), sorted
        # Merge into the end piece every breakpoint closer to an end than the width of its
        # outer neighbour piece, so interior pieces stay >= their width away from +-1.
        wl = np.diff(o, axis=1)
        bad = np.zeros(o.shape, dtype=bool)
        bad[:, 1:] = (B - o[:, 1:]) < wl
        bad |= o >= B
        o = np.where(np.logical_or.accumulate(bad, axis=1), B, o)
        wr = np.diff(o, axis=1)
        bad = np.zeros(o.shape, dtype=bool)
        bad[:, :-1] = (A + o[:, :-1]) < wr
        bad |= o <= -A
        o = np.where(np.logical_or.accumulate(bad[:, ::-1], axis=1)[:, ::-1], -A, o)
        p, q = o[:, :-1], o[:, 1:]                      # (m, P) pieces
        half = 0.5 * (q - p)
        tr = q >= B
        tl = p <= -A
        kind = tr.astype(np.intp) + 2 * tl.astype(np.intp)
        half3, kind3 = half[:, :, None], kind
        omz = self._omz[kind3]                          # (m, P, n)
        opz = self._opz[kind3]
        ofs = p[:, :, None] + half3 * opz               # node offsets from ys
        omy = (B - q)[:, :, None] + half3 * omz         # 1 - y >= 0, no cancellation
        opy = (A + p)[:, :, None] + half3 * opz         # 1 + y >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            prod = np.where(tr[:, :, None], 1.0, omy) * np.where(tl[:, :, None], 1.0, opy)
            s02 = np.maximum(2.0 * s0, -_BIG)           # 2 s0 overflows only past 9e307
            lg = (-ofs * (ofs + s02[:, :, None]) / (2.0 * t) + g * np.log(prod)
                  + self._logw[kind3] + (self._halfpow[kind] * np.log(half))[:, :, None])
        lg = np.where((half > 0.0)[:, :, None], lg, -np.inf)
        lg = lg.reshape(lg.shape[0], -1)
        mx = lg.max(axis=1, keepdims=True)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            w = np.exp(lg - mx)
            sw = w.sum(axis=1)
            lse = mx[:, 0] + np.log(sw)
            mean_ofs = (w * ofs.reshape(w.shape)).sum(axis=1) / sw
            s0 = s0[:, 0]
            lf = self.log_norm + lse - s0 * s0 / (2.0 * t) - 0.5 * (_LOG2PI + math.log(t))
            sc = (mean_ofs + s0) / t
            # so far out that every piece collapsed to width 0: Laplace's method at the end
            gone = ~(sw > 0.0)
            if gone.any():
                dl0 = dl[gone, 0]
                lf[gone] = (self.log_norm + g * _LOG2 + math.lgamma(g + 1.0)
                            + (g + 1.0) * np.log(t / dl0) - dl0 * dl0 / (2.0 * t)
                            - 0.5 * (_LOG2PI + math.log(t)))
                sc[gone] = -(g + 1.0) / dl0 + s0[gone] / t
        # f_t is even: the score is odd, exactly 0 at x = 0 (the rule's rounding is not).
        return lf, np.where(x < 0, -sc, np.where(x == 0, 0.0, sc))


@njit(parallel=True, cache=True, nogil=True)
def _symbeta_quad_kernel(x, t, g, levels, omz, opz, logw, halfpow, log_norm):  # noqa: PLR0913
    """Compiled SymBeta._smooth_quad: per query the same pieces, nodes and weights, summed
    by an online log-sum-exp (running max) instead of stored node arrays."""
    m = x.size
    K = levels.size
    nn = omz.shape[1]
    lf = np.empty(m)
    sc = np.empty(m)
    c0 = -0.5 * (math.log(2.0 * math.pi) + math.log(t))
    for q in prange(m):
        ax = abs(x[q])
        ys = min(ax, 1.0)
        B = 1.0 - ys
        A = 1.0 + ys
        dl = ax - ys
        s0 = -dl
        s02 = max(2.0 * s0, -_BIG)  # 2 s0 overflows only past 9e307
        o = np.empty(2 * K + 1)
        for i in range(K):
            tl2 = 2.0 * t * levels[i]
            o[K - 1 - i] = -min(tl2 / (dl + math.sqrt(dl * dl + tl2)), A)
            o[K + 1 + i] = min(math.sqrt(tl2), B)
        o[K] = 0.0
        # merge towards +1 (widths from the unmerged breakpoints, as in the numpy rule)
        merged = o[0] >= B
        prev = o[0]
        for i in range(1, 2 * K + 1):
            cur = o[i]
            if merged or (B - cur) < (cur - prev) or cur >= B:
                merged = True
                o[i] = B
            prev = cur
        if o[0] >= B:
            o[0] = B
        # merge towards -1 (widths from the right-merged breakpoints)
        merged = o[2 * K] <= -A
        if merged:
            o[2 * K] = -A
        nxt = o[2 * K]
        for i in range(2 * K - 1, -1, -1):
            cur = o[i]
            if merged or (A + cur) < (nxt - cur) or cur <= -A:
                merged = True
                o[i] = -A
            nxt = cur
        mx = -np.inf
        sw = 0.0
        swo = 0.0
        for i in range(2 * K):
            p = o[i]
            qq = o[i + 1]
            half = 0.5 * (qq - p)
            if not half > 0.0:
                continue
            tr = qq >= B
            tl = p <= -A
            kind = (1 if tr else 0) + (2 if tl else 0)
            lhalf = halfpow[kind] * math.log(half)
            for j in range(nn):
                ofs = p + half * opz[kind, j]
                fac = 1.0
                if not tr:
                    fac *= (B - qq) + half * omz[kind, j]
                if not tl:
                    fac *= (A + p) + half * opz[kind, j]
                lg = -ofs * (ofs + s02) / (2.0 * t) + logw[kind, j] + lhalf
                if g != 0.0:
                    lg += g * math.log(fac)
                if lg > mx:
                    r = math.exp(mx - lg)
                    sw *= r
                    swo *= r
                    mx = lg
                e = math.exp(lg - mx)
                sw += e
                swo += e * ofs
        if sw > 0.0:
            lf[q] = log_norm + mx + math.log(sw) - s0 * s0 / (2.0 * t) + c0
            v = (swo / sw + s0) / t
        else:
            # so far out (dl >~ 1e296 t) that every piece collapsed to width 0: Laplace's
            # method at the nearest end, f ~ c (2u)^g there: exact to O(t / dl)
            lf[q] = (log_norm + g * math.log(2.0) + math.lgamma(g + 1.0)
                     + (g + 1.0) * math.log(t / dl) - dl * dl / (2.0 * t) + c0)
            v = -(g + 1.0) / dl + s0 / t
        if x[q] < 0.0:
            v = -v
        elif x[q] == 0.0:
            v = 0.0
        sc[q] = v
    return lf, sc

