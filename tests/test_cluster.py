"""The Dask client policy: scheduler address vs embedded LocalCluster, fail-fast, cleanup."""

from __future__ import annotations

import os
import socket
import warnings

import dask
import pytest

from scorerate.job import cluster


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(30)  # a hang guard: the error must come from our timeout, not this one
def test_unreachable_scheduler_fails_fast_with_the_address():
    addr = f"tcp://127.0.0.1:{_unused_port()}"
    with pytest.raises(ConnectionError, match="127.0.0.1"):
        with cluster.dask_client(addr, timeout=3):
            pass


def test_check_scheduler_rejects_malformed_and_portless_addresses():
    with pytest.raises(ValueError, match="port"):
        cluster.check_scheduler("tcp://127.0.0.1")
    with pytest.raises((ValueError, ConnectionError)):
        cluster.check_scheduler("tcp://127.0.0.1:notaport")


def test_resolve_address_precedence(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with dask.config.set({"scheduler-address": None}):
        assert cluster.resolve_address(None) is None
        assert cluster.resolve_address("") is None
    with dask.config.set({"scheduler-address": "tcp://cfg:1"}):
        assert cluster.resolve_address(None) == "tcp://cfg:1"
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://env:2")
        assert cluster.resolve_address(None) == "tcp://env:2"
        assert cluster.resolve_address("tcp://arg:3") == "tcp://arg:3"


def test_embedded_cluster_has_the_given_threads_no_dashboard_and_closes(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*already in use")  # port fight -> fail
        with cluster.dask_client(threads=3) as c1, cluster.dask_client(threads=2) as c2:
            ports = [c.scheduler_info()["services"].get("dashboard") for c in (c1, c2)]
    # two jobs at once on one machine: distinct free ports, each sized to its own threads
    assert 8787 not in ports and ports[0] != ports[1]
    with cluster.dask_client(threads=3) as c1:
        assert sorted(c1.nthreads().values()) == [3]
        assert c1.submit(lambda x: x + 1, 1).result() == 2
        # native pools are capped inside the cluster's lifetime
        assert c1.submit(lambda: os.environ["OMP_NUM_THREADS"]).result() == "1"
    assert c1.status == "closed" and c2.status == "closed"
    with cluster.dask_client(threads=2) as c2:
        assert sorted(c2.nthreads().values()) == [2]


def test_embedded_cluster_splits_threads_over_workers(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with cluster.dask_client(threads=4, n_workers=2) as c:
        assert sorted(c.nthreads().values()) == [2, 2]
    with pytest.raises(ValueError, match="threads"):
        with cluster.dask_client(threads=0):
            pass


def test_connects_to_an_existing_scheduler_by_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None, protocol="tcp", host="127.0.0.1") as lc:
        with cluster.dask_client(lc.scheduler_address, threads=99) as c:
            # the remote cluster's size is its own: `threads` is ignored
            assert sorted(c.nthreads().values()) == [1]
            assert c.submit(sum, [1, 2, 3]).result() == 6
        assert c.status == "closed"
        assert lc.status.name == "running"  # closing our client leaves their cluster up


def test_limit_native_threads_restores_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with cluster.limit_native_threads(2):
        assert os.environ["OMP_NUM_THREADS"] == "2"
        assert os.environ["MKL_NUM_THREADS"] == "2"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in os.environ


def test_available_threads_is_positive_and_bounded():
    n = cluster.available_threads()
    assert 1 <= n <= (os.cpu_count() or n)


def _listening() -> set[tuple[str, str]]:
    """(family, local hex address:port) of every TCP socket this process listens on, read
    from /proc (its own socket inodes matched against /proc/self/net/tcp and tcp6)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    out = set()
    for family in ("tcp", "tcp6"):
        for line in open(f"/proc/self/net/{family}").read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # state 0A: LISTEN
                out.add((family, f[1]))
    return out


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="reads Linux /proc")
def test_embedded_cluster_listens_on_loopback_only():
    """Scheduler and worker HTTP servers (and a dashboard, with bokeh) on 127.0.0.1: not on
    0.0.0.0 or [::], where a shared HPC node would expose a port per job."""
    import importlib.util
    import urllib.request

    before = _listening()
    with cluster.dask_client(threads=1) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        opened = _listening() - before
        port = client.scheduler_info()["services"]["dashboard"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert r.read() == b"ok"  # the scheduler's server really is on loopback
        link = cluster.dashboard_link(client)
    assert len(opened) >= 2, opened  # the scheduler's and the worker's
    assert all(fam == "tcp" and addr.startswith("0100007F:") for fam, addr in opened), opened
    assert (link is None) == (importlib.util.find_spec("bokeh") is None)
