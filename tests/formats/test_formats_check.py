"""check(): each targeted corruption raises FormatError with a message that says what it found."""
from __future__ import annotations

import numpy as np
import pytest

from .format_cases import make_nm, random_sparse
from prunebench.errors import FormatError
from prunebench.formats import FORMATS, encode


def base_matrix() -> np.ndarray:
    """8 x 64, every row holds a nonzero; row 0 holds 10 in a run, row 3 several."""
    W = random_sparse((8, 64), 60, seed=4)
    W[:, 0] = 1.0
    W[0, :10] = 2.0
    W[3, 5] = W[3, 40] = 1.0
    return W


def row_start(indptr, r):
    return int(indptr[r])


def set_item(name, index, value):
    def mutate(a, m):
        a[name] = a[name].copy()
        a[name][index] = value
    return mutate


def csr_index_in_row3(a, m):
    a["indices"] = a["indices"].copy()
    a["indices"][row_start(a["indptr"], 3) + 1] = 70


def csr_swap_in_row1(a, m):
    a["indices"] = a["indices"].copy()
    k = row_start(a["indptr"], 1)
    a["indices"][k], a["indices"][k + 1] = a["indices"][k + 1], a["indices"][k]


def csr_decreasing_at_row2(a, m):
    a["indptr"] = a["indptr"].copy()
    a["indptr"][3] = a["indptr"][2] - 1


def csc_index_in_col0(a, m):
    a["indices"] = a["indices"].copy()
    a["indices"][1] = 8


def coo_swap(a, m):
    for k in ("row", "col"):
        a[k] = a[k][[1, 0, *range(2, len(a[k]))]]


def all_deltas_max(a, m):
    a["deltas"] = np.full_like(a["deltas"], 0xFF)


def ell_widths(a, m):
    a["widths"] = a["widths"] + np.int32(1)


def bitmap_flip(a, m):
    a["mask"] = a["mask"].copy()
    a["mask"][2, 1] ^= 1


def nm_first_positions_zero(a, m):
    a["indices"] = a["indices"].copy()
    a["indices"][0, 0] = 0


def compact_reverse(a, m):
    a["rows_kept"] = a["rows_kept"][::-1].copy()


def lowrank_rank(a, m):
    m["rank"] = m["rank"] - 1


def bad_meta(key, value):
    def mutate(a, m):
        m[key] = value
    return mutate


