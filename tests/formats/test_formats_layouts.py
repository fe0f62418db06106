"""Array layouts against independent references: scipy.sparse, plain-Python encoders written
from the layout specs in the module docstrings, and hand-worked examples.

The kernels are written against these layouts, so the arrays (not only the round trip) must match.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .format_cases import make_nm, matrices
from prunebench.formats import encode

REF = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: np.ndarray, b) -> None:
    b = np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_array_equal(a.astype(np.float64) if a.dtype.kind == "f" else a, b)


def same_bits(a: np.ndarray, b) -> None:
    np.testing.assert_array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


# ------------------------------------------------------------------ scipy.sparse


@REF
@given(W=matrices(max_rows=40, max_cols=300))
def test_csr_csc_coo_arrays_equal_scipy(W):
    for name, ref in (("csr", sp.csr_array(W)), ("csc", sp.csc_array(W))):
        fmt = encode(W, name)
        ref.sort_indices()
        same(fmt.indptr, ref.indptr)
        same(fmt.indices, ref.indices)
        same_bits(fmt.data, ref.data)
        assert fmt.indptr.dtype == np.int32
    coo = sp.coo_array(sp.csr_array(W))       # csr -> coo is row-major sorted
    fmt = encode(W, "coo")
    same(fmt.row, coo.row)
    same(fmt.col, coo.col)
    same_bits(fmt.data, coo.data)


@REF
@given(W=matrices(max_rows=30, max_cols=40), block=st.sampled_from([(1, 1), (2, 3), (4, 4), (3, 1)]))
def test_bsr_equals_scipy_on_block_multiple_shapes(W, block):
    r, c = block
    P = np.zeros((-(-W.shape[0] // r) * r, -(-W.shape[1] // c) * c), np.float32)
    P[: W.shape[0], : W.shape[1]] = W
    ref = sp.bsr_array(P, blocksize=block)   # scipy keeps a block if any entry is nonzero
    ref.sort_indices()
    fmt = encode(W, "bsr", block=block)
    same(fmt.indptr, ref.indptr)
    same(fmt.indices, ref.indices)
    same_bits(fmt.data, ref.data)


# ------------------------------------------------------------------ plain-Python references


def ref_rcsr(W, bits):
    """Deep-Compression relative indices, written from the rcsr docstring with explicit loops."""
    D = 2**bits - 1
    counts, deltas, data = [], [], []
    for r in range(W.shape[0]):
        prev, start = -1, len(data)
        for c in range(W.shape[1]):
            if W[r, c] != 0:
                gap = c - prev - 1
                while gap > D:                    # filler at column prev + D + 1
                    deltas.append(D)
                    data.append(0.0)
                    gap -= D + 1
                deltas.append(gap)
                data.append(W[r, c])
                prev = c
        counts.append(len(data) - start)
    if bits == 4:
        deltas = deltas + [0] * (len(deltas) % 2)
        deltas = [deltas[i] | (deltas[i + 1] << 4) for i in range(0, len(deltas), 2)]
    return counts, deltas, data


@REF
@given(W=matrices(max_rows=12, max_cols=300), bits=st.sampled_from([4, 8]))
def test_rcsr_arrays_equal_the_loop_reference(W, bits):
    counts, deltas, data = ref_rcsr(W, bits)
    fmt = encode(W, "rcsr", bits=bits)
    same(fmt.counts, counts)
    assert fmt.counts.dtype == (np.uint8 if W.shape[1] <= 255 else np.uint16)   # holds cols
    same(fmt.deltas, np.array(deltas, np.uint8))
    same_bits(fmt.data, np.array(data, np.float32))
    assert fmt.nfillers == len(data) - np.count_nonzero(W)


def test_rcsr_hand_example_from_the_docstring():
    W = np.zeros((2, 40), np.float32)
    W[0, 0], W[0, 20] = 5, 7            # gap 19 > 15: one filler at column 16, then delta 3
    W[1, 16], W[1, 17], W[1, 39] = 1, 2, 3   # gap 16: one filler at column 15 then delta 0; gap 21: one filler then 5
    fmt = encode(W, "rcsr", bits=4)
    # row 0 deltas 0, 15, 3 ; row 1 deltas 15, 0, 0, 15, 5
    same(fmt.counts, [3, 5])
    assert fmt.counts.dtype == np.uint8
    same(fmt.deltas, [0x00 | 15 << 4, 3 | 15 << 4, 0 | 0 << 4, 15 | 5 << 4])
    same(fmt.data, [5, 0, 7, 0, 1, 2, 0, 3])
    assert fmt.nfillers == 3 and fmt.bits == 4
    f8 = encode(W, "rcsr", bits=8)
    same(f8.deltas, [0, 19, 16, 0, 21])
    same(f8.counts, [2, 3])
    assert f8.nfillers == 0


@REF
@given(W=matrices(max_rows=12, max_cols=700))
def test_delta8_arrays_equal_the_loop_reference(W):
    counts, deltas, data = ref_rcsr(W, 8)          # the same deltas and fillers as rcsr bits=8
    fmt = encode(W, "delta8")
    same(fmt.indptr, np.concatenate([[0], np.cumsum(counts)]))
    assert fmt.indptr.dtype == np.int32
    same(fmt.deltas, np.array(deltas, np.uint8))
    same_bits(fmt.data, np.array(data, np.float32))
    assert fmt.nfillers == len(data) - np.count_nonzero(W)


def test_delta8_hand_example_from_the_docstring():
    W = np.zeros((2, 600), np.float32)
    W[0, 0], W[0, 300] = 5, 7            # gap 299 > 255: one filler at column 256, then delta 43
    W[1, 599] = 2                        # gap 599: fillers at 255 and 511, then delta 87
    fmt = encode(W, "delta8", values="int8")
    same(fmt.indptr, [0, 3, 6])
    same(fmt.deltas, [0, 255, 43, 255, 255, 87])
    same(fmt.data, [91, 0, 127, 0, 0, 127])  # 5 / (7 / 127) = 90.7
    assert fmt.nfillers == 3
    same(fmt.scales, encode(W, "csr", values="int8").scales)   # the shared float32 rule


def test_rcsr_int8_scales_are_float16_rounded_up():
    # max|row| / 127: 127 / 127 = 1 exactly; 0.1 / 127 is not a float16, so it is rounded up
    W = np.array([[0, 127.0, -3.0, 0], [0.1, 0, 0, -0.05], [0, 0, 0, 0]], np.float32)
    fmt = encode(W, "rcsr", values="int8")
    assert fmt.scales.dtype == np.float16
    want = 0.1 / 127
    up = np.float16(want)
    up = up if float(up) >= want else np.nextafter(up, np.float16(1))
    same(fmt.scales, [1.0, float(up), 1.0])
    same(fmt.data, [127, -3, int(np.rint(np.float32(0.1) / np.float32(up))),
                    int(np.rint(np.float32(-0.05) / np.float32(up)))])
    assert fmt.nbytes()["metadata"] == 3 * 2


@pytest.mark.parametrize("row_max", [1e-4, 1e7])
def test_rcsr_int8_keeps_float32_scales_when_one_is_not_a_normal_float16(row_max):
    W = np.array([[1.0, 0, 2.0], [0, row_max, 0]], np.float32)
    fmt = encode(W, "rcsr", values="int8")
    same(fmt.scales, encode(W, "csr", values="int8").scales)      # the shared float32 rule
    assert fmt.scales.dtype == np.float32
    same(fmt.data, encode(W, "csr", values="int8").data)


def ref_ell(W, h):
    rows = W.shape[0]
    slice_ptr, widths, indices, data = [0], [], [], []
    for s0 in range(0, rows, h):
        block = W[s0:s0 + h]
        hs = len(block)
        w = max(int(np.count_nonzero(row)) for row in block)
        idx, val = [0] * (hs * w), [0.0] * (hs * w)
        for i, row in enumerate(block):
            for k, c in enumerate(np.flatnonzero(row != 0)):
                idx[k * hs + i], val[k * hs + i] = c, row[c]
        widths.append(w)
        indices += idx
        data += val
        slice_ptr.append(len(data))
    return slice_ptr, widths, indices, data


@REF
@given(W=matrices(max_rows=20, max_cols=40), h=st.sampled_from([None, 1, 3, 8, 64]))
def test_ell_arrays_equal_the_loop_reference(W, h):
    slice_ptr, widths, indices, data = ref_ell(W, min(h or W.shape[0], W.shape[0]))
    fmt = encode(W, "ell", slice_height=h)
    same(fmt.slice_ptr, slice_ptr)
    same(fmt.widths, widths)
    same(fmt.indices, indices)
    same_bits(fmt.data, data)
    assert fmt.slice_ptr.dtype == fmt.widths.dtype == np.int32


def test_ell_hand_example():
    W = np.array([[1, 0, 2], [0, 0, 0], [0, 3, 0]], np.float32)
    fmt = encode(W, "ell", slice_height=2)
    # slice 0: rows 0-1, width 2, slot-major: (r0,k0) (r1,k0) (r0,k1) (r1,k1); slice 1: row 2, width 1
    same(fmt.widths, [2, 1])
    same(fmt.slice_ptr, [0, 4, 5])
    same(fmt.indices, [0, 0, 2, 0, 1])
    same(fmt.data, [1, 0, 2, 0, 3])


def ref_bitmap(W):
    rows, cols = W.shape
    mask = np.zeros((rows, -(-cols // 8)), np.uint8)
    for r in range(rows):
        for c in range(cols):
            if W[r, c] != 0:
                mask[r, c // 8] |= 1 << (c % 8)
    return mask, [0, *np.cumsum([np.count_nonzero(row) for row in W])], W[W != 0]


@REF
@given(W=matrices(max_rows=10, max_cols=40))
def test_bitmap_arrays_equal_the_loop_reference(W):
    mask, row_ptr, data = ref_bitmap(W)
    fmt = encode(W, "bitmap")
    same(fmt.mask, mask)
    same(fmt.row_ptr, row_ptr)
    same_bits(fmt.data, data)


def ref_nm(W, n, m):
    """Slots: nonzero positions plus the lowest unused ones, ascending; LSB-first bitstream."""
    rows, cols = W.shape
    bits = m.bit_length() - 1
    G = -(-cols // m)
    data = np.zeros((rows, G * n), np.float32)
    packed = []
    for r in range(rows):
        stream = []
        for g in range(G):
            cols_g = range(g * m, g * m + m)
            used = [p for p, c in enumerate(cols_g) if c < cols and W[r, c] != 0]
            spare = [p for p in range(m) if p not in used][: n - len(used)]
            for t, p in enumerate(sorted(used + spare)):
                c = g * m + p
                data[r, g * n + t] = W[r, c] if p in used else 0.0
                stream += [(p >> j) & 1 for j in range(bits)]
        stream += [0] * (-len(stream) % 8)
        packed.append([sum(stream[b + i] << i for i in range(8)) for b in range(0, len(stream), 8)])
    return data, np.array(packed, np.uint8).reshape(rows, -1)


@REF
@given(W=matrices(max_rows=8, max_cols=40), nm=st.sampled_from([(2, 4), (1, 2), (3, 8), (1, 8), (5, 16), (1, 16)]))
def test_nm_arrays_equal_the_loop_reference(W, nm):
    W = make_nm(W, *nm)
    data, indices = ref_nm(W, *nm)
    fmt = encode(W, "nm", n=nm[0], m=nm[1])
    same_bits(fmt.data, data)
    same(fmt.indices, indices)


def test_nm_hand_example_with_three_bit_positions_across_bytes():
    # 1:8 -> 3-bit positions; 3 groups -> 9 bits -> 2 bytes per row
    W = np.zeros((1, 24), np.float32)
    W[0, 5], W[0, 8 + 7], W[0, 16 + 2] = 1, 2, 3       # positions 5, 7, 2
    fmt = encode(W, "nm", n=1, m=8)
    # bitstream LSB-first: 101 (5) 111 (7) 010 (2) -> byte0 bits0-7 = 1,0,1,1,1,1,0,1 ; byte1 bit0 = 0
    same(fmt.indices, [[0b10111101, 0b00000000]])
    same(fmt.data, [[1, 2, 3]])
    # 2:4, an empty group then one nonzero at column 5 (position 1): spare slots take the
    # lowest unused positions, slots ascending -> positions 0, 1 | 0, 1
    f = encode(np.array([[0, 0, 0, 0, 0, 9, 0, 0]], np.float32), "nm")
    same(f.data, [[0, 0, 0, 9]])
    same(f.indices, [[0 | 1 << 2 | 0 << 4 | 1 << 6]])


def ref_compact(W):
    rk = [r for r in range(W.shape[0]) if np.any(W[r] != 0)]
    ck = [c for c in range(W.shape[1]) if np.any(W[:, c] != 0)]
    return rk, ck, W[np.ix_(rk, ck)] + np.float32(0)     # zeros stored as +0


@REF
@given(W=matrices(max_rows=20, max_cols=40))
def test_compact_arrays_equal_the_loop_reference(W):
    rk, ck, data = ref_compact(W)
    fmt = encode(W, "compact")
    same(fmt.rows_kept, rk)
    same(fmt.cols_kept, ck)
    same_bits(fmt.data, data)


def test_bsr_keeps_true_shape_and_pads_internally():
    W = np.zeros((5, 7), np.float32)
    W[4, 6] = 1.0
    fmt = encode(W, "bsr", block=(4, 4))
    assert fmt.shape == (5, 7)
    same(fmt.indptr, [0, 0, 1])
    same(fmt.indices, [1])
    expected = np.zeros((1, 4, 4), np.float32)
    expected[0, 0, 2] = 1.0
    same(fmt.data, expected)
