"""Relative-index CSR (Deep Compression, Han et al. 2016): column gaps stored in 4 or 8 bits.

Layout
------
``indptr`` : int32 [rows + 1] (int64 only if >= 2**31 stored entries); row ``r`` holds stored
    entries ``indptr[r]:indptr[r+1]``, *fillers included*.
``deltas`` : uint8. With ``bits=8``: [nstored], one delta per byte. With ``bits=4``:
    [ceil(nstored / 2)], two per byte, entry ``k`` in byte ``k // 2``, low nibble if ``k`` is
    even, high nibble if odd; an unused last high nibble is 0.
``data`` : [nstored], value dtype; fillers hold an exact 0.
``scales`` : float32 [rows], only with ``values="int8"``.
meta : ``bits`` (4 or 8) and ``nfillers`` (number of filler entries).

Delta convention: a delta is the number of columns skipped since the previous stored entry
of the same row. With ``col = -1`` at the start of every row, each entry's column is
``col = col + delta + 1``. So the first entry of a row has ``column = delta`` and an entry
right after the previous one has ``delta = 0``.

When a gap ``g`` exceeds ``D = 2**bits - 1`` the encoder inserts ``g // (D + 1)`` fillers,
each with delta ``D`` and value 0, before the real entry (whose delta is then
``g - fillers * (D + 1)``). Zeros after a row's last nonzero cost nothing.

Example (bits=4, D=15): row ``[5 at col 0, 7 at col 20]`` is stored as
deltas ``[0, 15, 3]``, data ``[5, 0, 7]`` (filler at column 16).
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from .base import (FORMATS, POINTER_DTYPES, Format, check_choice, check_indices, check_pointer,
                   expect_array, pointer_dtype, segment_ids)
from .values import VALUE_DTYPES


def pack_nibbles(d: np.ndarray) -> np.ndarray:
    """Pack 4-bit values two per byte, entry k in byte k//2, low nibble first."""
    if len(d) % 2:
        d = np.append(d, np.uint8(0))
    return (d[0::2] | (d[1::2] << 4)).astype(np.uint8)


def unpack_deltas(deltas: np.ndarray, bits: int, n: int) -> np.ndarray:
    """The first ``n`` deltas as int64."""
    if bits == 8:
        return deltas[:n].astype(np.int64)
    out = np.empty(2 * len(deltas), dtype=np.int64)
    out[0::2] = deltas & 0x0F
    out[1::2] = deltas >> 4
    return out[:n]


def entry_columns(indptr: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every stored entry from the pointer and the unpacked deltas."""
    seg = segment_ids(indptr)
    cs = np.zeros(len(d) + 1, dtype=np.int64)
    np.cumsum(d + 1, out=cs[1:])
    return seg, cs[1:] - cs[indptr.astype(np.int64)[seg]] - 1


@FORMATS.register("rcsr")
class RCSRFormat(Format):
    """CSR with ``bits``-wide relative column indices and zero fillers for long gaps."""

    name = "rcsr"
    array_names = ("indptr", "deltas", "data")
    index_arrays = ("deltas",)
    pointer_arrays = ("indptr",)
    meta_keys = ("bits", "nfillers")
    option_defaults = {"bits": 4}

    @classmethod
    def _check_options(cls, shape, bits):
        return {"bits": check_choice(cls.name, "bits", bits, (4, 8))}

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype, bits):
        D = 2**bits - 1
        mask = W != 0
        counts = mask.sum(axis=1)
        rptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=rptr[1:])
        _, col = np.nonzero(mask)
        prev = np.empty_like(col)
        prev[1:] = col[:-1]
        prev[rptr[:-1][counts > 0]] = -1          # first entry of each row
        gap = col - prev - 1
        fill = gap // (D + 1)
        ends = np.cumsum(fill + 1)                  # stored entries up to each nonzero
        total = int(ends[-1]) if len(ends) else 0
        deltas = np.full(total, D, dtype=np.uint8)
        deltas[ends - 1] = gap - fill * (D + 1)
        data = np.zeros(total, dtype=Q.dtype)
        data[ends - 1] = Q[mask]
        indptr = np.concatenate([[0], ends])[rptr].astype(pointer_dtype(total))
        arrays = {"indptr": indptr, "deltas": pack_nibbles(deltas) if bits == 4 else deltas, "data": data}
        return cls._new(W.shape, values, scales, arrays, bits=bits, nfillers=total - len(col))

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        if not (type(self.bits) is int and self.bits in (4, 8)):
            raise FormatError(f"{who}: meta bits={self.bits!r}, expected 4 or 8")
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        n = len(data)
        deltas = expect_array(who, a, "deltas", ("uint8",), (-(-n * self.bits // 8),))
        if self.bits == 4 and n % 2 and deltas[-1] >> 4:
            raise FormatError(f"{who}: unused high nibble of the last deltas byte is {deltas[-1] >> 4}, expected 0")
        indptr = expect_array(who, a, "indptr", POINTER_DTYPES, (None,))
        check_pointer(who, indptr, "indptr", "row", rows, n, "stored entries (len(data))")
        if not (type(self.nfillers) is int and 0 <= self.nfillers <= n):
            raise FormatError(f"{who}: meta nfillers={self.nfillers!r}, expected an int in [0, {n}]")
        seg, col = entry_columns(indptr, unpack_deltas(deltas, self.bits, n))
        check_indices(who, col, cols, "decoded column", "columns", seg, "row")

    def _decode(self):
        n = len(self.data)
        seg, col = entry_columns(self.indptr, unpack_deltas(self.deltas, self.bits, n))
        D = np.zeros(self.shape, self.data.dtype)
        D[seg, col] = self.data
        return D
