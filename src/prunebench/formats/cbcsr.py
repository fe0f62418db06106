"""Column-blocked CSR: CSR's arrays, ordered by blocks of columns first, then by rows.

The batched product reads, for every stored value, a 128-byte row of the transposed batch
(batch 32); in CSR's row order those rows come from all over a 512 KB buffer (4096 columns)
and the loop runs at what L2 delivers. Stored block by block, a pass over block ``j`` reads
only that block's rows of the batch (64 KB for 512 columns), which stay in L1: the core took
0.79 of CSR's time at 4096x4096, 90%, batch 32 (``benchmarks/bench_spmm_bound.py``). At batch 1
it is CSR with more pointers and no gain.

Layout (option ``block_cols``, default 512)
------
``indptr`` : int32 [nblocks * rows + 1] (int64 only if nnz >= 2**31), ``nblocks =
    ceil(cols / block_cols)``; segment ``q = j * rows + r`` holds row ``r``'s entries whose
    column lies in block ``j`` (columns ``j * block_cols`` to ``(j + 1) * block_cols - 1``).
``indices`` : [nnz] column numbers (not offsets in the block), narrowest of uint8/uint16/int32
    holding ``cols - 1``; strictly increasing within a segment.
``data`` : [nnz], value dtype.
``scales`` : float32 [rows], only with ``values="int8"``.
meta : ``block_cols``.

Example: 2 rows, 4 columns, ``block_cols=2``, row 0 = ``[1, 0, 2, 0]``, row 1 = ``[0, 3, 4,
5]``: indptr ``[0, 1, 2, 3, 5]`` (block 0: row 0, row 1; block 1: row 0, row 1), indices
``[0, 1, 2, 2, 3]``, data ``[1, 3, 2, 4, 5]``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .base import (FORMATS, INDEX_DTYPES, POINTER_DTYPES, Format, check_indices, check_int_option,
                   check_pointer, check_sorted_segments, expect_array, index_dtype_for,
                   make_pointer, segment_ids)
from .expected import index_bytes, pointer_bytes
from .values import VALUE_DTYPES

#: columns per block where none is given: 64 KB of a batch-32 transposed input, within L1
BLOCK_COLS = 512


@FORMATS.register("cbcsr")
class CBCSRFormat(Format):
    """CSR in blocks of columns: every row's entries of block 0, then of block 1, ..."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    block_cols: int

    name = "cbcsr"
    array_names = ("indptr", "indices", "data")
    kernel_arrays = ("indptr", "indices", "data")
    index_arrays = ("indices",)
    pointer_arrays = ("indptr",)
    meta_keys = ("block_cols",)
    option_defaults = {"block_cols": BLOCK_COLS}
    has_index_dtype = True
    min_batch = 8          # at batch 1 it is csr with more pointers (and a scalar loop)

    @classmethod
    def estimate_options(cls, shape: tuple[int, int], given: dict[str, Any]) -> dict[str, Any]:
        return cls._check_options(shape, given.get("block_cols", BLOCK_COLS))

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        nblocks = -(-cols // o.get("block_cols", BLOCK_COLS))
        return (count * o["vb"], count * index_bytes(cls.name, o, cols - 1, "column index"),
                (nblocks * rows + 1) * pointer_bytes(count))

    @classmethod
    def _check_options(cls, shape, block_cols=BLOCK_COLS):
        return {"block_cols": check_int_option(cls.name, "block_cols", block_cols, 1)}

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype, block_cols):
        rows, cols = W.shape
        idt = index_dtype_for(cols - 1, index_dtype, cls.name, "column index")
        nblocks = -(-cols // block_cols)
        mask = W != 0
        r, c = np.nonzero(mask)                       # row by row, columns increasing
        seg = (c // block_cols) * rows + r
        indptr = make_pointer(np.bincount(seg, minlength=nblocks * rows))
        # in row order a segment's entries are one run: each goes to its segment's start plus
        # its place in the run (a counting sort; argsort took 1 s at 50% of 4096x4096)
        n = len(seg)
        k = np.arange(n)
        first = np.ones(n, bool)
        first[1:] = seg[1:] != seg[:-1]
        run_start = np.maximum.accumulate(np.where(first, k, 0)) if n else k
        dest = indptr[seg].astype(np.int64) + (k - run_start)
        indices = np.empty(n, idt)
        indices[dest] = c
        data = np.empty(n, Q.dtype)
        data[dest] = Q[mask]
        arrays = {"indptr": indptr, "indices": indices, "data": data}
        return cls._new(W.shape, values, scales, arrays, block_cols=block_cols)

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        bc = self.block_cols
        if not (type(bc) is int and bc >= 1):
            raise FormatError(f"{who}: meta block_cols={bc!r}, expected an int >= 1")
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        indices = expect_array(who, a, "indices", INDEX_DTYPES, (len(data),))
        indptr = expect_array(who, a, "indptr", POINTER_DTYPES, (None,))
        nseg = -(-cols // bc) * rows
        check_pointer(who, indptr, "indptr", "row block", nseg, len(data), "nnz (len(data))")
        seg = segment_ids(indptr)
        check_indices(who, indices, cols, "column index", "columns", seg, "row block")
        block = seg // rows
        bad = np.flatnonzero(indices.astype(np.int64) // bc != block)
        if len(bad):
            k = bad[0]
            raise FormatError(f"{who}: column index {indices[k]} in row block {seg[k]} (row "
                              f"{seg[k] % rows}, block {block[k]}) lies outside its columns "
                              f"{block[k] * bc}-{(block[k] + 1) * bc - 1}")
        check_sorted_segments(who, indices, seg, "column index", "row block")

    def _decode(self):
        D = np.zeros(self.shape, self.data.dtype)
        D[segment_ids(self.indptr) % self.shape[0], self.indices] = self.data
        return D
