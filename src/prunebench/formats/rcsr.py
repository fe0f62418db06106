"""Relative-index CSR (Deep Compression, Han et al. 2016): column gaps stored in 4 or 8 bits.

rcsr is a storage format (no kernel reads it), so every array is as narrow as it can be.

Layout
------
``counts`` : [rows], the number of stored entries of each row, *fillers included*; narrowest of
    uint8 / uint16 / int32 holding ``cols`` (a row stores at most ``cols`` entries, because its
    stored columns strictly increase). Row ``r`` holds entries ``start_r : start_r + counts[r]``
    with ``start_r = counts[:r].sum()``.
``deltas`` : uint8. With ``bits=8``: [nstored], one delta per byte. With ``bits=4``:
    [ceil(nstored / 2)], two per byte, entry ``k`` in byte ``k // 2``, low nibble if ``k`` is
    even, high nibble if odd; an unused last high nibble is 0.
``data`` : [nstored], value dtype; fillers hold an exact 0.
``scales`` : only with ``values="int8"``, one per row of W: float16 [rows] when every row's
    scale fits (see below), else float32 [rows] by the shared int8 rule (``values.py``).
meta : ``bits`` (4 or 8) and ``nfillers`` (number of filler entries).

Delta convention: a delta is the number of columns skipped since the previous stored entry
of the same row. With ``col = -1`` at the start of every row, each entry's column is
``col = col + delta + 1``. So the first entry of a row has ``column = delta`` and an entry
right after the previous one has ``delta = 0``.

When a gap ``g`` exceeds ``D = 2**bits - 1`` the encoder inserts ``g // (D + 1)`` fillers,
each with delta ``D`` and value 0, before the real entry (whose delta is then
``g - fillers * (D + 1)``). Zeros after a row's last nonzero cost nothing.

int8 scales: row ``r``'s scale is ``max|W[r, :]| / 127`` rounded *up* to float16 (1.0 for a
row of zeros), so nothing clips and the error per entry stays at most ``scale_r / 2`` with
``scale_r`` at most ``2**-10`` above the float32 rule. If a scale is not a normal float16
(``max|W[r, :]|`` below about 7.8e-3 or above 8.3e6) the matrix keeps float32 scales instead.

Example (bits=4, D=15): row ``[5 at col 0, 7 at col 20]`` is stored as
counts ``[3]``, deltas ``[0, 15, 3]``, data ``[5, 0, 7]`` (filler at column 16).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError
from .base import (FORMATS, INDEX_DTYPES, Format, check_choice, check_indices, expect_array,
                   narrowest_index_dtype, segment_ids)
from .expected import gap_fillers_per_row
from .values import VALUE_DTYPES

F16 = np.finfo(np.float16)
SCALE_DTYPES = ("float16", "float32")


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


def row_pointer(counts: np.ndarray) -> np.ndarray:
    """``[0, c0, c0+c1, ...]`` as int64."""
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def entry_columns(indptr: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every stored entry from the int64 row pointer and the unpacked deltas."""
    seg = segment_ids(indptr)
    cs = np.zeros(len(d) + 1, dtype=np.int64)
    np.cumsum(d + 1, out=cs[1:])
    return seg, cs[1:] - cs[indptr[seg]] - 1


