"""A plug-in that the workers of an existing Dask cluster cannot import is found before the
job's work: one line naming the worker and the plug-in, exit status 2, no store.

A `dask scheduler` and one `dask worker` run on 127.0.0.1, started by the test with
scorerate on their path but not the plug-in's directory (as a cluster started before the
plug-in was written would be); they are stopped by PID at teardown.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_sources import GAUSS_FIT, connect

from scorerate.job.worker_imports import WorkerImportError, check_worker_imports

pytestmark = pytest.mark.slow

SRC = str(Path(__file__).resolve().parents[1] / "src")
IDENT = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "50", "--seed", "0"]
SHARED = ["--m", "20", "--steps", "4", "--n-mc", "50", "--t-grid", "0.1", "1", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(*path: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([*path, SRC])
    return env


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, plug-in directory): a scheduler and a worker without the plug-in."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "myscores.py").write_text(GAUSS_FIT)
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = []
    try:
        for cmd in (["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                     address.rsplit(":", 1)[1], "--dashboard-address", "127.0.0.1:0"],
                    ["distributed.cli.dask_worker", address, "--no-nanny", "--nthreads", "1",
                     "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0"]):
            log = open(tmp_path / f"{cmd[0]}.log", "w")  # noqa: SIM115
            procs.append(subprocess.Popen([sys.executable, "-m", *cmd], stdout=log,
                                          stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path))
            log.close()
        yield address, plugins
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def test_the_check_asks_the_real_workers(cluster):
    address, plugins = cluster
    sys.path.insert(0, str(plugins))  # importable here, not on the worker
    try:
        with connect(address) as client:
            assert check_worker_imports(client, ["sym_beta"], ["truncated", "empirical"]) == 1
            with pytest.raises(WorkerImportError, match=r"cannot import estimator "
                                                        r"'myscores:GaussFit'.*myscores"):
                check_worker_imports(client, ["sym_beta"], ["truncated", "myscores:GaussFit"])
    finally:
        sys.path.remove(str(plugins))


@pytest.mark.parametrize("command", ["run-job", "run-jobs"])
def test_a_plugin_missing_on_the_workers_is_one_line_before_work(cluster, tmp_path, command):
    address, plugins = cluster
    out = tmp_path / "run.zarr"
    where = ([*IDENT, "--out", str(out)] if command == "run-job" else
             ["--job", "sym_beta", "1.0", "1", "50", "0", str(out)])
    res = subprocess.run(
        [sys.executable, "-m", "scorerate", command, *SHARED, *where, "--estimators",
         "truncated", "myscores:GaussFit", "--scheduler", address],
        capture_output=True, text=True, timeout=300, env=_env(str(plugins)), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "cannot import estimator 'myscores:GaussFit'" in lines[0]
    assert address in lines[0] and "Dask worker tcp://127.0.0.1:" in lines[0]
    assert not out.exists()
