"""Error metrics of one job: score MSE over t, TV / L2 / W1 / MMD of outputs against p0.

`p0` is a ground-truth density (scorerate.densities contract: d, sample(n, rng=...),
logpdf, pdf_t, score_t, box_prob, l2_norm_sq); `est` anything with score(x, t). Every
random draw comes from a seeding stream named by `key`, so metrics are reproducible and
two estimators of one job are compared on the same draws (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import pdist
from scipy.special import logsumexp

from .. import seeding
from ..checks import check_int
from ..engine import GaussianEngine
from ..engine.base import as_points
from ..seeding import key_parts
from ..store.variables import ESCAPE_MARGIN

__all__ = [
    "escape_fraction",
    "l2_kde",
    "median_bandwidth",
    "mmd",
    "nearest_distance_ratio",
    "projection_directions",
    "tv_binned",
    "tv_binned_bins",
    "tv_binned_edges",
    "tv_binned_floor",
    "tv_kde",
    "w1",
    "wasserstein_1d",
]

_BLOCK = 4096  # rows per score / kernel block: bounds memory whatever n_mc, m are


def _samples(samples: np.ndarray, d: int) -> np.ndarray:
    x = as_points(samples, d=d, name="samples")
    if x.shape[0] < 1:
        raise ValueError("samples is empty")
    return x


# score_mse, integrate_log_t and integrated_score_error live in metrics/score_error.py
# (importance sampling of the rare truncation region).


# ---------------------------------------------------------------- TV of the sample output

def tv_binned_bins(m: int, d: int) -> int:
    """Inner bins per axis for tv_binned: max(2, floor(m^(1/(d+2)))).

    The histogram balance: binning loses O(1/b) of TV for a Lipschitz-ish difference,
    sampling noise adds up to sqrt(b^d / (2 pi m)); b = m^(1/(d+2)) equates the two.
    """
    return max(2, int(math.floor(m ** (1.0 / (d + 2)) + 1e-9)))


def tv_binned_edges(p0, bins: int) -> list[np.ndarray]:
    """Per-axis cell edges of tv_binned, fixed by p0 alone (never by the samples).

    Inside p0's support box (all but ~1e-12 of its mass): bins cells per axis between
    equal-probability quantiles of a fixed reference sample of p0 (20000 draws from
    seeding.rng("tv_binned", "grid", d, bins)); outside it, one tail cell on each side
    (-inf, lo) and (hi, inf) that holds everything beyond the support.
    """
    d = int(p0.d)
    lo, hi = (np.asarray(v, dtype=np.float64) for v in p0.support_box())
    ref = as_points(p0.sample(20000, rng=seeding.rng("tv_binned", "grid", d, bins)), d=d)
    edges = []
    for j in range(d):
        inner = np.clip(np.quantile(ref[:, j], np.arange(1, bins) / bins), lo[j], hi[j])
        e = np.concatenate([[-np.inf, lo[j]], inner, [hi[j], np.inf]])
        edges.append(np.maximum.accumulate(e))
    return edges


def tv_binned(samples: np.ndarray, p0, bins: int | None = None) -> float:
    """TV between p0 and the empirical measure of `samples`, over fixed cells of p0's support.

    Cells: tv_binned_edges (bins equal-probability cells per axis on p0's support box, plus
    one tail cell per side holding all mass outside it), so an output far outside the
    support counts fully against the estimator. Cell probabilities of p0 are exact
    (p0.box_prob); TV = 1/2 sum |P0(cell) - P_m(cell)|; non-finite rows count in a cell of
    their own (p0 mass 0).

    Bias: binning can only lower TV (data processing); the sampling noise of P_m raises
    it, for a sample of p0 itself by about sqrt(B / (2 pi m)) on average (B = bins^d):
    `tv_binned_floor` measures that floor for the same m and cells; never read a rate
    from values within twice it. bins=None uses tv_binned_bins(m, d).
    d > 3 returns NaN: with B = b^d cells the floor swamps any signal at feasible m.

    Cost: O(m d log b + (b + 2)^d) time and O((b + 2)^d d) memory.
    """
    d = int(p0.d)
    x = _samples(samples, d)
    if d > 3:
        return float("nan")
    m = x.shape[0]
    b = tv_binned_bins(m, d) if bins is None else check_int("bins", bins, 1)
    edges = tv_binned_edges(p0, b)
    k = b + 2  # cells per axis
    idx = np.indices((k,) * d).reshape(d, -1).T  # (k^d, d) cell multi-indices
    lo = np.stack([edges[j][idx[:, j]] for j in range(d)], axis=1)
    hi = np.stack([edges[j][idx[:, j] + 1] for j in range(d)], axis=1)
    p_cells = np.clip(np.asarray(p0.box_prob(lo, hi), dtype=np.float64), 0.0, 1.0)
    finite = np.all(np.isfinite(x), axis=1)
    xf = x[finite]
    cell = np.zeros(xf.shape[0], dtype=np.int64)
    for j in range(d):
        c = np.clip(np.searchsorted(edges[j], xf[:, j], side="right") - 1, 0, k - 1)
        cell = cell * k + c
    q_cells = np.bincount(cell, minlength=k ** d) / m
    q_nowhere = (m - xf.shape[0]) / m
    return 0.5 * (float(np.abs(p_cells - q_cells).sum()) + q_nowhere)


def tv_binned_floor(p0, m: int, *, key: Sequence[object] | str, reps: int = 8) -> float:
    """The Monte Carlo floor of tv_binned at sample size m: its mean over `reps` samples of
    m fresh draws from p0 (seeding.rng(*key, "tv_floor", r)), on the same cells.

    A sample of the sampler's output cannot show a TV below about this value.
    Cost: reps tv_binned calls.
    """
    m = check_int("m", m, 1)
    d = int(p0.d)
    if d > 3:
        return float("nan")
    vals = [tv_binned(p0.sample(m, rng=seeding.rng(*key_parts(key), "tv_floor", r)), p0)
            for r in range(check_int("reps", reps, 1))]
    return float(np.mean(vals))


# ---------------------------------------------------------------- memorisation and escapes

def nearest_distance_ratio(samples: np.ndarray, train: np.ndarray, p0, *,
                           key: Sequence[object] | str) -> float:
    """Median distance from each output to its nearest training point, over the same median
    for as many fresh draws from p0 (seeding.rng(*key, "memorisation")).

    About 1: the outputs are new points, as far from the data as fresh samples are;
    towards 0: the outputs copy training points (memorisation). Cost O((m + n) log n).
    """
    from scipy.spatial import cKDTree

    d = int(p0.d)
    x = _samples(samples, d)
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] == 0:
        return float("nan")
    tree = cKDTree(as_points(train, d=d, name="train"))
    fresh = as_points(p0.sample(x.shape[0], rng=seeding.rng(*key_parts(key), "memorisation")), d=d)
    out = float(np.median(tree.query(x)[0]))
    ref = float(np.median(tree.query(fresh)[0]))
    return out / ref if ref > 0 else float("nan")




def escape_fraction(samples: np.ndarray, p0, margin: float = ESCAPE_MARGIN) -> float:
    """Fraction of outputs outside p0's support box widened by `margin` times its width
    on every side (non-finite outputs count as escapes).

    A draw of p0 lands there with probability below 1e-12, so any visible fraction is the
    sampler's: particles stranded where the truncated score is 0, or the discretisation.
    """
    d = int(p0.d)
    x = _samples(samples, d)
    lo, hi = (np.asarray(v, dtype=np.float64) for v in p0.support_box())
    w = margin * (hi - lo)
    inside = np.all((x >= lo - w) & (x <= hi + w), axis=1)
    return float(1.0 - inside.mean())


# ---------------------------------------------------------------- TV and L2 of the ideal output

def tv_kde(train: np.ndarray, t0: float, p0, *, n_mc: int = 100_000,
           key: Sequence[object] | str) -> tuple[float, float]:
    """TV(p0, p̂_{t0}) for the Gaussian KDE p̂_{t0} of `train` (bandwidth sqrt(t0)).

    Unbiased Monte Carlo of TV = E_{x~p0}[(1 - p̂(x)/p0(x))_+], the integrand in [0, 1]
    computed in log space (-expm1(min(log p̂ - log p0, 0))), p̂ exact through the engine.
    Draws from seeding.rng(*key, "tv_kde"). Returns (tv, se).
    Cost: O(n_mc n d) kernel evaluations.
    """
    if not (t0 > 0 and math.isfinite(t0)):
        raise ValueError(f"t0 must be a finite number > 0, got {t0!r}")
    n_mc = check_int("n_mc", n_mc, 2)
    d = int(p0.d)
    train = as_points(train, d=d, name="train")
    x = as_points(p0.sample(n_mc, rng=seeding.rng(*key_parts(key), "tv_kde")), d=d)
    log_hat, _ = GaussianEngine(train).sums(x, float(t0))
    a = log_hat - np.asarray(p0.logpdf(x), dtype=np.float64)
    vals = -np.expm1(np.minimum(np.nan_to_num(a, nan=0.0), 0.0))
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(n_mc))


def l2_kde(train: np.ndarray, t0: float, p0) -> float:
    """||p̂_{t0} - p0||_2 in closed form (no Monte Carlo).

    int p̂^2 = n^-2 sum_ij phi_{2 t0}(X_i - X_j) = mean_i p̂_{2 t0}(X_i) (engine, log space);
    int p̂ p0 = mean_i p_{t0}(X_i) (p0.pdf_t); int p0^2 = p0.l2_norm_sq().
    Cost: O(n^2 d). Relative accuracy ~ 1e-16 int p0^2 / L2^2 (cancellation).
    """
    if not (t0 > 0 and math.isfinite(t0)):
        raise ValueError(f"t0 must be a finite number > 0, got {t0!r}")
    d = int(p0.d)
    train = as_points(train, d=d, name="train")
    log_p2, _ = GaussianEngine(train).sums(train, 2.0 * float(t0))
    hat_sq = math.exp(logsumexp(log_p2) - math.log(train.shape[0]))
    cross = float(np.mean(p0.pdf_t(train, float(t0))))
    return math.sqrt(max(hat_sq - 2.0 * cross + float(p0.l2_norm_sq()), 0.0))


# ---------------------------------------------------------------- W1 and MMD against p0

def projection_directions(d: int, num: int, key: Sequence[object] | str) -> np.ndarray:
    """num fixed random unit vectors in R^d (rows), from seeding.rng(*key, "w1_directions")."""
    g = seeding.rng(*key_parts(key), "w1_directions").standard_normal((num, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def wasserstein_1d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact W1 between the empirical measures of the columns of x (m, k) and y (n, k).

    W1 = int_0^1 |Q_x(u) - Q_y(u)| du, the quantile functions being step functions with
    breaks at i/m and j/n: one batched sort per sample, then a weighted sum over the merged
    breaks (integer arithmetic, no rounding in the break positions). Returns (k,).
    Cost: O((m + n) log(m + n) k); memory O((m + n) k).
    """
    xs, ys = np.sort(x, axis=0), np.sort(y, axis=0)
    m, n = xs.shape[0], ys.shape[0]
    u = np.union1d(np.arange(1, m + 1, dtype=np.int64) * n, np.arange(1, n + 1, dtype=np.int64) * m)
    w = np.diff(u, prepend=0) / (float(m) * n)
    ix, iy = (u + n - 1) // n - 1, (u + m - 1) // m - 1
    return w @ np.abs(xs[ix] - ys[iy])


