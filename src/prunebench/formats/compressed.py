"""Shared code of the compressed-sparse layouts CSR and CSC (see csr.py, csc.py)."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import (INDEX_DTYPES, POINTER_DTYPES, Format, check_indices, check_pointer,
                   check_sorted_segments, expect_array, index_dtype_for, make_pointer, segment_ids)
from .expected import index_bytes, pointer_bytes
from .values import VALUE_DTYPES


class CompressedFormat(Format):
    """CSR (``axis=0``) or CSC (``axis=1``): ``indptr`` over the major axis, sorted minor indices."""

    axis: ClassVar[int]
    array_names = ("indptr", "indices", "data")
    index_arrays = ("indices",)
    pointer_arrays = ("indptr",)
    has_index_dtype = True

    @classmethod
    def _axis_names(cls):
        """(major unit, minor unit), e.g. ("row", "column") for CSR."""
        return ("row", "column") if cls.axis == 0 else ("column", "row")

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        major, minor = shape if cls.axis == 0 else shape[::-1]
        ib = index_bytes(cls.name, o, minor - 1, f"{cls._axis_names()[1]} index")
        return count * o["vb"], count * ib, (major + 1) * pointer_bytes(count)

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        M, Qm = (W, Q) if cls.axis == 0 else (W.T, Q.T)
        idt = index_dtype_for(M.shape[1] - 1, index_dtype, cls.name, f"{cls._axis_names()[1]} index")
        mask = M != 0
        _, minor = np.nonzero(mask)
        arrays = {"indptr": make_pointer(mask.sum(axis=1)), "indices": minor.astype(idt), "data": Qm[mask]}
        return cls._new(W.shape, values, scales, arrays)

    def _check(self):
        who, a = self.name, self.arrays()
        major, minor = self._axis_names()
        n_major, n_minor = self.shape if self.axis == 0 else self.shape[::-1]
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        indices = expect_array(who, a, "indices", INDEX_DTYPES, (len(data),))
        indptr = expect_array(who, a, "indptr", POINTER_DTYPES, (None,))
        check_pointer(who, indptr, "indptr", major, n_major, len(data), "nnz (len(data))")
        seg = segment_ids(indptr)
        check_indices(who, indices, n_minor, f"{minor} index", f"{minor}s", seg, major)
        check_sorted_segments(who, indices, seg, f"{minor} index", major)

    def _decode(self):
        D = np.zeros(self.shape, self.data.dtype)
        seg = segment_ids(self.indptr)
        if self.axis == 0:
            D[seg, self.indices] = self.data
        else:
            D[self.indices, seg] = self.data
        return D
