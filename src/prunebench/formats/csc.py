"""Compressed sparse column.

Layout
------
``indptr`` : int32 [cols + 1] (int64 only if nnz >= 2**31); column ``c`` holds entries
    ``indptr[c]:indptr[c+1]``.
``indices`` : [nnz] row numbers, narrowest of uint8/uint16/int32 holding ``rows - 1``;
    strictly increasing within a column.
``data`` : [nnz], value dtype.
``scales`` : float32 [rows], only with ``values="int8"``: still one scale per row of W, so
    entry ``k`` dequantises with ``scales[indices[k]]``.
"""
from __future__ import annotations

from .base import FORMATS
from .compressed import CompressedFormat


@FORMATS.register("csc")
class CSCFormat(CompressedFormat):
    """Compressed sparse column (same arrays as ``scipy.sparse.csc_array``)."""

    name = "csc"
    axis = 1
