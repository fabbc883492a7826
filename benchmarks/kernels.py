"""Kernel-sum benchmark: this engine's backends beside the libraries users would pick instead.

    python benchmarks/kernels.py --quick     # ~1 minute on 2 cores
    python benchmarks/kernels.py             # default: n 1e4,1e5; d 1,2,3,8; t 1e-2,1 (<= 15 min)
    python benchmarks/kernels.py --full      # issue-4 grid: n 1e4..1e6, d 1,2,3,8, t 1e-4..1e2
    python benchmarks/kernels.py --n 100000 --d 1 2 3 --t 1 --no-trajectory   # one slice
    python benchmarks/kernels.py --no-grid --no-trajectory   # only the wide-query rows

Times, in one run on one machine: the engine's backends (numpy, dense, dense32, cutoff,
binned, auto), plain NumPy dense (chunked GEMM + exp), pykeops LazyTensor on CPU, scipy
gaussian_kde, sklearn KernelDensity and KDEpy FFTKDE (the last three: density only).
Reports kernel evaluations per second (m n / median seconds); the max relative error of
p̂_t and of the score against the exact float64 `dense` result where p̂_t >= rho_n(t); the
ratio to the best peer; the machine's limits (np.exp elements/s on 1 and 2 threads,
float64 GEMM GFLOP/s), the reverse-trajectory target (auto vs dense) and the wide-query
rows: a 2-D query box far wider than the data (what law.output_law's cells are), auto vs
dense at t = 100, 1, 0.05, 0.01 (target: auto <= 3x dense at every t).

A method whose full-size run would take more than --budget seconds per repeat is timed
on a prefix of the queries and its rate extrapolated per evaluation (column `timed_m`);
for the grid methods (binned, FFTKDE) that understates their speed, never overstates it.
Writes <out>/kernels[_quick|_full].json and .md (default out: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from scorerate.engine import BACKENDS, GaussianEngine
from scorerate.seeding import rng

PEERS = ["numpy_gemm", "pykeops", "scipy_kde", "sklearn_kde", "kdepy_fft"]
OURS = ["numpy", "dense", "dense32", "cutoff", "binned", "auto"]
LIBS = ["numpy", "scipy", "numba", "scikit-learn", "KDEpy", "pykeops", "scorerate"]


# ---------------------------------------------------------------- machine
def machine_info() -> dict:
    """CPU model, cores, library versions, date and commit: what a reader needs to compare."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for lib in LIBS:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_model": model, "cpus": os.cpu_count(), "cpus_usable": usable,
            "platform": platform.platform(), "python": sys.version.split()[0],
            "versions": versions, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "git_commit": commit, "numba_threads": _numba_threads(),
            "loadavg_start": os.getloadavg()}


def _numba_threads() -> int | None:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:  # noqa: BLE001 - informational only
        return None