def w1(samples: np.ndarray, p0, *, key: Sequence[object] | str, n_ref: int = 100_000,
       n_dirs: int = 64) -> float:
    """1-Wasserstein distance between the samples and p0; sliced for d > 1.

    1D: exact W1 between the samples and a reference sample of p0 (n_ref draws from
    seeding.rng(*key, "w1_ref")): its bias is E W1(ref, p0) ~ n_ref^-1/2 (about 0.003 for
    a unit-scale p0 at the default). d > 1: the sliced W1, the mean over n_dirs fixed
    directions (projection_directions) of the 1D W1 of the projections; it is a smaller
    metric than W1 (about W1 sqrt(2 / (pi d)) for a shift).
    Cost: O(n_dirs (m + n_ref) log(m + n_ref)); memory O(8 (m + n_ref)) per direction group.
    """
    d = int(p0.d)
    x = _samples(samples, d)
    n_ref = check_int("n_ref", n_ref, 1)
    n_dirs = check_int("n_dirs", n_dirs, 1)
    ref = as_points(p0.sample(n_ref, rng=seeding.rng(*key_parts(key), "w1_ref")), d=d)
    if d == 1:
        return float(wasserstein_1d(x, ref)[0])
    dirs = projection_directions(d, n_dirs, key)
    parts = [wasserstein_1d(x @ dirs[k:k + 8].T, ref @ dirs[k:k + 8].T)
             for k in range(0, n_dirs, 8)]
    return float(np.mean(np.concatenate(parts)))


