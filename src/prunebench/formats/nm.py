"""N:M semi-structured sparsity along the input dimension (columns).

Every group of ``m`` consecutive columns of a row holds at most ``n`` nonzeros
(options ``n=2, m=4``; ``0 < n < m``, ``m`` in {2, 4, 8, 16}). If ``cols`` is not a
multiple of ``m`` the last group is zero-padded to ``m`` columns.

Layout (``G = ceil(cols / m)`` groups per row, ``bits = log2(m)``)
------
``data`` : [rows, G * n], value dtype; slot ``g * n + t`` is the ``t``-th kept entry of group
    ``g``. A group with fewer than ``n`` nonzeros fills its spare slots with value 0 at the
    lowest unused in-group positions. Within a group the slots' positions strictly increase
    (so they never repeat).
``indices`` : uint8 [rows, ceil(G * n * bits / 8)], the in-group position (0..m-1) of every
    slot as a little-endian bitstream per row: bit ``j`` of slot ``t``'s position is bit
    ``(t * bits + j) % 8`` of byte ``(t * bits + j) // 8`` (first slot in the low bits);
    each row is padded with 0 bits to a whole byte.
``scales`` : float32 [rows], only with ``values="int8"``.

Slot ``g * n + t`` of row ``r`` is column ``g * m + position``. Only in the last group, and only
when that group has fewer than ``n`` in-range columns, can a spare slot point past
``cols``; its value is then 0 (``check`` enforces it), but a kernel must pad ``x`` to
``G * m`` or skip such columns.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInputError, FormatError
from .base import FORMATS, Format, check_choice, check_int_option, expect_array
from .values import VALUE_DTYPES


def _groups(X: np.ndarray, m: int) -> np.ndarray:
    """X zero-padded to a multiple of m columns, as [rows, G, m]."""
    rows, cols = X.shape
    G = -(-cols // m)
    if cols % m:
        P = np.zeros((rows, G * m), dtype=X.dtype)
        P[:, :cols] = X
        X = P
    return X.reshape(rows, G, m)


def select_slots(nz: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group nonzero count [rows, G] and the n kept positions [rows, G, n] (ascending).

    Kept are all nonzeros plus the lowest zero positions, until a group has n. Loops run
    over the m in-group positions only; each step is vectorised over all groups.
    """
    rows, G, m = nz.shape
    count = np.zeros((rows, G), dtype=np.int8)
    for j in range(m):
        count += nz[:, :, j]
    spare = n - count                                # zeros each group keeps
    pos = np.zeros((rows, G, n), dtype=np.int64)
    filled = np.zeros((rows, G), dtype=np.int8)
    zeros_seen = np.zeros((rows, G), dtype=np.int8)
    for j in range(m):
        zeros_seen += ~nz[:, :, j]
        take = nz[:, :, j] | (zeros_seen <= spare)
        for t in range(min(j + 1, n)):
            pos[:, :, t][take & (filled == t)] = j
        filled += take
    return count, pos


