"""Per-job overhead under load: a study of many small jobs, one process per job vs batches.

    python benchmarks/load.py --phases-only          # per-job phases only (~1 min)
    python benchmarks/load.py                        # + the 500-job study, 4 configurations
    python benchmarks/load.py --modes batched-embedded --seeds 100

Part 1 (phases): wall of `python -c pass`, of `scorerate run-job --help`, and of a trivial
job (`run-job --timings`: imports, validate, cluster_start, work, cluster_stop, write, each
timed inside the process; "startup" is launch -> start of the imports, "exit" the last
phase's end -> process gone), with the embedded cluster and with the loopback cluster; and
`run-jobs --timings` over K trivial jobs (per-job work and write once the process is warm).
Part 2 (study): `snakemake --cores 2` over a study of len(n) x seeds small jobs, in four
modes: {plain: one `run-job` process per job, batched: `dask.jobs_per_client` = K} x
{embedded: a LocalCluster per process, loopback: `dask scheduler` and 2 `dask worker
--nthreads 1` on 127.0.0.1, started and stopped here by PID}. Recorded: total wall, the
aggregate/report rules' own wall (their benchmark TSVs), jobs per minute, the jobs' own
wall_time_s (store attrs) and the Snakemake overhead = 2 cores x wall / jobs - median
work. The worktree's `src` is put first on PYTHONPATH for every process, so the code
measured is this checkout's. Writes <out>/load.json (medians, ratios, machine info).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: a trivial job: the overhead, not the work, dominates it
TRIVIAL = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "100", "--m", "50",
           "--steps", "5", "--estimators", "truncated", "--t-grid", "0.01", "10", "3",
           "--n-mc", "100", "--n-ref", "200", "--n-int", "3", "--n-mc-kde", "500",
           "--threads", "1", "--quiet"]
SHARED = TRIVIAL[TRIVIAL.index("--m"):]


def study_config(seeds: int, ns: list[int]) -> dict:
    """The small-job study: 1 density, d = 1, len(ns) x seeds jobs, the TRIVIAL job sizes."""
    return {"densities": [{"name": "sym_beta", "beta": [1.0]}], "d": [1], "n": ns,
            "seeds": list(range(seeds)), "estimators": ["truncated"], "m": 50, "steps": 5,
            "n_mc": 100, "n_ref": 200, "n_int": 3, "n_mc_kde": 500,
            "t_grid": {"tmin": 0.01, "tmax": 10.0, "num": 3}}


def env() -> dict:
    """This checkout's src first on PYTHONPATH (rules call `scorerate`, workers unpickle)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [e.get("PYTHONPATH")])])
    return e


def timed(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """(launch epoch, wall seconds, result) of a subprocess."""
    at, t0 = time.time(), time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env(), **kw)
    return at, time.perf_counter() - t0, res


