"""Whole-job benchmark: wall time and peak memory of `scorerate run-job`, and a cost model.

    python benchmarks/job.py --quick     # n 1e3, 3e3 at d 1, 2 (a minute or two)
    python benchmarks/job.py             # d 1,2,3 at n 1e4, 1e5 and d 1 at n 1e6
    python benchmarks/job.py --d 1 --n 10000 100000 --extra --estimators truncated

Each job runs as its own subprocess with the CLI's defaults (m, steps, estimators,
metrics) unless --extra passes more flags. Peak memory is measured two ways: the sum of
the RSS of the job's process tree sampled every 50 ms (psutil), and the child's own
ru_maxrss from os.wait4 (largest single process; the kernel's exact high-water mark).
The cost model fits, per d, wall = a_d + b_d * (m n steps) by least squares over the n
measured: b_d is the seconds per (m n step) kernel-evaluation unit (all estimators and
metrics included), a_d the start-up and n-independent work. The engine's backend mix on
the sampler's time grid is recorded from the dispatcher (`choose_backend`), so the cost
per unit can be read by backend. Writes <out>/job[_quick].json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import psutil
except ImportError:  # pragma: no cover - then only ru_maxrss is reported
    psutil = None

PRESETS = {
    "quick": dict(cases=[(1, 1000), (1, 3000), (2, 1000), (2, 3000)]),
    "default": dict(cases=[(1, 10**4), (1, 10**5), (1, 10**6), (2, 10**4), (2, 10**5),
                           (3, 10**4), (3, 10**5)]),
}


def job_plan(density: str, beta: float, d: int, n: int, extra: list[str]) -> dict:
    """m, steps, t0, T of the job (the library's own defaults) and the backend mix on its grid."""
    from scorerate.engine import choose_backend
    from scorerate.job.graph import JobSpec
    from scorerate.sampler import time_grid

    kw = {}
    for flag, key, typ in (("--m", "m", int), ("--steps", "steps", int),
                           ("--backend", "backend", str), ("--rtol", "rtol", float)):
        if flag in extra:
            kw[key] = typ(extra[extra.index(flag) + 1])
    spec = JobSpec(density=density, beta=beta, d=d, n=n, **kw)
    ts = time_grid(spec.t0, spec.T, spec.steps)[:-1]  # the times at which the score is asked
    span = np.full(d, 2.0)  # sym_beta / uniform-like data on [-1, 1]^d
    if spec.backend == "auto":
        mix: dict[str, int] = {}
        for t in ts:
            b = choose_backend(n, spec.m, d, float(t), spec.rtol, span=span)
            mix[b] = mix.get(b, 0) + 1
    else:
        mix = {spec.backend: len(ts)}
    return {"m": spec.m, "steps": spec.steps, "t0": spec.t0, "T": spec.T,
            "estimators": list(spec.estimators), "backend_mix": mix}


def tree_rss(proc) -> int:
    """Bytes of RSS of a process and all its descendants (0 once it is gone)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_one(cmd: list[str], log: Path, timeout: float, interval: float = 0.05) -> dict:
    """Run cmd; wall seconds, sampled peak tree RSS and the child's ru_maxrss."""
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid) if psutil is not None else None
        peak = 0
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if ps is not None:
                peak = max(peak, tree_rss(ps))
            if time.perf_counter() - t0 > timeout:
                proc.kill()  # our own child; wait4 above reaps it on the next pass
            time.sleep(interval)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": wall,
            "peak_tree_rss_mb": peak / 2**20 if ps is not None else None,
            "ru_maxrss_mb": ru.ru_maxrss / 1024}  # Linux: kilobytes


def fit_cost(rows: list[dict]) -> dict:
    """Per d: least-squares wall = a + b * (m n steps); b in seconds per unit."""
    model = {}
    for d in sorted({r["d"] for r in rows}):
        rs = [r for r in rows if r["d"] == d and r.get("rc") == 0]
        if not rs:
            continue
        u = np.array([r["m"] * r["n"] * r["steps"] for r in rs], dtype=float)
        w = np.array([r["wall_s"] for r in rs])
        if len(rs) >= 2 and np.ptp(u) > 0:
            A = np.column_stack([np.ones_like(u), u])
            (a, b), *_ = np.linalg.lstsq(A, w, rcond=None)
        else:
            a, b = 0.0, float(w[0] / u[0])
        mem = np.array([r["peak_tree_rss_mb"] or r["ru_maxrss_mb"] for r in rs])
        n = np.array([r["n"] for r in rs], dtype=float)
        if len(rs) >= 2 and np.ptp(n) > 0:
            (ma, mb), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(n), n]), mem,
                                           rcond=None)
        else:
            ma, mb = float(mem[0]), 0.0
        mixes: dict[str, int] = {}
        for r in rs:
            for k, v in r["backend_mix"].items():
                mixes[k] = mixes.get(k, 0) + v
        model[str(d)] = {"overhead_s": float(a), "s_per_mn_step": float(b),
                         "mem_base_mb": float(ma), "mem_mb_per_1e6_n": float(mb) * 1e6,
                         "backend_steps": mixes, "points": len(rs)}
    return model


