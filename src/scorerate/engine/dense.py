"""Compiled exact backend: two-pass streaming log-sum-exp with numba, vectorised over queries.

For one block of B queries the training points are streamed twice: pass 1 finds each
query's smallest squared distance (no exp), pass 2 adds exp(-(|x - X_j|^2 - min)/(2t))
to the sum and the weighted sum of X_j, with an inlined range-reduction + polynomial exp
that LLVM can turn into SIMD code (libm exp would stop the vectoriser). Every weight is
<= 1 and the nearest one is exactly 1, so nothing overflows or underflows to a 0/0, for
any finite query and any t > 0.

Determinism: each query's sums run over j = 0..n-1 in that order, in lanes that do not
interact, with strict IEEE arithmetic (no fastmath, no FMA contraction); blocks are
padded to a fixed B, so the result for a query is bit-identical whatever the number of
threads and however the queries are split into calls.

Time O(m n d) (the exact sum); extra memory O(B (d + 4)) floats per thread (B = 256),
besides the (m,) and (m, d) outputs.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .base import KernelSums, as_points, dim_factor, register_backend

__all__ = ["Dense", "block_sums", "dense_sums"]

#: queries per block: the block's accumulators (about 8 B (d + 4) bytes) stay in L1/L2.
Q_BLOCK = 256

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer held in the low bits
_EXP_FLOOR = -708.0  # exp(-708) ~ 3e-308 is still normal; terms below are clamped up to it
_BIAS_BITS = 1023 << 52
# Taylor coefficients 1/k!, k = 0..12: on |r| <= ln2/2 the truncation error is < 2e-16.
_C = [1.0 / math.factorial(k) for k in range(13)]
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12 = _C


def bitcast(src, dst, llvm_type):
    """A compiled function reinterpreting the bits of a `src` value as a `dst` (same width,
    no conversion): how the fast exp builds 2^k from an integer (dense32 uses it too)."""

    @intrinsic
    def cast(typingctx, x):
        sig = dst(src)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_type)

        return sig, codegen

    return cast


_f2i = bitcast(types.float64, types.int64, ir.IntType(64))
_i2f = bitcast(types.int64, types.float64, ir.DoubleType())


@njit(inline="always", nogil=True, cache=True)
def _exp_nonpos(e):
    """exp(e) for e <= 0 to ~2 ulp, branch-free (vectorisable); e < -708 gives exp(-708)."""
    e = max(e, _EXP_FLOOR)
    y = e * _LOG2E + _SHIFTER
    kf = y - _SHIFTER  # round(e / ln 2)
    r = (e - kf * _LN2_HI) - kf * _LN2_LO
    p = _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0
    scale = _i2f((_f2i(y) << 52) + _BIAS_BITS)  # 2^k built from the integer in y's low bits
    return p * scale


def exp_nonpos(e):  # pragma: no cover - replaced by the overload in compiled code
    """exp(e) for e <= 0 in the precision of e (compiled: `_exp_nonpos` or dense32's)."""
    return math.exp(e)


def lead_term(mn, t, inv2t):  # pragma: no cover - replaced by the overload in compiled code
    """-mn / (2t) as float64, rounded as the backend of mn's precision always rounded it."""
    return -mn * inv2t


#: the exp used for float32 lanes, set by engine.dense32 (its module owns the float32 code)
_EXP32 = []


@overload(exp_nonpos, inline="always")
def _exp_nonpos_overload(e):
    if isinstance(e, types.Float) and e.bitwidth == 32:
        exp32 = _EXP32[0]
        return lambda e: exp32(e)
    return lambda e: _exp_nonpos(e)


@overload(lead_term, inline="always")
def _lead_term_overload(mn, t, inv2t):
    if isinstance(mn, types.Float) and mn.bitwidth == 32:
        return lambda mn, t, inv2t: -np.float64(mn) / (2.0 * t)
    return lambda mn, t, inv2t: -mn * np.float64(inv2t)


@njit(inline="always", nogil=True, cache=True)
def _sq_dists(X, j, xq, d2):
    """d2[q] = |xq[:, q] - X[j]|^2 for every lane q of the block, in the arrays' float type
    (both passes of `_block` compute it this way, so their rounding is the same)."""
    for q in range(xq.shape[1]):
        d2[q] = 0
    for k in range(X.shape[1]):
        xjk = X[j, k]
        for q in range(xq.shape[1]):
            diff = xq[k, q] - xjk
            d2[q] += diff * diff


@njit(nogil=True, cache=True)
def _block(X, xq, inv2t, mn, d2, w, S, V):
    """Sums for one padded block: xq (d, B) queries; fills mn, S (B,), V (d, B).

    X, xq, mn, d2, w and inv2t share one float type (float64 for `dense`, float32 for
    `dense32`); S and V are float64 and add each weight times the float64 value of X_j.
    """
    n, d = X.shape
    B = xq.shape[1]
    for q in range(B):
        mn[q] = np.inf
        S[q] = 0.0
    for k in range(d):
        for q in range(B):
            V[k, q] = 0.0
    # pass 1: smallest squared distance per query (no exp)
    for j in range(n):
        _sq_dists(X, j, xq, d2)
        for q in range(B):
            mn[q] = min(mn[q], d2[q])
    # pass 2: one exp per pair, relative to the minimum (every weight in (0, 1])
    for j in range(n):
        _sq_dists(X, j, xq, d2)
        for q in range(B):
            wq = exp_nonpos((mn[q] - d2[q]) * inv2t)
            w[q] = wq
            S[q] += wq
        for k in range(d):
            xjk = np.float64(X[j, k])
            for q in range(B):
                V[k, q] += w[q] * xjk


@njit(parallel=True, nogil=True, cache=True)
def block_sums(X, x, t, log_norm, inv2t):
    """logp (m,) and mean (m, d), float64, for X (n, d), x (m, d) and inv2t = 1/(2t) of one
    float type; log_norm = -log n - d/2 log(2 pi t).

    The one kernel of `dense` (float64) and `dense32` (float32): parallel over query blocks
    of Q_BLOCK, the last block padded with copies of its last query so every block has the
    same size.
    """
    n, d = X.shape
    m = x.shape[0]
    B = Q_BLOCK
    nb = (m + B - 1) // B
    logp = np.empty(m)
    mean = np.empty((m, d))
    for b in prange(nb):
        q0 = b * B
        cnt = min(B, m - q0)
        xq = np.empty((d, B), dtype=X.dtype)
        for q in range(B):
            src = q0 + min(q, cnt - 1)
            for k in range(d):
                xq[k, q] = x[src, k]
        mn = np.empty(B, dtype=X.dtype)
        d2 = np.empty(B, dtype=X.dtype)
        w = np.empty(B, dtype=X.dtype)
        S = np.empty(B)
        V = np.empty((d, B))
        _block(X, xq, inv2t, mn, d2, w, S, V)
        for q in range(cnt):
            logp[q0 + q] = lead_term(mn[q], t, inv2t) + math.log(S[q]) + log_norm
            for k in range(d):
                mean[q0 + q, k] = V[k, q] / S[q]
    return logp, mean


def dense_sums(X: np.ndarray, x: np.ndarray, t: float,
               log_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """logp (m,) and mean (m, d) for float64 queries x (m, d), training X (n, d), time t > 0.

    log_norm = -log n - d/2 log(2 pi t).
    """
    return block_sums(X, x, float(t), float(log_norm), 1.0 / (2.0 * t))


@register_backend
class Dense(KernelSums):
    """Exact dense evaluation, compiled and multi-threaded (numba); O(m n d) time.

    The result does not depend on `rtol` (it is exact to rounding: ~1e-15 relative in
    the weights) nor on numba's thread count.
    """

    name = "dense"
    #: seconds per kernel evaluation (m n), times dim_factor(d)
    COST = 2.5e-9

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float:
        """Exact for every rtol: O(m n d)."""
        return Dense.COST * m * n * dim_factor(d)

    def __init__(self, train: np.ndarray, rtol: float = 1e-6) -> None:
        self.train = as_points(train, name="train")
        self.rtol = rtol

    def _sums(self, x: np.ndarray, t: float, log_norm: float) -> tuple[np.ndarray, np.ndarray]:
        return dense_sums(self.train, x, t, log_norm)