def parse_timings(stderr: str) -> list[tuple[str, float, float]]:
    """(phase, seconds, end epoch) of each `scorerate timing:` line."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("scorerate timing: "):
            _, _, phase, secs, _, _, at = line.split()
            out.append((phase, float(secs), float(at)))
    return out


def job_phases(launch: float, wall: float, timings: list) -> dict:
    """Phases of one process: startup (launch -> imports begin), the timed ones, exit."""
    ph = {"startup": timings[0][2] - timings[0][1] - launch}
    for name, secs, _ in timings:
        ph[name] = ph.get(name, 0.0) + secs
    ph["exit"] = launch + wall - timings[-1][2]
    ph["total"] = wall
    return ph


def median_dict(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


class LoopbackCluster:
    """`dask scheduler` + `dask worker`s on 127.0.0.1, started and stopped by PID."""

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self.procs = [subprocess.Popen(
            [*dask, "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        self._wait_port()
        for _ in range(workers):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                 "--nthreads", str(threads), "--nworkers", "1", "--no-dashboard",
                 "--memory-limit", "0", "--host", "127.0.0.1"],
                env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait_workers(workers)

    def _wait_port(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("loopback scheduler did not start")

    def _wait_workers(self, n: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n, timeout=timeout)

    def close(self) -> None:
        for p in reversed(self.procs):  # only the processes started here, by their PID
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def phases(repeats: int, batch: int, tmp: Path) -> dict:
    """Part 1: the per-job phases, medians over `repeats` processes."""
    py = sys.executable
    out: dict = {}
    out["python_pass_s"] = statistics.median(timed([py, "-c", "pass"])[1]
                                             for _ in range(repeats))
    out["run_job_help_s"] = statistics.median(
        timed([py, "-m", "scorerate", "run-job", "--help"])[1] for _ in range(repeats))
    imp = timed([py, "-X", "importtime", "-c",
                 "import scorerate.job.graph, scorerate.store.runstore, scorerate.job.cluster, "
                 "scorerate.densities, scorerate.estimators, distributed"])
    top = []
    for line in imp[2].stderr.splitlines()[1:]:  # "import time: self | cumulative | name"
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].startswith(" ") \
                and not parts[2].startswith("  "):  # top level: one space before the name
            top.append((parts[2].strip(), int(parts[1]) / 1e6))
    out["importtime_top_s"] = dict(sorted(top, key=lambda x: -x[1])[:8])
    out["import_all_s"] = imp[1]
    # warm numba's cache and the OS page cache once, not counted
    timed([py, "-m", "scorerate", "run-job", *TRIVIAL, "--out", str(tmp / "warm.zarr")])

    def one(extra: list[str], i: int) -> dict:
        store = tmp / f"trivial{i}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        at, wall, res = timed([py, "-m", "scorerate", "run-job", *TRIVIAL, *extra,
                               "--timings", "--out", str(store)])
        assert res.returncode == 0, res.stderr
        return job_phases(at, wall, parse_timings(res.stderr))

    out["run_job_embedded"] = median_dict([one([], i) for i in range(repeats)])
    cl = LoopbackCluster()
    try:
        out["run_job_loopback"] = median_dict(
            [one(["--scheduler", cl.address], i) for i in range(repeats)])
    finally:
        cl.close()
    jobs = []
    for s in range(batch):
        jobs += ["--job", "sym_beta", "1.0", "1", "100", str(s), str(tmp / f"b{s}.zarr")]
    at, wall, res = timed([py, "-m", "scorerate", "run-jobs", *SHARED, "--threads", "1",
                           "--quiet", "--timings", *jobs, "--overwrite"])
    assert res.returncode == 0, res.stderr
    t = parse_timings(res.stderr)
    works = [s for name, s, _ in t if name == "work"]
    writes = [s for name, s, _ in t if name == "write"]
    out["run_jobs"] = {"jobs": batch, "total_s": wall, "per_job_s": wall / batch,
                       "first_work_s": works[0], "work_after_first_median_s":
                       statistics.median(works[1:]), "write_median_s":
                       statistics.median(writes), "phases": job_phases(at, wall, t)}
    emb = out["run_job_embedded"]
    out["overhead_embedded_s"] = emb["total"] - emb["work"]
    out["overhead_share_embedded"] = out["overhead_embedded_s"] / emb["total"]
    out["batch_speedup_per_job"] = emb["total"] / out["run_jobs"]["per_job_s"]
    return out


def store_walls(runs: Path) -> list[float]:
    """wall_time_s of every run store (read from its consolidated zarr.json)."""
    out = []
    for meta in runs.rglob("seed=*.zarr/zarr.json"):
        attrs = json.loads(meta.read_text()).get("attributes", {})
        if "wall_time_s" in attrs:
            out.append(float(attrs["wall_time_s"]))
    return out


def bench_s(path: Path) -> float:
    """Wall seconds from a Snakemake benchmark TSV (0 when absent)."""
    if not path.is_file():
        return 0.0
    lines = path.read_text().splitlines()
    return float(lines[1].split("\t")[0]) if len(lines) > 1 else 0.0


def study(mode: str, cfg: dict, batch: int, cores: int, tmp: Path) -> dict:
    """Part 2: one snakemake run of the study in `mode`; wall, rates and overheads."""
    plain_or_batched, where = mode.split("-")
    cfg = json.loads(json.dumps(cfg))
    cfg["dask"] = {"jobs_per_client": batch if plain_or_batched == "batched" else 1}
    work = tmp / mode
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    cl = LoopbackCluster() if where == "loopback" else None
    try:
        if cl is not None:
            cfg["dask"]["scheduler_address"] = cl.address
            (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        load0 = os.getloadavg()
        at, wall, res = timed([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                               "--directory", str(work), "--configfile",
                               str(work / "config.yaml"), "--cores", str(cores), "--quiet",
                               "all"])
    finally:
        if cl is not None:
            cl.close()
    njobs = len(cfg["n"]) * len(cfg["seeds"])
    walls = store_walls(work / "results" / "runs")
    procs = [bench_s(t) for t in (work / "results" / "benchmarks").glob("*/**/*.tsv")]
    tail = {r: bench_s(work / "results" / "benchmarks" / f"{r}.tsv")
            for r in ("study_config", "aggregate", "report")}
    runs_wall = wall - sum(tail.values())
    row = {"mode": mode, "rc": res.returncode, "jobs": njobs, "stores": len(walls),
           "jobs_per_client": cfg["dask"]["jobs_per_client"], "wall_s": wall,
           "tail_rules_s": tail, "runs_wall_s": runs_wall,
           "jobs_per_min": 60 * njobs / runs_wall, "jobs_per_min_incl_tail": 60 * njobs / wall,
           "job_wall_time_s_median": statistics.median(walls) if walls else None,
           "core_s_per_job": cores * runs_wall / njobs, "loadavg_before": load0,
           "loadavg_after": os.getloadavg()}
    if procs:  # one TSV per rule job: a run-job process, or a run-jobs batch
        row["rule_job_wall_s_median"] = statistics.median(procs)
        row["rule_jobs"] = len(procs)
        row["process_s_per_job"] = sum(procs) / njobs
    if walls:
        row["overhead_core_s_per_job"] = row["core_s_per_job"] - row["job_wall_time_s_median"]
    if res.returncode != 0:
        row["error"] = res.stdout[-2000:] + res.stderr[-2000:]
    shutil.rmtree(work, ignore_errors=True)
    return row


MODES = ("plain-embedded", "plain-loopback", "batched-embedded", "batched-loopback")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases-only", action="store_true", help="part 1 only")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--seeds", type=int, default=100, help="seeds per n (default 100)")
    ap.add_argument("--n", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    ap.add_argument("--batch", type=int, default=20, help="jobs_per_client when batched")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="processes per phase median")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--tag", default="", help="suffix of the output file name")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from kernels import machine_info

    started = time.perf_counter()
    res: dict = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
                 "machine": machine_info(), "trivial_job": TRIVIAL}
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"load{a.tag}.json"
    with tempfile.TemporaryDirectory(prefix="scorerate-load-") as tmp:
        res["phases"] = phases(a.repeats, a.batch, Path(tmp))
        print(json.dumps(res["phases"], indent=1), flush=True)
        if not a.phases_only:
            cfg = study_config(a.seeds, a.n)
            res["study"] = {"config": cfg, "cores": a.cores, "rows": []}
            for mode in a.modes:
                row = study(mode, cfg, a.batch, a.cores, Path(tmp))
                res["study"]["rows"].append(row)
                print(json.dumps(row), flush=True)
                path.write_text(json.dumps(res, indent=1))  # partial results survive
            rows = {r["mode"]: r for r in res["study"]["rows"] if r["rc"] == 0}
            ratios = {}
            for where in ("embedded", "loopback"):
                p, b = rows.get(f"plain-{where}"), rows.get(f"batched-{where}")
                if p and b:
                    ratios[f"batched_vs_plain_{where}"] = b["jobs_per_min"] / p["jobs_per_min"]
            for kind in ("plain", "batched"):
                e, lb = rows.get(f"{kind}-embedded"), rows.get(f"{kind}-loopback")
                if e and lb:
                    ratios[f"loopback_vs_embedded_{kind}"] = (lb["jobs_per_min"]
                                                              / e["jobs_per_min"])
            res["study"]["ratios"] = ratios
    res["total_seconds"] = time.perf_counter() - started
    res["loadavg_end"] = os.getloadavg()
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path} ({res['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
