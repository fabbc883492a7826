"""A real Dask cluster loses workers mid-job: the job still ends with the undisturbed numbers.

A `dask scheduler` and `dask worker --no-nanny --nthreads 1` processes run on 127.0.0.1
(no nanny, so SIGKILL really ends the worker: a nanny would restart it in place). A
`scorerate run-job --scheduler ...` subprocess runs a small job while this test watches
the scheduler and SIGKILLs a chosen worker at a chosen moment, then starts a replacement.
Every process is stopped by its PID at teardown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from plugin_sources import connect

from scorerate.store import runstore as store

pytestmark = pytest.mark.slow

SRC = str(Path(__file__).resolve().parents[1] / "src")
# ~4 s of work on 2 single-thread workers: 2 estimators x 8 sampler chunks, then metrics
JOB = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "3000", "--seed", "1",
       "--m", "160", "--steps", "24", "--chunk", "20", "--estimators", "truncated", "empirical",
       "--n-t", "4", "--n-mc", "400", "--n-ref", "200", "--n-int", "4", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


class Cluster:
    """A scheduler and worker processes started here, each remembered by its PID."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler",
                                  "--host", "127.0.0.1", "--port", port,
                                  "--dashboard-address", "127.0.0.1:0"])

    started: list[subprocess.Popen] = []

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
        log.close()
        self.procs.append(proc)
        Cluster.started.append(proc)
        return proc

    def add_worker(self) -> subprocess.Popen:
        return self._spawn("worker", [
            sys.executable, "-m", "distributed.cli.dask_worker", self.address,
            "--no-nanny", "--nthreads", "1", "--host", "127.0.0.1",
            "--no-dashboard", "--memory-limit", "0"])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def dask_cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def _job(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scorerate", "run-job", *JOB, "--out",
                             str(out), *extra], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _pid_of(client, worker: str) -> int:
    pid = int(client.run(os.getpid, workers=[worker])[worker])
    assert pid in {p.pid for p in Cluster.started}, "not a worker this test started"
    return pid


def _holder_of(client, prefix: str, timeout: float = 60) -> str | None:
    """The worker holding the most keys once one holds a key starting with `prefix`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        has = client.has_what()
        if any(str(k).startswith(prefix) for keys in has.values() for k in keys):
            return max(has, key=lambda w: (any(str(k).startswith(prefix) for k in has[w]),
                                           len(has[w])))
        time.sleep(0.01)
    return None


def _first_busy(client, timeout: float = 60) -> str | None:
    """The first worker seen running a task."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            return busy[0]
        time.sleep(0.01)
    return None


def _same_numbers(a: Path, b: Path) -> None:
    x, y = store.open_run(a), store.open_run(b)
    for name in store.SCHEMA:
        assert np.array_equal(x[name].values, y[name].values, equal_nan=True), name


@pytest.mark.timeout(300)
def test_a_worker_killed_at_any_moment_leaves_the_numbers_unchanged(dask_cluster, tmp_path):
    reference = tmp_path / "reference.zarr"
    ref = subprocess.run([sys.executable, "-m", "scorerate", "run-job", *JOB, "--threads", "1",
                          "--out", str(reference)], env=_env(), capture_output=True, text=True,
                         timeout=240)
    assert ref.returncode == 0, ref.stderr
    for _ in range(2):
        dask_cluster.add_worker()
    client = connect(dask_cluster.address, 2)
    try:
        moments = {
            # the first worker to start a task: it is building an estimator
            "first task": lambda: _first_busy(client),
            # the holder of an estimator (the training data lives in it) and of most keys
            "estimator holder": lambda: _holder_of(client, "estimator-"),
            # late: results the job already counted as done are lost with it
            "result holder": lambda: _holder_of(client, "score_mse_at"),
        }
        for i, (moment, pick) in enumerate(moments.items()):
            assert not any(client.has_what().values()), "the last job left keys behind"
            out = tmp_path / f"killed-{i}.zarr"
            job = _job(out, "--scheduler", dask_cluster.address)
            victim = pick()
            assert victim is not None, f"{moment}: no worker to kill was seen"
            assert job.poll() is None, f"{moment}: the job ended before the kill"
            os.kill(_pid_of(client, victim), signal.SIGKILL)
            dask_cluster.add_worker()  # the replacement (the survivor alone would also do)
            _, err = job.communicate(timeout=240)
            assert job.returncode == 0, f"{moment}: {err}"
            _same_numbers(out, reference)
            client.wait_for_workers(2, timeout=60)
            deadline = time.monotonic() + 10
            while any(client.has_what().values()) and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_losing_every_worker_is_one_error_line_after_the_worker_timeout(dask_cluster,
                                                                        tmp_path):
    worker = dask_cluster.add_worker()
    client = connect(dask_cluster.address, 1)
    try:
        job = _job(tmp_path / "run.zarr", "--scheduler", dask_cluster.address,
                   "--worker-timeout", "3")
        assert _first_busy(client) is not None
        os.kill(worker.pid, signal.SIGKILL)
        _, err = job.communicate(timeout=90)  # the hang guard; no duration is asserted
    finally:
        client.close()
    assert job.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("scorerate run-job: error:"), err
    assert "no Dask workers left" in lines[0] and dask_cluster.address in lines[0]
    assert "none joined within 3 s (--worker-timeout)" in lines[0], lines[0]
    assert not (tmp_path / "run.zarr").exists()
