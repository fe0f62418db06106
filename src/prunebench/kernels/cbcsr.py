"""Column-blocked CSR kernels (:mod:`prunebench.formats.cbcsr`): W stored as (indptr, indices,
data) with ``indptr`` over ``nblocks * rows`` segments, block-major (segment ``j * rows + r``:
row r's entries in column block j).

The batched core runs block by block: for block j, every row of the thread's share adds its
block-j entries into its output row (:func:`._simd.gather_axpy_at`, no array slices), so the
rows of the transposed batch it reads are the block's only, and stay in L1. The product at
batch 1 walks the same order with a scalar loop: the format is for batches.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ..errors import BadInputError
from ._jit import (BATCH_PASS, BATCH_STEP, JIT, PJIT, TILE, as_f32, as_uindex, balanced_splits,
                   batch_width, empty_lined_rows, finish, transpose_columns, untranspose_rows)
from ._left import out_or_new
from ._reference import apply_dense, value_array
from ._simd import gather_axpy_at, prefetch_at
from .products import KERNELS, Checked, make_products

#: how far ahead of the row in hand the batched core asks for the values and indices (a
#: stream that leaves the cache: the weights of a layer in a model). 4096x4096 at 90%, batch
#: 32, 2 threads, Xeon VM, side by side in one process, a flushed cache and the layer before
#: just run (two runs): fp32 1.068-1.084 ms without, 1.038-1.042 at 512 bytes, 1.007-1.028 at
#: 1024, 1.251-1.268 at 2048 (cold: 1.268, 1.184 at 1024); int8 1.007-1.049 without,
#: 1.008-1.028 at 1024; warm fp32 0.978 -> 0.920, int8 unchanged.
PREFETCH_BYTES = 1024


@njit(**PJIT)
def spmv_cbcsr(rowptr: np.ndarray, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
               scales: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray,
               nparts: int) -> None:
    """``y[r] = scales[r] * sum_k data[k] * x[indices[k]] + bias[r]`` over row r's values in
    every block; ``rowptr`` [rows+1] counts each row's values over all blocks (the thread
    split)."""
    rows = y.size
    if rows == 0:
        return
    nblocks = (indptr.size - 1) // rows
    bounds = balanced_splits(rowptr, nparts)
    for p in prange(nparts):
        r0 = bounds[p]
        r1 = bounds[p + 1]
        for r in range(r0, r1):
            y[r] = 0.0
        for j in range(nblocks):
            for r in range(r0, r1):
                acc = np.float32(0.0)
                for k in range(indptr[j * rows + r], indptr[j * rows + r + 1]):
                    acc += as_f32(data[k]) * x[as_uindex(indices[k])]
                y[r] += acc
        for r in range(r0, r1):
            y[r] = finish(y[r], r, scales, bias)


@njit(inline="always", **JIT)
def _rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, T: np.ndarray,
          YT: np.ndarray, r0: int, r1: int) -> None:
    """``YT[r, :] = sum_k data[k] * T[indices[k], :]`` over the values of rows ``r0:r1``,
    block by block, each row's values asked for :data:`PREFETCH_BYTES` ahead."""
    rows = YT.shape[0]
    width = T.shape[1]
    nblocks = (indptr.size - 1) // rows if rows else 0
    ahead_d = PREFETCH_BYTES // data.itemsize
    ahead_i = PREFETCH_BYTES // indices.itemsize
    n = data.size
    if nblocks == 0:                  # no columns: nothing overwrites the output rows
        for r in range(r0, r1):
            YT[r, :] = 0.0
    for j in range(nblocks):
        for b0 in range(0, width, BATCH_PASS):
            nvec = min(BATCH_PASS, width - b0) // BATCH_STEP
            for r in range(r0, r1):
                q = j * rows + r
                lo = indptr[q]
                if lo + ahead_d < n:
                    prefetch_at(data, lo + ahead_d)
                if lo + ahead_i < n:
                    prefetch_at(indices, lo + ahead_i)
                gather_axpy_at(data, indices, lo, indptr[q + 1], T, b0, nvec, YT, r, j)