def pack_positions(pos: np.ndarray, bits: int) -> np.ndarray:
    """Pack [rows, nslots] positions (< 2**bits) into the per-row little-endian bitstream.

    8 slots of ``bits`` bits fill exactly ``bits`` bytes, so slots are packed 8 at a time in a
    uint32 whose low ``bits`` bytes are kept.
    """
    rows, nslots = pos.shape
    chunks = -(-nslots // 8)
    P = np.zeros((rows, chunks * 8), dtype=np.uint32)
    P[:, :nslots] = pos
    word = (P.reshape(rows, chunks, 8) << (bits * np.arange(8, dtype=np.uint32))).sum(axis=2, dtype=np.uint32)
    out = word.astype("<u4").view(np.uint8).reshape(rows, chunks, 4)[:, :, :bits]
    return np.ascontiguousarray(out.reshape(rows, chunks * bits)[:, : -(-nslots * bits // 8)])


def unpack_positions(indices: np.ndarray, nslots: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_positions`: [rows, nslots] positions as int64."""
    rows = len(indices)
    chunks = -(-nslots // 8)
    T = np.zeros((rows, chunks * bits), dtype=np.uint8)
    T[:, : indices.shape[1]] = indices
    B = np.zeros((rows, chunks, 4), dtype=np.uint8)
    B[:, :, :bits] = T.reshape(rows, chunks, bits)
    word = B.view("<u4")                                           # [rows, chunks, 1]
    pos = (word >> (bits * np.arange(8, dtype=np.uint32))) & np.uint32(2**bits - 1)
    return pos.reshape(rows, chunks * 8)[:, :nslots].astype(np.int64)


def nm_violation(W: np.ndarray, n: int, m: int) -> str | None:
    """Where ``W`` breaks the n:m pattern along its columns, or None if it fits."""
    rows, cols = W.shape
    G = -(-cols // m)
    P = np.zeros((rows, G * m), dtype=bool)
    P[:, :cols] = W != 0
    count = P.reshape(rows, G, m).sum(axis=2)
    if (count <= n).all():
        return None
    r, g = np.argwhere(count > n)[0]
    return f"not {n}:{m} sparse (row {r}, group {g} has {count[r, g]} nonzeros)"


@FORMATS.register("nm")
class NMFormat(Format):
    """N:M sparsity with packed in-group positions."""

    name = "nm"
    array_names = ("data", "indices")
    index_arrays = ("indices",)
    meta_keys = ("n", "m")
    option_defaults = {"n": 2, "m": 4}
    kernel_arrays = ("data", "indices")
    kernel_options = ("n", "m")
    runtime_options = {"n": 2, "m": 4}
    pattern, pattern_keys, pattern_only, pattern_label = "nm", ("n", "m"), True, "N:M patterns"

    @classmethod
    def estimate_options(cls, shape: tuple[int, int], given: dict[str, Any]) -> dict[str, Any]:
        return cls._check_options(shape, n=given["n"], m=given["m"])

    @classmethod
    def max_count(cls, shape: tuple[int, int], o: dict[str, Any], units: int) -> int:
        n, m = o["n"], o["m"]
        G = -(-shape[1] // m)
        return shape[0] * ((G - 1) * n + min(n, shape[1] - (G - 1) * m))

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        rows, cols = shape
        n, m = o["n"], o["m"]
        G = -(-cols // m)
        return rows * G * n * o["vb"], rows * -(-G * n * (m.bit_length() - 1) // 8), 0

    @classmethod
    def _check_options(cls, shape, n, m):
        m = check_choice(cls.name, "m", m, (2, 4, 8, 16))
        return {"n": check_int_option(cls.name, "n", n, 1, int(m) - 1), "m": int(m)}

    @classmethod
    def misfit(cls, W: np.ndarray, **opts: Any) -> str | None:
        o = {**cls.option_defaults, **{k: v for k, v in opts.items() if v is not None}}
        return nm_violation(W, o["n"], o["m"])

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype, n, m):
        rows, cols = W.shape
        bits = m.bit_length() - 1
        nz = _groups(W != 0, m)                                  # [rows, G, m]
        count, pos = select_slots(nz, n)
        if (count > n).any():
            r, g = np.argwhere(count > n)[0]
            raise BadInputError(f"{cls.name}: W is not {n}:{m} sparse: row {r}, group {g} (columns "
                                f"{g * m}..{min(g * m + m, cols) - 1}) has {count[r, g]} nonzeros, more than n={n}")
        G = nz.shape[1]
        data = np.take_along_axis(_groups(Q, m), pos, axis=2)
        data[data == 0] = 0          # spare slots hold W's zeros there; make any -0.0 a plain 0
        pos = pos.reshape(rows, G * n)
        arrays = {"data": data.reshape(rows, G * n).astype(Q.dtype, copy=False),
                  "indices": pack_positions(pos, bits)}
        return cls._new(W.shape, values, scales, arrays, n=n, m=m)

    def _slots(self):
        """(in-group positions [rows, G*n], columns [rows, G*n]) of every slot."""
        n, m = self.n, self.m
        nslots = -(-self.shape[1] // m) * n
        pos = unpack_positions(self.indices, nslots, m.bit_length() - 1)
        return pos, (np.arange(nslots) // n) * m + pos

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        n, m = self.n, self.m
        if not (type(m) is int and m in (2, 4, 8, 16) and type(n) is int and 0 < n < m):
            raise FormatError(f"{who}: meta n={n!r}, m={m!r}, expected 0 < n < m and m in 2, 4, 8, 16")
        G, bits = -(-cols // m), m.bit_length() - 1
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (rows, G * n))
        indices = expect_array(who, a, "indices", ("uint8",), (rows, -(-G * n * bits // 8)))
        tail = G * n * bits % 8
        if tail and (indices[:, -1] >> tail).any():
            r = np.flatnonzero(indices[:, -1] >> tail)[0]
            raise FormatError(f"{who}: indices has padding bits set at the end of row {r}")
        pos, col = self._slots()
        grouped = pos.reshape(rows, G, n)
        unsorted = np.argwhere(grouped[:, :, 1:] <= grouped[:, :, :-1])
        if len(unsorted):
            r, g, _ = unsorted[0]
            raise FormatError(f"{who}: row {r}, group {g} has in-group positions {grouped[r, g].tolist()}, "
                              f"expected strictly increasing")
        outside = np.argwhere((col >= cols) & (data != 0))
        if len(outside):
            r, k = outside[0]
            raise FormatError(f"{who}: row {r}, slot {k} points at column {col[r, k]} past cols = {cols} "
                              f"but holds a nonzero value")

    def _decode(self):
        rows, cols = self.shape
        _, col = self._slots()
        D = np.zeros((rows, -(-cols // self.m) * self.m), self.data.dtype)
        D[np.arange(rows)[:, None], col] = self.data
        return D[:, :cols].copy()
