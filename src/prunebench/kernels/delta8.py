"""delta8 kernels: ``y = W @ x`` and ``Y = X @ W.T`` for W stored as (indptr, deltas, data).

Layout (:mod:`prunebench.formats.delta8`): ``indptr`` int32/int64 [rows+1] over the stored
entries, fillers included; ``deltas`` uint8 [nstored], the column of entry k of a row being
``c_k = c_{k-1} + deltas[k] + 1`` from ``c = -1`` at the row's start; ``data`` [nstored]
float32, float16 (raw kernels: its uint16 bits) or int8 with per-row float32 ``scales``;
fillers hold 0. The kernels read the deltas as they go (:func:`._simd.delta_dot`,
:func:`._simd.delta_axpy`): one byte of index traffic per entry.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ..errors import BadInputError
from ._jit import BATCH_PASS, BATCH_STEP, JIT, PJIT, balanced_splits, finish
from ._left import right_begin, right_end
from ._reference import apply_dense, value_array
from .products import KERNELS, Checked, make_products
from ._simd import delta_axpy, delta_dot


@njit(**PJIT)
def spmv_delta8(indptr: np.ndarray, deltas: np.ndarray, data: np.ndarray, scales: np.ndarray,
                bias: np.ndarray, x: np.ndarray, y: np.ndarray, nparts: int) -> None:
    """``y[r] = scales[r] * sum_k data[k] * x[c_k] + bias[r]`` over row r's stored entries.

    ``scales``/``bias`` are float32 [rows] or empty (none); ``nparts`` is the thread count.
    """
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        for r in range(bounds[p], bounds[p + 1]):
            y[r] = finish(delta_dot(deltas, data, indptr[r], indptr[r + 1], x), r, scales, bias)


@njit(**JIT)
def _spmm_row(vals, deltas, T, out):
    width = T.shape[1]
    for b0 in range(0, width, BATCH_PASS):
        delta_axpy(vals, deltas, T, b0, min(BATCH_PASS, width - b0) // BATCH_STEP, out)


@njit(**PJIT)
def spmm_delta8_t(indptr: np.ndarray, deltas: np.ndarray, data: np.ndarray, T: np.ndarray,
                  YT: np.ndarray, nparts: int) -> None:
    """``YT[r, :] = sum_k data[k] * T[c_k, :]`` over row r's stored entries (no scales/bias)."""
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        for r in range(bounds[p], bounds[p + 1]):
            lo = indptr[r]
            hi = indptr[r + 1]
            _spmm_row(data[lo:hi], deltas[lo:hi], T, YT[r])


@njit(**JIT)
def spmm_delta8(indptr: np.ndarray, deltas: np.ndarray, data: np.ndarray, scales: np.ndarray,
                bias: np.ndarray, X: np.ndarray, Y: np.ndarray, rows: int,
                nparts: int) -> np.ndarray:
    """``Y[b, r] = scales[r] * sum_k data[k] * X[b, c_k] + bias[r]``; X is [B, cols]."""
    T, YT = right_begin(X, X.shape[1], rows)
    spmm_delta8_t(indptr, deltas, data, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


def _check(indptr, deltas, data, shape, scales, bias) -> Checked:
    rows, cols = chk.check_shape(shape)
    chk.check_array(indptr, "indptr", chk.POINTER_DTYPES, 1)
    chk.check_array(deltas, "deltas", (np.dtype(np.uint8),), 1)
    if indptr.shape[0] != rows + 1:
        raise BadInputError(f"indptr has length {indptr.shape[0]}; shape {shape} needs {rows + 1}")
    vals = chk.values_for_kernel(data, "data", 1, scales)
    if deltas.shape[0] != vals.shape[0]:
        raise BadInputError(f"deltas has length {deltas.shape[0]}; data has {vals.shape[0]} (one delta per entry)")
    return (rows, cols, (indptr, deltas, vals), chk.row_vector(scales, "scales", rows),
                   chk.row_vector(bias, "bias", rows))


#: ``delta8_matvec(indptr, deltas, data, x, *, shape, scales=None, bias=None, out=None)``, e.g.
#: ``indptr = [0, 3, 4]`` (int32), ``deltas = [1, 0, 255, 0]`` (uint8: row 0 holds columns 1, 2
#: and a filler at 258), ``data = [2, 3, 0, 4]`` and x = 300 ones give ``[5., 4.]`` for shape
#: (2, 300); ``delta8_matmul(..., X[B, cols], ...)``; ``delta8_left(..., X[cols, N], ...)``
delta8_matvec, delta8_matmul, delta8_left = KERNELS.add("delta8", make_products(
    "delta8", "delta8", _check, spmv_delta8, spmm_delta8, spmm_delta8_t))[:3]


def delta8_reference(indptr: np.ndarray, deltas: np.ndarray, data: np.ndarray, x: np.ndarray, *,
                     shape: Any, scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`delta8_matvec` (1-D x) and :func:`delta8_matmul` (2-D X)."""
    rows, cols = shape
    ptr = np.asarray(indptr, np.int64)
    counts = np.diff(ptr)
    row_of = np.repeat(np.arange(rows), counts)
    steps = np.asarray(deltas, np.int64) + 1
    ends = np.cumsum(steps)                         # sum of steps up to each entry
    first = np.repeat(ptr[:-1], counts)             # each entry's row start
    columns = ends - (ends[first] - steps[first]) - 1
    W = np.zeros((rows, cols))
    np.add.at(W, (row_of, columns), value_array(data))
    return apply_dense(W, x, scales, bias)
