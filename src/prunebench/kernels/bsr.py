"""BSR kernels: W stored as dense r x c blocks on a block-row CSR pattern.

Layout: ``indptr`` int32/int64 over block rows [ceil(rows/r)+1]; ``indices`` block-column
numbers (uint8/uint16/int32/int64) [nblocks]; ``data`` [nblocks, r, c] float32, float16 (raw
kernels: its uint16 bits) or int8 with per-row float32 ``scales``. The matrix is implicitly
zero-padded to multiples of r and c; the kernels take the true (rows, cols) from ``y``/``x``,
read ``x`` through a zero-padded copy and write no row past ``rows``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ._left import right_begin, right_end
from ..errors import BadInputError
from ._jit import JIT, LANES, PJIT, as_f32, as_uindex, balanced_splits, finish, spmm_row
from ._reference import apply_dense, value_array
from .products import KERNELS, Checked, make_products
from ._simd import bsr_block_row


#: block sizes r*c the vector path handles (:func:`._simd.bsr_block_row`); others run scalar
VECTOR_BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 48, 64)


@njit(**JIT)
def _block_row_scalar(flat, indices, k0, k1, r, c, xp, acc):
    """``acc[:r]`` = the block row's product, for block sizes without a vector path."""
    for i in range(r):
        acc[i] = 0.0
    for k in range(k0, k1):
        c0 = np.int64(indices[k]) * c
        base = np.int64(k) * r * c
        for i in range(r):  # flat unsigned offsets: no per-block views, no wraparound selects
            s = np.float32(0.0)
            for j in range(c):
                s += as_f32(flat[as_uindex(base + i * c + j)]) * xp[as_uindex(c0 + j)]
            acc[i] += s


@njit(**PJIT)
def spmv_bsr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scales: np.ndarray,
             bias: np.ndarray, x: np.ndarray, y: np.ndarray, nparts: int) -> None:
    """``y = W @ x`` (times ``scales``, plus ``bias``) over the stored blocks.

    ``data.size`` and the padded column count must be below 2**31 (31-bit offsets).
    """
    rows = y.size
    cols = x.size
    r = data.shape[1]
    c = data.shape[2]
    rc = r * c
    xp = np.zeros((cols + c - 1) // c * c, np.float32)
    xp[:cols] = x
    flat = data.reshape(-1)
    vector = False
    for size in VECTOR_BLOCK_SIZES:
        vector |= rc == size
    lanes = rc if rc >= LANES else LANES
    colpat = np.zeros(64, np.int32)  # in-block column and row of each vector lane
    rowpat = np.zeros(64, np.int64)
    for lane in range(64):
        colpat[lane] = (lane % rc) % c
        rowpat[lane] = (lane % rc) // c
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        acc = np.empty(r, np.float32)
        lane_sums = np.empty(64, np.float32)
        for br in range(bounds[p], bounds[p + 1]):
            k0 = indptr[br]
            k1 = indptr[br + 1]
            if vector:
                bsr_block_row(flat, indices, k0, k1, c, rc, colpat, xp, lane_sums)
                for i in range(r):
                    acc[i] = 0.0
                for lane in range(lanes):
                    acc[rowpat[lane]] += lane_sums[lane]
            else:
                _block_row_scalar(flat, indices, k0, k1, r, c, xp, acc)
            r0 = br * r
            for i in range(min(r, rows - r0)):
                y[r0 + i] = finish(acc[i], r0 + i, scales, bias)


@njit(**JIT)
def spmm_bsr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scales: np.ndarray,
             bias: np.ndarray, X: np.ndarray, Y: np.ndarray, rows: int, nparts: int) -> np.ndarray:
    """``Y = X @ W.T`` (times ``scales``, plus ``bias``); X is [B, cols]."""
    C = data.shape[2]
    T, YT = right_begin(X, (X.shape[1] + C - 1) // C * C, rows)
    spmm_bsr_t(indptr, indices, data, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


@njit(**PJIT)
def spmm_bsr_t(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, T: np.ndarray,
               YT: np.ndarray, nparts: int) -> None:
    """``YT = W @ T`` for the transposed batch ``T`` (rows padded to whole blocks)."""
    rows = YT.shape[0]
    R = data.shape[1]
    C = data.shape[2]
    nbr = indptr.size - 1
    widest = 0
    for br in range(nbr):
        widest = max(widest, int(indptr[br + 1] - indptr[br]))
    bounds = balanced_splits(indptr, nparts)
    for p in prange(nparts):
        cbuf = np.empty(widest * C, np.int64)  # the block row's columns, shared by its r rows
        vbuf = np.empty(widest * C, data.dtype)
        for br in range(bounds[p], bounds[p + 1]):
            k0 = indptr[br]
            nb = np.int64(indptr[br + 1] - k0)
            for m in range(nb):
                c0 = np.int64(indices[k0 + m]) * C
                for j in range(C):
                    cbuf[m * C + j] = c0 + j
            r0 = br * R
            for i in range(min(R, rows - r0)):
                for m in range(nb):
                    for j in range(C):
                        vbuf[m * C + j] = data[k0 + m, i, j]
                spmm_row(vbuf[: nb * C], cbuf[: nb * C], T, YT[r0 + i])


def _check(indptr, indices, data, shape, scales, bias) -> Checked:
    rows, cols = chk.check_shape(shape)
    chk.check_array(indptr, "indptr", chk.POINTER_DTYPES, 1)
    chk.check_array(indices, "indices", chk.KERNEL_INDEX_DTYPES, 1)
    vals = chk.values_for_kernel(data, "data", 3, scales)
    r, c = data.shape[1:]
    if r < 1 or c < 1:
        raise BadInputError(f"data has shape {data.shape}; blocks must be at least 1 x 1")
    nbr = -(-rows // r)
    if indptr.shape[0] != nbr + 1:
        raise BadInputError(
            f"indptr has length {indptr.shape[0]}; shape {shape} in {r}x{c} blocks needs {nbr + 1}"
        )
    return (rows, cols, (indptr, indices, vals), chk.row_vector(scales, "scales", rows),
                   chk.row_vector(bias, "bias", rows))


def _padded_cols(c: Checked) -> int:
    """The column-major product reads whole blocks: cols rounded up to the block width."""
    cols, vals = c[1], c[2][2]
    C = vals.shape[2]
    return (cols + C - 1) // C * C


#: ``bsr_matvec(indptr, indices, data, x, *, shape, scales=None, bias=None, out=None)``;
#: ``bsr_matmul(..., X[B, cols], ...)``; ``bsr_left(..., X[cols, N], ...)``
bsr_matvec, bsr_matmul, bsr_left = KERNELS.add("bsr", make_products(
    "bsr", "BSR", _check, spmv_bsr, spmm_bsr, spmm_bsr_t, _padded_cols))[:3]


def bsr_reference(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x: np.ndarray, *,
                  shape: Any, scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`bsr_matvec` / :func:`bsr_matmul`."""
    rows, cols = shape
    _, r, c = data.shape
    nbr = len(indptr) - 1
    ncb = max(-(-cols // c), int(np.max(indices)) + 1 if len(indices) else 0)
    P = np.zeros((nbr, r, ncb, c))  # padded matrix, block row x in-row x block col x in-col
    counts: np.ndarray = np.diff(np.asarray(indptr, np.int64))
    block_row = np.repeat(np.arange(nbr), counts)
    P[block_row, :, np.asarray(indices, np.int64), :] = value_array(data)
    W = P.reshape(nbr * r, ncb * c)[:rows, :cols]
    return apply_dense(W, x, scales, bias)
