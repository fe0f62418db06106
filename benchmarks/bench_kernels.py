#!/usr/bin/env python
"""Side-by-side timing of dense and sparse batch-1 / batch-B linear layers on random matrices.

For each sparsity it builds one random unstructured float32 W [rows, cols] (block-sparse and N:M
matrices of about the same sparsity for the structured formats, since an unstructured matrix
stored in 4x4 blocks is nearly dense) and times, in one process:
torch dense ``F.linear``, ``torch.sparse_csr_tensor @ x``, scipy CSR and every prunebench
kernel, calling them in turn (round robin) ``--repeats`` times, together with a streaming read
(numba sum over 256 MiB on ``--threads`` threads) as the bandwidth reference. It reports the
median and the minimum, the speedup over torch dense, the bytes a call must move (stored arrays
+ x + y), GB/s and its share of the streaming read's GB/s (speedup and GB/s from ``--stat``,
median by default). '~' marks an IQR above 10% of the median: on a shared machine another
process took a core, which stalls a 2-thread fork-join kernel for a whole scheduler slice
(4-8 ms), so read the minimum too.

``--cache cold`` streams a 96 MiB buffer (``prunebench kernels``'s flush) between calls (flush time excluded), so weights come
from DRAM as they do for a model larger than the last-level cache.

Example::

    python benchmarks/bench_kernels.py --shape 4096x4096 --sparsity 0.5 0.9 --batch 1 \
        --threads 2 --cache cold
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

import prunebench.kernels as K
from prunebench.measure import Timer
from prunebench.measure.bandwidth import CacheFlush, stream_bytes

STREAM = "stream-read"  # the bandwidth reference, timed in the same round robin as the kernels


def round_robin(fns: list, repeats: int, flush: CacheFlush | None) -> list[dict]:
    """Round-robin timing: every repeat calls each candidate once, in turn, so a burst of load
    from other processes hits all of them alike instead of one candidate's whole run. Each call
    is timed by :class:`prunebench.measure.Timer`, ``flush`` (cold runs) untimed before it."""
    for fn in fns:
        fn()  # warm-up (and numba compilation)
    samples: list[list[float]] = [[] for _ in fns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Timer's one-sample IQR warning: reported below
        for _ in range(repeats):
            for fn, out in zip(fns, samples):
                out.extend(Timer(fn, warmup=0, min_runs=1, max_runs=1, min_time=0.0,
                                 between=flush).run().samples)
    stats = []
    for s in samples:
        q1, med, q3 = np.percentile(s, [25, 50, 75])
        stats.append({"median_s": float(med), "iqr_s": float(q3 - q1), "min_s": float(np.min(s)), "samples_s": s})
    return stats


# ---------------------------------------------------------------- encoders (NumPy, like the tests)


def random_matrix(rows, cols, sparsity, rng):
    W = rng.standard_normal((rows, cols), dtype=np.float32)
    W[rng.random((rows, cols)) < sparsity] = 0
    return W


def block_matrix(rows, cols, sparsity, r, c, rng):
    """Whole r x c blocks kept with probability 1 - sparsity."""
    keep = rng.random((-(-rows // r), -(-cols // c))) >= sparsity
    mask = np.kron(keep, np.ones((r, c), bool))[:rows, :cols]
    return np.where(mask, rng.standard_normal((rows, cols), dtype=np.float32), 0).astype(np.float32)


def nm_matrix(rows, cols, n, m, rng):
    """Exactly n of every m columns kept (cols a multiple of m)."""
    keys = rng.random((rows, cols // m, m))
    keep = keys.argsort(axis=2).argsort(axis=2) < n
    return np.where(keep.reshape(rows, cols), rng.standard_normal((rows, cols), dtype=np.float32), 0)


def quantize(W):
    peak = np.abs(W).max(axis=1)
    scales = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    return np.clip(np.rint(W / scales[:, None]), -127, 127).astype(np.int8), scales


def csr_arrays(W, values, index_dtype):
    import scipy.sparse as sp

    A = sp.csr_array(W)
    A.sort_indices()
    return A.indptr.astype(np.int32), A.indices.astype(index_dtype), np.ascontiguousarray(values[W != 0])


def bitmap_arrays(W, values):
    P = W != 0
    row_ptr = np.zeros(W.shape[0] + 1, np.int32)
    row_ptr[1:] = np.cumsum(P.sum(axis=1))
    return np.packbits(P, axis=1, bitorder="little"), row_ptr, np.ascontiguousarray(values[P])


def bsr_arrays(W, r, c):
    rows, cols = W.shape
    B = W.reshape(rows // r, r, cols // c, c).transpose(0, 2, 1, 3)
    keep = B.any(axis=(2, 3))
    br, bc = np.nonzero(keep)
    indptr = np.zeros(rows // r + 1, np.int32)
    indptr[1:] = np.cumsum(keep.sum(axis=1))
    return indptr, bc.astype(np.uint16), np.ascontiguousarray(B[br, bc])


def ell_arrays(W, h):
    rows, cols = W.shape
    P = W != 0
    counts = P.sum(axis=1)
    slice_ptr, widths, idx, val = [0], [], [], []
    order = np.argsort(~P, axis=1, kind="stable")  # nonzero columns first, in order
    for s in range(-(-rows // h)):
        r0, hs = s * h, min(h, rows - s * h)
        w = int(counts[r0 : r0 + hs].max(initial=0))
        cols_sk = order[r0 : r0 + hs, :w]
        used = np.arange(w) < counts[r0 : r0 + hs, None]
        idx.append(np.where(used, cols_sk, 0).T.ravel())
        val.append(np.where(used, np.take_along_axis(W[r0 : r0 + hs], cols_sk, 1), 0).T.ravel())
        widths.append(w)
        slice_ptr.append(slice_ptr[-1] + w * hs)
    return (np.array(slice_ptr, np.int32), np.array(widths, np.int32),
            np.concatenate(idx).astype(np.uint16), np.concatenate(val).astype(np.float32))


def nm_arrays(W, n, m):
    rows, cols = W.shape
    bits = {2: 1, 4: 2, 8: 3, 16: 4}[m]
    G = W.reshape(rows, cols // m, m)
    pos = np.sort(np.argsort(G == 0, axis=2, kind="stable")[:, :, :n], axis=2)
    data = np.take_along_axis(G, pos, axis=2).reshape(rows, -1)
    stream = ((pos.reshape(rows, -1)[:, :, None] >> np.arange(bits)) & 1).astype(np.uint8)
    return np.ascontiguousarray(data), np.packbits(stream.reshape(rows, -1), axis=1, bitorder="little")


def nm_for(sparsity):
    """The (n, m) with m in 4, 8, 16 whose sparsity 1 - n/m is closest to ``sparsity``."""
    pairs = [(n, m) for m in (4, 8, 16) for n in range(1, m)]
    return min(pairs, key=lambda p: (abs(1 - p[0] / p[1] - sparsity), p[1]))


# ---------------------------------------------------------------- candidates


def candidates(W, sparsity, batch, rng, only):
    """Yield (name, actual sparsity, nbytes of stored arrays, fn(x) -> None)."""
    import torch
    import torch.nn.functional as F

    rows, cols = W.shape
    Wt = torch.from_numpy(W)
    yield "torch-dense", 0.0, W.nbytes, lambda x, xt: F.linear(xt, Wt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        St = Wt.to_sparse_csr()
    tbytes = sum(t.numel() * t.element_size() for t in (St.crow_indices(), St.col_indices(), St.values()))
    if batch == 1:
        yield "torch-sparse-csr", sparsity, tbytes, lambda x, xt: St @ xt
    else:
        yield "torch-sparse-csr", sparsity, tbytes, lambda x, xt: St @ xt.T
    import scipy.sparse as sp

    A = sp.csr_array(W)
    yield "scipy-csr", sparsity, A.data.nbytes + A.indices.nbytes + A.indptr.nbytes, lambda x, xt: A @ x.T

    def kernel(name, s, arrays, vec, mat, **kw):
        if only and not any(name.startswith(o) for o in only):
            return None
        call = vec if batch == 1 else mat
        nbytes = sum(a.nbytes for a in arrays) + sum(v.nbytes for v in kw.values() if isinstance(v, np.ndarray))
        out = np.empty((rows,) if batch == 1 else (batch, rows), np.float32)
        return name, s, nbytes, lambda x, xt: call(*arrays, x, out=out, **kw)

    shape = (rows, cols)
    q, scales = quantize(W)
    idx = np.uint16 if cols <= 65536 else np.int32
    jobs = [
        kernel("csr-u16-f32", sparsity, csr_arrays(W, W, idx), K.csr_matvec, K.csr_matmul, shape=shape),
        kernel("csr-u16-f16", sparsity, csr_arrays(W, W.astype(np.float16), idx), K.csr_matvec, K.csr_matmul, shape=shape),
        kernel("csr-u16-i8", sparsity, csr_arrays(W, q, idx), K.csr_matvec, K.csr_matmul, shape=shape, scales=scales),
        kernel("bitmap-f32", sparsity, bitmap_arrays(W, W), K.bitmap_matvec, K.bitmap_matmul, shape=shape),
        kernel("bitmap-f16", sparsity, bitmap_arrays(W, W.astype(np.float16)), K.bitmap_matvec, K.bitmap_matmul, shape=shape),
        kernel("bitmap-i8", sparsity, bitmap_arrays(W, q), K.bitmap_matvec, K.bitmap_matmul, shape=shape, scales=scales),
        kernel("ell32-u16-f32", sparsity, ell_arrays(W, 32), K.ell_matvec, K.ell_matmul, shape=shape, slice_height=32),
    ]
    if rows % 4 == 0 and cols % 4 == 0:
        Wb = block_matrix(rows, cols, sparsity, 4, 4, rng)
        sb = float(1 - np.count_nonzero(Wb) / Wb.size)
        jobs.append(kernel("bsr4x4-f32*", sb, bsr_arrays(Wb, 4, 4), K.bsr_matvec, K.bsr_matmul, shape=shape))
    n, m = nm_for(sparsity)
    if cols % m == 0:
        Wn = nm_matrix(rows, cols, n, m, rng)
        jobs.append(kernel(f"nm{n}:{m}-f32*", 1 - n / m, nm_arrays(Wn, n, m), K.nm_matvec, K.nm_matmul, shape=shape, n=n, m=m))
        qn, sn = quantize(Wn)
        jobs.append(kernel(f"nm{n}:{m}-i8*", 1 - n / m, nm_arrays(np.where(Wn != 0, qn, 0), n, m), K.nm_matvec,
                           K.nm_matmul, shape=shape, n=n, m=m, scales=sn))
    yield from (j for j in jobs if j is not None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="4096x4096", help="ROWSxCOLS of W (out x in)")
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", choices=["warm", "cold", "both"], default="cold")
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--only", nargs="*", default=[], help="prunebench kernels whose name starts so")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic the speedup and GB/s columns use (min: on a shared, busy machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = ap.parse_args(argv)

    try:
        rows, cols = (int(v) for v in args.shape.lower().split("x"))
    except ValueError:
        ap.error(f"--shape {args.shape!r} should look like 4096x4096")
    if not all(0 <= s < 1 for s in args.sparsity):
        ap.error("--sparsity values should be in [0, 1)")
    import torch

    K.set_threads(args.threads)
    torch.set_num_threads(args.threads)
    flush = CacheFlush(args.threads)
    stream = CacheFlush(args.threads, stream_bytes())  # a streaming read: the bandwidth reference
    modes = ["warm", "cold"] if args.cache == "both" else [args.cache]
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(cols, dtype=np.float32) if args.batch == 1 else \
        rng.standard_normal((args.batch, cols), dtype=np.float32)
    xt = torch.from_numpy(x)
    io_bytes = x.nbytes + rows * args.batch * 4

    results = []
    key = f"{args.stat}_s"
    for sparsity in args.sparsity:
        W = random_matrix(rows, cols, sparsity, rng)
        cands = list(candidates(W, sparsity, args.batch, rng, args.only))
        cands.append((STREAM, 0.0, stream.buf.nbytes - io_bytes, lambda x, xt: stream()))
        for mode in modes:
            print(f"# sparsity {sparsity}, {mode}: {len(cands)} candidates", file=sys.stderr, flush=True)
            stats = round_robin([lambda fn=fn: fn(x, xt) for _, _, _, fn in cands], args.repeats,
                                flush if mode == "cold" else None)
            dense = stats[0][key]  # torch-dense comes first
            bw = stream.buf.nbytes / stats[-1][key]
            for (name, s, nbytes, _), m in zip(cands, stats):
                moved = nbytes + io_bytes
                results.append({
                    "sparsity": sparsity, "kernel": name, "actual_sparsity": round(s, 4), "cache": mode,
                    "median_ms": m["median_s"] * 1e3, "iqr_ms": m["iqr_s"] * 1e3, "min_ms": m["min_s"] * 1e3,
                    "stat": args.stat, "speedup_vs_dense": dense / m[key], "mbytes": moved / 1e6,
                    "gb_per_s": moved / m[key] / 1e9, "of_stream_bw": moved / m[key] / bw,
                    "noisy": m["iqr_s"] > 0.1 * m["median_s"],
                    "samples_ms": [t * 1e3 for t in m["samples_s"]],
                })
    meta = {"shape": [rows, cols], "batch": args.batch, "threads": args.threads, "repeats": args.repeats,
            "stat": args.stat, "flush_mib": flush.buf.nbytes >> 20, "stream_mib": stream.buf.nbytes >> 20}
    if args.json:
        json.dump({"meta": meta, "results": results}, sys.stdout, indent=1)
        print()
    else:
        print(HEADER)
        for row in results:
            print(_format_row(row))
        print(f"# speedup, GB/s and %stream from the {args.stat}; %stream = share of the '{STREAM}' row "
              f"(numba sum over 256 MiB on {args.threads} threads, timed in the same round robin); "
              f"'*' = structured matrix of the stated sparsity; '~' = IQR > 10% of median (other "
              f"processes took a core)")
    return 0


HEADER = (f"{'spars':>5} {'kernel':<17} {'actual':>6} {'mode':<4} {'median ms':>10} {'min ms':>8} "
          f"{'vs dense':>8} {'MB':>8} {'GB/s':>7} {'%stream':>7}")


def _format_row(r) -> str:
    return (f"{r['sparsity']:>5.2f} {r['kernel']:<17} {r['actual_sparsity']:>6.3f} {r['cache']:<4} "
            f"{r['median_ms']:>9.3f}{'~' if r['noisy'] else ' '} {r['min_ms']:>8.3f} "
            f"{r['speedup_vs_dense']:>7.2f}x {r['mbytes']:>8.1f} {r['gb_per_s']:>7.1f} "
            f"{100 * r['of_stream_bw']:>6.0f}%")


if __name__ == "__main__":
    sys.exit(main())
