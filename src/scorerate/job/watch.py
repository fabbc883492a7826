"""Waiting on a job's Dask futures: progress on stderr, and a watchdog for a lost cluster.

Kept apart from the job graph (`scorerate.job.graph`): it knows futures and schedulers, not
metrics. A task's exception is re-raised where it is waited for; a cluster with no
worker left for `worker_timeout` seconds is an error naming the scheduler.
"""

from __future__ import annotations

import math
import sys
import threading
import time

__all__ = ["wait_for"]


def wait_for(client, futures: list, show: bool | str, *, worker_timeout: float = 60.0,
             interval: float = 10.0, poll: float = 0.25) -> None:
    """Block until all futures finish, reporting progress on stderr; raise on a lost cluster.

    `show`: False (silent), "tty" (one `\\r`-rewritten count) or "log"/True (for a log file:
    the scheduler and dashboard at start, a line with done/total tasks and the elapsed time
    whenever at least 10% more tasks are done and `interval` seconds have passed, and a
    final line). A task's exception is re-raised here. Results lost with a worker are
    recomputed by the scheduler from the graph; if no worker at all is left for
    `worker_timeout` seconds, cluster.NoWorkersError names the scheduler. Cost: one
    scheduler round trip per second for the worker count.
    """
    from .cluster import NoWorkersError, dashboard_link

    mode = "log" if show is True else show
    total, started = len(futures), time.monotonic()
    address = getattr(client.scheduler, "address", None) or "?"
    if mode == "log":
        link = dashboard_link(client)
        sys.stderr.write(f"scorerate run-job: {total} result tasks on the Dask scheduler at "
                         f"{address}" + (f"; dashboard {link}" if link else "") + "\n")
        sys.stderr.flush()
    shown_done, shown_at, checked_at, empty_since = 0, started, -math.inf, None
    finished = threading.Event()  # set by any future finishing; else look again after `poll`
    for fut in futures:
        fut.add_done_callback(lambda _fut: finished.set())
    while True:
        finished.wait(poll)
        finished.clear()
        done = 0
        for fut in futures:
            if fut.status in ("error", "cancelled"):
                fut.result()  # re-raises the task's exception here
            done += fut.status == "finished"
        now = time.monotonic()
        if mode == "tty":
            sys.stderr.write(f"\rscorerate run-job: {done}/{total} result tasks")
            sys.stderr.flush()
        elif (mode == "log" and done < total and done - shown_done >= total / 10
              and now - shown_at >= interval):
            sys.stderr.write(f"scorerate run-job: {done}/{total} result tasks, "
                             f"{now - started:.0f} s\n")
            sys.stderr.flush()
            shown_done, shown_at = done, now
        if done == total:
            break
        if now - checked_at >= 1.0:
            checked_at = now
            try:
                workers = len(client.nthreads())
            except OSError as exc:
                raise ConnectionError(f"lost the Dask scheduler at {address}: {exc}") from None
            if workers:
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= worker_timeout:
                raise NoWorkersError(
                    f"no Dask workers left on the scheduler at {address}: none joined within "
                    f"{worker_timeout:g} s (--worker-timeout); {done}/{total} tasks done")
    if mode == "tty":
        sys.stderr.write("\n")
    elif mode == "log":
        sys.stderr.write(f"scorerate run-job: {total}/{total} result tasks, "
                         f"{time.monotonic() - started:.0f} s\n")
    sys.stderr.flush()
