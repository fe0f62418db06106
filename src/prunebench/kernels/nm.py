"""N:M kernels: at most n nonzeros in every group of m consecutive columns (m in 2, 4, 8, 16).

Layout: ``ngroups = ceil(cols/m)``; ``data`` [rows, ngroups*n] float32, float16 (raw kernels:
its uint16 bits) or int8 with per-row float32 ``scales``; ``indices`` uint8
[rows, ceil(ngroups*n*bits/8)] with ``bits = log2(m)``: slot j of a row is the ``bits``-wide
field at bit ``j*bits`` of the row's little-endian bitstream, and its column is
``(j // n) * m + field``. Groups with fewer nonzeros hold value 0 in the spare slots; a field may
point past ``cols`` only with value 0, so the kernels read ``x`` through a zero-padded copy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ._left import right_begin, right_end
from ..errors import BadInputError
from ._jit import JIT, PJIT, as_f32, as_uindex, even_splits, finish, spmm_row
from ._reference import apply_dense, value_array
from .products import KERNELS, Checked, make_products
from ._simd import unpack_fields16

#: group size m -> bits per in-group index
BITS = {2: 1, 4: 2, 8: 3, 16: 4}


@njit(**JIT)
def _group_bases(nslots, n, m):
    """``base[j] = (j // n) * m``: the first column of slot j's group (same for every row)."""
    base = np.empty(nslots, np.int32)
    for j in range(nslots):
        base[j] = (j // n) * m
    return base


@njit(**JIT)
def nm_row_fields(irow: np.ndarray, bits: int, out: np.ndarray) -> None:
    """Unpack one row's ``out.size`` in-group indices (``bits`` wide, little-endian bitstream).

    Sixteen slots span ``2 * bits`` bytes, so the main loop splits one 8-byte word per sixteen
    slots with a vector of shifts; the last few slots (where 8 bytes would overrun the row) go
    one at a time.
    """
    nslots = out.size
    fmask = (1 << bits) - 1
    step = 2 * bits
    c = 0
    while (c + 1) * 16 <= nslots and c * step + 8 <= irow.size:
        unpack_fields16(irow, c * step, bits, out, c * 16)
        c += 1
    for j in range(c * 16, nslots):
        pos = j * bits
        byte = pos >> 3
        field = np.int64(irow[byte]) >> (pos & 7)
        if (pos & 7) + bits > 8:  # bits == 3 straddles bytes
            field |= np.int64(irow[byte + 1]) << (8 - (pos & 7))
        out[j] = field & fmask


@njit(**JIT)
def _row_dot(d, base, fields, xp):
    acc = np.float32(0.0)
    for j in range(d.size):
        acc += as_f32(d[j]) * xp[as_uindex(base[j] + fields[j])]
    return acc


@njit(**PJIT)
def spmv_nm(data: np.ndarray, indices: np.ndarray, n: int, m: int, scales: np.ndarray,
            bias: np.ndarray, x: np.ndarray, y: np.ndarray, nparts: int) -> None:
    """``y = W @ x`` (times ``scales``, plus ``bias``) for an N:M matrix with x.size columns."""
    rows, nslots = data.shape
    bits = 1 if m == 2 else (2 if m == 4 else (3 if m == 8 else 4))
    ngroups = nslots // n
    xp = np.zeros(ngroups * m, np.float32)
    xp[: x.size] = x
    base = _group_bases(nslots, n, m)
    bounds = even_splits(rows, nparts)
    for p in prange(nparts):
        fields = np.empty(nslots, np.int32)
        for r in range(bounds[p], bounds[p + 1]):
            nm_row_fields(indices[r], bits, fields)
            y[r] = finish(_row_dot(data[r], base, fields, xp), r, scales, bias)


@njit(**JIT)
def spmm_nm(data: np.ndarray, indices: np.ndarray, n: int, m: int, scales: np.ndarray,
            bias: np.ndarray, X: np.ndarray, Y: np.ndarray, rows: int, nparts: int) -> np.ndarray:
    """``Y = X @ W.T`` (times ``scales``, plus ``bias``); X is [B, cols]."""
    T, YT = right_begin(X, data.shape[1] // n * m, rows)
    spmm_nm_t(data, indices, n, m, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


@njit(**PJIT)
def spmm_nm_t(data: np.ndarray, indices: np.ndarray, n: int, m: int, T: np.ndarray,
              YT: np.ndarray, nparts: int) -> None:
    """``YT = W @ T`` for the transposed batch ``T`` (rows padded to whole groups)."""
    rows, nslots = data.shape
    bits = 1 if m == 2 else (2 if m == 4 else (3 if m == 8 else 4))
    base = _group_bases(nslots, n, m)
    bounds = even_splits(rows, nparts)
    for p in prange(nparts):
        cols = np.empty(nslots, np.int32)
        for r in range(bounds[p], bounds[p + 1]):
            nm_row_fields(indices[r], bits, cols)
            for j in range(nslots):
                cols[j] += base[j]
            spmm_row(data[r], cols, T, YT[r])


def _check(data, indices, shape, scales, bias, n, m) -> Checked:
    rows, cols = chk.check_shape(shape)
    if m not in BITS:
        raise BadInputError(f"m={m!r} should be one of {sorted(BITS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= m:
        raise BadInputError(f"n={n!r} should be an integer in [1, m={m}]")
    n, m = int(n), int(m)
    vals = chk.values_for_kernel(data, "data", 2, scales)
    chk.check_array(indices, "indices", (np.dtype(np.uint8),), 2)
    ngroups = -(-cols // m)
    nbytes = -(-ngroups * n * BITS[m] // 8)
    if data.shape != (rows, ngroups * n) or indices.shape != (rows, nbytes):
        raise BadInputError(
            f"data/indices have shapes {data.shape}/{indices.shape}; shape {shape} at {n}:{m} "
            f"needs {(rows, ngroups * n)}/{(rows, nbytes)}"
        )
    return (rows, cols, (vals, indices, n, m), chk.row_vector(scales, "scales", rows),
                   chk.row_vector(bias, "bias", rows))


def _group_cols(c: Checked) -> int:
    """The column-major product reads whole groups: cols rounded up to a multiple of m."""
    vals, _, n, m = c[2]
    return vals.shape[1] // n * m


#: ``nm_matvec(data, indices, x, *, shape, n, m, scales=None, bias=None, out=None)``;
#: ``nm_matmul(..., X[B, cols], ...)``; ``nm_left(..., X[cols, N], ...)``
nm_matvec, nm_matmul, nm_left = KERNELS.add("nm", make_products(
    "nm", "N:M", _check, spmv_nm, spmm_nm, spmm_nm_t, _group_cols))[:3]


def nm_reference(data: np.ndarray, indices: np.ndarray, x: np.ndarray, *, shape: Any, n: int,
                 m: int, scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`nm_matvec` / :func:`nm_matmul`."""
    rows, cols = shape
    bits = BITS[m]
    nslots = np.asarray(data).shape[1]
    stream = np.unpackbits(indices, axis=1, bitorder="little")[:, : nslots * bits]
    fields = (stream.reshape(rows, nslots, bits) << np.arange(bits)).sum(axis=2)
    col = (np.arange(nslots) // n) * m + fields
    W = np.zeros((rows, -(-cols // m) * m))
    np.add.at(W, (np.arange(rows)[:, None].repeat(nslots, 1), col), value_array(data))
    return apply_dense(W[:, :cols], x, scales, bias)
