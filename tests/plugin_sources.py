"""Shared by the tests of plug-ins and of an existing Dask cluster: the source of two
plug-in estimators (written to a module file by each test) and a client that waits for
its workers."""

from __future__ import annotations

import textwrap
import time

#: a parametric baseline: the score of N(mean(X), (var(X) + t) I)
GAUSS_FIT = textwrap.dedent('''
    import numpy as np


    class GaussFit:
        """Score of N(mean(X), (var(X) + t) I): a parametric baseline."""

        def __init__(self, X):
            self.mu, self.v = X.mean(axis=0), X.var()

        def score(self, x, t):
            return (self.mu - np.asarray(x)) / (self.v + t)
''')

#: an estimator whose score never returns (what the per-job time limit ends)
HANG = textwrap.dedent('''
    import threading


    class Hang:
        """An estimator whose score never returns."""

        def __init__(self, X):
            self.X = X

        def score(self, x, t):
            threading.Event().wait()
''')


def connect(address: str, workers: int = 1):
    """A distributed Client of the scheduler at `address` once `workers` have joined
    (retrying while the scheduler starts; 60 s hang guards)."""
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            client = Client(address, timeout="5s", set_as_default=False)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    client.wait_for_workers(workers, timeout=60)
    return client
