"""Memory bandwidth and cache state for the kernel benchmark (:mod:`.kernel_bench`): the
streaming-read bandwidth of this machine measured in the same run, the buffer streamed between
cold runs to evict the last-level cache, and the CPU time other processes used meanwhile."""
from __future__ import annotations

import math
import os
import time

import numpy as np

#: bytes streamed between cold runs and for the bandwidth reference; None: sized from this
#: machine's last-level cache by :func:`flush_bytes` and :func:`stream_bytes` (a test sets them)
FLUSH_BYTES: int | None = None
STREAM_BYTES: int | None = None
#: the flush is twice the last-level cache, within these bounds. 96 MiB was 3x the 32 MiB L3
#: of the first development machine; a later one (a Xeon VM) reports 480 MiB of L3, where a
#: 9.2 MB matrix read after a 96 MiB flush came at 16.2 GB/s on one thread against 12.9 after
#: 1.5 GiB (and 18.3 with no flush): the 96 MiB "cold" run was partly an L3 run
FLUSH_MIN, FLUSH_MAX = 96 << 20, 1 << 30
STREAM_MIN = 256 << 20


def last_level_cache_bytes() -> int | None:
    """The size of the largest-level CPU cache cpu0 sees (Linux sysfs, else glibc's sysconf);
    None where neither tells."""
    best: tuple[int, int] | None = None
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for name in os.listdir(root):
            if not name.startswith("index"):
                continue
            with open(f"{root}/{name}/level") as f:
                level = int(f.read())
            with open(f"{root}/{name}/size") as f:
                text = f.read().strip()
            unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
            size = int(text.rstrip("KMGkmg")) * unit
            if best is None or (level, size) > best:
                best = (level, size)
    except (OSError, ValueError):
        best = None
    if best is not None:
        return best[1]
    try:
        size = os.sysconf("SC_LEVEL3_CACHE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return size if size > 0 else None


def flush_bytes() -> int:
    """Bytes a cold run streams first: :data:`FLUSH_BYTES` if set, else twice the last-level
    cache within [:data:`FLUSH_MIN`, :data:`FLUSH_MAX`]."""
    if FLUSH_BYTES:
        return FLUSH_BYTES
    llc = last_level_cache_bytes()
    return min(FLUSH_MAX, max(FLUSH_MIN, 2 * llc)) if llc else FLUSH_MIN


def stream_bytes() -> int:
    """Bytes of the streaming-read reference: :data:`STREAM_BYTES` if set, else the larger of
    :data:`STREAM_MIN` and the flush (a read that fits the last-level cache is not a stream)."""
    return STREAM_BYTES or max(STREAM_MIN, flush_bytes())


_STREAM = None


def _stream_kernel():
    global _STREAM
    if _STREAM is None:
        from numba import njit, prange

        @njit(parallel=True, fastmath=True, nogil=True, cache=True)
        def stream_sum(a, nparts):
            part = np.zeros(nparts, np.float32)
            n = a.size
            for p in prange(nparts):
                b = a[n * p // nparts: n * (p + 1) // nparts]
                s = np.float32(0.0)
                for i in range(b.size):
                    s += b[i]
                part[p] = s
            return part.sum()

        _STREAM = stream_sum
    return _STREAM


def stream_bandwidth(threads: int, repeats: int = 4, nbytes: int | None = None) -> float:
    """Best read bandwidth (bytes/s) of a vectorised parallel sum over ``nbytes``, on
    ``threads`` threads and on one (on a shared machine a busy core can slow the parallel
    sum below what one thread streams; the machine's bandwidth is at least the best of both)."""
    from .. import kernels as K

    a = np.ones((nbytes or stream_bytes()) // 4, np.float32)
    fn = _stream_kernel()
    best = math.inf
    try:
        for t_count in sorted({threads, 1}, reverse=True):
            K.set_threads(t_count)
            fn(a, t_count)
            for _ in range(repeats):
                t = time.perf_counter()
                fn(a, t_count)
                best = min(best, time.perf_counter() - t)
    finally:
        K.set_threads(threads)
    return a.nbytes / best


class CacheFlush:
    """Streams a buffer larger than the last-level cache (the ``between`` hook of cold runs)."""

    def __init__(self, threads: int, nbytes: int | None = None):
        self.buf = np.ones((nbytes or flush_bytes()) // 4, np.float32)
        self.threads = threads
        self.fn = _stream_kernel()

    def __call__(self) -> None:
        self.fn(self.buf, self.threads)


class OtherLoad:
    """CPU time that *other* processes used while this one was measuring, in cores on average
    (0.5 = half a core busy elsewhere): system-wide busy time from ``/proc/stat`` minus this
    process's own CPU time. On a shared machine a parallel kernel whose worker thread waits for
    a core busy elsewhere stalls for a whole scheduler slice, so rows measured under load are
    not to be trusted alone; None where ``/proc/stat`` is missing."""

    def __init__(self):
        self.start = self._snap()

    @staticmethod
    def _snap():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            busy = None
        t = os.times()
        return busy, t.user + t.system, time.perf_counter()

    def cores(self) -> float | None:
        b0, own0, w0 = self.start
        b1, own1, w1 = self._snap()
        if b0 is None or b1 is None or w1 <= w0:
            return None
        return max(0.0, ((b1 - b0) - (own1 - own0)) / (w1 - w0))
