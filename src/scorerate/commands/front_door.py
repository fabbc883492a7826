"""The one way into a job for `run-job` and `run-jobs`: what it must pass before any work,
and the hold on its output while it runs.

`admit` checks a job's size (scorerate.config.sizing against the memory budget and a week) and
its output path (free space included); `hold` takes the outputs' locks, re-checks them,
cleans what killed writers left and renews the locks while the work goes on; `write`
turns a failed store write into one line. Both commands call these, so a check added here
guards both.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .output_lock import (
    LockLease,
    acquire_lock,
    check_output,
    clean_orphans,
    release_lock,
)

__all__ = ["admit", "hold", "write"]


def admit(spec, out: Path, *, overwrite: bool, mem_mb: float | None = None,
          force: bool = False):
    """ValueError (one line) unless the job `spec` fits (memory, time; `force` skips that)
    and a store may be written at `out`; returns its estimate (scorerate.config.sizing:
    memory, time and store bytes), which the hold and the time limit read."""
    from ..config.sizing import check_fits, estimate_spec

    if mem_mb is not None and not mem_mb > 0:
        raise ValueError(f"--mem-mb must be > 0, got {mem_mb}")
    size = estimate_spec(spec)
    check_fits(size, mem_mb=mem_mb, force=force)
    check_output(out, overwrite, need_bytes=size.store_bytes)
    return size


@contextlib.contextmanager
def hold(outputs: Sequence[tuple[Path, float]], overwrite: bool,
         say=lambda line: None) -> Iterator[Callable[[], None]]:
    """Hold every output's lock for the block: taken in a fixed order (two batches never
    wait on each other), each output re-checked once locked (another writer may have
    finished it), orphans of killed writers cleaned (`say` gets one line per action), and
    the locks renewed while the block runs. ValueError, with every lock released, when an
    output is held by another live process or no longer acceptable. The block gets a
    function that releases every lock at once (for a deadline that ends the process)."""
    held = []
    with contextlib.ExitStack() as stack:
        for out, need in sorted(outputs, key=lambda o: str(Path(o[0]).absolute())):
            lock, token = acquire_lock(out)
            stack.callback(release_lock, lock, token)
            held.append((lock, token))
            check_output(out, overwrite, need_bytes=need)
            for line in clean_orphans(out):
                say(line)
            stack.enter_context(LockLease(lock, token))
        yield lambda: [release_lock(lock, token) for lock, token in held]


def write(ds, out: Path, overwrite: bool) -> str | None:
    """Write the run store `ds` atomically at `out`; None, or the one-line reason it failed
    (a store error, a full disk or a vanished mount: nothing half-written is left)."""
    from ..store.runstore import StoreError, write_run

    try:
        write_run(ds, out, overwrite=overwrite)
    except StoreError as exc:
        return str(exc)
    except OSError as exc:
        why = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        return f"cannot write {out}: {why} (errno {exc.errno}); nothing was written there"
    return None
