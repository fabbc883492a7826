"""The one place that decides which Dask client a job uses.

An explicit scheduler address (or ``DASK_SCHEDULER_ADDRESS`` / dask config
``scheduler-address``) connects to that cluster and fails within seconds if it is
unreachable or is not a Dask scheduler (check_scheduler: a TCP probe, then Dask's
handshake and an identity request, each bounded). Otherwise an embedded
``LocalCluster`` is started with exactly the threads the job was given (Snakemake's
``threads``).

Why one worker with N threads, in-process (``processes=False``): the kernel engine's
numba loops release the GIL (``nogil=True``), so threads run truly in parallel, and a
single in-process worker holds the training set once instead of pickling it to
several processes. Native thread pools (numba's ``prange``, BLAS) are pinned to one
thread per Dask thread so that N Dask threads use N cores, not N^2. Every server of the
embedded cluster (the scheduler's and the worker's small HTTP servers: health, metrics,
and the dashboard when bokeh is installed) binds a free port on 127.0.0.1 only, so several
jobs on one node never fight over port 8787 and none is reachable from the network.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "NoWorkersError",
    "available_threads",
    "check_scheduler",
    "dask_client",
    "dashboard_link",
    "limit_native_threads",
    "resolve_address",
]

#: seconds allowed to reach an explicit scheduler before giving up
DEFAULT_CONNECT_TIMEOUT = 5.0
#: the only interface an embedded cluster's servers listen on
LOOPBACK = "127.0.0.1"


class NoWorkersError(ConnectionError):
    """The scheduler has had no worker for longer than the job's worker timeout."""


_NATIVE_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def available_threads() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_address(address: str | None = None) -> str | None:
    """Scheduler address to use: `address`, else DASK_SCHEDULER_ADDRESS / dask config, else None.

    None means "start an embedded LocalCluster". An empty string counts as None.
    """
    if address:
        return address
    env = os.environ.get("DASK_SCHEDULER_ADDRESS")
    if env:
        return env
    import dask

    return dask.config.get("scheduler-address", None) or None


