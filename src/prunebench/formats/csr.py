"""Compressed sparse row.

Layout
------
``indptr`` : int32 [rows + 1] (int64 only if nnz >= 2**31); row ``r`` holds entries
    ``indptr[r]:indptr[r+1]``.
``indices`` : [nnz] column numbers, narrowest of uint8/uint16/int32 holding ``cols - 1``;
    strictly increasing within a row.
``data`` : [nnz], value dtype.
``scales`` : float32 [rows], only with ``values="int8"``.
"""
from __future__ import annotations

from .base import FORMATS
from .compressed import CompressedFormat


@FORMATS.register("csr")
class CSRFormat(CompressedFormat):
    """Compressed sparse row (same arrays as ``scipy.sparse.csr_array``)."""

    name = "csr"
    kernel_arrays = ("indptr", "indices", "data")
    axis = 0
