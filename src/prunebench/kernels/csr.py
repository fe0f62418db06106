"""CSR kernels: ``y = W @ x`` and ``Y = X @ W.T`` for W stored as (indptr, indices, data).

Layout: ``indptr`` int32/int64 [rows+1]; ``indices`` uint8/uint16/int32/int64 [nnz];
``data`` [nnz] float32, float16 (raw kernels: its uint16 bits) or int8 with per-row float32
``scales``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ..errors import BadInputError
from ._jit import JIT, PJIT, as_f32, as_uindex, balanced_splits, finish, spmm_row
from ._left import right_begin, right_end
from ._reference import apply_dense, value_array
from .products import KERNELS, Checked, make_products


@njit(**JIT)
def _row_dot(d, ix, x):
    acc = np.float32(0.0)
    for k in range(d.size):  # LLVM vectorises this into a 16-wide gather-FMA loop
        acc += as_f32(d[k]) * x[as_uindex(ix[k])]
    return acc


@njit(**PJIT)
def spmv_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scales: np.ndarray,
             bias: np.ndarray, x: np.ndarray, y: np.ndarray, nparts: int) -> None:
    """``y[r] = scales[r] * sum_k data[k] * x[indices[k]] + bias[r]`` over row r's values.

    ``scales``/``bias`` are float32 [rows] or empty (none); ``nparts`` is the thread count.
    """
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        for r in range(bounds[p], bounds[p + 1]):
            lo = indptr[r]
            hi = indptr[r + 1]
            y[r] = finish(_row_dot(data[lo:hi], indices[lo:hi], x), r, scales, bias)


@njit(**PJIT)
def spmm_csr_t(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, T: np.ndarray,
               YT: np.ndarray, nparts: int) -> None:
    """``YT[r, :] = sum_k data[k] * T[indices[k], :]`` over row r's values (no scales/bias)."""
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        for r in range(bounds[p], bounds[p + 1]):
            lo = indptr[r]
            hi = indptr[r + 1]
            spmm_row(data[lo:hi], indices[lo:hi], T, YT[r])


@njit(**JIT)
def spmm_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scales: np.ndarray,
             bias: np.ndarray, X: np.ndarray, Y: np.ndarray, rows: int, nparts: int) -> np.ndarray:
    """``Y[b, r] = scales[r] * sum_k data[k] * X[b, indices[k]] + bias[r]``; X is [B, cols]."""
    T, YT = right_begin(X, X.shape[1], rows)
    spmm_csr_t(indptr, indices, data, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


def _check(indptr, indices, data, shape, scales, bias) -> Checked:
    rows, cols = chk.check_shape(shape)
    chk.check_array(indptr, "indptr", chk.POINTER_DTYPES, 1)
    chk.check_array(indices, "indices", chk.KERNEL_INDEX_DTYPES, 1)
    if indptr.shape[0] != rows + 1:
        raise BadInputError(f"indptr has length {indptr.shape[0]}; shape {shape} needs {rows + 1}")
    vals = chk.values_for_kernel(data, "data", 1, scales)
    return (rows, cols, (indptr, indices, vals), chk.row_vector(scales, "scales", rows),
                   chk.row_vector(bias, "bias", rows))


#: ``csr_matvec(indptr, indices, data, x, *, shape, scales=None, bias=None, out=None)``, e.g.
#: for ``A = scipy.sparse.csr_array(W)``: ``csr_matvec(A.indptr, A.indices, A.data, x,
#: shape=A.shape)``; ``csr_matmul(..., X[B, cols], ...)``; ``csr_left(..., X[cols, N], ...)``
csr_matvec, csr_matmul, csr_left = KERNELS.add("csr", make_products(
    "csr", "CSR", _check, spmv_csr, spmm_csr, spmm_csr_t))[:3]


def csr_reference(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x: np.ndarray, *,
                  shape: Any, scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`csr_matvec` (1-D x) and :func:`csr_matmul` (2-D X)."""
    rows, cols = shape
    counts: np.ndarray = np.diff(np.asarray(indptr, np.int64))
    row_of = np.repeat(np.arange(rows), counts)
    W = np.zeros((rows, cols))
    np.add.at(W, (row_of, np.asarray(indices, np.int64)), value_array(data))
    return apply_dense(W, x, scales, bias)
