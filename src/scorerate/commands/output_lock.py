"""A job's output: may a store be written there, and the lock that keeps one writer on it.

`check_output` refuses a path that is not ours to replace or has no room; the lock is a
file beside the output holding a token and this process's host and pid, renewed as a
lease while the job runs, so a lock left by a job killed on another host is taken over
once stale; `clean_orphans` removes what killed writers left. The front door
(scorerate.commands.front_door) calls these for run-job and run-jobs alike.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["LOCK_LEASE_S", "LockLease", "acquire_lock", "check_output", "clean_orphans",
           "lock_path", "release_lock"]


def check_output(out: Path, overwrite: bool, *, need_bytes: float = 0.0) -> None:
    """Raise ValueError unless a store can be written at `out` (and may be, given overwrite).

    --overwrite replaces only a run store of this project, never another directory, the
    working directory, one of its ancestors or / (targets.check_target, the rule every
    command that replaces or moves shares). The nearest existing ancestor must be
    writable (a real probe) with at least twice `need_bytes` (new store beside the old
    one) plus 50 MB free.
    """
    from ..store.runstore import StoreError, open_run
    from ..store.targets import check_target, is_kind

    out = Path(out)
    absolute = Path(os.path.abspath(out))
    if (out.exists() or out.is_symlink()) and not overwrite:
        if not is_kind(out, "run"):
            what = "a directory" if out.is_dir() else "a file"
            raise ValueError(f"{out} exists and is {what}, not a scorerate run store; "
                             f"remove or rename it, or choose another --out")
        try:
            open_run(out).close()
        except StoreError as exc:
            raise ValueError(f"{out} is a damaged run store ({exc}); pass --overwrite "
                             f"to replace it") from None
        raise ValueError(f"{out} is already a complete run store; pass --overwrite "
                         f"to replace it")
    check_target(out, "run")
    ancestor = absolute.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create {out}: {ancestor} is not a directory")
    try:  # a real probe: os.access says yes to root on read-only mounts
        fd, probe = tempfile.mkstemp(prefix=".scorerate-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"output directory {ancestor} is not writable: {exc}") from None
    free = shutil.disk_usage(ancestor).free
    want = 2 * need_bytes + 50e6
    if free < want:
        raise ValueError(f"not enough free space for {out}: {free / 1e6:.0f} MB free in "
                         f"{ancestor}, the store needs ~{need_bytes / 1e6:.1f} MB (and "
                         f"{want / 1e6:.0f} MB are required to write it safely)")


def lock_path(out: Path) -> Path:
    """The lock file of `out`: a hidden sibling .<name>.lock."""
    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.lock"


#: a lock not refreshed for this long is stale whatever its host (its holder renews it
#: every LOCK_LEASE_S / 4 while it works): a job killed on another node (out of memory,
#: time limit) no longer blocks its retry there
LOCK_LEASE_S = 600.0


def acquire_lock(out: Path, lease: float = LOCK_LEASE_S) -> tuple[Path, str]:
    """Take `out`'s lock (created with O_EXCL, holding host and PID); returns (lock, token).

    Raises ValueError naming the holder if another live process holds it; a lock left by
    a dead process on this host, or not renewed for `lease` seconds (a holder on another
    host that died), is taken over. Release it with `release_lock`; renew it with
    `LockLease` while working.
    """
    lock = lock_path(out)
    if not lock.parent.exists():
        lock.parent.mkdir(parents=True)
    me = f"{socket.gethostname()} {os.getpid()}\n"
    for _attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
                pid_ = int(pid)
            except (OSError, ValueError):
                host, pid_ = "?", -1
            if host == socket.gethostname() and pid_ > 0 and not _alive(pid_):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if _age(lock) > lease:
                lock.unlink(missing_ok=True)  # stale: not renewed within its lease
                continue
            raise ValueError(f"{out} is being written by another run-job (process {pid_} on "
                             f"{host}, lock {lock}); wait for it, or remove the lock if that "
                             f"process is gone") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        return lock, me
    raise ValueError(f"could not take the lock {lock}")


def _age(path: Path) -> float:
    """Seconds since `path` was last modified (0 if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class LockLease:
    """Renew a held lock (touch it) every `lease / 4` seconds from a daemon thread, so other
    hosts can tell a live holder from one that died (see acquire_lock)."""

    def __init__(self, lock: Path, token: str, lease: float = LOCK_LEASE_S) -> None:
        import threading

        self.lock, self.token, self.every = lock, token, lease / 4.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(OSError):
                if self.lock.read_text() == self.token:
                    os.utime(self.lock)

    def __enter__(self) -> LockLease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def clean_orphans(out: Path) -> list[str]:
    """With `out`'s lock held: what killed writers left beside it. Partial stores
    (.<name>.tmp-*) are removed; a previous store moved aside by an interrupted swap
    (.<name>.old-*) is put back if `out` is gone, else removed. Returns what was done."""
    out = Path(os.path.abspath(out))
    done = []
    olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda q: q.stat().st_mtime)
    if olds and not out.exists():
        os.replace(olds.pop(), out)
        done.append(f"restored {out.name} from an interrupted swap")
    for q in [*out.parent.glob(f".{out.name}.tmp-*"), *olds]:
        if q.is_dir() and not q.is_symlink():
            shutil.rmtree(q, ignore_errors=True)
        else:
            q.unlink(missing_ok=True)
        done.append(f"removed {q.name}")
    return done


def release_lock(lock: Path, token: str) -> None:
    """Remove `lock` if it still holds our `token`."""
    with contextlib.suppress(OSError):
        if lock.read_text() == token:
            lock.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