W = base_matrix()
NM = make_nm(W, 2, 4)
CORRUPTIONS = [
    ("csr", W, {}, lambda a, m: a.update(indptr=a["indptr"][:5]),
     r"^csr: indptr has 5 entries, expected rows\+1 = 9$"),
    ("csr", W, {}, csr_index_in_row3, r"^csr: column index 70 out of range for 64 columns in row 3$"),
    ("csr", W, {}, csr_decreasing_at_row2, r"^csr: indptr not non-decreasing at row 2$"),
    ("csr", W, {}, csr_swap_in_row1, r"^csr: column index \d+ follows \d+ in row 1; expected strictly increasing$"),
    ("csr", W, {}, lambda a, m: a.update(indptr=a["indptr"] + np.int32(np.arange(9) == 8)),
     r"^csr: indptr\[-1\] is (\d+), expected nnz \(len\(data\)\) = (?!\1$)\d+$"),
    ("csr", W, {}, set_item("indptr", 0, 1), r"^csr: indptr\[0\] is 1, expected 0$"),
    ("csr", W, {}, set_item("data", 4, np.inf), r"^csr: data holds non-finite values$"),
    ("csr", W, {"values": "int8"}, set_item("scales", 2, np.nan), r"^csr: scales\[2\] is nan, expected a finite"),
    ("csr", W, {"values": "int8"}, set_item("scales", 1, -1.0), r"^csr: scales\[1\] is -1.0"),
    ("csc", W, {}, csc_index_in_col0, r"^csc: row index 8 out of range for 8 rows in column 0$"),
    ("csc", W, {}, lambda a, m: a.update(indptr=a["indptr"][:-1]),
     r"^csc: indptr has 64 entries, expected columns\+1 = 65$"),
    ("coo", W, {}, set_item("row", 3, 8), r"^coo: row index 8 out of range for 8 rows at entry 3$"),
    ("coo", W, {}, set_item("col", 0, 64), r"^coo: column index 64 out of range for 64 columns in row 0$"),
    ("coo", W, {}, coo_swap, r"^coo: entries not sorted row-major without duplicates at entry 1"),
    ("rcsr", W, {}, all_deltas_max, r"^rcsr: decoded column 79 out of range for 64 columns in row 0$"),
    ("rcsr", W, {}, bad_meta("nfillers", -1), r"^rcsr: meta nfillers=-1"),
    ("rcsr", W, {}, bad_meta("bits", 6), r"^rcsr: meta bits=6, expected 4 or 8$"),
    ("rcsr", W, {"bits": 8}, lambda a, m: a.update(deltas=a["deltas"][:-1]),
     r"^rcsr: deltas has shape \[\d+\], expected"),
    ("rcsr", W, {}, set_item("counts", 2, 65), r"^rcsr: counts\[2\] is 65, expected 0\.\.64 "),
    ("rcsr", W, {}, lambda a, m: a.update(counts=a["counts"] + np.uint8(np.arange(8) == 5)),
     r"^rcsr: counts sum to (\d+), expected stored entries \(len\(data\)\) = (?!\1$)\d+$"),
    ("rcsr", W, {}, lambda a, m: a.update(counts=a["counts"][:-1]), r"^rcsr: counts has shape \[7\], expected \[8\]$"),
    ("rcsr", W, {"values": "int8"}, lambda a, m: a.update(scales=a["scales"].astype(np.float64)),
     r"^rcsr: scales should be float16 or float32 \[8\], got float64 \[8\]$"),
    ("rcsr", W, {"values": "int8"}, set_item("scales", 3, np.inf), r"^rcsr: scales\[3\] is inf"),
    ("delta8", W, {}, all_deltas_max, r"^delta8: decoded column 255 out of range for 64 columns in row 0$"),
    ("delta8", W, {}, bad_meta("nfillers", -1), r"^delta8: meta nfillers=-1, expected an int in \[0, \d+\]$"),
    ("delta8", W, {}, lambda a, m: a.update(deltas=a["deltas"][:-1]),
     r"^delta8: deltas has shape \[\d+\], expected \[\d+\]$"),
    ("delta8", W, {}, lambda a, m: a.update(deltas=a["deltas"].astype(np.uint16)),
     r"^delta8: deltas has dtype uint16, expected uint8$"),
    ("delta8", W, {}, set_item("indptr", 3, 0), r"^delta8: indptr not non-decreasing at row 2$"),
    ("delta8", W, {}, lambda a, m: a.update(indptr=a["indptr"][:-1]),
     r"^delta8: indptr has 8 entries, expected rows\+1 = 9$"),
    ("cbcsr", W, {"block_cols": 16}, set_item("indices", 0, 20),
     r"^cbcsr: column index 20 in row block \d+ \(row \d+, block 0\) lies outside its columns 0-15$"),
    ("cbcsr", W, {"block_cols": 16}, set_item("indices", 0, 64),
     r"^cbcsr: column index 64 out of range for 64 columns in row block \d+$"),
    ("cbcsr", W, {"block_cols": 16}, lambda a, m: a.update(indptr=a["indptr"][:-1]),
     r"^cbcsr: indptr has 32 entries, expected row blocks\+1 = 33$"),
    ("cbcsr", W, {"block_cols": 16}, bad_meta("block_cols", 0), r"^cbcsr: meta block_cols=0, expected an int >= 1$"),
    ("bsr", W, {}, set_item("indices", 0, 99),
     r"^bsr: block-column index 99 out of range for 16 block columns in block row 0$"),
    ("bsr", W, {}, bad_meta("block", [4, 0]), r"^bsr: meta block=\(4, 0\), expected two ints >= 1$"),
    ("bsr", W, {}, bad_meta("block", [8, 4]), r"^bsr: data has shape \[\d+, 4, 4\], expected \[\*, 8, 4\]$"),
    ("ell", W, {}, set_item("indices", 0, 64), r"^ell: column index 64 out of range for 64 columns in row 0$"),
    ("ell", W, {"slice_height": 3}, ell_widths,
     r"^ell: slice 0 spans \d+ entries in slice_ptr, expected height 3 x width \d+"),
    ("ell", W, {"slice_height": 3}, bad_meta("slice_height", 9),
     r"^ell: meta slice_height=9, expected an int in \[1, rows = 8\]$"),
    ("bitmap", W, {}, bitmap_flip, r"^bitmap: row 2 has \d+ bits set in mask, but row_ptr gives \d+ values$"),
    ("bitmap", W, {}, set_item("row_ptr", 8, 3), r"^bitmap: row_ptr not non-decreasing at row 7$"),
    ("nm", NM, {}, nm_first_positions_zero,
     r"^nm: row 0, group 0 has in-group positions \[0, 0\], expected strictly"),
    ("nm", NM, {}, bad_meta("n", 4), r"^nm: meta n=4, m=4, expected 0 < n < m"),
    ("compact", W, {}, compact_reverse, r"^compact: rows_kept not strictly increasing at position 1$"),
    ("compact", W, {}, set_item("cols_kept", -1, 64), r"^compact: cols_kept entry 64 out of range for 64 columns"),
    ("lowrank", W, {"rank": 4}, lowrank_rank, r"^lowrank: u has shape \[8, 4\], expected \[8, 3\]$"),
    ("lowrank", W, {"rank": 4, "values": "int8"}, set_item("v_scales", 0, np.inf), r"^lowrank: v_scales\[0\] is inf"),
    ("dense", W, {}, lambda a, m: a.update(data=a["data"].T.copy()),
     r"^dense: data has shape \[64, 8\], expected \[8, 64\]$"),
]


