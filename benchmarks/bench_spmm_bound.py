#!/usr/bin/env python
"""What bounds batch-32 SpMM here: the inner loop's floor against the time 1.5x MKL needs.

Issue 20 asks the best native format at batch 32 and 90% to be 1.5x torch.sparse CSR int32
(MKL). This script measures, in one run on a quiet machine:

1. side by side, warm, 2 threads, 4096x4096 at 90% (unstructured, the issue's matrix): MKL
   (``torch-sparse csr``, the ``prunebench kernels`` candidate), the native csr fp32 product
   (transpose, core, untranspose) and its core alone (``spmm_csr_t`` on a transposed batch);
2. ``benchmarks/spmm_bound.cpp``, a hand-written AVX-512 SpMM inner loop (no numba), compiled
   here with g++ -O3 -march=native, at 416 values per row on one thread, with T (the
   transposed batch, 128 bytes per column) in L1 (128 columns), L2 (1024) and the issue's 4096
   columns: four loop variants (see the C++ file), each checked against a scalar
   double-precision sum.

3. a column-blocked prototype of the native core, numba on the package's ``gather_axpy_at``
   (one call per row and block of columns, accumulating into the output row): on the csr
   arrays as stored (row-major: each row's part of a block is found through a [rows,
   blocks+1] table of starts) and on a block-major copy (every row's entries of block 0,
   then of block 1, ...: what a column-blocked format would store), each checked against
   the unblocked core.

It prints the nanoseconds per stored value and thread that 1.5x MKL leaves for the whole
product, against what the loop costs with T in L1 (the floor with perfect column blocking and
no blocking overhead) and in place. ``--json FILE`` keeps the figures.

    python benchmarks/bench_spmm_bound.py --json /tmp/bound.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
SOURCE = HERE / "spmm_bound.cpp"
PER_ROW = 416        # about 4096 x 10%, a multiple of 16
RTOL = 1e-4          # float32 sums of 4096 x 416 x 32 products against a double reference


def compile_bound(workdir: Path) -> Path:
    gxx = shutil.which("g++")
    if gxx is None:
        raise SystemExit("bench_spmm_bound: g++ not found; it compiles benchmarks/spmm_bound.cpp")
    exe = workdir / "spmm_bound"
    subprocess.run([gxx, "-O3", "-march=native", "-o", str(exe), str(SOURCE)], check=True)
    return exe


def run_bound(exe: Path, cols: int, rows: int, repeats: int) -> dict[str, float]:
    """ns per stored value of each variant (one thread); raises if a checksum is off."""
    out = subprocess.run([str(exe), str(cols), str(PER_ROW), str(rows), str(repeats)],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    lines = [ln.split() for ln in out if ln.strip()]
    reference = float(lines[0][2])
    figures = {}
    for name, ns, check in lines[1:]:
        if abs(float(check) - reference) > RTOL * max(1.0, abs(reference)):
            raise SystemExit(f"bench_spmm_bound: variant {name} summed to {check}, the scalar "
                             f"reference to {reference}")
        figures[name] = float(ns)
    return figures


def median_ms(call: Any, repeats: int) -> float:
    call()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def products(repeats: int) -> tuple[dict[str, float], int]:
    """Warm medians (ms) of MKL, native csr and its core at 4096x4096, 90%, batch 32, 2 threads."""
    import torch

    from prunebench.formats import encode
    from prunebench.kernels import set_threads
    from prunebench.kernels._jit import batch_transpose, lined
    from prunebench.kernels.csr import spmm_csr_t
    from prunebench.engines.torch_sparse import TorchSparseOp
    from prunebench.runtime.ops import KernelOp

    set_threads(2)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4096, 4096)).astype(np.float32)
    W[rng.random(W.shape) < 0.9] = 0                   # unstructured, 90% zeros
    X = torch.from_numpy(rng.standard_normal((32, 4096)).astype(np.float32))
    fmt = encode(W, "csr", values="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mkl = TorchSparseOp(fmt, None).linear
    native = KernelOp(fmt, None, 2).linear
    ref = X.numpy().astype(np.float64) @ W.T.astype(np.float64)
    for name, f in (("mkl", mkl), ("native", native)):
        err = np.abs(f(X).numpy() - ref).max() / np.abs(ref).max()
        if err > 1e-5:
            raise SystemExit(f"bench_spmm_bound: {name} is off by {err:.1e} of the largest output")
    (ip, ix, data), _ = fmt.kernel_args()
    T = batch_transpose(X.numpy(), 4096)
    YT = lined((4096, T.shape[1]))
    timings: dict[str, list[float]] = {"mkl": [], "native": [], "core": []}
    for _ in range(5):                       # rounds, so a burst of load hits all three alike
        timings["mkl"].append(median_ms(lambda: mkl(X), repeats))
        timings["native"].append(median_ms(lambda: native(X), repeats))
        timings["core"].append(median_ms(lambda: spmm_csr_t(ip, ix, data, T, YT, 2), repeats))
    return {k: float(np.median(v)) for k, v in timings.items()}, int(np.count_nonzero(W))


def blocked_kernels() -> tuple[Any, Any, Any, Any]:
    """(block_starts, block_major, core on starts, core on a block-major copy), jitted here."""
    from numba import njit, prange

    from prunebench.kernels._jit import BATCH_PASS, BATCH_STEP, balanced_splits
    from prunebench.kernels._simd import gather_axpy_at

    opts = dict(fastmath=True, nogil=True)

    @njit(**opts)
    def block_starts(indptr, indices, cols, cb):        # [rows, nb+1]: row r's block j starts
        rows = indptr.size - 1
        nb = (cols + cb - 1) // cb
        out = np.empty((rows, nb + 1), np.int64)
        for r in range(rows):
            k = indptr[r]
            hi = indptr[r + 1]
            out[r, 0] = k
            for j in range(1, nb):
                while k < hi and indices[k] < j * cb:
                    k += 1
                out[r, j] = k
            out[r, nb] = hi
        return out

    @njit(**opts)
    def block_major(indices, data, starts):             # entries of block 0 for every row, ...
        rows, nb = starts.shape[0], starts.shape[1] - 1
        idx2, d2 = np.empty_like(indices), np.empty_like(data)
        ptr = np.empty(nb * rows + 1, np.int64)
        q = 0
        for j in range(nb):
            for r in range(rows):
                ptr[j * rows + r] = q
                for k in range(starts[r, j], starts[r, j + 1]):
                    idx2[q] = indices[k]
                    d2[q] = data[k]
                    q += 1
        ptr[nb * rows] = q
        return idx2, d2, ptr

    @njit(parallel=True, **opts)
    def on_starts(indptr, indices, data, starts, T, YT, nparts):
        bounds = balanced_splits(indptr, nparts)
        nb, width = starts.shape[1] - 1, T.shape[1]
        for p in prange(nparts):
            for j in range(nb):
                for b0 in range(0, width, BATCH_PASS):
                    nvec = min(BATCH_PASS, width - b0) // BATCH_STEP
                    for r in range(bounds[p], bounds[p + 1]):
                        gather_axpy_at(data, indices, starts[r, j], starts[r, j + 1], T, b0, nvec, YT, r, j)

    @njit(parallel=True, **opts)
    def on_copy(bounds, nb, indices, data, ptr, T, YT, nparts):
        rows, width = YT.shape[0], T.shape[1]
        for p in prange(nparts):
            for j in range(nb):
                for b0 in range(0, width, BATCH_PASS):
                    nvec = min(BATCH_PASS, width - b0) // BATCH_STEP
                    for r in range(bounds[p], bounds[p + 1]):
                        gather_axpy_at(data, indices, ptr[j * rows + r], ptr[j * rows + r + 1], T, b0, nvec, YT, r, j)

    return block_starts, block_major, on_starts, on_copy


def blocked(repeats: int) -> dict[str, float]:
    """Warm medians (ms) of the core and the two blocked prototypes, csr fp32, 2 threads."""
    from prunebench.formats import encode
    from prunebench.kernels import set_threads
    from prunebench.kernels._jit import balanced_splits, batch_transpose, lined
    from prunebench.kernels.csr import spmm_csr_t

    set_threads(2)
    block_starts, block_major, on_starts, on_copy = blocked_kernels()
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4096, 4096)).astype(np.float32)
    W[rng.random(W.shape) < 0.9] = 0
    (ip, ix, data), _ = encode(W, "csr", values="fp32").kernel_args()
    T = batch_transpose(rng.standard_normal((32, 4096)).astype(np.float32), 4096)
    ref = lined((4096, 32))
    spmm_csr_t(ip, ix, data, T, ref, 2)
    bounds = balanced_splits(ip, 2)
    calls: dict[str, Any] = {"core": lambda YT: spmm_csr_t(ip, ix, data, T, YT, 2)}
    for cb in (512, 1024):
        starts = block_starts(ip, ix, 4096, cb)
        i2, d2, ptr = block_major(ix, data, starts)
        calls[f"starts {cb}"] = lambda YT, s=starts: on_starts(ip, ix, data, s, T, YT, 2)
        calls[f"block-major {cb}"] = (lambda YT, i2=i2, d2=d2, ptr=ptr, nb=starts.shape[1] - 1:
                                      on_copy(bounds, nb, i2, d2, ptr, T, YT, 2))
    timings: dict[str, list[float]] = {k: [] for k in calls}
    for name, call in calls.items():
        YT = lined((4096, 32))
        call(YT)
        err = np.abs(YT - ref).max() / np.abs(ref).max()
        if err > 1e-5:
            raise SystemExit(f"bench_spmm_bound: blocked {name} is off by {err:.1e}")
    for _ in range(5):
        for name, call in calls.items():
            YT = lined((4096, 32))
            timings[name].append(median_ms(lambda: call(YT), repeats))
    return {k: float(np.median(v)) for k, v in timings.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40, help="calls per median (default 40)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats} should be >= 1")
    ms, nnz = products(args.repeats)
    per_value = {k: v * 1e6 * 2 / nnz for k, v in ms.items()}          # ns per value per thread
    need = ms["mkl"] / 1.5 * 1e6 * 2 / nnz
    with tempfile.TemporaryDirectory() as tmp:
        exe = compile_bound(Path(tmp))
        loop = {cols: run_bound(exe, cols, 4096, 10) for cols in (128, 1024, 4096)}
    print("4096x4096, 90%, batch 32, 2 threads, warm (ms; ns per stored value per thread):")
    for k in ("mkl", "native", "core"):
        print(f"  {k:8s} {ms[k]:7.3f} ms  {per_value[k]:6.3f} ns")
    print(f"  1.5x MKL leaves {ms['mkl'] / 1.5:.3f} ms: {need:.3f} ns per value per thread for "
          "the whole product")
    print("hand-written inner loop, one thread, ns per stored value (T = 128 bytes per column):")
    print("  columns  T size   " + "  ".join(f"{v:>8s}" for v in loop[128]))
    for cols, figs in loop.items():
        print(f"  {cols:7d} {cols * 128 // 1024:5d} KB   " + "  ".join(f"{figs[v]:8.3f}" for v in figs))
    floor = min(loop[128].values())
    print(f"  floor with T in L1: {floor:.3f} ns; 1.5x MKL needs {need:.3f} ns including the "
          f"transposes, the output and the 2-thread split (native core today {per_value['core']:.3f})")
    blk = blocked(args.repeats)
    print("column-blocked prototypes of the core, csr fp32, 2 threads, warm (ms):")
    for k, v in blk.items():
        print(f"  {k:18s} {v:7.3f} ms  {v / blk['core']:5.2f} of the core")
    if args.json:
        args.json.write_text(json.dumps({"ms": ms, "nnz": nnz, "ns_per_value_thread": per_value,
                                         "need_ns_for_1p5x_mkl": need,
                                         "loop_ns_one_thread": {str(c): f for c, f in loop.items()},
                                         "blocked_ms": blk}, indent=1) + "\n")


if __name__ == "__main__":
    main()
