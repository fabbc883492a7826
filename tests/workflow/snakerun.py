"""Helpers of the workflow tests: run Snakemake on the repository's Snakefile and read its plan.

Snakemake runs in a subprocess with a temporary working directory (--directory) and
config (--configfile), so nothing touches the checkout.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"

#: a study small enough to run in well under a minute on 2 cores
TINY = {
    "densities": [{"name": "sym_beta", "beta": [1.0]}],
    "d": [1],
    "n": [50, 100],
    "seeds": [0, 1],
    "estimators": ["truncated", "empirical"],
    "m": 50,
    "steps": 8,
    "n_mc": 100,
    "t_grid": {"tmin": 0.01, "tmax": 10.0, "num": 5},
}


def smk(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    """Run snakemake on the repo's Snakefile in `workdir` with `config`; output merged."""
    cfg = workdir / "config.test.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
         "--configfile", str(cfg), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def planned(workdir: Path, config: dict) -> list[tuple[str, dict]]:
    """The jobs a dry run would execute: (rule, wildcards) for each."""
    res = smk(workdir, config, "-n")
    assert res.returncode == 0, res.stdout
    if "Nothing to be done" in res.stdout:
        return []
    jobs = []
    for block in re.split(r"^\s*(?:localrule|rule) ", res.stdout, flags=re.M)[1:]:
        name = block.split(":", 1)[0].strip()
        m = re.search(r"^\s*wildcards: (.*)$", block, flags=re.M)
        wc = dict(kv.split("=", 1) for kv in m.group(1).split(", ")) if m else {}
        jobs.append((name, wc))
    return jobs


def run_jobs(jobs) -> set[tuple[str, str]]:
    """(n, seed) of every planned run_job."""
    return {(wc["n"], wc["seed"]) for name, wc in jobs if name == "run_job"}


def other_rules(jobs) -> set[str]:
    """Names of the planned rules other than run_job."""
    return {name for name, _ in jobs if name != "run_job"}


def with_(config: dict, **changes) -> dict:
    """A deep copy of `config` with top-level keys replaced."""
    out = copy.deepcopy(config)
    out.update(changes)
    return out