@njit(**PJIT)
def spmm_cbcsr_t(rowptr: np.ndarray, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                 T: np.ndarray, YT: np.ndarray, nparts: int) -> None:
    """``YT[r, :] = sum_k data[k] * T[indices[k], :]`` over row r's values, block by block
    (no scales/bias)."""
    if YT.shape[0] == 0:
        return
    bounds = balanced_splits(rowptr, nparts)
    for p in prange(nparts):
        _rows(indptr, indices, data, T, YT, bounds[p], bounds[p + 1])


@njit(**PJIT)
def spmm_cbcsr(rowptr: np.ndarray, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
               scales: np.ndarray, bias: np.ndarray, X: np.ndarray, Y: np.ndarray, rows: int,
               nparts: int) -> np.ndarray:
    """``Y[b, r] = scales[r] * sum_k data[k] * X[b, indices[k]] + bias[r]``; X is [B, cols].

    One parallel region, where the other formats' products run three (transpose, core,
    untranspose; :func:`._left.right_begin`): each thread transposes the whole batch into a
    ``T`` of its own (the transpose done twice, about 0.01 ms more at 32 x 4096), runs its rows
    and writes them into ``Y``. With the threads' passive wait, each region after the first
    woke a thread that had just gone to sleep: 0.067 ms a region on the Xeon VM, 2 threads."""
    batch, cols = X.shape
    Y = out_or_new(Y, batch, rows)
    width = batch_width(batch)
    YT = empty_lined_rows(rows, width)
    bounds = balanced_splits(rowptr, nparts)
    for p in prange(nparts):
        r0 = bounds[p]
        r1 = bounds[p + 1]
        if r1 > r0:
            T = empty_lined_rows(cols, width)
            for c0 in range(0, cols, TILE):
                transpose_columns(X, c0, T)
            _rows(indptr, indices, data, T, YT, r0, r1)
            untranspose_rows(YT, r0, r1, Y, scales, bias)
    return Y


def _check(indptr, indices, data, shape, scales, bias) -> Checked:
    rows, cols = chk.check_shape(shape)
    chk.check_array(indptr, "indptr", chk.POINTER_DTYPES, 1)
    chk.check_array(indices, "indices", chk.KERNEL_INDEX_DTYPES, 1)
    nseg = indptr.shape[0] - 1
    if nseg < 0 or (nseg % rows if rows else nseg):
        raise BadInputError(f"indptr has length {indptr.shape[0]}; shape {shape} needs "
                            f"nblocks * {rows} + 1")
    vals = chk.values_for_kernel(data, "data", 1, scales)
    if indices.shape[0] != vals.shape[0]:
        raise BadInputError(f"indices has length {indices.shape[0]}, data {vals.shape[0]}; "
                            "they should be equal")
    rowptr = np.zeros(rows + 1, np.int64)
    if rows:
        counts = np.diff(indptr.astype(np.int64)).reshape(nseg // rows, rows).sum(axis=0)
        np.cumsum(counts, out=rowptr[1:])
    return (rows, cols, (rowptr, indptr, indices, vals), chk.row_vector(scales, "scales", rows),
            chk.row_vector(bias, "bias", rows))


#: ``cbcsr_matvec(indptr, indices, data, x, *, shape, scales=None, bias=None, out=None)``;
#: ``cbcsr_matmul(..., X[B, cols], ...)``; ``cbcsr_left(..., X[cols, N], ...)``
cbcsr_matvec, cbcsr_matmul, cbcsr_left = KERNELS.add("cbcsr", make_products(
    "cbcsr", "column-blocked CSR", _check, spmv_cbcsr, spmm_cbcsr, spmm_cbcsr_t))[:3]


def cbcsr_reference(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x: np.ndarray, *,
                    shape: Any, scales: np.ndarray | None = None,
                    bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`cbcsr_matvec` (1-D x) and :func:`cbcsr_matmul` (2-D X)."""
    rows, cols = shape
    counts: np.ndarray = np.diff(np.asarray(indptr, np.int64))
    row_of = np.repeat(np.arange(len(counts)) % rows, counts)
    W = np.zeros((rows, cols))
    np.add.at(W, (row_of, np.asarray(indices, np.int64)), value_array(data))
    return apply_dense(W, x, scales, bias)
