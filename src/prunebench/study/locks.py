"""Locks shared by every prunebench process of a machine, on :mod:`filelock` (``flock`` on
Unix: the kernel drops a lock when its holder dies, even by SIGKILL):

* :func:`timing_lock`: keeps two timings from overlapping (local studies and Dask workers alike);
* :func:`host_lock`: any other per-machine lock, e.g. the one a Dask worker trains a dense
  model under (see :mod:`.distributed`);
* :func:`out_dir_lock`: one study per output folder; a second one refuses at once, naming the
  holder's pid.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import BadInputError

#: how often a waiter tries a held lock again (flock itself has no blocking wait in filelock);
#: short, so the next timing starts soon after the last one ends
POLL_S = 0.01


def timing_lock(machine_id: str) -> contextlib.AbstractContextManager[dict[str, float | int]]:
    """Hold this machine's timing lock (blocking); yields {acquired, waited_s, pid}."""
    return host_lock(f"timing-{machine_id}")


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[dict[str, float | int]]:
    """An exclusive lock on ``$TMPDIR/prunebench-locks/NAME.lock`` (blocking), shared by every
    process of this machine, whichever user runs it; yields {acquired, waited_s, pid}, to which
    ``released`` is added just before the lock is dropped."""
    path = lock_folder() / f"{name}.lock"
    t0 = time.time()
    # mode 0o666: a lock file made by one user stays usable by another
    with FileLock(path, mode=0o666, poll_interval=POLL_S):
        t1 = time.time()
        held: dict[str, float | int] = {"acquired": t1, "waited_s": t1 - t0, "pid": os.getpid()}
        try:
            yield held
        finally:
            # stamped while still held: a release time taken after the lock is dropped can
            # fall after the next holder's "acquired" and make two windows look overlapped
            held["released"] = time.time()


def lock_folder() -> Path:
    """``$TMPDIR/prunebench-locks``, made writable by every user. Not ``$TMPDIR`` itself:
    filelock refuses a lock file owned by another user in a sticky folder such as /tmp (its
    owner could replace it), and the locks are meant for every user of the machine."""
    folder = Path(tempfile.gettempdir()) / "prunebench-locks"
    try:
        folder.mkdir()
    except FileExistsError:
        return folder
    folder.chmod(0o777)  # mkdir's mode is cut by the umask
    return folder


def _write_pid(fd: int) -> None:
    """Replace the lock file's content with this process's pid (what a refused study names)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def out_dir_lock(out: Path) -> FileLock:
    """Take ``OUT/.lock`` without waiting, for the whole run, so a second study on the same
    folder refuses at once instead of computing the same jobs and deleting the first one's
    scratch files. The caller releases it (``.release()``); BadInputError if it is held."""
    path = out / ".lock"
    lock = FileLock(path, blocking=False, on_acquired=_write_pid)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = path.read_text(errors="replace").strip()
        except OSError:
            holder = ""
        raise BadInputError(f"--out: {str(out)!r} is in use by another prunebench study"
                            + (f" (pid {holder})" if holder.isdigit() else "")
                            + "; wait for it to finish or choose another --out") from None
    return lock
