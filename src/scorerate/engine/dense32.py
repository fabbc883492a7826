"""Single-precision variant of `dense`: float32 distances and exp, float64 accumulation.

The same compiled two-pass log-sum-exp as `engine.dense` (its `block_sums`, generic over
the float type), with the data and queries centred (in float64) and then rounded to
float32, so a SIMD register holds twice as many lanes. The sums S and V are accumulated
in float64, so n up to 1e7 adds no error of its own.

Accuracy (tests/test_dense32.py measures it): rounding x and X_j to float32 moves each
difference by about eps32 R (R the extent of the centred data, eps32 = 6e-8), so a
logit -|x - X_j|^2/(2t) of a point that matters (|x - X_j| ~ sqrt(t log n)) moves by
about eps32 R / sqrt(t), on top of ~1e-6 from the arithmetic itself; `expected_error`
states it. For unit-scale data this is ~1e-5 at t >= 1e-2 and ~3e-5 at t = 1e-4: ample
for every metric (their Monte Carlo errors are 1e-3 or larger) but NOT the engine's
default 1e-6, so the dispatcher offers float32 only when the asked rtol is ten times
above `expected_error`.
Below the truncation level the relative error grows with the logits; queries whose
squared distances or logits would pass 2^120 (~1e18 from the data) are computed in float64
by `base.far_sums` instead of overflowing float32.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types

from .base import KernelSums, as_points, dim_factor, register_backend
from .dense import _EXP32, bitcast, block_sums

__all__ = ["MIN_RTOL", "Dense32", "dense32_sums", "expected_error"]

#: float32 evaluation is about 1e-5 accurate, so it is offered only for looser rtol
MIN_RTOL = 1e-4

#: unit roundoff of float32
EPS32 = float(np.finfo(np.float32).eps) / 2


def expected_error(t: float, extent: float) -> float:
    """Typical relative error of p̂_t and ŝ_t from float32, data of that extent, time t."""
    return 2e-6 + 4.0 * EPS32 * extent / math.sqrt(t)

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # few mantissa bits: k * _LN2_HI is exact for |k| < 2^7
_LN2_LO = _F(-2.12194440e-4)
_SHIFTER = _F(12582912.0)  # 1.5 * 2^23: adding it rounds to an integer in the low bits
_EXP_FLOOR = _F(-87.0)  # exp(-87) ~ 1.6e-38 is still a normal float32
_BIAS_BITS = np.int32(127 << 23)
# Taylor coefficients 1/k!, k = 0..7: on |r| <= ln2/2 the truncation error is < 1e-8.
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7 = (_F(1.0 / math.factorial(k)) for k in range(8))


_f2i = bitcast(types.float32, types.int32, ir.IntType(32))
_i2f = bitcast(types.int32, types.float32, ir.FloatType())


@njit(inline="always", nogil=True, cache=True)
def _exp32(e):
    """exp(e) in float32 for e <= 0 (a few ulp), branch-free; e < -87 gives exp(-87)."""
    e = max(e, _EXP_FLOOR)
    y = e * _LOG2E + _SHIFTER
    kf = y - _SHIFTER
    r = (e - kf * _LN2_HI) - kf * _LN2_LO
    p = _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0
    scale = _i2f((_f2i(y) << np.int32(23)) + _BIAS_BITS)
    return p * scale


_EXP32.append(_exp32)  # the shared kernel's exp for float32 lanes


def dense32_sums(X: np.ndarray, x: np.ndarray, t: float,
                 log_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """logp (m,) and mean (m, d), float64 out; X (n, d) and x (m, d) float32, centred."""
    return block_sums(X, x, float(t), float(log_norm), np.float32(1.0 / (2.0 * t)))


@register_backend
class Dense32(KernelSums):
    """Dense evaluation in single precision (about 1e-5 relative above rho_n; see module)."""

    name = "dense32"
    #: float32 lanes: squared distances and logits stay below 2^120 (float32 max ~ 2^128);
    #: queries beyond go to the exact float64 `base.far_sums` (see base.overflow_safe)
    SAFE_LOGIT = 2.0 ** 120
    #: seconds per kernel evaluation (m n), times dim_factor(d)
    COST = 1.5e-9

    @staticmethod
    def cost(n: int, m: int, d: int, t: float, rtol: float, span: np.ndarray) -> float | None:
        """As `dense`, but only where rtol >= MIN_RTOL and ten times `expected_error`."""
        if rtol < MIN_RTOL or rtol < 10 * expected_error(t, float(np.max(span))):
            return None
        return Dense32.COST * m * n * dim_factor(d)

    def __init__(self, train: np.ndarray, rtol: float = 1e-4) -> None:
        train = as_points(train, name="train")
        self.train = train  # float64, for the extreme queries (base.overflow_safe)
        self.center = train.mean(axis=0) if train.shape[0] else np.zeros(train.shape[1])
        self.train32 = np.ascontiguousarray(train - self.center, dtype=np.float32)
        self.rtol = rtol

    def _sums(self, x: np.ndarray, t: float, log_norm: float) -> tuple[np.ndarray, np.ndarray]:
        x32 = np.ascontiguousarray(x - self.center, dtype=np.float32)
        logp, mean = dense32_sums(self.train32, x32, t, log_norm)
        return logp, mean + self.center
