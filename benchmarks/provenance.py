"""Where a benchmark ran: machine, library versions, thread settings and the commit, for
the JSON every benchmark writes (imported by the scripts beside it)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np

_THREADS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def machine() -> dict:
    """CPU model, cores, versions, load and thread settings."""
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines()
                      if ln.startswith("Model name")), "")
    except OSError:
        model = ""
    import scipy

    import scorerate
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__,
            "scorerate": getattr(scorerate, "__version__", ""), "load_avg": os.getloadavg(),
            "threads": {k: os.environ.get(k) for k in _THREADS}}


def commit() -> str:
    """The repository's HEAD commit (and whether src/ or benchmarks/ differ from it)."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "benchmarks"],
                               capture_output=True, text=True, cwd=here).stdout.strip()
    except OSError:
        return ""
    return head + (" (dirty)" if dirty else "")


def write_results(out: str | Path, stem: str, tag: str, rows: list[dict], lines: list[str],
                  started: str, args: dict) -> None:
    """<out>/<stem>[_tag].json ({"meta", "rows"}: date, the commit the run started on, the
    machine, the arguments) and .md (the table `lines`), which is also printed."""
    import datetime
    import json

    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(), "commit": started,
            "machine": machine(), "args": args}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem + (f"_{tag}" if tag else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
