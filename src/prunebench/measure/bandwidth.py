"""Memory bandwidth and cache state for the kernel benchmark (:mod:`.kernel_bench`): the
streaming-read bandwidth of this machine measured in the same run, the buffer streamed between
cold runs to evict the last-level cache, and the CPU time other processes used meanwhile."""
from __future__ import annotations

import math
import os
import time

import numpy as np

FLUSH_BYTES = 96 << 20     # 3x the 32 MiB L3 of the development machine
STREAM_BYTES = 256 << 20


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

    a = np.ones((nbytes or STREAM_BYTES) // 4, np.float32)
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
        self.buf = np.ones((nbytes or FLUSH_BYTES) // 4, np.float32)
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
