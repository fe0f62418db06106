"""Block sparse row: dense ``r x c`` blocks in a CSR pattern.

Layout (option ``block=(r, c)``, default (4, 4))
------
The matrix is zero-padded internally to ``R = ceil(rows / r)`` block rows and
``C = ceil(cols / c)`` block columns; ``shape`` stays the true shape.
``indptr`` : int32 [R + 1] (int64 only if nblocks >= 2**31); block row ``i`` holds blocks
    ``indptr[i]:indptr[i+1]``.
``indices`` : [nblocks] block-column numbers, narrowest of uint8/uint16/int32 holding ``C - 1``;
    strictly increasing within a block row.
``data`` : [nblocks, r, c], value dtype; block ``k`` covers rows ``i*r : i*r+r`` and columns
    ``indices[k]*c : indices[k]*c+c``. Entries in the padding (beyond the true shape) are 0, but a
    kernel must still not read ``x`` past ``cols`` (pad ``x`` to ``C * c`` or clip the last block).
``scales`` : float32 [rows], only with ``values="int8"``.

A block is stored when any of its entries is nonzero; its zero entries are stored as +0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInputError, FormatError
from .base import (FORMATS, INDEX_DTYPES, POINTER_DTYPES, Format, check_indices, check_pointer,
                   check_sorted_segments, expect_array, index_dtype_for, make_pointer, segment_ids)
from .expected import index_bytes, p_empty, pointer_bytes
from .values import VALUE_DTYPES


def _blocks(X: np.ndarray, r: int, c: int) -> np.ndarray:
    """Zero-padded copy of X viewed as [R, C, r, c] blocks."""
    R, C = -(-X.shape[0] // r), -(-X.shape[1] // c)
    P = np.zeros((R * r, C * c), dtype=X.dtype)
    P[: X.shape[0], : X.shape[1]] = X
    return P.reshape(R, r, C, c).swapaxes(1, 2)


@FORMATS.register("bsr")
class BSRFormat(Format):
    """Block CSR with fixed ``block=(r, c)``."""

    block: tuple[int, int]

    name = "bsr"
    array_names = ("indptr", "indices", "data")
    index_arrays = ("indices",)
    pointer_arrays = ("indptr",)
    meta_keys = ("block",)
    option_defaults = {"block": (4, 4)}
    kernel_arrays = ("indptr", "indices", "data")
    runtime_options = {"block": (4, 4)}
    pattern, pattern_keys = "block", ("block",)
    estimate_patterns = ("block",)   # sparsity counts r x c blocks
    has_index_dtype = True

    @classmethod
    def estimate_options(cls, shape: tuple[int, int], given: dict[str, Any]) -> dict[str, Any]:
        return cls._check_options(shape, block=given["block"])

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        r, c = o["block"]
        R, C = -(-rows // r), -(-cols // c)
        if o["pattern"] == "block":
            nb: float = count
        else:
            # at most two block heights and two widths: full blocks and the edge ones
            hs, hn = np.unique(np.minimum(r, rows - r * np.arange(R)), return_counts=True)
            ws, wn = np.unique(np.minimum(c, cols - c * np.arange(C)), return_counts=True)
            empty = p_empty(rows * cols, count, np.outer(hs, ws))
            nb = float(np.sum(np.outer(hn, wn) * (1.0 - empty)))
        return (nb * r * c * o["vb"], nb * index_bytes(cls.name, o, C - 1, "block-column index"),
                (R + 1) * pointer_bytes(int(nb)))

    @classmethod
    def _check_options(cls, shape, block):
        ok = (isinstance(block, (tuple, list)) and len(block) == 2
              and all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1 for b in block))
        if not ok:
            raise BadInputError(f"{cls.name}: block={block!r} should be a pair of ints >= 1, e.g. (4, 4)")
        return {"block": (int(block[0]), int(block[1]))}

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype, block):
        r, c = block
        nz = _blocks(W != 0, r, c).any(axis=(2, 3))            # [R, C]
        idt = index_dtype_for(nz.shape[1] - 1, index_dtype, cls.name, "block-column index")
        _, bcol = np.nonzero(nz)
        data = _blocks(Q, r, c)[nz]
        data[data == 0] = 0                 # zeros inside stored blocks are +0 even where W has -0.0
        arrays = {"indptr": make_pointer(nz.sum(axis=1)), "indices": bcol.astype(idt), "data": data}
        return cls._new(W.shape, values, scales, arrays, block=block)

    def _check(self):
        who, a = self.name, self.arrays()
        block = self.block
        if not (isinstance(block, tuple) and len(block) == 2 and all(type(b) is int and b >= 1 for b in block)):
            raise FormatError(f"{who}: meta block={block!r}, expected two ints >= 1")
        (rows, cols), (r, c) = self.shape, block
        R, C = -(-rows // r), -(-cols // c)
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None, r, c))
        indices = expect_array(who, a, "indices", INDEX_DTYPES, (len(data),))
        indptr = expect_array(who, a, "indptr", POINTER_DTYPES, (None,))
        check_pointer(who, indptr, "indptr", "block row", R, len(data), "nblocks (len(data))")
        seg = segment_ids(indptr)
        check_indices(who, indices, C, "block-column index", "block columns", seg, "block row")
        check_sorted_segments(who, indices, seg, "block-column index", "block row")
        if len(data) and (R * r > rows or C * c > cols):
            inside = self._inside(seg, indices)
            bad = np.flatnonzero(((data != 0) & ~inside).any(axis=(1, 2)))
            if len(bad):
                k = bad[0]
                raise FormatError(f"{who}: block {k} (block row {seg[k]}, block column {indices[k]}) "
                                  f"has nonzero values in the padding beyond shape {self.shape}")

    def _inside(self, seg: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """[nblocks, r, c] mask of the block entries that lie inside the true shape."""
        (rows, cols), (r, c) = self.shape, self.block
        row_in = seg[:, None].astype(np.int64) * r + np.arange(r) < rows
        col_in = indices[:, None].astype(np.int64) * c + np.arange(c) < cols
        return row_in[:, :, None] & col_in[:, None, :]

    def _decode(self):
        (rows, cols), (r, c) = self.shape, self.block
        seg, idx = segment_ids(self.indptr), self.indices.astype(np.int64)
        D = np.zeros(self.shape, self.data.dtype)
        full = (seg < rows // r) & (idx < cols // c)            # blocks wholly inside the shape
        view = D[: rows // r * r, : cols // c * c].reshape(rows // r, r, cols // c, c).swapaxes(1, 2)
        view[seg[full], idx[full]] = self.data[full]             # writes through the view into D
        edge = ~full                                             # at most R + C blocks
        if edge.any():
            seg, idx, data = seg[edge], idx[edge], self.data[edge]
            rr = np.broadcast_to((seg[:, None] * r + np.arange(r))[:, :, None], data.shape)
            cc = np.broadcast_to((idx[:, None] * c + np.arange(c))[:, None, :], data.shape)
            inside = self._inside(seg, idx)
            D[rr[inside], cc[inside]] = data[inside]
        return D
