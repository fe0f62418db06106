"""Coordinate list.

Layout
------
``row`` : [nnz], narrowest of uint8/uint16/int32 holding ``rows - 1``.
``col`` : [nnz], narrowest of uint8/uint16/int32 holding ``cols - 1`` (chosen independently).
``data`` : [nnz], value dtype.
``scales`` : float32 [rows], only with ``values="int8"``.

Entries are sorted row-major (by row, then column) without duplicates.
A forced ``index_dtype`` applies to both ``row`` and ``col``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .base import FORMATS, INDEX_DTYPES, Format, check_indices, expect_array, index_dtype_for
from .expected import index_bytes
from .values import VALUE_DTYPES


@FORMATS.register("coo")
class COOFormat(Format):
    """Sorted coordinate list (row, col, value)."""

    name = "coo"
    array_names = ("row", "col", "data")
    index_arrays = ("row", "col")
    has_index_dtype = True

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        ib = index_bytes(cls.name, o, rows - 1, "row index") + index_bytes(cls.name, o, cols - 1,
                                                                          "column index")
        return count * o["vb"], count * ib, 0

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        rows, cols = W.shape
        rdt = index_dtype_for(rows - 1, index_dtype, cls.name, "row index")
        cdt = index_dtype_for(cols - 1, index_dtype, cls.name, "column index")
        mask = W != 0
        r, c = np.nonzero(mask)
        arrays = {"row": r.astype(rdt), "col": c.astype(cdt), "data": Q[mask]}
        return cls._new(W.shape, values, scales, arrays)

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        n = len(data)
        row = expect_array(who, a, "row", INDEX_DTYPES, (n,))
        col = expect_array(who, a, "col", INDEX_DTYPES, (n,))
        check_indices(who, row, rows, "row index", "rows")
        check_indices(who, col, cols, "column index", "columns", row, "row")
        key = row.astype(np.int64) * cols + col
        bad = np.flatnonzero(np.diff(key) <= 0)
        if len(bad):
            k = bad[0] + 1
            raise FormatError(f"{who}: entries not sorted row-major without duplicates at entry {k} "
                              f"(({row[k - 1]}, {col[k - 1]}) then ({row[k]}, {col[k]}))")

    def _decode(self):
        D = np.zeros(self.shape, self.data.dtype)
        D[self.row, self.col] = self.data
        return D