@pytest.mark.parametrize("name, W, opts, mutate, msg", CORRUPTIONS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CORRUPTIONS)])
def test_corruption_is_caught_with_a_clear_message(name, W, opts, mutate, msg):
    fmt = encode(W, name, **opts)
    arrays, meta = dict(fmt.arrays()), fmt.meta()
    mutate(arrays, meta)
    with pytest.raises(FormatError, match=msg):
        FORMATS.get(name).from_arrays(arrays, meta)


def test_rcsr_padding_nibble_must_be_zero():
    fmt = encode(np.array([[1, 0, 2, 0, 3]], np.float32), "rcsr")   # 3 entries: last byte half used
    deltas = fmt.deltas.copy()
    deltas[-1] |= 0x10
    with pytest.raises(FormatError, match=r"^rcsr: unused high nibble of the last deltas byte is 1, expected 0$"):
        type(fmt).from_arrays({**fmt.arrays(), "deltas": deltas}, fmt.meta())


def test_bsr_padding_must_be_zero():
    W = np.zeros((9, 64), np.float32)
    W[8, 1] = 5.0                      # block row 2 covers rows 8..11, rows 9..11 are padding
    fmt = encode(W, "bsr")
    data = fmt.data.copy()
    data[0, 3, 0] = 1.0
    msg = r"^bsr: block 0 \(block row 2, block column 0\) has nonzero values in the padding"
    with pytest.raises(FormatError, match=msg):
        type(fmt).from_arrays({**fmt.arrays(), "data": data}, fmt.meta())


def test_bitmap_bits_past_the_last_column_are_refused():
    fmt = encode(np.ones((2, 60), np.float32), "bitmap")
    mask = fmt.mask.copy()
    mask[1, -1] |= 0x80                # bit 63 of row 1
    with pytest.raises(FormatError, match=r"^bitmap: mask has bits set past column 59 in row 1$"):
        type(fmt).from_arrays({**fmt.arrays(), "mask": mask}, fmt.meta())


def test_nm_spare_slot_past_the_last_column_must_hold_zero():
    W = np.array([[1, 2, 0, 0, 3]], np.float32)       # 2:4, last group has one real column
    fmt = encode(W, "nm")
    assert fmt.data.tolist() == [[1, 2, 3, 0]]
    data = fmt.data.copy()
    data[0, 3] = 9.0                                   # slot at in-group position 1 = column 5
    with pytest.raises(FormatError, match=r"^nm: row 0, slot 3 points at column 5 past cols = 5 but holds a nonzero"):
        type(fmt).from_arrays({**fmt.arrays(), "data": data}, fmt.meta())
    assert fmt.indices.shape == (1, 1)                 # 4 slots x 2 bits = exactly one byte: no padding bits
    W8 = np.array([[1, 0, 0, 0, 0, 0, 0, 0]], np.float32)  # 1:8 -> 3 bits in one byte, 5 padding bits
    f8 = encode(W8, "nm", n=1, m=8)
    idx = f8.indices.copy()
    idx[0, 0] |= 0x80
    with pytest.raises(FormatError, match=r"^nm: indices has padding bits set at the end of row 0$"):
        type(f8).from_arrays({**f8.arrays(), "indices": idx}, f8.meta())
