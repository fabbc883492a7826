"""run-job against addresses that are not Dask schedulers, and its progress in a log file.

Fake servers run on 127.0.0.1 in daemon threads of this test: a listener that accepts
and never answers, and an HTTP server that answers 400 to anything. Each must give exit
status 2 and one line naming the address, not a hang (the timeout marks) or a traceback.
How long that takes is a benchmark (benchmarks/refusal.py), not an assertion.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from scorerate.job import cluster

SRC = str(Path(__file__).resolve().parents[1] / "src")
SMALL = ["--density", "sym_beta", "--beta", "1.0", "--d", "1", "--n", "300", "--seed", "0",
         "--m", "40", "--steps", "6", "--estimators", "truncated", "empirical",
         "--n-t", "3", "--n-mc", "100", "--n-ref", "100", "--n-int", "3", "--threads", "1"]


@contextmanager
def fake_server(kind: str):
    """tcp://127.0.0.1:PORT of a 'silent' or 'http400' server; closed on exit."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    held, stop = [], threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            if kind == "silent":
                held.append(conn)  # accepted, never read, never answered
                continue
            conn.settimeout(2)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n"
                             b"Connection: close\r\n\r\nBad Request")
            except OSError:
                pass
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        srv.close()


def _run_job(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "scorerate", "run-job", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["silent", "http400"])
def test_check_scheduler_refuses_a_port_that_is_not_a_dask_scheduler(kind):
    with fake_server(kind) as addr:
        with pytest.raises(ConnectionError, match="not a Dask scheduler") as info:
            cluster.check_scheduler(addr, timeout=2)
    assert addr in str(info.value)


@pytest.mark.timeout(60)
def test_check_scheduler_accepts_a_scheduler_and_refuses_a_worker():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None, protocol="tcp", host="127.0.0.1") as lc:
        cluster.check_scheduler(lc.scheduler_address, timeout=5)
        worker = next(iter(lc.scheduler_info["workers"]))
        with pytest.raises(ConnectionError, match="Dask Worker"):
            cluster.check_scheduler(worker, timeout=5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["silent", "http400"])
def test_run_job_refuses_a_port_that_is_not_a_dask_scheduler(kind, tmp_path):
    """One line, exit 2, nothing written; the timeout mark only guards against a hang (how
    long the refusal takes is measured by benchmarks/refusal.py, never asserted here)."""
    with fake_server(kind) as addr:
        proc = _run_job(*SMALL, "--out", str(tmp_path / "run.zarr"), "--scheduler", addr)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorerate run-job: error:"), proc.stderr
    assert addr in lines[0] and "not a Dask scheduler" in lines[0]
    assert not (tmp_path / "run.zarr").exists()


def test_run_job_logs_progress_when_stderr_is_not_a_terminal(tmp_path):
    proc = _run_job(*SMALL, "--out", str(tmp_path / "run.zarr"))
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    start = re.search(r"run-job: (\d+) result tasks on the Dask scheduler at inproc://", err)
    assert start, err
    total = int(start.group(1))
    assert re.search(rf"run-job: {total}/{total} result tasks, \d+ s", err), err
    assert "\r" not in err  # no terminal rewriting in a log file


def test_progress_lines_come_every_tenth_of_the_tasks(capsys, monkeypatch):
    """In-process, with the 10 s floor set to 0: one line per >= 10% more tasks done."""
    from scorerate.job.graph import run_job, spec_from_options

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    spec = spec_from_options(density="sym_beta", beta=1.0, d=1, n=300, m=40, steps=6,
                             estimators=("truncated", "empirical"), n_t=3, n_mc=100,
                             n_ref=100, n_int=3, chunk=5)
    with cluster.dask_client(threads=1) as client:
        run_job(spec, client, progress=True, progress_interval=0.0)
    err = capsys.readouterr().err
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) result tasks, ", err)]
    assert counts, err
    total = counts[0][1]
    done = [a for a, _ in counts]
    assert done[-1] == total and done == sorted(done)
    steps = np.diff([0, *done[:-1]])
    assert (steps >= total / 10).all(), counts  # never more often than every 10%
    assert len(done) >= 2, counts  # and some line before the end


@pytest.mark.timeout(60)
def test_dashboard_link_is_shown_only_when_the_scheduler_serves_one(monkeypatch):
    import importlib.util

    from distributed import LocalCluster

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as lc:
        port = lc.scheduler_info["services"]["dashboard"]
        with cluster.dask_client(lc.scheduler_address) as remote:
            link = cluster.dashboard_link(remote)  # its page answers only with bokeh
            assert (link is None) == (importlib.util.find_spec("bokeh") is None)
            assert link is None or f":{port}/" in link
    with cluster.dask_client(threads=1) as embedded:  # serves bokeh pages only with bokeh
        link = cluster.dashboard_link(embedded)
        assert (link is None) == (importlib.util.find_spec("bokeh") is None)
        assert link is None or link.startswith("http://127.0.0.1:")
