"""How long `scorerate run-job` takes to refuse a port that is not a Dask scheduler.

    python benchmarks/refusal.py              # 5 runs per kind of listener
    python benchmarks/refusal.py --repeat 20 --out /tmp/refusal.json

Moved here from tests/test_scheduler_checks.py, which asserted "under 10 s" and failed at
12.8 s on a loaded shared machine: time is measured here, never asserted in a test. Two
listeners on 127.0.0.1, started and stopped in this process: one that accepts and never
answers ("silent"), one that answers HTTP 400 to anything ("http400"). Records each run's
wall time (interpreter start included), exit status and the median per kind, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "300", "--m", "40",
       "--steps", "6", "--threads", "1"]


def listener(kind: str) -> tuple[str, threading.Event]:
    """tcp://127.0.0.1:PORT of a 'silent' or 'http400' listener, and the event that stops it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop, held = threading.Event(), []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            if kind == "silent":
                held.append(conn)
                continue
            try:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            conn.close()
        for conn in held:
            conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}", stop


def time_refusal(address: str) -> dict:
    """One run-job against `address`: wall seconds and exit status."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scorerate", "run-job", *JOB, "--out",
                               str(Path(tmp) / "run.zarr"), "--scheduler", address],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        return {"wall_s": time.perf_counter() - started, "returncode": proc.returncode}


def main() -> None:
    """Time the refusals and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "refusal.json")
    args = ap.parse_args()
    result = {"machine": platform.platform(), "cpus": os.cpu_count(),
              "load_avg": os.getloadavg(), "kinds": {}}
    for kind in ("silent", "http400"):
        address, stop = listener(kind)
        runs = [time_refusal(address) for _ in range(args.repeat)]
        stop.set()
        result["kinds"][kind] = {"runs": runs,
                                 "median_wall_s": statistics.median(r["wall_s"] for r in runs)}
        print(f"{kind}: median {result['kinds'][kind]['median_wall_s']:.2f} s over "
              f"{args.repeat} runs", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
