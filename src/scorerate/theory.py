"""Theory-driven constants and predicted rates (Zhang, Yin, Liang, Liu, ICML 2024).

One place for the early-stopping time t0, the horizon T, the truncation threshold
rho_n(t) and the exponents the report sets beside the measured slopes. The sampler,
the metrics and the report all read them from here.
"""

from __future__ import annotations

import math

__all__ = [
    "T_horizon",
    "check_beta_d",
    "integrated_score_exponent",
    "l2_exponent",
    "log_rho_n",
    "rho_n",
    "score_mse_n_exponent",
    "score_mse_t_exponent",
    "t0_early_stop",
    "tv_exponent",
]


def check_beta_d(beta: float, d: int) -> None:
    """Raise ValueError unless beta > 0 and d >= 1 (the theory's domain)."""
    if not (isinstance(d, int | float) and d >= 1 and int(d) == d):
        raise ValueError(f"dimension d must be an integer >= 1, got {d!r}")
    if not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"smoothness beta must be a finite number > 0, got {beta!r}")


def t0_early_stop(n: int, beta: float, d: int) -> float:
    """Early-stopping time t0 = n^(-2/(2 beta + d)) (Theorem 3.8)."""
    check_beta_d(beta, d)
    return float(n) ** (-2.0 / (2.0 * beta + d))


def T_horizon(n: int, beta: float, d: int) -> float:
    """Forward horizon T = n^(2 beta/(2 beta + d)) (Theorem 3.8)."""
    check_beta_d(beta, d)
    return float(n) ** (2.0 * beta / (2.0 * beta + d))


def stop_times(n: int, beta: float, d: int, t0: float | None = None,
               T: float | None = None) -> tuple[float, float]:
    """(t0, T) of a job: the given values, else the theorem's (t0_early_stop, T_horizon)."""
    return (t0_early_stop(n, beta, d) if t0 is None else float(t0),
            T_horizon(n, beta, d) if T is None else float(T))


def rho_n(n: int, t: float, d: int, c_rho: float = 1.0) -> float:
    """Truncation threshold rho_n(t) = c_rho / (n t^(d/2)) of the truncated estimator."""
    return math.exp(log_rho_n(n, t, d, c_rho))


def log_rho_n(n: int, t: float, d: int, c_rho: float = 1.0) -> float:
    """log rho_n(t), finite for every t > 0 (rho_n itself overflows for tiny t, large d)."""
    return math.log(c_rho) - math.log(n) - 0.5 * d * math.log(t)


def tv_exponent(beta: float, d: int) -> float:
    """Minimax exponent of TV(p0, output) in n: -beta/(2 beta + d)."""
    return -beta / (2.0 * beta + d)


def l2_exponent(beta: float, d: int) -> float:
    """Exponent of the L2 distance between output density and p0 in n (same as TV)."""
    return -beta / (2.0 * beta + d)


def score_mse_n_exponent(beta: float, d: int) -> float:
    """Exponent in n of the score MSE at a fixed t: -1 (up to polylog factors)."""
    return -1.0


def score_mse_t_exponent(d: int, t_regime: str) -> float:
    """Exponent in t of the score MSE: -(d+2)/2 for t < 1 ("small"), -1 for t > 1 ("large")."""
    if t_regime == "small":
        return -(d + 2.0) / 2.0
    if t_regime == "large":
        return -1.0
    raise ValueError(f"t_regime must be 'small' or 'large', got {t_regime!r}")


#: the t at which the score MSE's exponent in t changes (t^{d/2} v 1 in the rate)
T_REGIME_BOUNDARY = 1.0
#: the regimes of the score MSE in t: name -> short label
T_REGIMES = {"small": "t<1", "large": "t>1"}


def t_regime_mask(ts, t_regime: str):
    """Which of the times ts lie in a regime: t < 1 ("small") or t > 1 ("large"); the
    boundary itself belongs to neither, so fits and figures select the same points."""
    import numpy as np

    ts = np.asarray(ts, dtype=float)
    if t_regime == "small":
        return ts < T_REGIME_BOUNDARY
    if t_regime == "large":
        return ts > T_REGIME_BOUNDARY
    raise ValueError(f"t_regime must be 'small' or 'large', got {t_regime!r}")


def integrated_score_exponent(beta: float, d: int) -> float:
    """Exponent in n of int_{t0}^{T} MSE(t) dt ~ n^-1 t0^(-d/2) with the default t0."""
    return -2.0 * beta / (2.0 * beta + d)
