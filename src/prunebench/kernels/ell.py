"""Sliced-ELL kernels: rows cut into slices of ``slice_height``, each slice padded to its widest row.

Layout: ``slice_ptr`` int32/int64 [nslices+1]; ``widths`` int32/int64 [nslices]; slice s holds
``h_s = min(h, rows - s*h)`` rows and its entry (i, k) sits at ``slice_ptr[s] + k*h_s + i``
(column-major inside the slice); ``indices`` (uint8/uint16/int32/int64) and ``data`` (float32,
float16 -- raw kernels: its uint16 bits -- or int8 with per-row float32 ``scales``) share those
offsets; padding slots hold index 0 and value 0.
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
from ._simd import ell_rows

#: slice rows one pass of :func:`._simd.ell_rows` covers (four 16-lane accumulators)
ELL_ROWS = 64


@njit(**PJIT)
def spmv_ell(slice_ptr: np.ndarray, widths: np.ndarray, indices: np.ndarray, data: np.ndarray,
             slice_height: int, scales: np.ndarray, bias: np.ndarray, x: np.ndarray,
             y: np.ndarray, nparts: int) -> None:
    """``y = W @ x`` (times ``scales``, plus ``bias``) for a sliced-ELL matrix with y.size rows."""
    rows = y.size
    h = slice_height
    bounds = balanced_splits(slice_ptr, nparts)
    for p in prange(nparts):
        acc = np.empty(ELL_ROWS, np.float32)
        for s in range(bounds[p], bounds[p + 1]):
            r0 = s * h
            hs = min(h, rows - r0)
            w = np.int64(widths[s])
            lo = np.int64(slice_ptr[s])
            for i0 in range(0, hs, ELL_ROWS):  # one vector lane per row, 64 rows per pass
                nl = min(ELL_ROWS, hs - i0)
                ell_rows(data, indices, lo + i0, hs, w, nl, x, acc)
                for i in range(nl):
                    y[r0 + i0 + i] = finish(acc[i], r0 + i0 + i, scales, bias)


@njit(**JIT)
def spmm_ell(slice_ptr: np.ndarray, widths: np.ndarray, indices: np.ndarray, data: np.ndarray,
             slice_height: int, scales: np.ndarray, bias: np.ndarray, X: np.ndarray, Y: np.ndarray,
             rows: int, nparts: int) -> np.ndarray:
    """``Y = X @ W.T`` (times ``scales``, plus ``bias``); X is [B, cols]."""
    T, YT = right_begin(X, X.shape[1], rows)
    spmm_ell_t(slice_ptr, widths, indices, data, slice_height, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


@njit(**PJIT)
def spmm_ell_t(slice_ptr: np.ndarray, widths: np.ndarray, indices: np.ndarray, data: np.ndarray,
               slice_height: int, T: np.ndarray, YT: np.ndarray, nparts: int) -> None:
    """``YT = W @ T`` for the transposed batch ``T``."""
    rows = YT.shape[0]
    h = slice_height
    widest = 0
    for s in range(widths.size):
        widest = max(widest, int(widths[s]))
    bounds = balanced_splits(slice_ptr, nparts)
    for p in prange(nparts):
        vbuf = np.empty(widest, data.dtype)  # one row of the slice, made contiguous
        cbuf = np.empty(widest, indices.dtype)
        for s in range(bounds[p], bounds[p + 1]):
            r0 = s * h
            hs = min(h, rows - r0)
            w = np.int64(widths[s])
            lo = np.int64(slice_ptr[s])
            for i in range(hs):
                for k in range(w):
                    vbuf[k] = data[lo + k * hs + i]
                    cbuf[k] = indices[lo + k * hs + i]
                spmm_row(vbuf[:w], cbuf[:w], T, YT[r0 + i])


def _check(slice_ptr, widths, indices, data, shape, scales, bias, slice_height) -> Checked:
    rows, cols = chk.check_shape(shape)
    if isinstance(slice_height, bool) or not isinstance(slice_height, (int, np.integer)) or slice_height < 1:
        raise BadInputError(f"slice_height={slice_height!r} should be a positive integer")
    chk.check_array(slice_ptr, "slice_ptr", chk.POINTER_DTYPES, 1)
    chk.check_array(widths, "widths", chk.POINTER_DTYPES, 1)
    chk.check_array(indices, "indices", chk.KERNEL_INDEX_DTYPES, 1)
    nslices = -(-rows // int(slice_height))
    if widths.shape[0] != nslices or slice_ptr.shape[0] != nslices + 1:
        raise BadInputError(
            f"widths/slice_ptr have lengths {widths.shape[0]}/{slice_ptr.shape[0]}; "
            f"{rows} rows in slices of {slice_height} need {nslices}/{nslices + 1}"
        )
    vals = chk.values_for_kernel(data, "data", 1, scales)
    return (rows, cols, (slice_ptr, widths, indices, vals, int(slice_height)),
                   chk.row_vector(scales, "scales", rows), chk.row_vector(bias, "bias", rows))


#: ``ell_matvec(slice_ptr, widths, indices, data, x, *, shape, slice_height, scales=None,
#: bias=None, out=None)``; ``ell_matmul(..., X[B, cols], ...)``; ``ell_left(..., X[cols, N], ...)``
ell_matvec, ell_matmul, ell_left = KERNELS.add("ell", make_products(
    "ell", "sliced-ELL", _check, spmv_ell, spmm_ell, spmm_ell_t))[:3]


def ell_reference(slice_ptr: np.ndarray, widths: np.ndarray, indices: np.ndarray,
                  data: np.ndarray, x: np.ndarray, *, shape: Any, slice_height: int,
                  scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`ell_matvec` / :func:`ell_matmul`."""
    rows, cols = shape
    W = np.zeros((rows, cols))
    vals = value_array(data)
    for s, w in enumerate(np.asarray(widths, np.int64)):
        r0 = s * slice_height
        hs = min(slice_height, rows - r0)
        lo = int(slice_ptr[s])
        ix = np.asarray(indices[lo : lo + w * hs], np.int64).reshape(w, hs)
        v = vals[lo : lo + w * hs].reshape(w, hs)
        np.add.at(W, (np.arange(r0, r0 + hs)[None, :].repeat(w, 0), ix), v)
    return apply_dense(W, x, scales, bias)
