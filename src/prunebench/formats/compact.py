"""Compact dense: for structurally pruned layers, drop all-zero rows and all-zero columns.

Layout
------
``rows_kept`` : [kr] strictly increasing row numbers that have a nonzero, narrowest of
    uint8/uint16/int32 holding ``rows - 1``.
``cols_kept`` : [kc] strictly increasing column numbers that have a nonzero, narrowest dtype
    holding ``cols - 1``.
``data`` : [kr, kc], value dtype, ``W[np.ix_(rows_kept, cols_kept)]`` (zeros stored as +0).
``scales`` : float32 [rows] (all rows of W, not only kept ones), only with ``values="int8"``.

A forced ``index_dtype`` applies to both index arrays. ``y = W @ x`` is
``y[rows_kept] = data @ x[cols_kept]`` and 0 elsewhere.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .base import FORMATS, INDEX_DTYPES, Format, check_indices, expect_array, index_dtype_for
from .expected import index_bytes, p_empty
from .values import VALUE_DTYPES


@FORMATS.register("compact")
class CompactFormat(Format):
    """Dense sub-matrix of the rows and columns that hold a nonzero."""

    name = "compact"
    array_names = ("rows_kept", "cols_kept", "data")
    index_arrays = ("rows_kept", "cols_kept")
    estimate_patterns = ("rows",)    # sparsity counts all-zero rows
    has_index_dtype = True

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        if o["pattern"] == "rows":
            kr, kc = float(count), float(cols if count else 0)
        else:
            kr = rows * (1.0 - float(p_empty(rows * cols, count, cols)))
            kc = cols * (1.0 - float(p_empty(rows * cols, count, rows)))
        return (kr * kc * o["vb"], kr * index_bytes(cls.name, o, rows - 1, "row index")
                + kc * index_bytes(cls.name, o, cols - 1, "column index"), 0)

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        rows, cols = W.shape
        rdt = index_dtype_for(rows - 1, index_dtype, cls.name, "row index")
        cdt = index_dtype_for(cols - 1, index_dtype, cls.name, "column index")
        mask = W != 0
        rk, ck = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        data = Q[np.ix_(rk, ck)]
        data[data == 0] = 0                 # store zeros as +0 even where W has -0.0
        arrays = {"rows_kept": rk.astype(rdt), "cols_kept": ck.astype(cdt), "data": data}
        return cls._new(W.shape, values, scales, arrays)

    def _check(self):
        who, a = self.name, self.arrays()
        for name, limit, what in (("rows_kept", self.shape[0], "row"), ("cols_kept", self.shape[1], "column")):
            idx = expect_array(who, a, name, INDEX_DTYPES, (None,))
            check_indices(who, idx, limit, f"{name} entry", f"{what}s")
            bad = np.flatnonzero(np.diff(idx.astype(np.int64)) <= 0)
            if len(bad):
                raise FormatError(f"{who}: {name} not strictly increasing at position {bad[0] + 1}")
        expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (len(self.rows_kept), len(self.cols_kept)))

    def _decode(self):
        D = np.zeros(self.shape, self.data.dtype)
        D[np.ix_(self.rows_kept, self.cols_kept)] = self.data
        return D
