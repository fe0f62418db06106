"""CSR with 8-bit column deltas and zero fillers, read directly by the kernels.

Same deltas and fillers as ``rcsr`` with ``bits=8`` (see :mod:`.rcsr` for the convention:
``col = col + delta + 1`` from ``col = -1`` at the start of each row; a gap over 255 columns
is bridged by fillers, entries with delta 255 and value 0), but laid out for the kernels: a
row pointer instead of narrow counts, so threads split the rows and each row starts anywhere,
and int8 scales by the shared float32 rule. One byte of index per nonzero instead of CSR's 2
(uint16) or 4 (int32); with int8 values 2 bytes per nonzero in all.

Layout
------
``indptr`` : int32 [rows + 1] (int64 only if 2**31 entries or more); row ``r`` holds the
    stored entries ``indptr[r]:indptr[r+1]``, fillers included.
``deltas`` : uint8 [nstored].
``data`` : [nstored], value dtype; fillers hold an exact 0.
``scales`` : float32 [rows], only with ``values="int8"``.
meta : ``nfillers`` (number of filler entries).

Example: row ``[5 at col 0, 7 at col 300]`` is stored as indptr ``[0, 3]``, deltas
``[0, 255, 43]``, data ``[5, 0, 7]`` (the filler sits at column 256).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .base import (FORMATS, POINTER_DTYPES, Format, check_indices, check_pointer, expect_array,
                   make_pointer)
from .rcsr import entry_columns, gap_entries, unpack_deltas
from .expected import gap_fillers_per_row, pointer_bytes
from .values import VALUE_DTYPES

#: the longest gap one delta spans
DELTA_MAX = 255


@FORMATS.register("delta8")
class Delta8Format(Format):
    """CSR whose column indices are 8-bit gaps from the previous entry of the row."""

    name = "delta8"
    array_names = ("indptr", "deltas", "data")
    kernel_arrays = ("indptr", "deltas", "data")
    index_arrays = ("deltas",)
    pointer_arrays = ("indptr",)
    meta_keys = ("nfillers",)

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        stored = count + rows * gap_fillers_per_row(cols, count / (rows * cols), 8)
        return stored * o["vb"], stored, (rows + 1) * pointer_bytes(int(np.ceil(stored)))

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        stored, deltas, data, nfillers = gap_entries(W, Q, DELTA_MAX)
        arrays = {"indptr": make_pointer(stored), "deltas": deltas, "data": data}
        return cls._new(W.shape, values, scales, arrays, nfillers=nfillers)

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        n = len(data)
        deltas = expect_array(who, a, "deltas", ("uint8",), (n,))
        indptr = expect_array(who, a, "indptr", POINTER_DTYPES, (None,))
        check_pointer(who, indptr, "indptr", "row", rows, n, "stored entries (len(data))")
        if not (type(self.nfillers) is int and 0 <= self.nfillers <= n):
            raise FormatError(f"{who}: meta nfillers={self.nfillers!r}, expected an int in [0, {n}]")
        seg, col = entry_columns(indptr.astype(np.int64), unpack_deltas(deltas, 8, n))
        check_indices(who, col, cols, "decoded column", "columns", seg, "row")

    def _decode(self):
        seg, col = entry_columns(self.indptr.astype(np.int64), unpack_deltas(self.deltas, 8, len(self.data)))
        D = np.zeros(self.shape, self.data.dtype)
        D[seg, col] = self.data
        return D
