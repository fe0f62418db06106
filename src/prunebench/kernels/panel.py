"""Panel kernels (layout: :mod:`prunebench.formats.panel`): row groups of 16, column panels of
32, each stored column an 8-bit offset in its panel.

At batch 1 each group's 16 row sums are one vector: per chunk, :func:`._simd.panel_group`
selects the 16 inputs with one in-register permute of the panel's 32 inputs (no gather) and
expands the products into their rows' lanes. Batched products sort a group's entries into
its 16 rows and run csr's register-blocked row product on each.

Arrays: ``chunks`` uint32, ``group_ptr`` and ``value_ptr`` int32/int64, ``offsets`` uint8,
``data`` float32, float16 (raw kernels: its uint16 bits) or int8 with per-row float32
``scales``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from . import _checks as chk
from ..errors import BadInputError
from ._jit import JIT, PJIT, balanced_splits, finish, spmm_row, zeros_lined
from ._left import right_begin, right_end
from ._reference import apply_dense, value_array
from ._simd import panel_group, panel_group_whole, trailing_zeros
from .products import KERNELS, Checked, make_products

#: the layout's group height and panel width (:mod:`prunebench.formats.panel`; the kernels
#: take plain arrays and do not import the formats)
GROUP = 16
PANEL = 32


@njit(**JIT)
def _padded_input(x: np.ndarray, cols: int) -> np.ndarray:
    """``x`` copied into a buffer of whole panels that starts on a cache line (the kernel loads
    32 inputs per chunk, as two 16-float loads that then never straddle two lines; see
    :func:`._jit.lined`). Copied even when ``x`` holds whole panels: reading ``x`` in place
    measured slower (1 thread, 4096x4096 at 90%, warm: 0.41 ms with the copy, 0.45 ms
    without, when both started 32 or 48 bytes into a line)."""
    xp = zeros_lined(-(-cols // PANEL) * PANEL)
    xp[:cols] = x
    return xp


@njit(**PJIT)
def spmv_panel(chunks: np.ndarray, group_ptr: np.ndarray, value_ptr: np.ndarray,
               offsets: np.ndarray, data: np.ndarray, scales: np.ndarray, bias: np.ndarray,
               x: np.ndarray, y: np.ndarray, nparts: int) -> None:
    """``y = W @ x`` (times ``scales``, plus ``bias``) for a panel matrix with y.size rows."""
    rows = y.size
    xp = _padded_input(x, x.size)
    bounds = balanced_splits(value_ptr, nparts)
    # groups whose last chunk has 15 entries after it in offsets and data take the plain loads
    whole_below = np.int64(data.size - (GROUP - 1))
    for p in prange(nparts):
        acc = np.empty(GROUP, np.float32)
        for g in range(bounds[p], bounds[p + 1]):
            h0, h1, v0 = np.int64(group_ptr[g]), np.int64(group_ptr[g + 1]), np.int64(value_ptr[g])
            if value_ptr[g + 1] <= whole_below:
                panel_group_whole(chunks, h0, h1, offsets, data, v0, xp, acc)
            else:
                panel_group(chunks, h0, h1, offsets, data, v0, xp, acc)
            r0 = g * GROUP
            for i in range(min(GROUP, rows - r0)):
                y[r0 + i] = finish(acc[i], r0 + i, scales, bias)


@njit(**PJIT)
def spmm_panel_t(chunks: np.ndarray, group_ptr: np.ndarray, value_ptr: np.ndarray,
                 offsets: np.ndarray, data: np.ndarray, T: np.ndarray, YT: np.ndarray,
                 nparts: int) -> None:
    """``YT = W @ T`` for the transposed batch ``T`` [cols, B]: each group's entries sorted
    into their 16 rows (column and value, row by row), then csr's register-blocked row
    product (:func:`._jit.spmm_row`) on each row."""
    rows = YT.shape[0]
    width = T.shape[0]            # a row holds at most one entry per column
    bounds = balanced_splits(value_ptr, nparts)
    for p in prange(nparts):
        vbuf = np.empty((GROUP, width), data.dtype)
        cbuf = np.empty((GROUP, width), np.int32)
        count = np.zeros(GROUP, np.int64)
        for g in range(bounds[p], bounds[p + 1]):
            count[:] = 0
            v = np.int64(value_ptr[g])
            for h in range(np.int64(group_ptr[g]), np.int64(group_ptr[g + 1])):
                head = np.uint64(chunks[h])
                base = np.int32((head >> np.uint64(16)) * np.uint64(PANEL))
                bits = head & np.uint64(0xFFFF)
                while bits:
                    lane = trailing_zeros(bits)
                    k = count[lane]
                    vbuf[lane, k] = data[v]
                    cbuf[lane, k] = base + np.int32(offsets[v])
                    count[lane] = k + 1
                    v += 1
                    bits &= bits - np.uint64(1)
            r0 = g * GROUP
            for i in range(min(GROUP, rows - r0)):
                spmm_row(vbuf[i, :count[i]], cbuf[i, :count[i]], T, YT[r0 + i])


@njit(**JIT)
def spmm_panel(chunks: np.ndarray, group_ptr: np.ndarray, value_ptr: np.ndarray,
               offsets: np.ndarray, data: np.ndarray, scales: np.ndarray, bias: np.ndarray,
               X: np.ndarray, Y: np.ndarray, rows: int, nparts: int) -> np.ndarray:
    """``Y = X @ W.T`` (times ``scales``, plus ``bias``); X is [B, cols]."""
    T, YT = right_begin(X, X.shape[1], rows)
    spmm_panel_t(chunks, group_ptr, value_ptr, offsets, data, T, YT, nparts)
    return right_end(YT, Y, scales, bias, X.shape[0])


def _check(chunks, group_ptr, value_ptr, offsets, data, shape, scales, bias) -> Checked:
    rows, cols = chk.check_shape(shape)
    chk.check_array(chunks, "chunks", (np.dtype(np.uint32),), 1)
    chk.check_array(offsets, "offsets", (np.dtype(np.uint8),), 1)
    chk.check_array(group_ptr, "group_ptr", chk.POINTER_DTYPES, 1)
    chk.check_array(value_ptr, "value_ptr", chk.POINTER_DTYPES, 1)
    ngroups = -(-rows // GROUP)
    if group_ptr.shape[0] != ngroups + 1 or value_ptr.shape[0] != ngroups + 1:
        raise BadInputError(f"group_ptr/value_ptr have lengths {group_ptr.shape[0]}/{value_ptr.shape[0]}; "
                            f"{rows} rows in groups of {GROUP} need {ngroups + 1}")
    if offsets.shape[0] != data.shape[0]:
        raise BadInputError(f"offsets has {offsets.shape[0]} entries and data {data.shape[0]}; they must match")
    vals = chk.values_for_kernel(data, "data", 1, scales)
    return (rows, cols, (chunks, group_ptr, value_ptr, offsets, vals),
            chk.row_vector(scales, "scales", rows), chk.row_vector(bias, "bias", rows))


#: ``panel_matvec(chunks, group_ptr, value_ptr, offsets, data, x, *, shape, scales=None,
#: bias=None, out=None)``; ``panel_matmul(..., X[B, cols], ...)``; ``panel_left(..., X[cols, N], ...)``
panel_matvec, panel_matmul, panel_left = KERNELS.add("panel", make_products(
    "panel", "panel (16-row groups, 32-column panels)", _check, spmv_panel, spmm_panel, spmm_panel_t))[:3]


def panel_reference(chunks: np.ndarray, group_ptr: np.ndarray, value_ptr: np.ndarray,
                    offsets: np.ndarray, data: np.ndarray, x: np.ndarray, *, shape: Any,
                    scales: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy float64 reference of :func:`panel_matvec` / :func:`panel_matmul`, entry by entry
    from the layout (not through the format's decoder)."""
    rows, cols = shape
    W = np.zeros((rows, cols))
    vals = value_array(data)
    v = 0
    for g in range(len(group_ptr) - 1):
        for h in range(int(group_ptr[g]), int(group_ptr[g + 1])):
            head = int(chunks[h])
            for lane in range(GROUP):
                if head >> lane & 1:
                    W[g * GROUP + lane, (head >> 16) * PANEL + int(offsets[v])] += vals[v]
                    v += 1
    return apply_dense(W, x, scales, bias)