def machine_limits(repeats: int = 7) -> dict:
    """np.exp elements/s on one and two threads, float64 GEMM GFLOP/s (medians)."""
    a = -rng("bench", "limits").random(4_000_000)
    out = np.empty_like(a)

    def exp_rate(threads: int) -> float:
        bounds = np.linspace(0, a.size, threads + 1).astype(int)

        def work(k):
            np.exp(a[bounds[k]:bounds[k + 1]], out=out[bounds[k]:bounds[k + 1]])

        times = []
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(repeats):
                t0 = time.perf_counter()
                list(pool.map(work, range(threads)))
                times.append(time.perf_counter() - t0)
        return a.size / float(np.median(times))

    A = rng("bench", "gemm").random((2000, 2000))
    times = []
    for _ in range(max(3, repeats // 2)):
        t0 = time.perf_counter()
        A @ A
        times.append(time.perf_counter() - t0)
    return {"exp_per_s_1thread": exp_rate(1), "exp_per_s_2threads": exp_rate(2),
            "gemm_gflops": 2 * 2000**3 / float(np.median(times)) / 1e9}


# ---------------------------------------------------------------- peers
def numpy_gemm(X, x, t, block=1024):
    """Plain NumPy: |x|^2 + |X|^2 - 2 x X^T by GEMM, exp, weighted sums by GEMM (chunked)."""
    n, d = X.shape
    X2 = (X * X).sum(1)
    logp = np.empty(len(x))
    mean = np.empty_like(x)
    for i in range(0, len(x), block):
        xb = x[i:i + block]
        D = (xb * xb).sum(1)[:, None] + X2[None, :] - 2.0 * (xb @ X.T)
        E = -D / (2 * t)
        mx = E.max(1)
        W = np.exp(E - mx[:, None])
        S = W.sum(1)
        logp[i:i + block] = np.log(S) + mx
        mean[i:i + block] = (W @ X) / S[:, None]
    return logp - math.log(n) - 0.5 * d * math.log(2 * math.pi * t), mean


def make_pykeops(X, t):
    """pykeops LazyTensor (CPU): log-sum-exp and softmax-weighted mean, both reductions."""
    from pykeops.numpy import LazyTensor

    n, d = X.shape

    def run(x):
        xi = LazyTensor(x[:, None, :])
        Xj = LazyTensor(X[None, :, :])
        K = -((xi - Xj) ** 2).sum(-1) / (2 * t)
        lse = K.logsumexp(axis=1).ravel()
        mean = K.sumsoftmaxweight(Xj, axis=1)
        return lse - math.log(n) - 0.5 * d * math.log(2 * math.pi * t), mean

    return run


def make_scipy(X, t):
    """scipy.stats.gaussian_kde with its kernel covariance set to t I (density only)."""
    from scipy.stats import gaussian_kde

    d = X.shape[1]

    class IsoKDE(gaussian_kde):
        # gaussian_kde scales the data covariance; the engine's kernel is N(0, t I)
        def _compute_covariance(self):
            self.factor = 1.0
            self._data_covariance = np.eye(d)
            self._data_cho_cov = np.eye(d)
            self.covariance = t * np.eye(d)
            self.cho_cov = math.sqrt(t) * np.eye(d)
            self.log_det = d * math.log(2 * math.pi * t)

    kde = IsoKDE(X.T)
    return lambda x: (kde.logpdf(x.T), None)


def make_sklearn(X, t, rtol):
    """sklearn KernelDensity (tree, Gaussian kernel, relative tolerance rtol; density only)."""
    from sklearn.neighbors import KernelDensity

    kde = KernelDensity(bandwidth=math.sqrt(t), kernel="gaussian", rtol=rtol).fit(X)
    return lambda x: (kde.score_samples(x), None)


def make_kdepy(X, t):
    """KDEpy FFTKDE on a grid covering data and queries, linear interpolation (density only)."""
    from KDEpy import FFTKDE
    from scipy.interpolate import RegularGridInterpolator

    n, d = X.shape
    if d > 2:
        raise RuntimeError("FFTKDE evaluates on a full d-dim grid; d > 2 is impractical")
    num = 2**16 if d == 1 else 1024

    def run(x):
        kde = FFTKDE(kernel="gaussian", bw=math.sqrt(t)).fit(X)
        lo = np.minimum(X.min(0), x.min(0)) - 4 * math.sqrt(t)
        hi = np.maximum(X.max(0), x.max(0)) + 4 * math.sqrt(t)
        axes = [np.linspace(lo[j], hi[j], num) for j in range(d)]
        if d == 1:
            y = kde.evaluate(axes[0])
            p = np.interp(x[:, 0], axes[0], y)
        else:
            gx, gy = np.meshgrid(*axes, indexing="ij")
            y = kde.evaluate(np.column_stack([gx.ravel(), gy.ravel()])).reshape(num, num)
            p = RegularGridInterpolator(axes, y)(x)
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(p, 0.0)), None

    return run


def pykeops_status() -> str | None:
    """None if pykeops compiles and runs a tiny reduction here, else the reason."""
    try:
        fn = make_pykeops(np.zeros((3, 1)), 1.0)
        lp, _ = fn(np.zeros((2, 1)))
        if not np.all(np.isfinite(lp)):
            return "pykeops returned non-finite values"
        return None
    except Exception as exc:  # noqa: BLE001 - the reason goes into the output
        msg = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {msg}"


# ---------------------------------------------------------------- timing and errors
def median_time(fn, x, repeats):
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), res


