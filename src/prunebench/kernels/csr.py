"""CSR kernels: ``y = W @ x`` and ``Y = X @ W.T`` for W stored as (indptr, indices, data).

Layout: ``indptr`` int32/int64 [rows+1]; ``indices`` uint8/uint16/int32/int64 [nnz];
``data`` [nnz] float32, float16 (raw kernels: its uint16 bits) or int8 with per-row float32
``scales``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ..errors import BadInputError
from ._jit import JIT, PJIT, as_f32, as_uindex, balanced_splits, finish, spmm_row
from ._left import input_columns, left_product, right_product
from ._reference import apply_dense, value_array


@njit(**JIT)
def _row_dot(d, ix, x):
    acc = np.float32(0.0)
    for k in range(d.size):  # LLVM vectorises this into a 16-wide gather-FMA loop
        acc += as_f32(d[k]) * x[as_uindex(ix[k])]
    return acc


@njit(**PJIT)
def spmv_csr(indptr, indices, data, scales, bias, x, y, nparts):
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
def spmm_csr_t(indptr, indices, data, T, YT, nparts):
    """``YT[r, :] = sum_k data[k] * T[indices[k], :]`` over row r's values (no scales/bias)."""
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        for r in range(bounds[p], bounds[p + 1]):
            lo = indptr[r]
            hi = indptr[r + 1]
            spmm_row(data[lo:hi], indices[lo:hi], T, YT[r])


def spmm_csr(indptr, indices, data, scales, bias, X, Y, nparts):
    """``Y[b, r] = scales[r] * sum_k data[k] * X[b, indices[k]] + bias[r]``; X is [B, cols]."""
    right_product(spmm_csr_t, (indptr, indices, data), X, X.shape[1], Y, scales, bias, nparts)


def _check(indptr, indices, data, shape, scales, bias):
    rows, cols = chk.check_shape(shape)
    chk.check_array(indptr, "indptr", chk.POINTER_DTYPES, 1)
    chk.check_array(indices, "indices", chk.KERNEL_INDEX_DTYPES, 1)
    if indptr.shape[0] != rows + 1:
        raise BadInputError(f"indptr has length {indptr.shape[0]}; shape {shape} needs {rows + 1}")
    vals = chk.values_for_kernel(data, "data", 1, scales)
    return rows, cols, vals, chk.row_vector(scales, "scales", rows), chk.row_vector(bias, "bias", rows)


def csr_matvec(indptr, indices, data, x, *, shape, scales=None, bias=None, out=None):
    """``W @ x`` (+ bias) for a CSR matrix of true ``shape``; returns float32 [rows].

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.csr_array(np.array([[0, 2.0], [3.0, 0]], np.float32))
    >>> csr_matvec(A.indptr, A.indices, A.data, np.ones(2, np.float32), shape=A.shape)
    array([2., 3.], dtype=float32)
    """
    rows, cols, vals, sc, bi = _check(indptr, indices, data, shape, scales, bias)
    x = chk.input_vector(x, cols)
    y = chk.output(out, (rows,))
    spmv_csr(indptr, indices, vals, sc, bi, x, y, chk.nparts())
    return y


def csr_matmul(indptr, indices, data, X, *, shape, scales=None, bias=None, out=None):
    """``X @ W.T`` (+ bias) for X float32 [B, cols]; returns float32 [B, rows]."""
    rows, cols, vals, sc, bi = _check(indptr, indices, data, shape, scales, bias)
    X = chk.input_batch(X, cols)
    Y = chk.output(out, (X.shape[0], rows))
    spmm_csr(indptr, indices, vals, sc, bi, X, Y, chk.nparts())
    return Y


def csr_left(indptr, indices, data, X, *, shape, scales=None, bias=None):
    """``W @ X`` (+ bias per row) for X float32 [cols, N]; returns float32 [rows, N]."""
    rows, cols, vals, sc, bi = _check(indptr, indices, data, shape, scales, bias)
    X = input_columns(X, cols)
    return left_product(spmm_csr_t, (indptr, indices, vals), X, cols, rows, sc, bi,
                        chk.nparts())


def csr_reference(indptr, indices, data, x, *, shape, scales=None, bias=None):
    """NumPy float64 reference of :func:`csr_matvec` (1-D x) and :func:`csr_matmul` (2-D X)."""
    rows, cols = shape
    row_of = np.repeat(np.arange(rows), np.diff(np.asarray(indptr, np.int64)))
    W = np.zeros((rows, cols))
    np.add.at(W, (row_of, np.asarray(indices, np.int64)), value_array(data))
    return apply_dense(W, x, scales, bias)
