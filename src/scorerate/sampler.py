"""Reverse-SDE sampler (the paper's Algorithm 1) as a Dask array chunked over particles.

Forward process dX = dB (variance exploding): p_t = p0 * N(0, t I). A particle starts at
forward time T, from N(0, T I) (the paper) or from the exact p̂_T (the oracle test), and
runs the reverse dynamics down to t0 on a geometric grid of forward times. Particle i
draws its start and all its noise from `seeding.rng(*key, "particle", i)` alone, so the
output is bit-identical for any chunk size, worker count or thread count, given a score
whose rows depend bitwise only on their own query. (A Gaussian estimator with a pinned backend is
such a score; the engine's backend="auto" picks its backend from the number of queries,
so with it the bits, not the accuracy, can depend on the chunk size.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from . import seeding

__all__ = ["INTEGRATORS", "SCHEDULES", "STARTS", "integrate", "sample", "start_and_noise",
           "steps_for", "time_grid"]

ScoreFn = Callable[[np.ndarray, float], np.ndarray]

#: integrator name -> whether it consumes Gaussian noise.
INTEGRATORS = {"euler_maruyama": True, "ancestral": True, "probability_flow": False,
               "heun": True}
STARTS = ("gaussian", "kde")
#: forward-time schedules of `time_grid`
SCHEDULES = ("geometric", "edm")


def _check_times(t0: float, T: float, steps: int) -> None:
    if not (isinstance(t0, int | float | np.floating) and isinstance(T, int | float | np.floating)
            and math.isfinite(t0) and math.isfinite(T) and 0 < t0 < T):
        raise ValueError(f"need finite times 0 < t0 < T, got t0={t0!r}, T={T!r}")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")


def _check_integrator(integrator: str) -> None:
    if integrator not in INTEGRATORS:
        raise ValueError(f"unknown integrator {integrator!r}; choose one of {list(INTEGRATORS)}")


def steps_for(n: int, steps: int, power: float = 0.0, at_n: int = 1000,
              minimum: int = 1) -> int:
    """A step count that grows with n: ceil(steps (n / at_n)^power), at least `minimum`.

    The sampler's own error falls like 1/steps while the statistical error falls like a
    power of n, so a fixed count is eventually all discretisation (docs/results.md);
    power = 0 is the fixed count. Measured need for sym_beta, d = 1 (issue 17): about
    n^0.43 times a log to keep the sampler's error at 10% of p̂_t0's TV. The floor is for
    small n, where a power of n gives too few steps for the early transient of the chain
    (benchmarks/README.md, the pilots).
    """
    grown = math.ceil(int(steps) * (float(n) / float(at_n)) ** float(power))
    return max(1, int(minimum), grown)


def time_grid(t0: float, T: float, steps: int, schedule: str = "geometric",
              rho: float = 7.0) -> np.ndarray:
    """Forward times, decreasing from T to t0: shape (steps+1,), exact endpoints.

    "geometric" (the default, the job's): equal ratios t_{k+1}/t_k, which keeps the Euler
    error d^2 sum h_k^2/t_k^2 at O(d^2 log(T/t0)^2 / steps). "edm" (Karras et al. 2022):
    sqrt(t) equally spaced in its 1/rho power, more steps near t0 (benchmarks/integrators.py
    measures whether that helps; rho -> infinity is the geometric grid).
    """
    _check_times(t0, T, steps)
    if schedule == "geometric":
        times = np.geomspace(float(T), float(t0), int(steps) + 1)
    elif schedule == "edm":
        if not (isinstance(rho, int | float) and math.isfinite(rho) and rho > 0):
            raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
        u = np.linspace(0.0, 1.0, int(steps) + 1)
        a, b = float(T) ** (0.5 / rho), float(t0) ** (0.5 / rho)
        times = (a + u * (b - a)) ** (2.0 * rho)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")
    times[0], times[-1] = T, t0
    return times


def integrate(score: ScoreFn, y: np.ndarray, times: np.ndarray, noise: np.ndarray | None,
              integrator: str = "euler_maruyama", record: Sequence[int] = ()) -> np.ndarray:
    """Run the reverse dynamics for a block of particles (the per-chunk work, plain NumPy).

    Parameters
    ----------
    score : callable score(x (k, d), t) -> (k, d); called once per step on the whole block
        (twice for "probability_flow", Heun's method).
    y : (k, d) states at forward time times[0]; not modified.
    times : (S+1,) decreasing forward times.
    noise : (k, S, d) standard normals, particle-major (row i is particle i's draws);
        ignored (may be None) for "probability_flow".
    integrator : "euler_maruyama": Y += h s(Y, tau) + sqrt(h) Z, h = tau_k - tau_{k+1};
        "ancestral": exact VE posterior step given the denoiser D = y + tau s(y, tau):
        Y ~ N(Y + (tau - tau') s, tau' (tau - tau') / tau);
        "probability_flow": dY/dtau = -s/2 in forward time, Heun's method (deterministic);
        "heun": stochastic Heun step of the reverse SDE (weak order 2 for additive noise):
        Y~ = Y + h s(Y, tau) + sqrt(h) Z, Y += h/2 (s(Y, tau) + s(Y~, tau')) + sqrt(h) Z
        with the same Z (two score calls per step).

    record : step counts j (1 <= j <= S) after which the states are also kept: the chain
        stopped early at times[j] (the output of the same sampler with t0 = times[j]).

    Returns
    -------
    (k, d) states at times[-1]; with `record`, (len(record) + 1, k, d): the recorded states,
    then the final ones. Time O(S k d) plus S score calls (2S for "probability_flow" and
    "heun"); memory O(k d) beyond the noise and the records.
    """
    _check_integrator(integrator)
    times = np.asarray(times, dtype=np.float64)
    y = np.array(y, dtype=np.float64, copy=True)
    if y.ndim != 2:
        raise ValueError(f"y must be a (k, d) array, got shape {y.shape}")
    steps = times.size - 1
    if steps < 1 or not np.all(np.diff(times) < 0) or not times[-1] > 0:
        raise ValueError("times must be a decreasing sequence of > 1 positive forward times")
    if INTEGRATORS[integrator]:
        if noise is None or np.shape(noise) != (y.shape[0], steps, y.shape[1]):
            raise ValueError(f"noise must have shape {(y.shape[0], steps, y.shape[1])}, "
                             f"got {None if noise is None else np.shape(noise)}")
        # step-major copy so that each step reads one contiguous (k, d) slab
        z = np.ascontiguousarray(np.swapaxes(np.asarray(noise, dtype=np.float64), 0, 1))
    record = [int(j) for j in record]
    if any(not 1 <= j <= steps for j in record):
        raise ValueError(f"record holds step counts in 1..{steps}, got {record}")
    kept = []
    hs = times[:-1] - times[1:]
    if integrator in ("euler_maruyama", "heun"):
        scale = np.sqrt(hs)
    elif integrator == "ancestral":
        scale = np.sqrt(times[1:] * hs / times[:-1])
    for k in range(steps):
        if integrator == "probability_flow":
            h = hs[k]
            k1 = score(y, float(times[k]))
            k2 = score(y + (0.5 * h) * k1, float(times[k + 1]))
            y += (0.25 * h) * (k1 + k2)
        elif integrator == "heun":
            h = hs[k]
            k1 = score(y, float(times[k]))
            dz = scale[k] * z[k]
            k2 = score(y + h * k1 + dz, float(times[k + 1]))
            y += (0.5 * h) * (k1 + k2) + dz
        else:
            y += hs[k] * score(y, float(times[k])) + scale[k] * z[k]
        kept += [y.copy() for j in record if j == k + 1]
    return np.stack([*kept, y]) if record else y


def start_and_noise(i0: int, i1: int, *, d: int, T: float, steps: int, integrator: str,
                    key: Sequence[object], start: str = "gaussian",
                    start_points: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Starts (k, d) and noise (k, steps, d) of particles i0..i1-1, each from its own stream.

    Particle i draws, in order, from seeding.rng(*key, "particle", i): the index of its
    start point (start="kde" only), d normals for its start, then steps*d normals (stochastic
    integrators only). Nothing depends on i0, i1 beyond which particles are drawn.
    """
    k = i1 - i0
    sqrt_T = math.sqrt(T)
    y = np.empty((k, d))
    noise = np.empty((k, steps, d)) if INTEGRATORS[integrator] else None
    for row in range(k):
        r = seeding.rng(*key, "particle", i0 + row)
        if start == "kde":
            j = int(r.integers(start_points.shape[0]))
            y[row] = start_points[j] + sqrt_T * r.standard_normal(d)
        else:
            y[row] = sqrt_T * r.standard_normal(d)
        if noise is not None:
            noise[row] = r.standard_normal((steps, d))
    return y, noise


def _chunk(score: ScoreFn, start_points: np.ndarray | None, i0: int, i1: int, d: int,
           times: np.ndarray, integrator: str, key: tuple, start: str,
           record: tuple[int, ...] = ()) -> np.ndarray:
    y, noise = start_and_noise(i0, i1, d=d, T=float(times[0]), steps=times.size - 1,
                               integrator=integrator, key=key, start=start,
                               start_points=start_points)
    return integrate(score, y, times, noise, integrator, record)


def sample(score: ScoreFn, *, m: int, d: int, t0: float, T: float, steps: int,
           integrator: str = "euler_maruyama", key: Sequence[object] | str = (),
           start: str = "gaussian", start_points: np.ndarray | None = None,
           chunk: int = 250, record: Sequence[int] = ()) -> da.Array:
    """m particles of the reverse SDE from forward time T down to t0, as a lazy Dask array.

    Parameters
    ----------
    score : callable score(x (k, d), t) -> (k, d), e.g. estimators.build(...).score; called on
        whole chunks. It is put in the graph once (one task), shared by all chunks.
    m, d : number of particles and dimension.
    t0, T : early-stopping time and horizon, 0 < t0 < T (theory.t0_early_stop, T_horizon).
    steps : number of steps on time_grid(t0, T, steps).
    integrator : one of INTEGRATORS ("euler_maruyama", "ancestral", "probability_flow").
    key : identity of the run, e.g. (seeding.job_key(...), estimator); particle i uses
        seeding.rng(*key, "particle", i) only.
    start : "gaussian" (Y ~ N(0, T I), Algorithm 1) or "kde" (Y ~ p̂_T exactly: a uniformly
        chosen row of start_points plus sqrt(T) noise).
    start_points : (n, d) training points, required for start="kde".
    chunk : particles per Dask chunk (results do not depend on it).
    record : step counts after which the states are kept too (see `integrate`).

    Returns
    -------
    dask.array (m, d) float64 with chunks of `chunk` particles; with `record`,
    (len(record) + 1, m, d), the final states last. Work per chunk: O(chunk *
    steps * d) plus steps score calls on (chunk, d); memory per chunk O(chunk * steps * d)
    for the pre-drawn noise.
    """
    for name, v, lo in (("m", m, 1), ("d", d, 1), ("chunk", chunk, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    _check_times(t0, T, steps)
    _check_integrator(integrator)
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; choose one of {list(STARTS)}")
    if not callable(score):
        raise ValueError(f"score must be a callable score(x, t), got {type(score).__name__}")
    key = (key,) if isinstance(key, str) else tuple(key)
    if start == "kde":
        if start_points is None:
            raise ValueError("start='kde' needs start_points (the (n, d) training points)")
        start_points = np.ascontiguousarray(start_points, dtype=np.float64)
        if start_points.ndim == 1 and d == 1:
            start_points = start_points.reshape(-1, 1)
        if start_points.ndim != 2 or start_points.shape[1] != d or start_points.shape[0] < 1:
            raise ValueError(f"start_points must be an (n, {d}) array with n >= 1, "
                             f"got shape {start_points.shape}")
    else:
        start_points = None
    m, d, chunk = int(m), int(d), int(chunk)
    times = time_grid(t0, T, steps)
    # the score, the start points and the chunking are in the name: two samplers on one
    # shared scheduler must never resolve to each other's tasks
    record = tuple(int(j) for j in record)
    token = tokenize(key, m, d, times, integrator, start, chunk, score, start_points, record)
    score_d = dask.delayed(score, pure=False, traverse=False)
    points_d = None if start_points is None else dask.delayed(start_points, traverse=False)
    run = dask.delayed(_chunk, pure=True)
    blocks = []
    for c, i0 in enumerate(range(0, m, chunk)):
        i1 = min(i0 + chunk, m)
        task = run(score_d, points_d, i0, i1, d, times, integrator, key, start, record,
                   dask_key_name=f"reverse-sde-{token}-{c}")
        shape = (len(record) + 1, i1 - i0, d) if record else (i1 - i0, d)
        blocks.append(da.from_delayed(task, shape=shape, dtype=np.float64))
    return da.concatenate(blocks, axis=1 if record else 0)