def errors(res, ref, x, t, n, d):
    """Max relative error of p̂ and of the score (engine's scale) where p̂_exact >= rho_n(t).

    Score error |ŝ - ŝ_exact| / max(|ŝ_exact|, 1/sqrt t) = |mean - mean_exact| /
    max(|mean_exact - x|, sqrt t), the engine's tolerance (engine/dispatch.py).
    """
    lp, mu = res
    lp0, mu0 = ref
    k = len(lp0)
    lp = np.asarray(lp)[:k]
    above = lp0 >= -math.log(n) - 0.5 * d * math.log(t)  # p̂ >= rho_n = 1/(n t^{d/2})
    if not above.any():
        return None, None, 0
    with np.errstate(over="ignore", invalid="ignore"):
        rel = np.abs(np.expm1(lp - lp0))[above]
    ep = float(np.max(rel)) if np.all(np.isfinite(rel)) else float("inf")
    es = None
    if mu is not None:
        mu = np.asarray(mu)[:k]
        sc = np.maximum(np.linalg.norm(mu0 - x[:k], axis=1), math.sqrt(t))
        es = float(np.max((np.linalg.norm(mu - mu0, axis=1) / sc)[above]))
    return ep, es, int(above.sum())


def queries_for(X, t, m, key):
    """Queries distributed like p̂_t (what the sampler meets at time t)."""
    g = rng("bench", *key)
    return X[g.integers(0, len(X), m)] + math.sqrt(t) * g.standard_normal((m, X.shape[1]))


def make_method(label, name, X, t, rtol):
    """(callable q -> (logp, mean|None), engine or None) for one method, or raise why not."""
    if label == "engine":
        if name not in BACKENDS and name != "auto":
            raise RuntimeError(f"backend {name!r} not offered by this engine")
        eng = GaussianEngine(X, backend=name, rtol=rtol)
        return (lambda q: eng.sums(q, t)), eng
    if name == "numpy_gemm":
        return (lambda q: numpy_gemm(X, q, t)), None
    if name == "pykeops":
        return make_pykeops(X, t), None
    if name == "scipy_kde":
        return make_scipy(X, t), None
    if name == "sklearn_kde":
        return make_sklearn(X, t, rtol), None
    return make_kdepy(X, t), None


