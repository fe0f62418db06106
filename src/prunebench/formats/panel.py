"""Panel: rows in groups of 16 (one vector lane per row), columns in panels of 32, each stored
column an 8-bit offset inside its panel, read by in-register permutes instead of gathers.

Layout
------
``G = ceil(rows / 16)`` row groups; group ``g`` covers rows ``16g .. 16g + 15`` (the last one
may be shorter: its missing lanes are never set). ``P = ceil(cols / 32)`` column panels; panel
``p`` covers columns ``32p .. 32p + 31``.
Inside a group and a panel, row ``16g + l`` has ``n_l`` nonzeros; they are cut into
``max_l n_l`` *chunks*: chunk ``k`` holds the ``k``-th nonzero (in column order) of every row
that has one, one per lane, so no chunk holds two entries of a row.
``chunks`` : uint32 [nchunks], ``lane mask | panel << 16``: bit ``l`` of the low 16 bits says
    whether lane (row) ``l`` of the group has an entry in the chunk; the high 16 bits are the
    panel number (so ``cols <= 65536 * 32``). Chunks run group by group, panels ascending,
    then ``k`` ascending.
``group_ptr`` : int32 [G + 1] (int64 past 2**31 chunks), group ``g``'s chunks are
    ``chunks[group_ptr[g]:group_ptr[g+1]]``.
``value_ptr`` : int32 [G + 1] (int64 past 2**31 entries), group ``g``'s first entry.
``offsets`` : uint8 [nnz], the entry's column minus ``32 * panel`` (0..31).
``data`` : [nnz], value dtype. Entries run chunk by chunk, lanes ascending inside a chunk
    (a chunk's entries are compressed: ``popcount(mask)`` of them).
``scales`` : float32 [rows], only with ``values="int8"``.

Bytes: ``offsets`` is 1 byte per nonzero and ``chunks`` 4 bytes per chunk; a random 90%-sparse
4096 x 4096 matrix has about 7.9 entries per chunk, so 1.5 bytes of index per nonzero against
csr's 2 (uint16) and MKL's 4 (int32).

Why: at batch 1 the row kernel loads the panel's 32 inputs into two vector registers, selects
each lane's input with one ``vpermt2ps`` (the lane's offset is its index), multiplies by the
chunk's values and expands the products into the lanes of their rows (``vexpandps``); the 16
row sums of a group stay in one register, with no horizontal sum and no gather (csr's
``vgatherdps`` costs about one cycle per nonzero on this machine).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInputError, FormatError
from .base import (FORMATS, POINTER_DTYPES, Format, check_pointer, expect_array, make_pointer,
                   pointer_dtype)
from .expected import ell_width
from .values import VALUE_DTYPES

#: rows per group: one 16-lane float32 vector
GROUP_BITS = 4
GROUP = 1 << GROUP_BITS
#: columns per panel: the two vector registers one ``vpermt2ps`` selects from
PANEL_BITS = 5
PANEL = 1 << PANEL_BITS
#: panels the 16-bit panel field can number
MAX_PANELS = 1 << 16


@FORMATS.register("panel")
class PanelFormat(Format):
    """Row groups of 16 x column panels of 32, chunked so that each lane is one row."""

    name = "panel"
    chunks: np.ndarray
    group_ptr: np.ndarray
    value_ptr: np.ndarray
    offsets: np.ndarray
    array_names = ("chunks", "group_ptr", "value_ptr", "offsets", "data")
    index_arrays = ("chunks", "offsets")
    pointer_arrays = ("group_ptr", "value_ptr")
    kernel_arrays = ("chunks", "group_ptr", "value_ptr", "offsets", "data")

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        """Chunks of a group of ``h`` rows in a panel of ``w`` columns: the expected most
        entries of one of the rows there (as ell's slice width)."""
        rows, cols = shape
        p = count / (rows * cols)
        hs, hn = np.unique(np.minimum(GROUP, rows - GROUP * np.arange(-(-rows // GROUP))), return_counts=True)
        ws, wn = np.unique(np.minimum(PANEL, cols - PANEL * np.arange(-(-cols // PANEL))), return_counts=True)
        chunks = sum(a * b * ell_width(int(w), p, int(h)) for h, a in zip(hs, hn) for w, b in zip(ws, wn))
        return count * o["vb"], count + 4 * chunks, 2 * (-(-rows // GROUP) + 1) * pointer_dtype(count).itemsize

    @classmethod
    def _check_options(cls, shape, **opts):
        if -(-shape[1] // PANEL) > MAX_PANELS:
            raise BadInputError(f"{cls.name}: W has {shape[1]} columns; the format holds at most "
                                f"{MAX_PANELS * PANEL} (16-bit panel numbers)")
        return super()._check_options(shape, **opts)

    @classmethod
    def _encode(cls, W, Q, scales, values, index_dtype):
        rows, cols = W.shape
        ngroups = -(-rows // GROUP)
        mask = W != 0
        r, c = np.nonzero(mask)                  # row-major: by row, then column
        npanels = -(-cols // PANEL)
        p = c >> PANEL_BITS                      # shifts and masks: GROUP and PANEL are powers of 2
        # k: rank of the entry among its row's entries in its panel (entries of one (row, panel)
        # are adjacent in row-major order)
        first = np.ones(len(r), dtype=bool)
        first[1:] = (r[1:] != r[:-1]) | (p[1:] != p[:-1])
        starts = np.flatnonzero(first)
        k = np.arange(len(r)) - np.repeat(starts, np.diff(np.append(starts, len(r))))
        # storage order: group, panel, chunk k, lane -- one int64 key (k < 32, lane < 16)
        chunk_key = (((r >> GROUP_BITS) * npanels + p) << PANEL_BITS) + k
        lane = (r & (GROUP - 1)).astype(np.uint8)
        order = np.argsort((chunk_key << GROUP_BITS) + lane, kind="stable")
        chunk_key = chunk_key[order]
        lane = lane[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = chunk_key[1:] != chunk_key[:-1]
        cstart = np.flatnonzero(new)
        lane_bits = np.left_shift(np.uint32(1), lane.astype(np.uint32))
        masks = np.bitwise_or.reduceat(lane_bits, cstart) if len(cstart) else lane_bits[:0]
        group_panel = chunk_key[cstart] >> PANEL_BITS
        chunks = (masks | ((group_panel % npanels).astype(np.uint32) << 16)).astype(np.uint32)
        arrays = {
            "chunks": chunks,
            "group_ptr": make_pointer(np.bincount(group_panel // npanels, minlength=ngroups)),
            "value_ptr": make_pointer(np.bincount(r >> GROUP_BITS, minlength=ngroups)),
            "offsets": (c & (PANEL - 1)).astype(np.uint8)[order],
            "data": Q[mask][order],
        }
        return cls._new(W.shape, values, scales, arrays)

    def _entries(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every stored entry, in storage order (arrays already checked)."""
        chunks = self.chunks.astype(np.int64)
        ptr = self.group_ptr.astype(np.int64)
        groups = np.repeat(np.arange(len(ptr) - 1), ptr[1:] - ptr[:-1])
        bits = (chunks[:, None] >> np.arange(GROUP)) & 1
        ci, lane = np.nonzero(bits)              # chunk by chunk, lanes ascending
        rows = groups[ci] * GROUP + lane
        cols = (chunks[ci] >> 16) * PANEL + self.offsets.astype(np.int64)
        return rows, cols

    def _check(self):
        who, a = self.name, self.arrays()
        rows, cols = self.shape
        ngroups = -(-rows // GROUP)
        data = expect_array(who, a, "data", (VALUE_DTYPES[self.values].name,), (None,))
        offsets = expect_array(who, a, "offsets", ("uint8",), (len(data),))
        chunks = expect_array(who, a, "chunks", ("uint32",), (None,))
        group_ptr = expect_array(who, a, "group_ptr", POINTER_DTYPES, (ngroups + 1,))
        value_ptr = expect_array(who, a, "value_ptr", POINTER_DTYPES, (ngroups + 1,))
        check_pointer(who, group_ptr, "group_ptr", "group", ngroups, len(chunks), "len(chunks)")
        check_pointer(who, value_ptr, "value_ptr", "group", ngroups, len(data), "len(data)")
        lanes = (chunks & 0xFFFF).astype(np.int64)
        if (lanes == 0).any():
            raise FormatError(f"{who}: chunk {np.flatnonzero(lanes == 0)[0]} has an empty lane mask")
        chunk_group = np.repeat(np.arange(ngroups), np.diff(group_ptr.astype(np.int64)))
        per_group = np.bincount(chunk_group, weights=np.bitwise_count(lanes),
                                minlength=ngroups).astype(np.int64)
        bad = np.flatnonzero(per_group != np.diff(value_ptr.astype(np.int64)))
        if len(bad):
            raise FormatError(f"{who}: group {bad[0]}'s lane masks count {per_group[bad[0]]} entries, "
                              f"but value_ptr gives {value_ptr[bad[0] + 1] - value_ptr[bad[0]]}")
        panels = chunks >> 16
        npanels = -(-cols // PANEL)
        if (panels >= npanels).any():
            i = np.flatnonzero(panels >= npanels)[0]
            raise FormatError(f"{who}: chunk {i} names panel {panels[i]}, expected 0..{npanels - 1}")
        r, c = self._entries()
        if len(r) and r.max() >= rows:
            i = int(np.flatnonzero(r >= rows)[0])
            raise FormatError(f"{who}: entry {i} lies in row {r[i]}, past the last row {rows - 1}")
        if (offsets >= PANEL).any() or (len(c) and c.max() >= cols):
            i = int(np.flatnonzero((offsets >= PANEL) | (c >= cols))[0])
            raise FormatError(f"{who}: entry {i} has offset {offsets[i]} in its panel: column {c[i]}, "
                              f"expected below {cols} and offsets 0..{PANEL - 1}")
        # an entry stored twice: some (row, panel) whose offsets' bits overlap (count > popcount)
        cell = r * -(-cols // PANEL) + c // PANEL
        seen = np.zeros(rows * -(-cols // PANEL), np.uint32)
        np.bitwise_or.at(seen, cell, np.left_shift(np.uint32(1), (c % PANEL).astype(np.uint32)))
        if len(r) and np.bitwise_count(seen).sum(dtype=np.int64) != len(r):
            raise FormatError(f"{who}: an entry is stored twice")

    def _decode(self):
        D = np.zeros(self.shape, self.data.dtype)
        r, c = self._entries()
        D[r, c] = self.data
        return D
