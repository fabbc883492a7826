"""A per-job wall-time limit that ends a hanging job with one line and a non-zero status.

A task that never returns (a plug-in estimator whose `score()` loops forever) cannot be
interrupted: Dask cannot stop a running task and Python cannot stop a thread, and the
code that hangs may run in the job's own thread (a density's sampler draws the training
set there). So the limit is a timer thread that, when it fires, writes one line on
stderr, runs the cleanups registered with it (release the output's lock) and ends the
process with os._exit. Nothing half-written is left as a store: stores are written to a
temporary sibling and renamed (a later run-job removes the temporary).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

__all__ = ["EXIT_STATUS", "Deadline"]

#: the status of a job ended by its time limit (a clear one-line error, like bad input)
EXIT_STATUS = 2


class Deadline:
    """Context manager: end this process if its body runs longer than `seconds`.

    `seconds` None or 0 means no limit. `message` is the line written on stderr (the limit
    and how to change it belong in it). `cleanup` callables run, in order and each at most
    once, before the process ends; their errors are ignored.
    """

    def __init__(self, seconds: float | None, message: str,
                 cleanup: tuple[Callable[[], object], ...] = ()) -> None:
        self.seconds = seconds if seconds else None
        self.message = message
        self.cleanup = cleanup
        self._timer: threading.Timer | None = None

    def _expire(self) -> None:
        sys.stderr.write(self.message.rstrip("\n") + "\n")
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        for fn in self.cleanup:
            with contextlib.suppress(Exception):
                fn()
        os._exit(EXIT_STATUS)

    def __enter__(self) -> Deadline:
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