def bench_case(n, m, d, t, *, budget, rtol, repeats, err_m, keops_reason, peers=True,
               only=None):
    """All methods (or those named in `only`) at one (n, m, d, t); rows of dicts."""
    X = rng("bench", "train", n, d).uniform(-1.0, 1.0, (n, d))
    x = queries_for(X, t, m, ("q", n, d, t))
    ek = min(m, err_m)
    ref = BACKENDS["dense"](X, rtol).sums(x[:ek], t)  # exact float64 reference
    methods = [("engine", b) for b in OURS] + ([("peer", p) for p in PEERS] if peers else [])
    if only:
        methods = [(lab, nm) for lab, nm in methods if nm in only]
    rows = []
    for label, name in methods:
        row = {"method": f"{label}:{name}", "n": n, "m": m, "d": d, "t": t}
        try:
            if name == "pykeops" and keops_reason:
                raise RuntimeError(f"pykeops unavailable: {keops_reason}")
            fn, eng = make_method(label, name, X, t, rtol)
            fn(x[:8])  # warm-up: compilation, caches
            pilot = x[: max(64, m // 50)]
            t0 = time.perf_counter()
            fn(pilot)
            est = (time.perf_counter() - t0) * m / len(pilot)
            if name in ("binned", "auto", "kdepy_fft"):
                est = min(est, budget)  # grid costs do not scale with m: run them on all m
            mt = m if est <= budget else max(min(64, m), int(m * budget / est))
            if mt < m and 1.1 * est * mt / m > 3 * budget:
                raise RuntimeError(f"pilot predicts {est:.0f} s for m={m}; even {mt} queries "
                                   f"exceed 3x the budget of {budget:g} s")
            reps = repeats if est * mt / m < 5 * budget else 1
            sec, res = median_time(fn, x[:mt], reps)
            if name == "dense":  # the reference itself: check it against the numpy backend
                k = min(mt, 200, ek)
                chk = BACKENDS["numpy"](X, rtol).sums(x[:k], t)
                ep, es, na = errors(chk, (ref[0][:k], ref[1][:k]), x, t, n, d)
                row["err_note"] = f"dense vs numpy backend on {k} queries"
            else:
                ep, es, na = errors(res, (ref[0][:mt], ref[1][:mt]), x, t, n, d)
            row.update(seconds=sec * m / mt, evals_per_s=mt * n / sec, timed_m=mt,
                       err_p=ep, err_score=es, n_above=na, repeats=reps)
            if eng is not None and name == "auto":
                row["chosen"] = eng.last_backend
        except Exception as exc:  # noqa: BLE001 - a method that cannot run is recorded
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            row["skipped"] = f"{type(exc).__name__}: {msg}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    ok = [r for r in rows if r["method"].startswith("peer:") and "evals_per_s" in r]
    best = max(ok, key=lambda r: r["evals_per_s"], default=None)
    exact = [r for r in ok if r["err_p"] is not None and r["err_p"] <= rtol
             and (r["err_score"] is None or r["err_score"] <= rtol)]
    best_exact = max(exact, key=lambda r: r["evals_per_s"], default=None)
    for r in rows:
        if "evals_per_s" not in r:
            continue
        if best is not None:
            r["best_peer"] = best["method"]
            r["ratio_to_best_peer"] = r["evals_per_s"] / best["evals_per_s"]
        if best_exact is not None:
            r["best_peer_in_tol"] = best_exact["method"]
            r["ratio_to_best_peer_in_tol"] = r["evals_per_s"] / best_exact["evals_per_s"]
    return rows


def trajectory(n, m, steps, rtol, dense_ts, dense_m):
    """Auto engine over a geometric grid of `steps` times 1e2 -> 1e-4 at d = 1, vs dense.

    Dense costs the same at every t (it sums all n points); it is timed at `dense_ts`
    on `dense_m` queries and extrapolated per evaluation to m queries and all steps.
    """
    X = rng("bench", "traj", n).uniform(-1.0, 1.0, (n, 1))
    ts = np.geomspace(1e2, 1e-4, steps)
    eng = GaussianEngine(X, backend="auto", rtol=rtol, plan_m=m)
    dense = BACKENDS["dense"](X, rtol)
    dense.sums(X[:8], 1.0)
    per_step = []
    chosen: dict[str, int] = {}
    worst = [0.0, 0.0]
    for k, t in enumerate(ts):
        x = queries_for(X, t, m, ("traj", n, k))
        t0 = time.perf_counter()
        res = eng.sums(x, t)
        per_step.append({"t": float(t), "backend": eng.last_backend,
                         "seconds": time.perf_counter() - t0})
        chosen[eng.last_backend] = chosen.get(eng.last_backend, 0) + 1
        if k % max(1, steps // 8) == 0 or k == steps - 1:  # spot-check accuracy vs dense
            kk = min(m, 300)
            ep, es, _ = errors((res[0][:kk], res[1][:kk]), dense.sums(x[:kk], t), x, t, n, 1)
            worst = [max(worst[0], ep or 0.0), max(worst[1], es or 0.0)]
    auto_s = sum(s["seconds"] for s in per_step)
    rates = []
    for t in dense_ts:
        xs = queries_for(X, t, dense_m, ("traj-dense", n, t))
        sec, _ = median_time(lambda q, t=t: dense.sums(q, t), xs, 1)
        rates.append(sec / (dense_m * n))
    dense_s = float(np.median(rates)) * m * n * steps
    by_backend: dict[str, float] = {}
    for s in per_step:
        by_backend[s["backend"]] = by_backend.get(s["backend"], 0.0) + s["seconds"]
    speedup = dense_s / auto_s
    return {"n": n, "m": m, "d": 1, "steps": steps, "t_range": [1e-4, 1e2],
            "auto_seconds": auto_s, "chosen": chosen, "seconds_by_backend": by_backend,
            "per_step": per_step, "dense_seconds_extrapolated": dense_s,
            "dense_timed_at_t": list(dense_ts), "dense_timed_m": dense_m,
            "speedup": speedup, "target_speedup": 20.0, "max_err_p": worst[0],
            "max_err_score": worst[1],
            "met": bool(speedup >= 20 and max(worst) <= rtol)}


def wide_queries(n, m, rtol, ts=(100.0, 1.0, 0.05, 0.01), bound=3.0):
    """Auto vs dense, 2-D, n points on [-1, 1]^2, m queries uniform on [-8, 8]^2.

    Most queries lie outside the data's region (beyond binned's grid, or below rho_n):
    each backend then hands them to cutoff, whose ball around a far query holds most of
    the data. Times are single runs after a warm-up (compilation) at the same t.
    """
    X = rng("bench", "wide", n).uniform(-1.0, 1.0, (n, 2))
    x = rng("bench", "wide-q", n, m).uniform(-8.0, 8.0, (m, 2))
    dense = BACKENDS["dense"](X, rtol)
    dense.sums(x[:8], 1.0)
    rows = []
    for t in ts:
        eng = GaussianEngine(X, backend="auto", rtol=rtol)
        eng.sums(x[:8], t)  # compile; binned also builds (and caches) its grid here
        t0 = time.perf_counter()
        res = eng.sums(x, t)
        auto_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = dense.sums(x, t)
        dense_s = time.perf_counter() - t0
        ep, es, na = errors(res, ref, x, t, n, 2)
        row = {"n": n, "m": m, "d": 2, "t": t, "chosen": eng.last_backend,
               "auto_seconds": auto_s, "dense_seconds": dense_s, "ratio": auto_s / dense_s,
               "err_p": ep, "err_score": es, "n_above": na,
               "met": bool(auto_s <= bound * dense_s and max(ep or 0, es or 0) <= rtol)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report
def _fmt(v, spec=".1e"):
    return "-" if v is None else format(v, spec)


def markdown(res) -> str:
    info, lim = res["machine"], res["limits"]
    out = [f"# Kernel benchmark ({res['preset']})", "",
           f"Machine: {info['cpu_model']}, {info['cpus_usable']} usable CPUs, numba threads "
           f"{info['numba_threads']}; {info['platform']}, Python {info['python']}; "
           f"{info['date']}, commit {info['git_commit']}.",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".", "",
           f"Limits (medians): np.exp {lim['exp_per_s_1thread']:.3g}/s on 1 thread, "
           f"{lim['exp_per_s_2threads']:.3g}/s on 2 threads; float64 GEMM "
           f"{lim['gemm_gflops']:.1f} GFLOP/s.", "",
           f"evals/s = m n / median seconds (repeats {res['repeats']}); methods slower than "
           f"{res['budget_s']:g} s per run are timed on the first `timed m` queries and "
           "extrapolated per evaluation. Errors: max relative error of p̂ and ŝ against exact "
           f"float64 dense on the first {res['err_m']} queries (or the timed ones), where "
           "p̂ >= rho_n = 1/(n t^(d/2)). `x peer` = evals/s over the best peer's; `x peer@tol` "
           f"over the best peer within rtol = {res['rtol']:g}.", ""]
    if res.get("pykeops_unavailable"):
        out += [f"pykeops unavailable: {res['pykeops_unavailable']}", ""]
    out += ["| n | d | t | method | evals/s | x peer | x peer@tol | err p̂ | err ŝ | timed m "
            "| note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        head = f"| {r['n']:.0e} | {r['d']} | {r['t']:g} | {r['method']} |"
        if "evals_per_s" in r:
            note = f"chose {r['chosen']}" if "chosen" in r else r.get("err_note", "")
            out.append(f"{head} {r['evals_per_s']:.3g} | {_fmt(r.get('ratio_to_best_peer'), '.2f')}"
                       f" | {_fmt(r.get('ratio_to_best_peer_in_tol'), '.2f')} | "
                       f"{_fmt(r['err_p'])} | {_fmt(r['err_score'])} | {r['timed_m']} | {note} |")
        else:
            out.append(f"{head} - | - | - | - | - | - | skipped: {r['skipped']} |")
    out += ["", "## Dense against the machine's limits and the issue-4 target", ""]
    for r in res["rows"]:
        if r["method"] == "engine:dense" and "evals_per_s" in r and r["t"] == 1.0:
            peers = {q["method"]: q["evals_per_s"] for q in res["rows"]
                     if q["n"] == r["n"] and q["d"] == r["d"] and q["t"] == r["t"]
                     and "evals_per_s" in q}
            keops = peers.get("peer:pykeops")
            npg = peers.get("peer:numpy_gemm")
            frac = r["evals_per_s"] / lim["exp_per_s_2threads"]
            out.append(
                f"- n={r['n']:.0e} d={r['d']}: dense {r['evals_per_s']:.3g} evals/s = "
                f"{frac:.2f} x np.exp on 2 threads (target >= 0.33); "
                f"x pykeops {_fmt(keops and r['evals_per_s'] / keops, '.2f')} (target 1.5); "
                f"x numpy GEMM {_fmt(npg and r['evals_per_s'] / npg, '.2f')} (target 5)")
    tr = res.get("trajectory")
    if tr:
        out += ["", "## Reverse trajectory (d = 1, auto vs dense)", "",
                f"n={tr['n']:.0e}, m={tr['m']}, {tr['steps']} geometric steps t = 1e2 -> 1e-4: "
                f"auto {tr['auto_seconds']:.2f} s (steps per backend {tr['chosen']}; seconds "
                + ", ".join(f"{k} {v:.2f}" for k, v in tr["seconds_by_backend"].items())
                + f"); dense {tr['dense_seconds_extrapolated']:.0f} s, extrapolated per "
                f"evaluation from timing it on {tr['dense_timed_m']} queries at t = "
                f"{tr['dense_timed_at_t']} (its cost does not depend on t). Speed-up "
                f"{tr['speedup']:.0f}x (target 20x: {'met' if tr['met'] else 'NOT met'}); max "
                f"errors vs dense p̂ {tr['max_err_p']:.1e}, ŝ {tr['max_err_score']:.1e}."]
    if res.get("wide"):
        out += ["", "## Wide query box (d = 2, queries on [-8, 8]^2, data on [-1, 1]^2)", "",
                "| n | m | t | auto chose | auto s | dense s | auto/dense (<= 3) | err p̂ "
                "| err ŝ |", "|---|---|---|---|---|---|---|---|---|"]
        for r in res["wide"]:
            out.append(f"| {r['n']:.0e} | {r['m']} | {r['t']:g} | {r['chosen']} | "
                       f"{r['auto_seconds']:.2f} | {r['dense_seconds']:.2f} | "
                       f"{r['ratio']:.2f} {'met' if r['met'] else 'NOT met'} | "
                       f"{_fmt(r['err_p'])} | {_fmt(r['err_score'])} |")
    out += ["", f"Command: `{res['command']}`; total {res['total_seconds']:.0f} s."]
    return "\n".join(out) + "\n"


PRESETS = {
    "quick": dict(n=[10**4], d=[1, 2], t=[1e-2, 1.0], m=2000, budget=0.3, repeats=3,
                  err_m=500, traj_n=10**5, traj_m=2000, traj_steps=20, wide_n=10**4,
                  wide_m=10**4),
    "default": dict(n=[10**4, 10**5], d=[1, 2, 3, 8], t=[1e-2, 1.0], m=10**4, budget=1.5,
                    repeats=3, err_m=1000, traj_n=10**6, traj_m=10**4, traj_steps=40,
                    wide_n=10**4, wide_m=40_000),
    "full": dict(n=[10**4, 10**5, 10**6], d=[1, 2, 3, 8], t=[1e-4, 1e-2, 1.0, 100.0],
                 m=10**4, budget=3.0, repeats=3, err_m=1000, traj_n=10**6, traj_m=10**4,
                 traj_steps=40, wide_n=10**4, wide_m=40_000),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="tiny grid, ~1 minute")
    g.add_argument("--full", action="store_true", help="the whole issue-4 grid (hours)")
    ap.add_argument("--n", type=int, nargs="+", help="training sizes (overrides the preset)")
    ap.add_argument("--d", type=int, nargs="+", help="dimensions")
    ap.add_argument("--t", type=float, nargs="+", help="times")
    ap.add_argument("--m", type=int, help="queries per case")
    ap.add_argument("--budget", type=float, help="seconds per timed run before subsetting")
    ap.add_argument("--repeats", type=int, help="timed repeats (median)")
    ap.add_argument("--err-m", type=int, help="queries checked against exact dense")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--no-peers", action="store_true", help="engine backends only")
    ap.add_argument("--methods", nargs="+", choices=OURS + PEERS,
                    help="time only these (e.g. dense numpy_gemm pykeops)")
    ap.add_argument("--traj-n", type=int)
    ap.add_argument("--traj-m", type=int)
    ap.add_argument("--traj-steps", type=int)
    ap.add_argument("--no-trajectory", action="store_true")
    ap.add_argument("--no-grid", action="store_true", help="only limits and trajectory")
    ap.add_argument("--no-wide", action="store_true", help="skip the wide-query rows")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    a = ap.parse_args(argv)
    preset = "quick" if a.quick else "full" if a.full else "default"
    p = dict(PRESETS[preset])
    for key in ("n", "d", "t", "m", "budget", "repeats", "err_m", "traj_n", "traj_m",
                "traj_steps"):
        if getattr(a, key) is not None:
            p[key] = getattr(a, key)
    if any(v < 1 for v in p["n"] + p["d"] + [p["m"], p["traj_n"], p["traj_m"], p["traj_steps"]]):
        raise ValueError("n, d, m and the trajectory sizes must be >= 1")
    if any(not (t > 0) for t in p["t"]):
        raise ValueError("times t must be > 0")
    start = time.perf_counter()
    keops = pykeops_status()
    res = {"preset": preset, "params": p, "rtol": a.rtol, "budget_s": p["budget"],
           "repeats": p["repeats"], "err_m": p["err_m"],
           "command": "python " + " ".join([sys.argv[0], *(argv if argv else sys.argv[1:])]),
           "machine": machine_info(), "limits": machine_limits(),
           "pykeops_unavailable": keops,
           "float32": ("dense32 backend (float32 distances/exp, float64 sums); auto uses it "
                       "only for rtol >= 1e-4" if "dense32" in BACKENDS
                       else "not offered by this engine"),
           "rows": []}
    print(json.dumps(res["limits"]), flush=True)
    if not a.no_grid:
        for n in p["n"]:
            for d in p["d"]:
                for t in p["t"]:
                    res["rows"] += bench_case(n, p["m"], d, t, budget=p["budget"],
                                              rtol=a.rtol, repeats=p["repeats"],
                                              err_m=p["err_m"], keops_reason=keops,
                                              peers=not a.no_peers, only=a.methods)
    if not a.no_trajectory:
        dense_m = max(64, min(p["traj_m"], int(4 * p["budget"] * 2e8 / p["traj_n"])))
        res["trajectory"] = trajectory(p["traj_n"], p["traj_m"], p["traj_steps"], a.rtol,
                                       dense_ts=(1e-4, 1.0, 1e2), dense_m=dense_m)
        print(json.dumps({k: v for k, v in res["trajectory"].items() if k != "per_step"}),
              flush=True)
    if not a.no_wide:
        res["wide"] = wide_queries(p["wide_n"], p["wide_m"], a.rtol)
    res["total_seconds"] = time.perf_counter() - start
    res["loadavg_end"] = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    stem = {"quick": "kernels_quick", "default": "kernels", "full": "kernels_full"}[preset]
    if a.tag:
        stem += f"_{a.tag}"
    (a.out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    (a.out / f"{stem}.md").write_text(markdown(res))
    print(f"wrote {a.out / (stem + '.json')} and .md ({res['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