def check_scheduler(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Raise ConnectionError within about `timeout` seconds unless a Dask scheduler answers.

    For tcp:// and tls:// addresses (host:port alone means tcp): a TCP probe, then Dask's
    own handshake and an ``identity`` request, each bounded by `timeout`, so a port that
    accepts connections but is not a Dask scheduler (a silent listener, an HTTP server, a
    Dask worker) fails fast instead of hanging the Client. Other protocols are left to the
    Client's own timeout. The error names the address.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        protocol, loc = parse_address(address if "://" in address else f"tcp://{address}")
        if protocol not in ("tcp", "tls"):
            return
        host, port = parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed scheduler address {address!r}: {exc}") from None
    if port is None:
        raise ValueError(f"scheduler address {address!r} has no port (expected tcp://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s: {exc}"
        ) from None
    kind = _identify(f"{protocol}://{loc}", timeout)
    if kind != "Scheduler":
        raise ConnectionError(f"{address!r} accepts connections but is not a Dask scheduler "
                              f"({kind})")


def _identify(address: str, timeout: float) -> str:
    """The ``type`` a Dask server at `address` reports, or why none could be had in time.

    Runs Dask's handshake in a private event loop on a daemon thread, so it works inside
    a running loop too and a server that stalls it costs at most `timeout` (+1 s) seconds.
    """
    from distributed.comm import connect
    from distributed.security import Security

    async def probe() -> object:
        comm = await connect(address, timeout=timeout,
                             **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    out: list[str] = []

    def target() -> None:
        try:
            reply = asyncio.run(asyncio.wait_for(probe(), timeout))
        except TimeoutError:
            out.append(f"no Dask handshake within {timeout:g} s")
            return
        except BaseException as exc:  # garbage where a Dask frame should be, a reset, ...
            text = str(exc).splitlines()[0][:160] if str(exc) else ""
            out.append(f"no valid Dask handshake: {type(exc).__name__}: {text}")
            return
        if isinstance(reply, dict) and isinstance(reply.get("type"), str):
            out.append(reply["type"] if reply["type"] == "Scheduler"
                       else f"it is a Dask {reply['type']}")
        else:
            out.append("its reply to a Dask identity request is not Dask's")

    thread = threading.Thread(target=target, name="scorerate-scheduler-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return out[0] if out else f"no Dask handshake within {timeout:g} s"


def dashboard_link(client) -> str | None:
    """The Dask dashboard URL of `client`'s scheduler, or None unless a dashboard serves there.

    An embedded scheduler serves one only if bokeh is importable here, and only on
    loopback, so its link names 127.0.0.1 (Dask's own link names the host's address, where
    nothing listens). Either link is given only if its page answers (`_serves`).
    """
    try:
        port = client.scheduler_info().get("services", {}).get("dashboard")
    except Exception:  # no link is no reason to fail a job
        return None
    if port is None:
        return None
    if getattr(client, "cluster", None) is not None:
        if importlib.util.find_spec("bokeh") is None:
            return None
        link = f"http://{LOOPBACK}:{port}/status"
    else:
        link = client.dashboard_link
    return link if _serves(link) else None


def _serves(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP GET of `url` answers 200 within `timeout` seconds (without bokeh a
    Dask scheduler answers 404 there)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


@contextmanager
def limit_native_threads(n: int = 1) -> Iterator[None]:
    """Cap BLAS/OpenMP pools at `n` threads and numba's default thread count, for this block.

    Environment variables cover libraries loaded later; threadpoolctl (if installed)
    caps those already loaded. numba's own count is thread-local, so tasks that call
    parallel numba code should also call `numba.set_num_threads` (see job/graph.py).
    """
    n = max(1, int(n))
    saved = {k: os.environ.get(k) for k in _NATIVE_ENV}
    for k in _NATIVE_ENV:
        os.environ[k] = str(n)
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    except ImportError:  # optional: only caps pools of libraries already loaded
        pass
    try:
        yield
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def dask_client(
    address: str | None = None,
    *,
    threads: int | None = None,
    n_workers: int = 1,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    quiet: bool = True,
) -> Iterator[object]:
    """A distributed.Client for one job; closes it (and any cluster it started) on exit.

    Parameters
    ----------
    address : scheduler to connect to; None looks at DASK_SCHEDULER_ADDRESS and the dask
        config, and starts an embedded LocalCluster when none is set.
    threads : total threads of the embedded cluster (default: the cores this process may
        use); ignored with a scheduler address (that cluster's size is its own business).
    n_workers : workers of the embedded cluster; threads are split among them (>= 1 each).
    timeout : seconds to reach an explicit scheduler before ConnectionError.
    quiet : silence distributed's INFO/WARNING logs.
    """
    import dask
    from distributed import Client, LocalCluster

    level = logging.ERROR if quiet else logging.WARNING
    address = resolve_address(address)
    if address is not None:
        check_scheduler(address, timeout)
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout}s"}):
                client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"cannot connect to the Dask scheduler at {address!r}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return

    threads = available_threads() if threads is None else int(threads)
    if threads < 1 or n_workers < 1:
        raise ValueError(f"threads and n_workers must be >= 1, got {threads} and {n_workers}")
    per_worker = max(1, threads // n_workers)
    with limit_native_threads(1):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=per_worker,
            processes=False,  # scheduler and worker talk inproc://, no socket at all
            dashboard_address=None,  # the scheduler's HTTP routes: a free loopback port
            scheduler_kwargs={"dashboard_address": f"{LOOPBACK}:0"},
            worker_dashboard_address=f"{LOOPBACK}:0",  # else 0.0.0.0 and [::], port 8789
            silence_logs=level,
            memory_limit=0,  # Snakemake's mem_mb governs memory; no spilling to disk
        )
        try:
            client = Client(cluster, set_as_default=False)
            try:
                yield client
            finally:
                with suppress(Exception):
                    client.close()
        finally:
            with suppress(Exception):
                cluster.close()
