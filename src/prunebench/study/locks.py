"""Per-machine locks shared by every prunebench process of a machine: the timing lock that
keeps two timings from overlapping (local studies and Dask workers alike) and the lock a Dask
worker trains a dense model under (see :mod:`.distributed`)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path


def timing_lock(machine_id: str):
    """Hold this machine's timing lock (blocking); yields {acquired, waited_s, pid}."""
    return host_lock(f"timing-{machine_id}")


@contextlib.contextmanager
def host_lock(name: str):
    """An exclusive ``flock`` on ``$TMPDIR/prunebench-NAME.lock`` (blocking), shared by every
    process of this machine and dropped by the kernel when its holder dies."""
    path = Path(tempfile.gettempdir()) / f"prunebench-{name}.lock"
    t0 = time.time()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # read-only: another user's file works
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t1 = time.time()
        try:
            yield {"acquired": t1, "waited_s": t1 - t0, "pid": os.getpid()}
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