def gap_entries(W: np.ndarray, Q: np.ndarray, D: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The stored entries of ``W`` under the delta convention above, with fillers for gaps
    over ``D``: (stored entries per row as int64, deltas uint8, values taken from ``Q``,
    number of fillers)."""
    mask = W != 0
    counts = mask.sum(axis=1)
    rptr = row_pointer(counts)
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
    stored = np.diff(np.concatenate([[0], ends])[rptr])
    return stored, deltas, data, total - len(col)


def half_scales(W: np.ndarray) -> np.ndarray | None:
    """int8 row scales rounded up to float16, or None if one is not a normal float16."""
    amax = np.abs(W).max(axis=1).astype(np.float64)
    want = amax / 127
    with np.errstate(over="ignore"):
        s = want.astype(np.float16)
    low = s.astype(np.float64) < want
    s[low] = np.nextafter(s[low], np.float16(np.inf))
    s[amax == 0] = 1
    if not (np.isfinite(s) & (s >= F16.smallest_normal)).all():
        return None
    return s


@FORMATS.register("rcsr")
class RCSRFormat(Format):
    """CSR with ``bits``-wide relative column indices and zero fillers for long gaps."""

    name = "rcsr"
    array_names = ("counts", "deltas", "data")
    index_arrays = ("deltas",)
    pointer_arrays = ("counts",)
    meta_keys = ("bits", "nfillers")
    option_defaults = {"bits": 4}
    option_choices = {"bits": (4, 8)}

    @classmethod
    def estimate_options(cls, shape: tuple[int, int], given: dict[str, Any]) -> dict[str, Any]:
        return cls._check_options(shape, bits=given["bits"])

    @classmethod
    def expected_scale_bytes(cls, shape: tuple[int, int], o: dict[str, Any]) -> int:
        return 2 * shape[0]          # float16 scales (the estimate assumes every row's fits)

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        stored = count + rows * gap_fillers_per_row(cols, count / (rows * cols), o["bits"])
        return (stored * o["vb"], float(np.ceil(stored * o["bits"] / 8)),
                rows * narrowest_index_dtype(cols).itemsize)

    @classmethod
    def _check_options(cls, shape, bits):
        return {"bits": check_choice(cls.name, "bits", bits, (4, 8))}

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype, bits):
        if values == "int8":
            half = half_scales(W)
            if half is not None:   # requantise with the float16 scales actually stored
                scales = half
                Q = np.clip(np.rint(W / half.astype(np.float32)[:, None]), -127, 127).astype(np.int8)
        stored, deltas, data, nfillers = gap_entries(W, Q, 2**bits - 1)
        arrays = {"counts": stored.astype(narrowest_index_dtype(W.shape[1])),
                  "deltas": pack_nibbles(deltas) if bits == 4 else deltas, "data": data}
        return cls._new(W.shape, values, scales, arrays, bits=bits, nfillers=nfillers)

    def _scale_lengths(self):
        return {}       # the scales may be float16: checked in _check, not by the shared rule

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
        counts = expect_array(who, a, "counts", INDEX_DTYPES, (rows,))
        c = counts.astype(np.int64)
        bad = np.flatnonzero((c < 0) | (c > cols))
        if len(bad):
            raise FormatError(f"{who}: counts[{bad[0]}] is {counts[bad[0]]}, expected 0..{cols} "
                              f"(a row stores at most cols entries)")
        if c.sum() != n:
            raise FormatError(f"{who}: counts sum to {c.sum()}, expected stored entries (len(data)) = {n}")
        if not (type(self.nfillers) is int and 0 <= self.nfillers <= n):
            raise FormatError(f"{who}: meta nfillers={self.nfillers!r}, expected an int in [0, {n}]")
        if "scales" in a:
            s = a["scales"]
            if s.dtype.name not in SCALE_DTYPES or s.shape != (rows,):
                raise FormatError(f"{who}: scales should be float16 or float32 [{rows}], "
                                  f"got {s.dtype} {list(s.shape)}")
            bad = np.flatnonzero(~np.isfinite(s) | (s < 0))
            if len(bad):
                raise FormatError(f"{who}: scales[{bad[0]}] is {s[bad[0]]}, expected a finite scale >= 0")
        seg, col = entry_columns(row_pointer(c), unpack_deltas(deltas, self.bits, n))
        check_indices(who, col, cols, "decoded column", "columns", seg, "row")

    def _decode(self):
        n = len(self.data)
        seg, col = entry_columns(row_pointer(self.counts.astype(np.int64)),
                                 unpack_deltas(self.deltas, self.bits, n))
        D = np.zeros(self.shape, self.data.dtype)
        D[seg, col] = self.data
        return D