def median_bandwidth(ref: np.ndarray, max_points: int = 1000) -> float:
    """Median heuristic: median pairwise distance of the first max_points rows of ref."""
    return float(np.median(pdist(np.asarray(ref, dtype=np.float64)[:max_points])))


def _kernel_sum(a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """sum_ij exp(-|a_i - b_j|^2 / (2 sigma^2)), streamed in blocks (memory O(block^2))."""
    total = 0.0
    sb = np.sum(b * b, axis=1)
    for i0 in range(0, a.shape[0], _BLOCK):
        ab = a[i0:i0 + _BLOCK]
        sa = np.sum(ab * ab, axis=1)
        for j0 in range(0, b.shape[0], _BLOCK):
            bb = b[j0:j0 + _BLOCK]
            dist2 = np.maximum(sa[:, None] + sb[None, j0:j0 + _BLOCK] - 2.0 * (ab @ bb.T), 0.0)
            total += float(np.exp(dist2 / (-2.0 * sigma * sigma)).sum())
    return total


def mmd(samples: np.ndarray, p0, *, key: Sequence[object] | str, n_ref: int = 10_000,
        bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 (U-statistic) between the samples and p0, Gaussian kernel.

    k(x, y) = exp(-|x - y|^2 / (2 sigma^2)) against n_ref reference draws of p0 from
    seeding.rng(*key, "mmd_ref"); sigma = bandwidth, or (None) the median heuristic on the
    reference sample (median_bandwidth), so it depends on p0 and key only, never on the
    samples: every estimator of a job is measured with the same kernel. The value can be
    slightly negative (unbiased). Cost: O((m + n_ref)^2 d) time, O(4096^2) memory.
    """
    d = int(p0.d)
    x = _samples(samples, d)
    n_ref = check_int("n_ref", n_ref, 2)
    if x.shape[0] < 2:
        raise ValueError("mmd needs at least 2 samples")
    if bandwidth is not None and not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"bandwidth must be a finite number > 0 or None, got {bandwidth!r}")
    y = as_points(p0.sample(n_ref, rng=seeding.rng(*key_parts(key), "mmd_ref")), d=d)
    sigma = median_bandwidth(y) if bandwidth is None else float(bandwidth)
    c = y.mean(axis=0)  # centre: the |a|^2 + |b|^2 - 2ab expansion loses less far out
    x, y = x - c, y - c
    m, r = x.shape[0], y.shape[0]
    kxx = (_kernel_sum(x, x, sigma) - m) / (m * (m - 1.0))
    kyy = (_kernel_sum(y, y, sigma) - r) / (r * (r - 1.0))
    kxy = _kernel_sum(x, y, sigma) / (m * float(r))
    return float(kxx + kyy - 2.0 * kxy)
