"""The contract every Gaussian kernel-sum backend keeps, and the registry of backends.

For training points X_1..X_n in R^d, queries x and a time t > 0, a backend returns

    logp(x) = log( (1/n) sum_i phi_t(x - X_i) ),   phi_t = N(0, t I_d) density,
    mean(x) = sum_i w_i(x) X_i / sum_i w_i(x),     w_i(x) = exp(-|x - X_i|^2 / (2 t)),

finite for every finite query (log space, running max), so that the Gaussian
smoothing of the empirical measure is p̂_t = exp(logp), its score (mean - x)/t and
its gradient p̂_t (mean - x)/t. Backends differ only in speed and accuracy.

Extremes (`overflow_safe`, which wraps every built-in backend's `sums`): a query whose
squared distances to the data, or their logits |x - X_i|^2 / (2t), could exceed the
backend's `SAFE_LOGIT` (2^1000 in float64, 2^120 for float32 lanes) is routed to
`far_sums`, an exact float64 evaluation that never forms a squared distance (norms by
scaled hypot, logits as (r_i - r_min)(r_i + r_min) / (2t)). The finite-but-huge answer
is fixed as: logp is clipped below at -BIG (BIG = the largest float64, ~1.8e308: the true
value, -|x - X|^2/(2t), can be far below it), mean is a convex combination of the X_i
and so stays inside the data's box. Queries within the limits never reach these paths, so
ordinary results are unchanged bit for bit. NaN/Inf queries or t not finite > 0 raise
ValueError.

Each backend owns its cost model: `cost(n, m, d, t, rtol, span)` predicts the seconds of
one call, or returns None where the backend cannot meet `rtol` (or cannot run at all);
`dispatch.choose_backend` takes the cheapest. The constants were fitted by
benchmarks/kernels.py on a 2-core machine; they rank candidates, nothing more.
"""

from __future__ import annotations

import functools
import math
from typing import Protocol

import numpy as np

__all__ = ["BACKENDS", "BIG", "SAFE_LOGIT", "Backend", "as_points", "dim_factor",
           "far_mask", "far_sums", "overflow_safe", "register_backend"]

#: the largest finite float64: every "finite but huge" output is clipped to +-BIG
BIG = float(np.finfo(np.float64).max)
#: float64 backends: bound on |x - X_i|^2 and on |x - X_i|^2 / (2t) below which their own
#: arithmetic cannot overflow (2^1000 ~ 1e301, far above any value a study meets)
SAFE_LOGIT = 2.0 ** 1000
#: (queries x training points x d) handled at once by `far_sums` (8 bytes each)
_FAR_BLOCK = 1 << 20


class Backend(Protocol):
    """A prepared evaluator of (logp, mean) for one fixed training set."""

    name: str

    def __init__(self, train: np.ndarray, rtol: float = 1e-6) -> None: ...

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float | None:
        """Predicted seconds of one call (m queries, n points), None if rtol is out of reach."""
        ...

    def sums(self, queries: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Return logp (m,) and mean (m, d) for queries (m, d) at time t."""
        ...


#: name -> backend class; filled by the backend modules at import.
BACKENDS: dict[str, type] = {}


def register_backend(cls: type) -> type:
    """Class decorator adding a backend to BACKENDS under its `name`."""
    BACKENDS[cls.name] = cls
    return cls


def dim_factor(d: int) -> float:
    """Relative cost of one kernel evaluation in d dimensions (1 in d = 1)."""
    return 0.6 + 0.4 * d


def as_points(x: np.ndarray, d: int | None = None, name: str = "x") -> np.ndarray:
    """Shape any input into a C-contiguous float64 (m, d) array (1-D input is (m, 1))."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(-1, 1) if (d is None or d == 1) else a.reshape(1, -1)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (m, d) array, got shape {np.shape(x)}")
    if d is not None and a.shape[1] != d:
        raise ValueError(f"{name} has {a.shape[1]} columns, expected d = {d}")
    return np.ascontiguousarray(a)


def _check_t(t: float) -> float:
    if not (isinstance(t, int | float | np.integer | np.floating) and not isinstance(t, bool)
            and math.isfinite(t) and t > 0):
        raise ValueError(f"t must be a finite number > 0, got {t!r}")
    return float(t)


