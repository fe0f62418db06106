#!/usr/bin/env python
"""The panel kernel against csr's, the kernels alone (no layer, no engine): batch 1, warm and
cold (a 96 MiB stream before each call, untimed), 1 and 2 threads, one random unstructured
matrix. Prints one line per (threads, format, cache): the median and the fastest of
``--repeats`` calls, in ms.

Example::

    python benchmarks/bench_panel.py --shape 4096x4096 --sparsity 0.9 --repeats 300
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from prunebench.formats import encode
from prunebench.kernels import KERNELS, set_threads, wait_policy
from prunebench.measure.bandwidth import CacheFlush, flush_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="4096x4096")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--formats", default="panel,csr")
    args = ap.parse_args()
    try:
        rows, cols = (int(v) for v in args.shape.lower().split("x"))
        assert rows >= 1 and cols >= 1
    except (ValueError, AssertionError):
        ap.error(f"--shape {args.shape!r} should look like 4096x4096")
    if not 0 <= args.sparsity < 1:
        ap.error(f"--sparsity {args.sparsity} should be in [0, 1)")
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats} should be >= 1")
    formats = args.formats.split(",")
    unknown = [f for f in formats if f not in KERNELS]
    if unknown:
        ap.error(f"--formats: {', '.join(unknown)} not among the kernels ({', '.join(KERNELS)})")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    W[rng.random((rows, cols)) < args.sparsity] = 0
    x = rng.standard_normal(cols).astype(np.float32)
    y = np.empty(rows, np.float32)
    calls = {}
    for f in formats:
        fmt = encode(W, f)
        arrays, opts = fmt.kernel_args()
        calls[f] = (lambda a=arrays, o=opts, f=f: KERNELS.get(f).matvec(*a, x, shape=W.shape, out=y, **o))
    print(f"# {rows}x{cols}, {args.sparsity:.0%} zeros, idle threads wait {wait_policy()}, "
          f"cold: {flush_bytes() >> 20} MiB streamed before each call")
    for threads in (1, 2):
        set_threads(threads)
        flush = CacheFlush(threads)
        for f, call in calls.items():
            call()
            for cold in (False, True):
                s = []
                for _ in range(args.repeats):
                    if cold:
                        flush()
                    t = time.perf_counter()
                    call()
                    s.append(time.perf_counter() - t)
                print(f"{threads} thread(s) {f:7s} {'cold' if cold else 'warm'}: median "
                      f"{np.median(s) * 1e3:.3f} ms, fastest {np.min(s) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
