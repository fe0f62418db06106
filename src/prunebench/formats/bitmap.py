"""Bitmap: one bit per entry says whether it is stored, plus the packed nonzeros.

Layout
------
``mask`` : uint8 [rows, ceil(cols / 8)] = ``np.packbits(W != 0, axis=1, bitorder="little")``;
    column ``j`` of row ``r`` is bit ``j % 8`` (least significant first) of ``mask[r, j // 8]``.
    Bits past ``cols`` are 0.
``row_ptr`` : int32 [rows + 1] (int64 only if nnz >= 2**31), prefix count of nonzeros, so row
    ``r``'s values are ``data[row_ptr[r]:row_ptr[r+1]]`` (lets kernels split work by rows).
``data`` : [nnz], the nonzeros row-major, value dtype.
``scales`` : float32 [rows], only with ``values="int8"``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .base import FORMATS, POINTER_DTYPES, Format, check_pointer, expect_array, make_pointer
from .expected import pointer_bytes
from .values import VALUE_DTYPES


@FORMATS.register("bitmap")
class BitmapFormat(Format):
    """Row-major bitmask with row pointers and packed values."""

    name = "bitmap"
    array_names = ("mask", "row_ptr", "data")
    kernel_arrays = ("mask", "row_ptr", "data")
    index_arrays = ("mask",)
    pointer_arrays = ("row_ptr",)

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        return count * o["vb"], rows * -(-cols // 8), (rows + 1) * pointer_bytes(count)

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        mask = W != 0
        arrays = {"mask": np.packbits(mask, axis=1, bitorder="little"),
                  "row_ptr": make_pointer(mask.sum(axis=1)), "data": Q[mask]}
        return cls._new(W.shape, values, scales, arrays)

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        mask = expect_array(who, a, "mask", ("uint8",), (rows, -(-cols // 8)))
        row_ptr = expect_array(who, a, "row_ptr", POINTER_DTYPES, (None,))
        check_pointer(who, row_ptr, "row_ptr", "row", rows, len(data), "nnz (len(data))")
        bits = np.unpackbits(mask, axis=1, bitorder="little")
        stray = np.flatnonzero(bits[:, cols:].any(axis=1))
        if len(stray):
            raise FormatError(f"{who}: mask has bits set past column {cols - 1} in row {stray[0]}")
        popcount = bits.sum(axis=1, dtype=np.int64)
        bad = np.flatnonzero(popcount != np.diff(row_ptr.astype(np.int64)))
        if len(bad):
            r = bad[0]
            raise FormatError(f"{who}: row {r} has {popcount[r]} bits set in mask, "
                              f"but row_ptr gives {row_ptr[r + 1] - row_ptr[r]} values")

    def _decode(self):
        D = np.zeros(self.shape, self.data.dtype)
        D[np.unpackbits(self.mask, axis=1, count=self.shape[1], bitorder="little").astype(bool)] = self.data
        return D