def markdown(res: dict) -> str:
    out = [f"# Whole-job benchmark ({res['preset']})", "",
           f"Machine: {res['machine']['cpu_model']}, {res['machine']['cpus_usable']} usable "
           f"CPUs; {res['machine']['date']}. Command: `{res['command']}`. Job flags: "
           f"`--density {res['density']} --beta {res['beta']} --seed 0` "
           f"{' '.join(res['extra'])}", "",
           "| d | n | m | steps | backends on the grid (steps) | wall s | peak tree RSS MB "
           "| ru_maxrss MB | s per m n step |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        if r.get("rc") != 0:
            out.append(f"| {r['d']} | {r['n']:.0e} | - | - | - | - | - | - | failed: "
                       f"{r.get('error', r.get('rc'))} |")
            continue
        mix = ", ".join(f"{k} {v}" for k, v in r["backend_mix"].items())
        pk = "-" if r["peak_tree_rss_mb"] is None else f"{r['peak_tree_rss_mb']:.0f}"
        out.append(f"| {r['d']} | {r['n']:.0e} | {r['m']} | {r['steps']} | {mix} | "
                   f"{r['wall_s']:.1f} | {pk} | {r['ru_maxrss_mb']:.0f} | "
                   f"{r['wall_s'] / (r['m'] * r['n'] * r['steps']):.2e} |")
    out += ["", "## Cost model: wall = a_d + b_d m n steps (least squares per d)", "",
            "| d | a_d (s) | b_d (s per m n step) | memory MB = base + slope n | "
            "backend steps |", "|---|---|---|---|---|"]
    for d, c in res["cost_model"].items():
        mix = ", ".join(f"{k} {v}" for k, v in c["backend_steps"].items())
        out.append(f"| {d} | {c['overhead_s']:.1f} | {c['s_per_mn_step']:.2e} | "
                   f"{c['mem_base_mb']:.0f} + {c['mem_mb_per_1e6_n']:.0f} per 1e6 n | {mix} |")
    out += ["", f"Total {res['total_seconds']:.0f} s."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n 1e3, 3e3 at d 1, 2")
    ap.add_argument("--d", type=int, nargs="+", help="dimensions (with --n: their product)")
    ap.add_argument("--n", type=int, nargs="+", help="training sizes")
    ap.add_argument("--density", default="sym_beta")
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per job")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="further run-job flags, e.g. --extra --m 500 --steps 32")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = ap.parse_args(argv)
    preset = "quick" if a.quick else "default"
    cases = PRESETS[preset]["cases"]
    if a.d or a.n:
        ds = a.d or sorted({c[0] for c in cases})
        ns = a.n or sorted({c[1] for c in cases})
        cases = [(d, n) for d in ds for n in ns]
        preset += " (custom)"
    exe = shutil.which("scorerate")
    base = [exe] if exe else [sys.executable, "-m", "scorerate"]
    from kernels import machine_info  # same directory

    start = time.perf_counter()
    res = {"preset": preset, "density": a.density, "beta": a.beta, "extra": a.extra,
           "command": "python " + " ".join([sys.argv[0], *(argv if argv else sys.argv[1:])]),
           "machine": machine_info(), "platform": platform.platform(), "rows": []}
    with tempfile.TemporaryDirectory(prefix="scorerate-jobbench-") as tmp:
        for d, n in cases:
            row: dict = {"d": d, "n": n}
            try:
                row.update(job_plan(a.density, a.beta, d, n, a.extra))
            except Exception as exc:  # noqa: BLE001 - recorded, the next case still runs
                row.update(rc=-1, error=f"{type(exc).__name__}: {exc}")
                res["rows"].append(row)
                print(json.dumps(row), flush=True)
                continue
            store = Path(tmp) / f"d{d}_n{n}.zarr"
            log = Path(tmp) / f"d{d}_n{n}.log"
            cmd = [*base, "run-job", "--density", a.density, "--beta", str(a.beta),
                   "--d", str(d), "--n", str(n), "--seed", "0", "--out", str(store),
                   "--quiet", *a.extra]
            row["cmd"] = " ".join(cmd[len(base) - 1:])
            row.update(run_one(cmd, log, a.timeout))
            if row["rc"] != 0:
                row["error"] = log.read_text()[-400:]
            else:
                shutil.rmtree(store, ignore_errors=True)
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
    res["cost_model"] = fit_cost(res["rows"])
    res["total_seconds"] = time.perf_counter() - start
    a.out.mkdir(parents=True, exist_ok=True)
    stem = "job_quick" if a.quick else "job"
    (a.out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    (a.out / f"{stem}.md").write_text(markdown(res))
    print(json.dumps(res["cost_model"], indent=1))
    print(f"wrote {a.out / (stem + '.json')} and .md ({res['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