def far_mask(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: float,
             limit: float = SAFE_LOGIT) -> np.ndarray:
    """(m,) bool: queries whose |x - X_i|^2 or |x - X_i|^2 / (2t) may exceed `limit`.

    Bounds every squared distance to the training points in their box [lo, hi] by
    d (max_k |x_k - c_k| + r)^2 (c the box centre, r its largest half-side); O(m d).
    """
    d = x.shape[1]
    c = 0.5 * lo + 0.5 * hi
    r = float(np.max(0.5 * hi - 0.5 * lo)) if lo.size else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        ext = np.max(np.abs(x - c), axis=1) + r
        bound = d * ext * ext
    return ~(bound <= limit * min(1.0, 2.0 * t))


def far_sums(X: np.ndarray, x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(logp, mean) of the contract for any finite X, x and t > 0, without overflow.

    Distances: scaled norms r_i = |x - X_i| / s, s = 2^k >= 8 sqrt(d) (differences of x/s
    and X_i/s, which cannot overflow, then a per-pair max-scaled 2-norm, < 2^1023), giving
    logp = -(s^2/2) r_a^2 / t + log sum w + log_norm (clipped below at -BIG) for the
    nearest point a. Weights relative to it, w_i = exp(-(|x - X_i|^2 - |x - X_a|^2)/(2t)),
    use the expansion 2 (x - X_a).(X_a - X_i) + |X_a - X_i|^2, free of the cancellation of
    two huge squares (x far from data of ordinary spread keeps every digit of the X_i), and
    overflowing only to a weight of 0; the nearest point is re-chosen by these exact gaps.
    Data whose own spread overflows (|X_i - X_j|^2 > 2^1000) use (r_i - r_a)(r_i + r_a)
    instead. mean = sum (w_i / sum w) X_i, clipped to the data's box (a convex
    combination). Plain NumPy, O(m n d) time, O(_FAR_BLOCK) memory: for extreme queries.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n, d = X.shape
    m = x.shape[0]
    logp = np.empty(m)
    mean = np.empty((m, d))
    log_norm = -math.log(n) - 0.5 * d * math.log(2.0 * math.pi * t)
    lo, hi = X.min(axis=0), X.max(axis=0)
    with np.errstate(over="ignore"):
        span2 = d * float(np.max(hi - lo)) ** 2
    k = 3 + math.ceil(0.5 * math.log2(d))
    s = math.ldexp(1.0, k)
    half_s2 = math.ldexp(1.0, 2 * k - 1)
    Xs = X / s
    step = max(1, _FAR_BLOCK // max(1, n * d))
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for q0 in range(0, m, step):
            xq = x[q0:q0 + step]
            diff = (xq / s)[:, None, :] - Xs[None, :, :]   # |.| < 2^1022: no overflow
            amax = np.max(np.abs(diff), axis=2)              # (q, n)
            safe = np.where(amax > 0, amax, 1.0)
            r = amax * np.sqrt(np.sum((diff / safe[:, :, None]) ** 2, axis=2))  # < 2^1023
            near = np.argmin(r, axis=1)
            if span2 <= SAFE_LOGIT:
                for _ in range(2):  # the nearest by rounded norms, then by the exact gaps
                    G, gap = _gaps(xq, X, near, t)
                    near = np.argmin(G, axis=1)
                G, gap = _gaps(xq, X, near, t)
                gap = np.maximum(gap, 0.0)
                gap[np.arange(len(xq)), near] = 0.0
            else:
                rmin = r.min(axis=1, keepdims=True)
                gap = ((r - rmin) / t) * (r + rmin) * half_s2  # >= 0, inf only if huge
            w = np.exp(-gap)                                  # nearest: exactly 1
            S = w.sum(axis=1)
            ra = r[np.arange(len(xq)), near]
            lead = ((half_s2 * ra) / t) * ra
            logp[q0:q0 + step] = np.maximum(-lead + np.log(S) + log_norm, -BIG)
            mu = np.einsum("qn,nd->qd", w / S[:, None], X)
            mean[q0:q0 + step] = np.clip(np.nan_to_num(mu, nan=0.0, posinf=BIG, neginf=-BIG),
                                         lo, hi)
    return logp, mean


def _gaps(xq: np.ndarray, X: np.ndarray, near: np.ndarray, t: float) -> np.ndarray:
    """(|x - X_i|^2 - |x - X_a|^2) / (2t), a = near, for data of spread^2 <= SAFE_LOGIT.

    t gap_i = y.e_i + |e_i|^2 / 2 with y = x - X_a, e_i = X_a - X_i; y is held as
    2^(p+1) y' (|y'| < 1, p >= 0), so G_i = y'.e_i + 2^-(p+1) |e_i|^2 / 2 is finite and
    orders the points exactly as the gaps do, and gap_i = 2^(p+1) G_i / t overflows only
    to +-inf (the argmin is then taken on G, by the caller's second round).
    """
    Xa = X[near]                                            # (q, d)
    yh = xq / 2.0 - Xa / 2.0                                # y / 2, finite
    p = np.maximum(np.frexp(np.max(np.abs(yh), axis=1))[1], 0)  # |yh| < 2^p
    yp = np.ldexp(yh, -p[:, None])                          # |y'| < 1
    e = Xa[:, None, :] - X[None, :, :]                      # (q, n, d)
    G = (np.einsum("qd,qnd->qn", yp, e)
         + np.ldexp(0.5 * np.einsum("qnd,qnd->qn", e, e), -(p + 1)[:, None]))
    return G, np.ldexp(G / t, (p + 1)[:, None])


def overflow_safe(sums):
    """Decorate a backend's `sums(self, queries, t)` to accept every finite query and t.

    Checks the input (ValueError for NaN/Inf queries or t not finite > 0), sends the
    queries outside the backend's safe range (`far_mask` with its class's SAFE_LOGIT) to
    `far_sums` and the others, in one call, to the backend; logp is clipped below at -BIG.
    Needs `self.train`, the float64 training points. Without extreme queries the backend
    sees exactly the call it saw before, so its results are unchanged bit for bit.
    """

    @functools.wraps(sums)
    def wrapped(self, queries, t):
        X = self.train
        n, d = X.shape
        x = as_points(queries, d=d, name="queries")
        t = _check_t(t)
        if not np.all(np.isfinite(x)):
            raise ValueError("queries contain NaN or Inf")
        box = self.__dict__.get("_box")
        if box is None:
            box = (X.min(axis=0), X.max(axis=0)) if n else (np.zeros(d), np.zeros(d))
            self.__dict__["_box"] = box
        far = far_mask(x, box[0], box[1], t, getattr(type(self), "SAFE_LOGIT", SAFE_LOGIT))
        if not far.any():
            logp, mean = sums(self, x, t)
        else:
            logp = np.empty(x.shape[0])
            mean = np.empty_like(x)
            near = ~far
            if near.any():
                logp[near], mean[near] = sums(self, np.ascontiguousarray(x[near]), t)
            logp[far], mean[far] = far_sums(X, x[far], t)
        return np.maximum(logp, -BIG, out=logp), mean

    return wrapped


class KernelSums:
    """The shared front of a backend's `sums`: checked queries (overflow_safe), the empty
    call, and the normalising constant log(1/n) - d/2 log(2 pi t); a backend implements
    `_sums(x, t, log_norm)` on (m >= 1, d) contiguous float64 queries and a float t."""

    train: np.ndarray

    @overflow_safe
    def sums(self, queries: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """logp (m,) and softmax mean (m, d) of the training points at time t."""
        n, d = self.train.shape
        x = as_points(queries, d=d, name="queries")
        if x.shape[0] == 0:
            return np.empty(0), np.empty((0, d))
        log_norm = -math.log(n) - 0.5 * d * math.log(2.0 * math.pi * t)
        return self._sums(x, float(t), log_norm)

    def _sums(self, x: np.ndarray, t: float,
              log_norm: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


class TrainShape:
    """n and d of an object's (n, d) training points `train`."""

    train: np.ndarray

    @property
    def n(self) -> int:
        """Number of training points."""
        return self.train.shape[0]

    @property
    def d(self) -> int:
        """Dimension."""
        return self.train.shape[1]
