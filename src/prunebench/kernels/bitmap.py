"""Bitmap kernels: W stored as a bit per weight plus the nonzero values packed row by row.

Layout: ``mask`` uint8 [rows, ceil(cols/8)] = ``np.packbits(W != 0, axis=1, bitorder="little")``;
``row_ptr`` int32/int64 [rows+1] prefix nonzero counts; ``data`` [nnz] row-major nonzeros,
float32, float16 (raw kernels: its uint16 bits) or int8 with per-row float32 ``scales``.

Batch 1 decodes 16 columns per ``vexpandps`` (:func:`._simd.expand_dot`), so its cost hardly
depends on the sparsity: it reads ``cols/8 + nnz * itemsize`` bytes per matrix and wins over
dense at moderate sparsity where index-per-value formats cannot.
A column ``j`` whose bit is clear contributes ``0 * x[j]``; an inf/NaN there gives NaN (as dense
``W @ x`` does) where CSR would skip it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ._left import right_begin, right_end
from ..errors import BadInputError
from ._jit import JIT, PJIT, balanced_splits, finish, spmm_row
from ._reference import apply_dense, value_array
from .products import KERNELS, Checked, make_products
from ._simd import expand_dot, load_le64, trailing_zeros


@njit(**PJIT)
def spmv_bitmap(mask: np.ndarray, row_ptr: np.ndarray, data: np.ndarray, scales: np.ndarray,
                bias: np.ndarray, x: np.ndarray, y: np.ndarray, nparts: int) -> None:
    """``y[r] = scales[r] * sum_{j: bit (r, j) set} value(r, j) * x[j] + bias[r]``."""
    rows, nbytes = mask.shape
    xp = np.zeros(nbytes * 8 + 8, np.float32)  # expand_dot reads whole 16-column chunks
    xp[: x.size] = x
    flat = mask.reshape(-1)
    bounds = balanced_splits(row_ptr, nparts)
    for p in prange(nparts):
        for r in range(bounds[p], bounds[p + 1]):
            acc = expand_dot(flat, r * nbytes, nbytes, data, np.int64(row_ptr[r]), xp)
            y[r] = finish(acc, r, scales, bias)


@njit(**JIT)
def bitmap_row_columns(mrow: np.ndarray, out: np.ndarray) -> int:
    """Write the columns of the set bits of one mask row into ``out``; return their count."""
    q = 0
    nwords = mrow.size // 8
    for w in range(nwords):
        word = load_le64(mrow, w * 8)
        while word:
            out[q] = w * 64 + trailing_zeros(word)
            q += 1
            word &= word - np.uint64(1)
    for i in range(nwords * 8, mrow.size):
        b = np.int64(mrow[i])
        while b:
            low = b & -b
            out[q] = i * 8 + trailing_zeros(np.uint64(low))
            q += 1
            b ^= low
    return q


@njit(**JIT)
def spmm_bitmap(mask: np.ndarray, row_ptr: np.ndarray, data: np.ndarray, scales: np.ndarray,
                bias: np.ndarray, X: np.ndarray, Y: np.ndarray, rows: int,
                nparts: int) -> np.ndarray:
    """``Y[b, r] = scales[r] * sum_{j: bit (r, j) set} value(r, j) * X[b, j] + bias[r]``."""
    T, YT = right_begin(X, X.shape[1], rows)
    spmm_bitmap_t(mask, row_ptr, data, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


@njit(**PJIT)
def spmm_bitmap_t(mask: np.ndarray, row_ptr: np.ndarray, data: np.ndarray, T: np.ndarray,
                  YT: np.ndarray, nparts: int) -> None:
    """``YT = W @ T`` for the transposed batch ``T``."""
    rows, nbytes = mask.shape
    bounds = balanced_splits(row_ptr, nparts)
    for p in prange(nparts):
        colbuf = np.empty(nbytes * 8, np.int32)
        for r in range(bounds[p], bounds[p + 1]):
            n = bitmap_row_columns(mask[r], colbuf)
            lo = row_ptr[r]
            spmm_row(data[lo : lo + n], colbuf[:n], T, YT[r])


def _check(mask, row_ptr, data, shape, scales, bias) -> Checked:
    rows, cols = chk.check_shape(shape)
    chk.check_array(mask, "mask", (np.dtype(np.uint8),), 2)
    chk.check_array(row_ptr, "row_ptr", chk.POINTER_DTYPES, 1)
    if mask.shape != (rows, (cols + 7) // 8):
        raise BadInputError(f"mask has shape {mask.shape}; shape {shape} needs {(rows, (cols + 7) // 8)}")
    if row_ptr.shape[0] != rows + 1:
        raise BadInputError(f"row_ptr has length {row_ptr.shape[0]}; shape {shape} needs {rows + 1}")
    vals = chk.values_for_kernel(data, "data", 1, scales)
    return (rows, cols, (mask, row_ptr, vals), chk.row_vector(scales, "scales", rows),
                   chk.row_vector(bias, "bias", rows))


#: ``bitmap_matvec(mask, row_ptr, data, x, *, shape, scales=None, bias=None, out=None)``;
#: ``bitmap_matmul(..., X[B, cols], ...)``; ``bitmap_left(..., X[cols, N], ...)``
bitmap_matvec, bitmap_matmul, bitmap_left = KERNELS.add("bitmap", make_products(
    "bitmap", "bitmap", _check, spmv_bitmap, spmm_bitmap, spmm_bitmap_t))[:3]


def bitmap_reference(mask: np.ndarray, row_ptr: np.ndarray, data: np.ndarray, x: np.ndarray, *,
                     shape: Any, scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`bitmap_matvec` / :func:`bitmap_matmul`."""
    rows, cols = shape
    present = np.unpackbits(mask, axis=1, count=cols, bitorder="little").astype(bool)
    W = np.zeros((rows, cols))
    W[present] = value_array(data)[: int(present.sum())]  # boolean assignment is row-major
    return apply_dense(W, x, scales, bias)
